"""Waiting for tasks, decided without I/O: one plan for the hook, the sensor and both triggers.

A plan is a generator yielding :class:`Check`, :class:`Pause` or :class:`Note` and sent ``(now, reply)``
(the task(s) or the ``GPTProtoError`` a check raised); ``hooks._poll`` runs it. Every waiter checks at
least once, and a pause that would cross the deadline is cut to it, then the wait times out.

Checks keep a cadence: one is due an interval after the previous one was *due*, so the time a check
took, or a loop stall made it late, comes off the next pause (down to half an interval) instead of
slowing the wait for good. A plan holds no reply across its pause but the first of each status (and
no error, only its text): whatever outlives a pause in a triggerer of thousands of waits is promoted
to the oldest generation and brings the next full garbage collection nearer (bench/README.md,
benchmark 1).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from airflow_provider_gptproto.exceptions import (
    GPTProtoAPIError,
    GPTProtoAuthError,
    GPTProtoBadRequestError,
    GPTProtoError,
    GPTProtoNotFoundError,
    GPTProtoRequestError,
)
from airflow_provider_gptproto.models.task import GenerationTask, TaskStatus

MAX_POLL_BACKOFF_SECONDS = 300.0
# How far a trigger's pause strays from its interval, at random, either way (a fraction of it). A
# loop stall (a full garbage collection of the triggerer's heap) makes every wait due in it poll at
# once; without the spread they stay in step ever after, and such bursts are what keep thousands of
# requests alive across collections (bench/results.md, benchmark 1's 10,000 row).
TRIGGER_POLL_JITTER = 0.1
_SPREAD = random.Random()  # its own: a user's random.seed() (e.g. for request seeds) stays theirs


def is_transient_poll_error(exc: BaseException) -> bool:
    """Whether a failed status check is waited out; a bad key, an unknown task, a 400 or a setting
    refused before sending (a connection extra, a ``[gptproto]`` option) is not."""
    permanent = (GPTProtoAuthError, GPTProtoNotFoundError, GPTProtoBadRequestError, GPTProtoRequestError)
    return isinstance(exc, GPTProtoError) and not isinstance(exc, permanent)


def poll_backoff(poll_interval: float, failures: int, exc: BaseException | None = None) -> float:
    """Seconds before the next check after ``failures`` failed ones in a row: the interval doubled per
    failure, at most :data:`MAX_POLL_BACKOFF_SECONDS`, and never less than a ``Retry-After`` hint."""
    delay = min(poll_interval * 2 ** min(max(failures, 1), 8), MAX_POLL_BACKOFF_SECONDS)
    hint = exc.retry_after if isinstance(exc, GPTProtoAPIError) else None
    return min(max(delay, hint or 0.0), MAX_POLL_BACKOFF_SECONDS)


class Check(NamedTuple):
    """Read the status now: of ``ids`` for a batch, of the one task otherwise."""

    ids: tuple[str, ...] = ()


class Pause(NamedTuple):
    """Wait ``seconds``; ``failures`` counts the failed checks in a row (the sensor stores it)."""

    seconds: float
    failures: int = 0


class Note(NamedTuple):
    """A line for the waiter's log, at ``level``."""

    text: str
    level: int = logging.INFO


class TaskEnd(NamedTuple):
    """``status``: "success", "failed" (an end without video), "timeout" or "error" (a permanent one)."""

    status: str
    task: GenerationTask | None
    message: str
    error: GPTProtoError | None = None


Reply = GenerationTask | dict[str, GenerationTask] | GPTProtoError | None
EndT = TypeVar("EndT")
Plan = Generator[Check | Pause | Note, tuple[float, Reply], EndT]


class Deadline:
    """What both plans share: the answer to a reply (its pause and log lines), the cadence and the
    deadline.

    :param what: what is checked, for the log lines ("GPTProto task t1").
    :param failures: failed checks in a row before this plan (a sensor's earlier pokes).
    :param jitter: each interval after a good check lasts the interval times 1 ± this, at random.
    :param start: when the first check was due (the wait's start; None: when it replied); later
        ones are due an interval after the one before was due.
    """

    def __init__(
        self,
        what: str,
        poll_interval: float,
        deadline: float | None,
        failures: int = 0,
        jitter: float = 0.0,
        start: float | None = None,
    ) -> None:
        self.what, self.poll_interval, self.deadline, self.failures = what, poll_interval, deadline, failures
        self.jitter = jitter
        self.due = start  # when the check that was just made was due
        self.cut = False  # the last pause was cut to the deadline: time is up after it

    def passed(self, now: float) -> bool:
        return self.cut or (self.deadline is not None and now >= self.deadline)

    def reply(self, now: float, reply: Reply) -> Generator[Note, object, float | None]:
        """The pause a reply at ``now`` earns (the backoff after a transient error, exact); None
        after a permanent error."""
        if not isinstance(reply, GPTProtoError):
            if self.failures:
                yield Note(f"Checking {self.what} works again after {self.failures} failed checks")
            self.failures = 0
            spread = _SPREAD.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
            return self._next_slot(now, self.poll_interval * (1.0 + spread))
        if not is_transient_poll_error(reply):
            return None
        self.failures += 1
        delay = poll_backoff(self.poll_interval, self.failures, reply)
        self.due = now + delay  # the cadence resumes from the check after the backoff
        text = f"Checking {self.what} failed ({reply}); transient, failure {self.failures} in a row"
        yield Note(f"{text}, next check in {delay:.1f} s", logging.WARNING)
        return delay

    def _next_slot(self, now: float, seconds: float) -> float:
        """The pause until the next check: due ``seconds`` after this one was due, but at least half
        of them and at most all of them after this reply (so a slow server is never polled back to
        back, and a clock stepped back never stretches a pause)."""
        due = now if self.due is None else self.due
        self.due = min(max(due + seconds, now + seconds / 2), now + seconds)
        return max(0.0, self.due - now)

    def pause(self, now: float, seconds: float) -> Generator[Pause, tuple[float, Reply], float]:
        """Pause unless the deadline has come, cut to it: the time after (then ask :meth:`passed`)."""
        if not self.passed(now):
            if self.deadline is not None and now + seconds >= self.deadline:
                self.cut, seconds = True, max(0.0, self.deadline - now)
            now, _ = yield Pause(seconds, self.failures)
        return now


