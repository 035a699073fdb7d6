"""The thin runners of ``models.poll``'s plans: they check, sleep, read the clock and log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from airflow_provider_gptproto.exceptions import GPTProtoError
from airflow_provider_gptproto.models.poll import Check, EndT, Note, Pause, Plan, Reply

Log = Callable[[int, str], object]  # a logger's ``log`` method
Clock = Callable[[], float]  # unix time, e.g. ``time.time``


def run_poll(
    plan: Plan[EndT],
    check: Callable[[Check], Reply],
    log: Log,
    sleep: Callable[[float], None] | None,
    clock: Clock,
) -> EndT | Pause:
    """Drive ``plan`` with blocking calls; with no ``sleep``, return its first pause (one sensor poke)."""
    step = next(plan)
    while True:
        reply: Reply = None
        if isinstance(step, Note):
            log(step.level, step.text)
        elif isinstance(step, Pause):
            if sleep is None:
                return step
            sleep(step.seconds)
        else:
            try:
                reply = check(step)
            except GPTProtoError as exc:
                reply = exc
        try:
            step = plan.send((clock(), reply))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


async def arun_poll(
    plan: Plan[EndT],
    check: Callable[[Check], Awaitable[Reply]],
    log: Log,
    sleep: Callable[[float], Awaitable[None]],
    clock: Clock,
) -> EndT:
    """Drive ``plan`` with async checks and sleeps (the triggers)."""
    step = next(plan)
    while True:
        reply: Reply = None
        if isinstance(step, Note):
            log(step.level, step.text)
        elif isinstance(step, Pause):
            await sleep(step.seconds)
        else:
            try:
                reply = await check(step)
            except GPTProtoError as exc:
                reply = exc
        try:
            step = plan.send((clock(), reply))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
