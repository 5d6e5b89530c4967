"""Run one command for ``midway each``: its input, the tails of its output, its exit code.

Each command runs in a process group of its own, so a Ctrl-C at the terminal reaches midway
only: midway lets the command in hand finish, then stops with a checkpoint. On Linux the
command is killed when midway dies, even by ``kill -9`` (``PR_SET_PDEATHSIG``); what the
command started is found and killed by the next run (see ``midway.each.leftovers``). A command
given a ``timeout`` has its process group killed when it runs past it. ``Children``
keeps the commands running now, so that a second stop signal can be passed on to them.

Output is read as it comes (both pipes, and the input written, through one selector, as
``Popen.communicate`` does) and only the last ``tail`` bytes of each stream are kept, so a
command that prints gigabytes costs no memory. With ``passthrough`` the output is also
copied to midway's own stdout / stderr as it arrives. The command is done when it exits
and its pipes fall quiet: a background process it started (``server &``) may keep them
open, and is not waited for.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO

TAIL_BYTES = 4096
_READ = 65536
_PIPE_BUF = 512  # POSIX minimum: a write this small to a writable pipe never blocks
_IDLE = 0.05  # with its pipes quiet this long, see whether the command has ended


@dataclass(frozen=True)
class Outcome:
    """How a command ended: its exit code (negative: killed by that signal) and output tails.
    ``timed_out``: it ran past its time limit and its process group was killed."""

    returncode: int
    stdout_tail: bytes
    stderr_tail: bytes
    seconds: float
    timed_out: bool = False


_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up once here (not in the forked child)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return fn


_PRCTL = _prctl()


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the command when midway dies (even by
    ``kill -9``), so that a killed run leaves no command running on beside its resumed run.

    It only calls a C function already looked up and reads the parent's pid: nothing that
    takes a lock another thread may hold when the process forks. If midway died between the
    fork and the call, the command kills itself before it runs."""
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


class Children:
    """The commands running now (several with parallel workers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self.output_lock = threading.Lock()

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running.add(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running.discard(proc)

    def pids(self) -> list[int]:
        with self._lock:
            return [proc.pid for proc in self._running]

    def signal_all(self, signum: int) -> None:
        """Send ``signum`` to the process group of every running command. Safe in a signal
        handler: it takes no lock (a copy of the set, read without one, is good enough)."""
        for proc in list(self._running):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signum)


def run(
    args: list[str],
    *,
    stdin: bytes | None,
    env: Mapping[str, str] | None,
    children: Children,
    passthrough: bool = False,
    tail: int = TAIL_BYTES,
    timeout: float | None = None,
) -> Outcome:
    """Run ``args`` (no shell) to its end, or until ``timeout`` seconds have passed (then
    its process group is killed). OSError: it could not be started."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        process_group=0,
        # Safe with threads here: the child runs only prctl and getppid (Python's fork
        # handlers reset its own locks in the child, and glibc's reset malloc's).
        preexec_fn=die_with_parent(),  # noqa: PLW1509
    )
    children.add(proc)
    deadline = None if timeout is None else t0 + timeout
    try:
        out, err, timed_out = _pump(proc, stdin, tail, children if passthrough else None, deadline)
        if timed_out:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        returncode = proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        children.discard(proc)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
    return Outcome(returncode, out, err, time.monotonic() - t0, timed_out)


def _pump(
    proc: subprocess.Popen[bytes],
    data: bytes | None,
    tail: int,
    echo: Children | None,
    deadline: float | None,
) -> tuple[bytes, bytes, bool]:
    """Feed ``data`` to the command's stdin and read both its outputs until they close, or
    until ``deadline`` (then the last value is True)."""
    assert proc.stdout is not None
    assert proc.stderr is not None
    kept = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    copy_to = {
        proc.stdout.fileno(): sys.stdout,
        proc.stderr.fileno(): sys.stderr,
    }
    offset = 0
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        selector.register(proc.stderr, selectors.EVENT_READ)
        if proc.stdin is not None:
            if data:
                selector.register(proc.stdin, selectors.EVENT_WRITE)
            else:
                proc.stdin.close()
        while selector.get_map():
            wait = _IDLE
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return (*_tails(kept, proc, tail), True)
            events = selector.select(wait)
            if not events and proc.poll() is not None:
                break  # it ended; a process it left behind may hold its pipes: not waited for
            for key, _ in events:
                fileobj = key.fileobj
                assert not isinstance(fileobj, int)
                fd = fileobj.fileno()
                if fileobj is proc.stdin:
                    assert data is not None
                    try:
                        offset += os.write(fd, data[offset : offset + _PIPE_BUF])
                    except BrokenPipeError:  # it does not read its input: that is its right
                        offset = len(data)
                    if offset >= len(data):
                        selector.unregister(fileobj)
                        fileobj.close()
                    continue
                chunk = os.read(fd, _READ)
                if not chunk:
                    selector.unregister(fileobj)
                    continue
                buf = kept[fd]
                buf += chunk
                if len(buf) > 2 * tail:
                    del buf[:-tail]
                if echo is not None:
                    _echo(copy_to[fd], chunk, echo)
    return (*_tails(kept, proc, tail), False)


def _tails(
    kept: dict[int, bytearray], proc: subprocess.Popen[bytes], tail: int
) -> tuple[bytes, bytes]:
    assert proc.stdout is not None
    assert proc.stderr is not None
    return bytes(kept[proc.stdout.fileno()][-tail:]), bytes(kept[proc.stderr.fileno()][-tail:])


def _echo(stream: IO[str], chunk: bytes, children: Children) -> None:
    with children.output_lock:
        stream.flush()
        binary = getattr(stream, "buffer", None)
        if binary is not None:
            binary.write(chunk)
            binary.flush()
        else:  # a text-only stream (a test runner's capture)
            stream.write(chunk.decode("utf-8", errors="replace"))
            stream.flush()
