"""The connection and one hook per execution, for the operators and the sensor (which may not import them)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from functools import cached_property
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import conf

from airflow_provider_gptproto.exceptions import GPTProtoRequestError
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, read when the task is built (False unless set)."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


def positive_seconds(value: timedelta | float, field: str) -> float:
    """A ``timedelta`` or seconds, in seconds; else a :class:`GPTProtoRequestError` (a ValueError)
    naming ``field``."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise GPTProtoRequestError(
            f"{field} must be a positive number of seconds or a timedelta, got {value!r}", field=field
        )
    return float(seconds)


class GPTProtoHookMixin:
    """``hook``: one cached :class:`GPTProtoHook` per execution, closed when the phase ends.

    A subclass's own ``execute`` and ``execute_complete`` are wrapped when the class is made so
    that its hook is closed in a ``finally`` (deferral and errors included). No use, no hook.
    """

    gptproto_conn_id: str
    hook_kwargs: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("execute", "execute_complete"):
            if callable(method := cls.__dict__.get(name)):
                setattr(cls, name, _closing_hook(method))

    @cached_property
    def hook(self) -> GPTProtoHook:
        """One hook (one connection lookup, one pooled session) per execution."""
        return GPTProtoHook(self.gptproto_conn_id, **self.hook_kwargs)

    def close_hook(self) -> None:
        """Close this execution's hook, if it made one (a closed hook reopens if used again)."""
        if "hook" in self.__dict__:
            self.hook.close()


def _closing_hook(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(self: GPTProtoHookMixin, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            self.close_hook()

    return run
