"""The batch's decisions, with no I/O: the items' typed state, and what a worker phase does next.

The operator performs the :class:`Actions` that :class:`BatchPlan` decides and reports each outcome
to the journal (docs/batch.md, "Durability"). Time is passed in, so every decision is testable.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from airflow_provider_gptproto.exceptions import GPTProtoRequestError
from airflow_provider_gptproto.models.batch import failure_budget
from airflow_provider_gptproto.models.budget import BUDGET_KIND, Budget, Cost
from airflow_provider_gptproto.models.budget import tokens as budget_tokens
from airflow_provider_gptproto.models.task import GenerationTask, TaskStatus

POLICY_KIND = "policy"
MAX_NAMED = 10  # failed items named in the error
SEED_MAX = 2_147_483_647


class ItemState(str, Enum):
    TODO = "todo"  # not created (or provably not)
    CREATING = "creating"  # create sent, reply not recorded: maybe paid, reconcile before anything
    RUNNING = "running"  # remote task ``task_id`` exists
    DONE = "done"  # video stored
    FAILED = "failed"  # ``kind`` says whether a new try retries it (see ``retry_target``)


# Failure kinds a new try of the Airflow task retries, and to which state. A content-policy
# rejection is not retried unless the user opts in (the same prompt is usually rejected again, and
# each attempt is paid), nor an ambiguous create (a retry could pay twice); a failed download
# re-reads the finished task instead of paying again. ``retry_failed_from`` follows the same rule.
# An item skipped by a spending limit goes back too: ``decide`` skips it again unless the limits allow it.
RETRY_KINDS = {
    "remote": ItemState.TODO,
    "expired": ItemState.TODO,
    "timeout": ItemState.TODO,
    "create": ItemState.TODO,
    "download": ItemState.RUNNING,
    BUDGET_KIND: ItemState.TODO,
}


def retry_target(kind: str | None, retry_policy_failures: bool = False) -> ItemState | None:
    """The state a failed item of ``kind`` goes back to when retried (None: not retried), by the one
    rule for a resume inside a batch and for ``retry_failed_from``."""
    if kind == POLICY_KIND:
        return ItemState.TODO if retry_policy_failures else None
    return RETRY_KINDS.get(kind or "")


@dataclass(frozen=True)
class JournalEntry:
    """One item's record in the journal (how it is stored is the journal's own business)."""

    state: ItemState = ItemState.TODO
    task_id: str | None = None
    at: float | None = None  # when its create started (CREATING) or its task was created (RUNNING)
    seed: int | None = None  # the seed sent, then the one the task reported
    nbytes: int | None = None
    sha256: str | None = None
    usage: dict[str, int] | None = None
    status: str | None = None  # a failed item's status word (failed, expired, cancelled, ...)
    error: str | None = None
    kind: str | None = None  # a failed item's failure kind
    attempt: int | None = None  # in-task retries so far (``item_retries``); None: the first attempt
    paid: int | None = None  # earlier attempts' creates that may have been paid (spending limits)
    paid_tokens: int | None = None  # the usage they reported

    @property
    def created(self) -> bool:
        """This attempt's create was sent and may have been paid (a task exists, or its reply was lost)."""
        return self.state in (ItemState.CREATING, ItemState.RUNNING, ItemState.DONE) or bool(
            self.task_id or self.kind == "ambiguous"
        )

    @property
    def awaiting_usage(self) -> bool:
        return self.state in (ItemState.CREATING, ItemState.RUNNING) or (
            self.state is ItemState.DONE and self.usage is None
        )

    def retried(self, **fields: Any) -> JournalEntry:
        """A new attempt of this item, carrying what the earlier ones may have cost."""
        paid = (self.paid or 0) + self.created
        used = (self.paid_tokens or 0) + budget_tokens(self.usage)
        return JournalEntry(**fields, paid=paid or None, paid_tokens=used or None)

    def _next(self, state: ItemState, **fields: Any) -> JournalEntry:
        """This attempt's next record: what earlier attempts cost carries over, the rest is ``fields``."""
        return JournalEntry(state, paid=self.paid, paid_tokens=self.paid_tokens, **fields)

    def done(self, nbytes: int, sha256: str, seed: int | None, usage: Any) -> JournalEntry:
        seed = self.seed if seed is None else seed  # the reply's, else the one sent
        fields = {"nbytes": nbytes, "sha256": sha256, "usage": usage}
        return self._next(ItemState.DONE, task_id=self.task_id, seed=seed, attempt=self.attempt, **fields)

    def running(self, task_id: str, at: float, seed: int | None, attempt: int | None) -> JournalEntry:
        """This item's remote task ``task_id``, carrying what earlier attempts cost."""
        return self._next(ItemState.RUNNING, task_id=task_id, at=at, seed=seed, attempt=attempt)

    def failed(
        self, kind: str, error: str, status: str = "failed", usage: Any = None, seed: int | None = None
    ) -> JournalEntry:
        seed = self.seed if seed is None else seed
        fields = {"usage": usage, "status": status, "error": error[:500], "kind": kind}
        return self._next(ItemState.FAILED, task_id=self.task_id, seed=seed, attempt=self.attempt, **fields)


