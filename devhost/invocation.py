"""Invokes user functions like the Python worker: decodes the trigger input with the binding's
converter, then calls the function by parameter name, sync ones on a thread pool.

Every invocation is logged as one line, so local runs read like the host's invocation log. An input
the converter rejects fails the invocation, as it does in the worker, before the function runs.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from devhost.bindings import TriggerInput, decode
from devhost.functions_index import FunctionSpec, TriggerKind

log = logging.getLogger("devhost")


class _TraceContext(func._abc.TraceContext):
    def __init__(self, trace_parent: str = "", trace_state: str = "") -> None:
        self._trace_parent = trace_parent
        self._trace_state = trace_state

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func._abc.RetryContext):
    """devhost applies no function-level retry policy: always the first try."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> func._abc.RpcException:
        raise AttributeError("no retry in progress")


class InvocationContext(func.Context):
    """The ``context`` argument a function may declare."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str, trace_parent: str = "") -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = _TraceContext(trace_parent)
        self._retry_context = _RetryContext()
        self._thread_local_storage = threading.local()
        self._thread_local_storage.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local_storage

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func._abc.TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> func._abc.RetryContext:
        return self._retry_context


@dataclass(frozen=True)
class InvocationResult:
    invocation_id: str
    value: Any
    error: BaseException | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.error is None


def short_error(error: BaseException, limit: int = 200) -> str:
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Invoker:
    """Calls functions and writes the invocation log line."""

    def __init__(self, function_directory: str, executor: ThreadPoolExecutor | None = None) -> None:
        self.function_directory = function_directory
        self._own_executor = executor is None
        self.executor = executor or ThreadPoolExecutor(max_workers=32, thread_name_prefix="devhost-sync")
        self._sync_lock = threading.Lock()
        self._sync_running = 0

    @property
    def sync_calls_running(self) -> int:
        """Synchronous functions still executing (they cannot be cancelled, only waited for)."""
        with self._sync_lock:
            return self._sync_running

    def _call_sync(self, function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        with self._sync_lock:
            self._sync_running += 1
        try:
            return function(**kwargs)
        finally:
            with self._sync_lock:
                self._sync_running -= 1

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger: TriggerInput,
        *,
        log_fields: Mapping[str, object] | None = None,
        trace_parent: str = "",
    ) -> InvocationResult:
        invocation_id = str(uuid.uuid4())
        context = InvocationContext(invocation_id, spec.name, self.function_directory, trace_parent)
        started = time.perf_counter()
        value: Any = None
        error: BaseException | None = None
        try:
            kwargs: dict[str, Any] = {spec.trigger_arg: decode(spec.binding_type, spec.trigger_annotation, trigger)}
            if spec.wants_context:
                kwargs["context"] = context
            if spec.is_async:
                value = await spec.user_function(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                call = functools.partial(self._call_sync, spec.user_function, kwargs)
                value = await loop.run_in_executor(self.executor, call)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        duration_ms = int((time.perf_counter() - started) * 1000)
        self._log(spec.name, spec.kind, invocation_id, error, duration_ms, log_fields or {})
        return InvocationResult(invocation_id=invocation_id, value=value, error=error, duration_ms=duration_ms)

    @staticmethod
    def _log(
        name: str,
        kind: TriggerKind,
        invocation_id: str,
        error: BaseException | None,
        duration_ms: int,
        fields: Mapping[str, object],
    ) -> None:
        parts = [
            f"devhost function={name} trigger={kind.value} invocation={invocation_id}",
            f"outcome={'ok' if error is None else 'error'} duration_ms={duration_ms}",
        ]
        parts.extend(f"{key}={value}" for key, value in fields.items())
        if error is not None:
            parts.append(f"error={json.dumps(short_error(error), ensure_ascii=False)}")
            # The traceback is what a developer needs next, so it goes with the line.
            log.error(" ".join(parts), exc_info=error)
        else:
            log.info(" ".join(parts))

    def close(self, wait: bool = False) -> None:
        if self._own_executor:
            self.executor.shutdown(wait=wait, cancel_futures=True)
