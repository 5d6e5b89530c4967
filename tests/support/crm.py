"""The example CRM (examples/crm_server.py) served by uvicorn in a thread, on a free port.

It is also a kill test's gate (``support.killer.Gate``) and counter: ``handled()`` is the
number of records the CRM has taken or rejected, and a held CRM, past the count it was
held at, commits a call but keeps its answer back until released, so that an import meant
to be killed cannot finish before its kill lands (and the kill lands after the CRM took a
batch the import never heard back about: the batch is sent again on resume).
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import uvicorn

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> ModuleType:
    """An example script imported as a module (the examples are not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Served:
    def __init__(self, crm: Any, url: str) -> None:
        self.crm = crm
        self.url = url
        self.lock = threading.Lock()
        self.count = 0
        self.hold_at: int | None = None
        self.held = threading.Event()
        crm.on_record = self._on_record

    def _on_record(self, handled: int) -> None:
        with self.lock:
            self.count = handled
            hold = self.hold_at is not None and handled >= self.hold_at
        while hold:  # taken and committed, but the import gets no answer while held
            time.sleep(0.005)
            with self.lock:
                hold = self.hold_at is not None

    def handled(self) -> int:
        with self.lock:
            return self.count

    def hold(self, count: int) -> dict[str, str]:
        with self.lock:
            self.hold_at = self.count + count
        return {}

    def release(self) -> None:
        with self.lock:
            self.hold_at = None


@contextmanager
def serve_crm(db: Path, **options: Any) -> Iterator[Served]:
    """The CRM on 127.0.0.1 until the block ends (``options``: seed, throttle, retry_after)."""
    module = example("crm_server")
    crm = module.CRM(db, **options)
    with socket.socket() as sock:  # uvicorn given a bound socket of ours answered in 40 ms
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        module.make_app(crm), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the CRM did not start"
        assert time.monotonic() < deadline, "the CRM did not start in time"
        time.sleep(0.01)
    served = Served(crm, f"http://127.0.0.1:{port}")
    try:
        yield served
    finally:
        served.release()
        server.should_exit = True
        thread.join(10)
