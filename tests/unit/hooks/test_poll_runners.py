"""The runners of the poll plans (hooks/_poll.py) with a fake clock and sleeper: nothing really sleeps."""

from __future__ import annotations

import asyncio
import logging

import pytest

from airflow_provider_gptproto.exceptions import GPTProtoAuthError, GPTProtoServerError
from airflow_provider_gptproto.hooks._poll import arun_poll, run_poll
from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.models.poll import Check, Pause, Reply, TaskEnd, poll_task
from tests.unit.fakes import CLOCK_START as START
from tests.unit.fakes import FakeClock


def task(status: str) -> GenerationTask:
    return GenerationTask(task_id="t1", status=TaskStatus(status))


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def log(self, level: int, msg: str) -> None:
        self.lines.append((level, msg))


class Server:
    """Answers checks from a script; an exception in it is raised, as the hook would."""

    def __init__(self, *replies: GenerationTask | Exception) -> None:
        self.replies, self.checks = list(replies), 0

    def check(self, step: Check) -> Reply:
        self.checks += 1
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def acheck(self, step: Check) -> Reply:
        return self.check(step)


def test_the_sync_runner_checks_sleeps_and_logs_what_the_plan_says() -> None:
    clock, log = FakeClock(), Log()
    server = Server(task("running"), GPTProtoServerError("down", http_status=503), task("succeeded"))

    end = run_poll(
        poll_task("t1", 5, START, deadline=START + 60), server.check, log.log, clock.advance, clock.time
    )

    assert end == TaskEnd("success", task("succeeded"), "GPTProto task t1 has succeeded")
    assert clock.sleeps == [5, 10]  # the interval, then the backoff after the failed check
    assert [level for level, _ in log.lines] == [logging.INFO, logging.WARNING, logging.INFO, logging.INFO]
    assert log.lines[-1] == (logging.INFO, "GPTProto task t1 has succeeded (15.0 s elapsed)")


def test_the_sync_runner_without_a_sleeper_stops_at_the_first_pause() -> None:
    """One sensor poke: Airflow does the waiting between pokes."""
    clock = FakeClock()
    server = Server(GPTProtoServerError("down", http_status=503))

    step = run_poll(poll_task("t1", 5, START, failures=1), server.check, Log().log, None, clock.time)

    assert step == Pause(20, 2)
    assert (server.checks, clock.sleeps) == (1, [])


def test_the_sync_runner_lets_errors_that_are_not_the_apis_through() -> None:
    server = Server(ValueError("a bug, not an outage"))
    with pytest.raises(ValueError, match="a bug"):
        run_poll(poll_task("t1", 5, START), server.check, Log().log, FakeClock().advance, FakeClock().time)


def test_the_async_runner_waits_out_an_outage_until_the_deadline() -> None:
    clock, log = FakeClock(), Log()
    down = GPTProtoServerError("down", http_status=500)
    server = Server(task("running"), down, down, down)

    end = asyncio.run(
        arun_poll(
            poll_task("t1", 1, START, deadline=START + 6),
            server.acheck,
            log.log,
            clock.aadvance,
            clock.time,
        )
    )

    assert clock.sleeps == [1, 2, 3]  # the last backoff (4 s) is cut to the deadline
    assert server.checks == 3
    assert (end.status, end.task) == ("timeout", task("running"))
    assert "did not finish by its deadline (still running, 6 s waited; the last check failed" in end.message
    assert sum(level == logging.WARNING for level, _ in log.lines) == 2


def test_the_async_runner_hands_back_a_permanent_error() -> None:
    error = GPTProtoAuthError("bad key", http_status=401)
    clock = FakeClock()
    end = asyncio.run(
        arun_poll(poll_task("t1", 1, START), Server(error).acheck, Log().log, clock.aadvance, clock.time)
    )
    assert (end.status, end.error, clock.sleeps) == ("error", error, [])