Entries = Mapping[int, JournalEntry]  # the items not to do, by index


@dataclass(frozen=True)
class Actions:
    """What to do, in this order. Reconciling comes alone: decide again after it."""

    reconcile: tuple[int, ...] = ()
    cancel: tuple[str, ...] = ()
    changes: dict[int, JournalEntry] = field(default_factory=dict)
    download: tuple[tuple[int, GenerationTask], ...] = ()
    create: tuple[int, ...] = ()


@dataclass(frozen=True)
class Wait:
    """Wait on ``watch`` (remote id -> its absolute deadline) until ``min_finished`` have ended."""

    watch: dict[str, float]
    min_finished: int


@dataclass(frozen=True)
class Finish:
    """Every item ended; ``error``, naming the failed items, when they exceed the budget.
    ``skipped``: the items a spending limit left uncreated (not counted as failed)."""

    failed: tuple[int, ...]
    error: str | None
    skipped: tuple[int, ...] = ()


def in_flight(entries: Entries) -> dict[str, int]:
    """Remote id -> index of every item running remotely."""
    return {e.task_id: i for i, e in entries.items() if e.state is ItemState.RUNNING and e.task_id}


def todo(entries: Entries, total: int) -> list[int]:
    return [i for i in range(total) if entries.get(i, JournalEntry()).state is ItemState.TODO]


def describe(entries: Entries, total: int) -> str:
    n = Counter(e.state for e in entries.values())
    return (
        f"{n[ItemState.DONE]} done, {n[ItemState.FAILED]} failed, {n[ItemState.RUNNING]} running, "
        f"{n[ItemState.CREATING]} unconfirmed, {len(todo(entries, total))} to create"
    )


def resume(
    entries: Entries, retry_policy_failures: bool, now: float, carry: bool = False
) -> dict[int, JournalEntry]:
    """At a new try of the Airflow task, or for ``retry_failed_from`` (the earlier manifest's
    entries): the failures worth another attempt go back to work, a failed download to its task.
    ``carry`` (a new try): what earlier attempts cost still counts against the spending limits."""
    changes = {}
    for index, entry in entries.items():
        target = retry_target(entry.kind, retry_policy_failures) if entry.state is ItemState.FAILED else None
        if target is ItemState.TODO:
            changes[index] = entry.retried() if carry else JournalEntry()
        elif target is ItemState.RUNNING and entry.task_id:
            changes[index] = entry.running(entry.task_id, now, entry.seed, None)
    return changes


def next_seed(seed: int | None, steps: int = 1) -> int:
    """The seed of an item's retry, after one sent with ``seed``: a new one, derived rather than
    drawn so that the plan stays pure and a replayed decision is the same. ``steps``: applied so
    often (take k's seed is take 1's stepped k-1 times; a retry steps over every take's)."""
    return ((seed or 0) + 104_729 * steps) % SEED_MAX or 1


def _is_seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= SEED_MAX


