"""GPTProtoBaseOperator: the setup every GPTProto operator shares, written once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.hooks.mixin import GPTProtoHookMixin, default_deferrable, positive_seconds


class GPTProtoBaseOperator(GPTProtoHookMixin, BaseOperator):
    """Connection id, one hook per execution, the deferrable default and time budgets in seconds.

    Subclasses keep their own documented keyword arguments and pass these on.

    :param gptproto_conn_id: the GPTProto connection. Default ``"gptproto_default"``.
    :param deferrable: wait in the triggerer. Default None: ``[operators] default_deferrable``.
    :param poll_interval: seconds or a ``timedelta`` (None: the operator does not poll).
    :param timeout: seconds or a ``timedelta`` (None: the operator has no budget).
    :raises ValueError: ``poll_interval`` or ``timeout`` is not positive (the message names it).
    """

    poll_interval: float
    timeout: float

    def __init__(
        self,
        *,
        gptproto_conn_id: str = GPTProtoHook.default_conn_name,
        deferrable: bool | None = None,
        poll_interval: timedelta | float | None = None,
        timeout: timedelta | float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gptproto_conn_id = gptproto_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        if poll_interval is not None:
            self.poll_interval = positive_seconds(poll_interval, "poll_interval")
        if timeout is not None:
            self.timeout = positive_seconds(timeout, "timeout")
