"""Reads the functions a ``FunctionApp`` declares, the way the Python worker indexes them.

Only the trigger kinds Herald uses are hosted: HTTP, Service Bus queue, timer and Event Grid.
``%Setting%`` expressions in queue names and schedules are resolved from the environment.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import azure.functions as func

from devhost.bindings import annotation_problem

log = logging.getLogger("devhost")

HTTP_TRIGGER = "httpTrigger"
SERVICE_BUS_TRIGGER = "serviceBusTrigger"
TIMER_TRIGGER = "timerTrigger"
EVENT_GRID_TRIGGER = "eventGridTrigger"
# Output bindings devhost tolerates because nothing needs to happen for them.
_HANDLED_OUTPUTS = {"http"}

_SETTING_EXPR = re.compile(r"%([^%]+)%")


class TriggerKind(StrEnum):
    HTTP = "http"
    SERVICE_BUS = "serviceBus"
    TIMER = "timer"
    EVENT_GRID = "eventGrid"


_KINDS = {
    HTTP_TRIGGER: TriggerKind.HTTP,
    SERVICE_BUS_TRIGGER: TriggerKind.SERVICE_BUS,
    TIMER_TRIGGER: TriggerKind.TIMER,
    EVENT_GRID_TRIGGER: TriggerKind.EVENT_GRID,
}


class FunctionIndexError(ValueError):
    """The app declares something devhost cannot host faithfully."""


def resolve_setting_expressions(value: str, environ: Mapping[str, str]) -> str:
    """Replace each ``%Name%`` with the app setting ``Name``, failing loudly if it is missing."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise FunctionIndexError(f"app setting {name!r} referenced by {value!r} is not set")
        return environ[name]

    return _SETTING_EXPR.sub(lookup, value)


@dataclass(frozen=True)
class FunctionSpec:
    """Everything devhost needs to invoke one function."""

    name: str
    kind: TriggerKind
    # The trigger's binding type as the host declares it ("serviceBusTrigger", ...): it selects the
    # azure-functions converter that builds the trigger argument (devhost/bindings.py).
    binding_type: str
    trigger_arg: str
    user_function: Callable[..., Any]
    is_async: bool
    wants_context: bool
    trigger_annotation: Any = None
    queue_name: str | None = None
    cardinality_many: bool = False
    schedule: str | None = None
    run_on_startup: bool = False
    route: str | None = None
    methods: frozenset[str] | None = None
    ignored_bindings: tuple[str, ...] = ()


@dataclass(frozen=True)
class FunctionIndex:
    functions: tuple[FunctionSpec, ...]
    skipped: tuple[str, ...] = field(default=())

    def of_kind(self, kind: TriggerKind) -> list[FunctionSpec]:
        return [spec for spec in self.functions if spec.kind is kind]

    def find(self, name: str, kind: TriggerKind | None = None) -> FunctionSpec | None:
        """Function names are case-insensitive in the Functions host."""
        for spec in self.functions:
            if spec.name.lower() == name.lower() and (kind is None or spec.kind is kind):
                return spec
        return None


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def _annotation_of(function: Callable[..., Any], parameter: str) -> Any:
    try:
        hints = typing.get_type_hints(function)
    except (NameError, TypeError, AttributeError):  # unresolvable forward references: use the raw annotation
        hints = {}
    if parameter in hints:
        return hints[parameter]
    signature_parameter = inspect.signature(function).parameters.get(parameter)
    if signature_parameter is None or signature_parameter.annotation is inspect.Parameter.empty:
        return None
    return signature_parameter.annotation


def _get_functions(app: func.FunctionRegister) -> Sequence[func.Function]:
    """``get_functions`` remembers names it has seen and rejects them the second time; reset that memo."""
    app.functions_bindings = None
    return app.get_functions()


def index_functions(app: func.FunctionRegister, environ: Mapping[str, str] | None = None) -> FunctionIndex:
    env = os.environ if environ is None else environ
    specs: list[FunctionSpec] = []
    skipped: list[str] = []
    for function in _get_functions(app):
        name = function.get_function_name() or function.get_user_function().__name__
        trigger = function.get_trigger()
        trigger_type = getattr(trigger, "type", None)
        kind = _KINDS.get(str(trigger_type))
        if trigger is None or kind is None:
            log.warning("devhost: function %s has trigger %s which devhost does not host; skipped", name, trigger_type)
            skipped.append(name)
            continue
        user_function = function.get_user_function()
        parameters = inspect.signature(user_function).parameters
        ignored = tuple(
            f"{binding.type}:{binding.name}"
            for binding in function.get_bindings()
            if binding is not trigger and binding.type not in _HANDLED_OUTPUTS
        )
        if ignored:
            log.warning("devhost: function %s has bindings devhost does not provide: %s", name, ", ".join(ignored))
        spec_args: dict[str, Any] = {}
        if kind is TriggerKind.SERVICE_BUS:
            queue = getattr(trigger, "queue_name", None)
            if not queue:
                log.warning("devhost: function %s is a Service Bus topic trigger; only queues are hosted", name)
                skipped.append(name)
                continue
            if getattr(trigger, "is_sessions_enabled", None):
                log.warning("devhost: function %s enables sessions; devhost delivers without session ordering", name)
            spec_args["queue_name"] = resolve_setting_expressions(queue, env)
            spec_args["cardinality_many"] = str(_enum_value(getattr(trigger, "cardinality", None))).lower() == "many"
        elif kind is TriggerKind.TIMER:
            spec_args["schedule"] = resolve_setting_expressions(str(trigger.schedule), env)  # type: ignore[attr-defined]
            spec_args["run_on_startup"] = bool(getattr(trigger, "run_on_startup", False))
        elif kind is TriggerKind.HTTP:
            methods = getattr(trigger, "methods", None)
            spec_args["route"] = getattr(trigger, "route", None) or name
            spec_args["methods"] = frozenset(str(_enum_value(m)).upper() for m in methods) if methods else None
        annotation = _annotation_of(user_function, trigger.name)
        # The worker refuses to load such a function; so does devhost, in the same words.
        problem = annotation_problem(name, trigger.name, str(trigger_type), annotation)
        if problem is not None:
            raise FunctionIndexError(problem)
        specs.append(
            FunctionSpec(
                name=name,
                kind=kind,
                binding_type=str(trigger_type),
                trigger_arg=trigger.name,
                user_function=user_function,
                is_async=inspect.iscoroutinefunction(user_function),
                wants_context="context" in parameters,
                trigger_annotation=annotation,
                ignored_bindings=ignored,
                **spec_args,
            )
        )
    return FunctionIndex(functions=tuple(specs), skipped=tuple(skipped))