def check_takes(takes: Any, seeds: Any = None, seed: Any = None) -> None:
    """``takes`` and ``seeds`` as the operators accept them, checked before anything is sent."""
    if isinstance(takes, bool) or not isinstance(takes, int) or takes < 1:
        raise GPTProtoRequestError(f"takes must be an integer >= 1, got {takes!r}", field="takes")
    if seeds is not None and seed is not None:
        raise GPTProtoRequestError("give seed (take 1's) or seeds (every take's), not both", field="seeds")
    if seeds is not None and (
        not isinstance(seeds, (list, tuple))
        or len(seeds) != takes
        or not all(map(_is_seed, seeds))
        or len(set(seeds)) != takes
    ):
        raise GPTProtoRequestError(
            f"seeds must be a list of {takes} distinct integers 1..{SEED_MAX} (one per take), got {seeds!r}",
            field="seeds",
        )


def take_seeds(first: int, takes: int, seeds: Sequence[int] | None = None) -> list[int]:
    """Every take's seed: ``seeds`` as given, else ``first`` for take 1 and, for take k, ``first``
    stepped k-1 times by :func:`next_seed` (so no two takes share one)."""
    return list(seeds) if seeds is not None else [next_seed(first, k) if k else first for k in range(takes)]


@dataclass(frozen=True)
class BatchPlan:
    """What bounds the batch: its size, concurrency, per-item timeout, absolute deadline, budget.

    ``chain``: items form ``takes`` chains (item i belongs to chain i % takes): item i is created
    only once item i - takes is done and nothing else of its chain is in flight (each item starts
    from its predecessor's result); a failure beyond its retries stops the creating of its chain.
    ``item_retries``: a failed item is tried again this often within the task, with a new seed.
    ``budget`` and ``costs`` (one per item): spending limits; once the next create would pass one,
    nothing more is created and the items left are skipped (``BUDGET_KIND``, status ``skipped``).
    """

    total: int
    max_in_flight: int
    timeout: float
    deadline: float
    max_failed_items: int | float = 0
    chain: bool = False
    item_retries: int = 0
    takes: int = 1
    budget: Budget | None = None
    costs: tuple[Cost, ...] = ()

    def retries(self, entries: Entries, now: float) -> dict[int, JournalEntry]:
        """Failed items with ``item_retries`` left: back to be created with a new seed (a failed
        download back to its finished task); an ambiguous create never (it may have been paid)."""
        changes = {}
        for index, entry in entries.items():
            attempt = (entry.attempt or 0) + 1
            if (
                entry.state is not ItemState.FAILED
                or attempt > self.item_retries
                or entry.kind == BUDGET_KIND
            ):
                continue
            target = retry_target(entry.kind, retry_policy_failures=True)
            if target is ItemState.TODO:
                changes[index] = entry.retried(seed=next_seed(entry.seed, self.takes), attempt=attempt)
            elif target is ItemState.RUNNING and entry.task_id:
                changes[index] = entry.running(entry.task_id, now, entry.seed, attempt)
        return changes

    def _next(self, entries: Entries) -> list[int]:
        """The items that may be created now, in order: every to-do item, or a chain's next one
        for each chain with nothing in flight and no failure (the ones after it start from it)."""
        if not self.chain:
            return todo(entries, self.total)
        blocked = {
            i % self.takes for i, e in entries.items() if e.state not in (ItemState.TODO, ItemState.DONE)
        }
        firsts: dict[int, int] = {}
        for i in todo(entries, self.total):
            firsts.setdefault(i % self.takes, i)
        return sorted(i for group, i in firsts.items() if group not in blocked)

    def decide(self, entries: Entries, now: float) -> Actions:
        """Before waiting: reconcile interrupted creates first; at the deadline cancel and fail
        what is left; else retry what may be retried and create the next items, at most
        ``max_in_flight`` running at once (a chain: the next one, once nothing runs)."""
        creating = tuple(i for i, e in sorted(entries.items()) if e.state is ItemState.CREATING)
        running = in_flight(entries)
        if creating:
            return Actions(reconcile=creating)
        if now < self.deadline:
            retried = self.retries(entries, now)
            after = {**entries, **retried}
            room = self.max_in_flight - len(in_flight(after))
            create = self._next(after)[: max(room, 0)]
            admitted, limit = (
                self.budget.admit(after, create, self.costs) if self.budget else (len(create), None)
            )
            if limit is None:
                return Actions(changes=retried, create=tuple(create))
            error = f"not created: the next create would pass {limit}"
            skip = {
                i: after.get(i, JournalEntry()).failed(BUDGET_KIND, error, "skipped")
                for i in todo(after, self.total)
                if i not in create[:admitted]
            }
            return Actions(changes={**retried, **skip}, create=tuple(create[:admitted]))
        changes = {
            i: entries[i].failed("timeout", "the batch deadline passed", "cancelled")
            for i in running.values()
        }
        skipped = JournalEntry().failed(
            "timeout", "the batch deadline passed before it was created", "skipped"
        )
        changes.update((i, skipped) for i in todo(entries, self.total))
        return Actions(cancel=tuple(running), changes=changes)

    def observe(
        self,
        entries: Entries,
        tasks: Mapping[str, GenerationTask],
        late: Iterable[str],
        missing: Iterable[str],
    ) -> Actions:
        """A wait's results: late tasks are cancelled and failed, unknown ones failed, finished ones
        downloaded or failed with their kind; ids not running in this batch are ignored."""
        by_id = in_flight(entries)
        cancel = tuple(rid for rid in late if rid in by_id)
        changes = {
            by_id[r]: entries[by_id[r]].failed("timeout", f"not finished within timeout={self.timeout:.0f} s")
            for r in cancel
        }
        for rid in (rid for rid in missing if rid in by_id):
            changes[by_id[rid]] = entries[by_id[rid]].failed(
                "remote", f"GPTProto task {rid} is unknown to the server"
            )
        download = []
        for rid, task in ((r, t) for r, t in tasks.items() if r in by_id and t.is_terminal):
            if task.status is TaskStatus.SUCCEEDED:
                download.append((by_id[rid], task))
                continue
            kind = POLICY_KIND if task.is_content_policy_violation else "remote"
            kind = "expired" if task.status is TaskStatus.EXPIRED else kind
            error = f"{task.error_code or task.status.value}: {task.error_message or ''}".strip(": ")
            changes[by_id[rid]] = entries[by_id[rid]].failed(
                kind, error, task.status.value, task.usage, task.seed
            )
        return Actions(cancel=cancel, changes=changes, download=tuple(download))

    def wait_or_finish(self, entries: Entries) -> Wait | Finish:
        """After acting: finish once every item ended (the failure budget decides how), else wait
        on the running ids, waking at half of them while items remain to be created, else all.
        Stopped chains finish once nothing runs, their items after the failure never created."""
        ended = sum(e.state in (ItemState.DONE, ItemState.FAILED) for e in entries.values())
        busy = any(e.state in (ItemState.CREATING, ItemState.RUNNING) for e in entries.values())
        if ended == self.total or (self.chain and not busy and not self._next(entries)):
            ended_failed = sorted(i for i, e in entries.items() if e.state is ItemState.FAILED)
            skipped = tuple(i for i in ended_failed if entries[i].kind == BUDGET_KIND)
            failed = tuple(i for i in ended_failed if i not in skipped)
            budget = failure_budget(self.max_failed_items, self.total)
            if len(failed) <= budget and ended == self.total:
                return Finish(failed, None, skipped)
            more = f" and {len(failed) - MAX_NAMED} more" if len(failed) > MAX_NAMED else ""
            named = ", ".join(map(str, failed[:MAX_NAMED])) + more
            error = f"over max_failed_items={self.max_failed_items!r} ({budget} allowed): items {named}"
            return Finish(failed, f"{len(failed)} of {self.total} items failed, {error}", skipped)
        watch = {
            r: min((entries[i].at or 0.0) + self.timeout, self.deadline)
            for r, i in in_flight(entries).items()
        }
        return Wait(watch, math.ceil(len(watch) / 2) if todo(entries, self.total) else len(watch))
