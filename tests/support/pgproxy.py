"""A TCP proxy in front of the test server that loses answers on purpose.

``cut_after(marker)`` arms it: the next message from a client that contains ``marker`` (say
``b"COMMIT"``) is delivered to the server, the server is given time to act on it, and then
the connection is cut before its answer gets back. The client sees a dropped connection and
cannot tell whether its commit happened: the case a store's retry must get right. While
``down`` is set, every new connection is closed at once (a server that is unreachable).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict


def _target(url: str) -> tuple[int, Any]:
    """(address family, address) of the server ``url`` names."""
    info = conninfo_to_dict(url)
    host = str(info.get("host") or "/tmp")
    port = int(info.get("port") or 5432)
    if host.startswith("/"):
        return socket.AF_UNIX, f"{host}/.s.PGSQL.{port}"
    return socket.AF_INET, (host, port)


class CutProxy:
    def __init__(self, server_url: str) -> None:
        self._family, self._address = _target(server_url)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self._delay = 0.0
        self._down_after_cut = False
        self.down = False
        self.cuts = 0
        self._closed = False
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, database_url: str) -> str:
        """``database_url`` routed through this proxy (TCP, no TLS, so markers can be seen)."""
        parts = urlsplit(database_url)
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")]
        query.append(("sslmode", "disable"))
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))

    def cut_after(self, marker: bytes, *, delay: float = 0.3, then_down: bool = False) -> None:
        """Cut the connection that next sends ``marker``, ``delay`` s after delivering it;
        with ``then_down``, refuse every connection after that until ``down`` is cleared."""
        with self._lock:
            self._marker, self._delay, self._down_after_cut = marker, delay, then_down

    def wait_for_cuts(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.cuts < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the proxy made {self.cuts} cuts in {timeout} s, not {count}")
            time.sleep(0.01)

    def cut_all(self) -> None:
        """Cut every open connection (new ones still come through unless ``down``)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut_all()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            upstream = socket.socket(self._family, socket.SOCK_STREAM)
            try:
                upstream.connect(self._address)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in sel.select():
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                    if source is client and self._should_cut(data):
                        time.sleep(self._delay)  # the server acts on it meanwhile
                        with self._lock:
                            self.cuts += 1
                            if self._down_after_cut:
                                self.down = True
                        return
        except OSError:
            return
        finally:
            sel.close()
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()
            upstream.close()

    def _should_cut(self, data: bytes) -> bool:
        with self._lock:
            if self._marker is None or self._marker not in data:
                return False
            self._marker = None
            return True