def poll_task(
    task_id: str,
    poll_interval: float,
    now: float,
    *,
    deadline: float | None = None,
    failures: int = 0,
    where: str = "elapsed",
    jitter: float = 0.0,
) -> Plan[TaskEnd]:
    """Wait for one task until it is terminal, the deadline passes or a check fails for good.

    :param now: the unix time the wait starts.
    :param deadline: absolute unix time to give up (None: never).
    :param failures: failed checks in a row before this plan (a sensor's earlier pokes).
    :param where: how status lines name the time waited ("12.0 s elapsed"); empty: not at all.
    :param jitter: intervals last ``poll_interval`` times 1 ± this, at random (see
        :data:`TRIGGER_POLL_JITTER`); backoffs and deadlines are exact.
    :return: how the wait ended; after a timeout its ``task`` is the first reply of the last status
        seen.
    """
    clock = Deadline(f"GPTProto task {task_id}", poll_interval, deadline, failures, jitter, start=now)
    started, last = now, None  # last: the first reply of the latest status seen
    while True:
        now, reply = yield Check()
        pause = yield from clock.reply(now, reply)
        if pause is None:
            error = reply if isinstance(reply, GPTProtoError) else None
            return TaskEnd("error", last, f"Polling GPTProto task {task_id} failed: {reply}", error)
        failed = str(reply) if isinstance(reply, GPTProtoError) else ""  # its text: no frames held
        if isinstance(reply, GenerationTask):
            if last is None or reply.status != last.status:
                waited = where and f" ({now - started:.1f} s {where})"
                yield Note(f"GPTProto task {task_id} {reply.status.phrase}{waited}")
                last = reply
            if reply.is_terminal:
                status = "success" if reply.status is TaskStatus.SUCCEEDED else "failed"
                return TaskEnd(status, reply, f"GPTProto task {task_id} {reply.status.phrase}")
        reply = None  # not held across the pause (see the module's docstring)
        now = yield from clock.pause(now, pause)
        if clock.passed(now):
            state = f"still {last.status.value}" if last else "never seen"
            cause = f"; the last check failed: {failed}" if failed else ""
            message = f"did not finish by its deadline ({state}, {now - started:.0f} s waited{cause})"
            return TaskEnd("timeout", last, f"GPTProto task {task_id} {message}")


@dataclass
class BatchWait:
    """A batch trigger's wait: a plan of rounds, each reading every unfinished id in one :class:`Check`.

    The same :class:`Deadline` as :func:`poll_task`; it fires when *enough* ids ended (as
    :class:`~airflow_provider_gptproto.triggers.batch.GPTProtoBatchTrigger` says), an id past its own
    deadline (``watch``: id -> unix time or None) or unknown to the server ending alone. What ended
    stays readable here, so an on_kill leaves those tasks alone.
    """

    watch: Mapping[str, float | None]
    poll_interval: float
    deadline: float | None = None
    min_finished: int = 1
    max_wait_ready: float = 300.0
    done: dict[str, GenerationTask] = field(default_factory=dict)
    timed_out: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def finished(self) -> set[str]:
        return {*self.done, *self.timed_out, *self.missing}

    def plan(self, now: float) -> Plan[tuple[str, str]]:
        """The rounds until the batch fires: ``(status, message)``, status "ready", "deadline" or "error"."""
        what = f"the statuses of {len(self.watch)} batch tasks"
        clock = Deadline(what, self.poll_interval, self.deadline, start=now)
        first_ready: float | None = None
        while self.watch:  # empty: nothing in flight, a timer (e.g. to retry creates after 429s)
            pending = [i for i in self.watch if i not in self.finished]
            self.timed_out += [i for i in pending if (limit := self.watch[i]) is not None and now >= limit]
            pending = [i for i in pending if i not in self.timed_out]
            pause, failed = self.poll_interval, False  # nothing to read: a timer
            if pending:
                now, reply = yield Check(tuple(pending))
                if (earned := (yield from clock.reply(now, reply))) is None:
                    return "error", f"Polling the batch failed: {reply}"
                pause, failed = earned, isinstance(reply, GPTProtoError)
                if isinstance(reply, dict):
                    self.missing += [i for i in pending if i not in reply]
                    self.done.update((i, t) for i, t in reply.items() if t.is_terminal)
                del reply  # up to N tasks, not held across the pause (see the module's docstring)
            finished = len(self.finished)
            first_ready = now if finished and first_ready is None else first_ready
            waited = first_ready is not None and now - first_ready >= self.max_wait_ready
            if not failed and (finished >= self.min_finished or finished == len(self.watch) or waited):
                yield Note(f"{finished} of {len(self.watch)} watched tasks finished: resuming the batch")
                return "ready", f"{finished} tasks finished"
            now = yield from clock.pause(now, pause)
            if clock.passed(now):
                return "deadline", "the batch reached its deadline"
        yield from clock.pause(now, self.poll_interval)
        return "ready", "nothing in flight; resuming"
