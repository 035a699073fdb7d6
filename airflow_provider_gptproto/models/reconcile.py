"""Did a create whose reply was lost land? One answer, no I/O: the hook lists, this decides.

A task without a creation time counts as created in the window: dropping a possible match may pay twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import Enum

from airflow_provider_gptproto.models.task import GenerationTask

# Tasks created this long before a lost create was sent still count as "maybe ours" (clock skew).
RECONCILE_SKEW_SECONDS = 5.0
# Margin after a lost create's own request timeout before the list endpoint is trusted to show it.
RECONCILE_SETTLE_SECONDS = 2.0


class Landing(Enum):
    LANDED = "landed"
    NOT_LANDED = "not_landed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class LostCreate:
    """A create whose reply was lost: when it was sent (unix seconds) and its model (None: any)."""

    sent_at: float
    model: str | None = None

    @property
    def since(self) -> float:
        """Start of the window: tasks created from here on may be this create's."""
        return self.sent_at - RECONCILE_SKEW_SECONDS

    def settle_seconds(self, request_timeout: float, now: float) -> float:
        """Seconds until the lost request must have finished on the server (0 once it has)."""
        return max(0.0, self.sent_at + request_timeout + RECONCILE_SETTLE_SECONDS - now)


@dataclass(frozen=True)
class Reconciled:
    """Landed (``candidates``: the tasks that may be it, newest first), not landed, or unknown (why)."""

    landing: Landing
    candidates: tuple[str, ...] = ()
    reason: str = ""


def created_since(tasks: Iterable[GenerationTask], since: float) -> list[GenerationTask]:
    """The tasks created at or after ``since`` (unix seconds), or whose creation time is unknown."""
    return [t for t in tasks if t.created_at is None or t.created_at.timestamp() >= since]


def reconcile(
    lost: LostCreate,
    listed: Iterable[GenerationTask] | None,
    *,
    known: Collection[str] = (),
    unreadable: str = "",
) -> Reconciled:
    """Did ``lost`` land, judging by the tasks listed once it must have finished?

    :param lost: the create whose reply was lost.
    :param listed: the newest tasks listed (of ``lost.model``, if any), newest first; None: unreadable.
    :param known: task ids already accounted for (a batch's own): never candidates.
    :param unreadable: why the list could not be read, when ``listed`` is None.
    """
    if listed is None:
        return Reconciled(Landing.UNKNOWN, reason=unreadable or "the task list could not be read")
    found = [t.task_id for t in created_since(listed, lost.since) if t.task_id not in known]
    return (
        Reconciled(Landing.LANDED, tuple(dict.fromkeys(found))) if found else Reconciled(Landing.NOT_LANDED)
    )
