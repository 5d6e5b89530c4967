"""What a handler must be for the way a job runs it, checked before the first item.

* An ``async def`` handler (also a ``functools.partial`` of one, or an object whose
  ``__call__`` is ``async def``) is awaited: one at a time on an event loop of its own with
  ``workers=1``, on the async executor with ``workers=N``. A handler that *returns* an
  awaitable without being declared ``async def`` is refused at the first such item, before
  that item counts as done: the coroutine never ran.
* ``executor="process"`` hands the handler to other processes by reference: it must be a
  function they can import (defined at the top level of a module), not a lambda or a
  function defined inside another.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from midway.errors import ConfigError

if TYPE_CHECKING:
    import asyncio

Handler = Callable[[Any, Any], Any]


def is_async(handler: object) -> bool:
    """``async def``, a partial of one, or an object whose ``__call__`` is one."""
    while isinstance(handler, functools.partial):
        handler = handler.func
    if inspect.iscoroutinefunction(handler):
        return True
    if inspect.isfunction(handler) or inspect.ismethod(handler):
        return False
    call = getattr(type(handler), "__call__", None)  # noqa: B004 (the class's, not the instance's)
    return call is not None and inspect.iscoroutinefunction(call)


def check_result(result: object) -> None:
    """A handler's return value, when it is not None: an awaitable means the work never ran."""
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if callable(close):
            close()  # no "coroutine was never awaited" warning on top of this error
        raise ConfigError(
            "the handler returned an awaitable (a coroutine), so its work never ran and the "
            "item cannot count as done. Declare it `async def handler(item, ctx)` so that "
            "midway awaits it (with workers=N, also executor='async'), or await the "
            "coroutine inside a plain handler"
        )


def prepare(
    handler: Handler, *, workers: int, executor: str
) -> tuple[Handler, AsyncOneByOne | None]:
    """The handler as the engine calls it, or a ``ConfigError`` before anything starts. The
    second value, when not None, owns an event loop to close when the run ends."""
    if not callable(handler):
        raise ConfigError(
            f"the handler must be a function handler(item, ctx), not {type(handler).__name__}"
        )
    asynchronous = is_async(handler)
    if executor == "process":
        if asynchronous:
            raise ConfigError(
                "an `async def` handler runs on an event loop: use executor='async' "
                "(executor='process' is for CPU-bound plain functions)"
            )
        if workers > 1:
            check_importable(handler)
    if asynchronous and workers == 1:
        one = AsyncOneByOne(handler)
        return one, one
    if workers > 1:
        if asynchronous and executor != "async":
            raise ConfigError(
                "an `async def` handler with workers= needs executor='async' "
                f"(Job(..., workers={workers}, executor='async'))"
            )
        if not asynchronous and executor == "async":
            raise ConfigError(
                "executor='async' runs `async def` handlers; this handler is a plain function "
                "(use executor='thread' for it)"
            )
    return handler, None


def check_importable(handler: Handler) -> None:
    """``executor="process"``: the pool's processes find the handler by module and name."""
    target: Any = handler
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target)):
        target = type(target)  # a callable object: its class is found by name
    what = getattr(target, "__name__", repr(target))
    function = getattr(target, "__func__", target)  # a bound method: the function in its class
    module_name = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not isinstance(qualname, str) or not isinstance(module_name, str):
        _refuse_unimportable(what)
    if "<lambda>" in qualname or "<locals>" in qualname:
        _refuse_unimportable(what)
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if getattr(found, "__func__", found) is not function:
        _refuse_unimportable(what)


def _refuse_unimportable(what: str) -> NoReturn:
    raise ConfigError(
        f"executor='process' hands the handler to other processes, which import it by name; "
        f"{what!r} cannot be imported (a lambda, or a function defined inside another). Define "
        "the handler as a function at the top level of a module"
    )


class AsyncOneByOne:
    """``workers=1`` with an ``async def`` handler: each item awaited in turn on an event
    loop of this run, so ``ctx.state`` is the job's state as with a plain handler."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.runner: asyncio.Runner | None = None

    def __call__(self, item: Any, ctx: Any) -> Any:
        runner = self.runner
        if runner is None:
            import asyncio  # slow to import: only for an ``async def`` handler

            runner = self.runner = asyncio.Runner()
        return runner.run(self.handler(item, ctx))

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None
