"""Where GraphQL operations execute, and completing plain objects without graphql-core's
per-field machinery.

**Execution threads.** graphql-core completes an answer in Python on the event loop that runs
the operation: for a large answer, seconds of CPU between two awaits. On the server's own loop
that froze ``/healthz`` and every other request (17.8 s for three aliased fan-out queries,
issue #19). :class:`ExecutionLoops` runs operations on a few threads of their own, each with an
event loop; the server's loop only reads requests, checks keys and writes answers, so it keeps
answering while an operation completes (the GIL hands it the CPU every few milliseconds). The
blocking Neo4j calls still run in the app's worker threads. An operation goes to the loop with
the fewest operations in flight, so a slow one holds back only those that share its loop.

**Leaf-only objects.**

A neighbourhood answer is hundreds of small objects (nodes, edges, paths) whose selected fields
are all leaves read straight off an attribute. graphql-core completes each such field on its
own: a path, a resolve info, the resolver, then the leaf's coercion. That was about a third of
a two-hop request's server time, more than Neo4j's. For an object whose every selected field
is a "basic" Strawberry field (no resolver, no permission or other field extension, no
arguments) of a scalar or enum type, this context reads the attributes and coerces them
directly, with a plan built once per selection.

Anything else, and any value the fast path does not accept as is (a null in a non-null field,
a value the scalar refuses), goes through graphql-core unchanged, so answers and errors are
exactly the ones graphql-core gives (tests/test_api_server.py compares the two).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, TypeVar

import uvloop
from graphql import (
    GraphQLObjectType,
    GraphQLResolveInfo,
    Undefined,
    get_nullable_type,
    is_leaf_type,
    is_non_null_type,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

T = TypeVar("T")


class ExecutionLoops:
    """``n`` daemon threads, each running an event loop whose default executor is the app's
    (so ``RequestContext.run`` sends blocking calls to the same worker threads as before).

    Started on first use, stopped by :meth:`stop`. :meth:`run` is called from the server's
    loop only, so the in-flight counts need no lock.
    """

    def __init__(self, n: int, executor: Executor | None) -> None:
        self.n = n
        self.executor = executor
        self._loops: list[asyncio.AbstractEventLoop] = []
        self._threads: list[threading.Thread] = []
        self._busy: list[int] = []

    def _start(self) -> None:
        for i in range(self.n):
            loop = uvloop.new_event_loop()
            if self.executor is not None:
                loop.set_default_executor(self.executor)
            ready = threading.Event()

            def serve(
                loop: asyncio.AbstractEventLoop = loop, ready: threading.Event = ready
            ) -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=serve, name=f"ringscope-graphql-{i}", daemon=True)
            thread.start()
            ready.wait()
            self._loops.append(loop)
            self._threads.append(thread)
            self._busy.append(0)

    async def run(self, operation: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``operation()`` on the least busy execution loop and wait for its result."""
        if not self._loops:
            self._start()
        i = min(range(self.n), key=self._busy.__getitem__)
        self._busy[i] += 1
        try:
            future = asyncio.run_coroutine_threadsafe(operation(), self._loops[i])
            try:
                return await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                future.cancel()
                raise
        finally:
            self._busy[i] -= 1

    def stop(self) -> None:
        """Stop the loops (operations still running on them are abandoned) and their threads.
        The loops are not closed: closing one shuts its default executor, the app's."""
        for loop in self._loops:
            loop.call_soon_threadsafe(loop.stop)
        for thread in self._threads:
            thread.join(timeout=5)
        self._loops, self._threads, self._busy = [], [], []


# (response key, attribute or None for __typename, coerce, non-null, constant for __typename)
Step = tuple[str, str | None, Callable[[Any], Any] | None, bool, str | None]
_MISSING = object()


def _plan(return_type: GraphQLObjectType, grouped: dict[str, Any]) -> list[Step] | None:
    steps: list[Step] = []
    for key, details in grouped.items():
        node = details[0].node
        name = node.name.value
        if name == "__typename":
            steps.append((key, None, None, True, return_type.name))
            continue
        field = return_type.fields.get(name)
        if field is None or field.args or node.arguments:
            return None
        definition = field.extensions.get("strawberry-definition")
        if (
            definition is None
            or not definition.is_basic_field
            or definition.default_resolver is not getattr
        ):
            return None
        leaf = get_nullable_type(field.type)
        if not is_leaf_type(leaf):
            return None
        steps.append((key, definition.python_name, leaf.coerce_output_value,
                      is_non_null_type(field.type), None))  # fmt: skip
    return steps


def _complete(steps: list[Step], source: Any) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for key, attr, coerce, non_null, constant in steps:
        if attr is None:
            out[key] = constant
            continue
        value = getattr(source, attr, _MISSING)
        if value is None:
            if non_null:
                return None
            out[key] = None
            continue
        if value is _MISSING or coerce is None:
            return None
        coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            return None
        out[key] = coerced
    return out


class LeafObjectExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with the fast path above for leaf-only objects."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Keyed like graphql-core's own subfield memo: the selection's list identity (kept
        # alive with the plan, so the id cannot be reused during this execution).
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[Any, list[Step] | None]] = {}
        manager = self.middleware_manager
        self._fast = manager is None or not getattr(manager, "middlewares", ())

    def _steps(self, return_type: GraphQLObjectType, details: Any) -> list[Step] | None:
        key = (return_type, id(details))
        cached = self._plans.get(key)
        if cached is not None:
            return cached[1]
        grouped, new_defer_usages, *_ = self.collect_subfields(return_type, details)
        steps = None if new_defer_usages else _plan(return_type, grouped)
        self._plans[key] = (details, steps)
        return steps

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: Any,
        info: GraphQLResolveInfo[Any],
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        if self._fast:
            steps = self._steps(return_type, field_details_list)
            if steps is not None:
                is_type_of = return_type.is_type_of
                if is_type_of is None or is_type_of(result, info) is True:
                    try:
                        done = _complete(steps, result)
                    except Exception:
                        done = None
                    if done is not None:
                        return done
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )


__all__ = ["ExecutionLoops", "LeafObjectExecutionContext"]
