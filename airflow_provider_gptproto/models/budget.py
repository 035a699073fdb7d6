"""A batch's spending limits, with no I/O: what was spent, and whether the next create would pass a
limit. What each limit counts, and the bound on overshooting, are in docs/batch.md ("Spending limits").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_gptproto.exceptions import GPTProtoRequestError
from airflow_provider_gptproto.models.request import VideoGenerationRequest
from airflow_provider_gptproto.models.results import PlanResult, Spent

BUDGET_KIND = "budget"
ON_BUDGET = ("fail", "succeed")
DEFAULT_SECONDS = 5  # the API's default duration
UNKNOWN_SECONDS = 15  # duration -1 (the model chooses): counted at the longest a clip can be
FRAMES_PER_SECOND = 24
_DURATION_FLAG = re.compile(r"(?:^|\s)--(?:duration|dur)\s+(\d+)")


@dataclass(frozen=True)
class Cost:
    """What one create of an item costs before it is sent: its seconds, and its shape (for estimates)."""

    seconds: float
    shape: tuple[Any, ...]


def item_cost(request: VideoGenerationRequest) -> Cost:
    duration = request.duration
    flag = _DURATION_FLAG.search(request.prompt or "") if duration is None else None
    if request.frames:
        seconds: float = request.frames / FRAMES_PER_SECOND
    elif isinstance(duration, str):
        seconds = int(duration.rstrip("s"))
    elif duration is not None:
        seconds = UNKNOWN_SECONDS if duration == -1 else duration
    else:
        seconds = int(flag.group(1)) if flag else DEFAULT_SECONDS
    shape = (request.model, seconds, request.resolution, request.ratio, request.dimension)
    return Cost(seconds, shape)


def tokens(usage: Mapping[str, Any] | None) -> int:
    value = (usage or {}).get("total_tokens") or (usage or {}).get("completion_tokens") or 0
    return value if isinstance(value, int) else 0


@dataclass(frozen=True)
class Budget:
    """The limits (None: no limit). Build with :meth:`checked` to get errors naming the field."""

    max_videos: int | None = None
    max_video_seconds: float | None = None
    max_usage_tokens: int | None = None

    @classmethod
    def checked(cls, on_budget: Any = "fail", **limits: Any) -> Budget:
        if on_budget not in ON_BUDGET:
            allowed = ", ".join(map(repr, ON_BUDGET))
            raise GPTProtoRequestError(
                f"on_budget must be one of {allowed}, got {on_budget!r}", field="on_budget"
            )
        for name, value in limits.items():
            number = (int, float) if name == "max_video_seconds" else int
            if value is not None and (isinstance(value, bool) or not isinstance(value, number) or value < 0):
                kind = "a number" if name == "max_video_seconds" else "an integer"
                raise GPTProtoRequestError(f"{name} must be None or {kind} >= 0, got {value!r}", field=name)
        return cls(**limits)

    def admit(
        self, entries: Mapping[int, Any], candidates: Sequence[int], costs: Sequence[Cost], known: Any = None
    ) -> tuple[int, str | None]:
        """How many of ``candidates`` (in order) may be created without passing a limit, and the
        limit the next one would pass (None: all may). ``known``: estimates by shape from elsewhere."""
        videos, seconds, used = self._committed(entries, costs)
        estimate = {**(known or {}), **self.estimates(entries, costs)}
        for admitted, index in enumerate(candidates):
            cost = costs[index]
            videos, seconds, used = videos + 1, seconds + cost.seconds, used + estimate.get(cost.shape, 1)
            if passed := self.passed(videos, seconds, used):
                return admitted, passed
        return len(candidates), None

    def passed(self, videos: int, seconds: float, used: int) -> str | None:
        """The first limit these totals pass, named with them; None within every limit."""
        for name, limit, value in (
            ("max_videos", self.max_videos, videos),
            ("max_video_seconds", self.max_video_seconds, seconds),
            ("max_usage_tokens", self.max_usage_tokens, used),
        ):
            if limit is not None and value > limit:
                return f"{name}={limit} (the next create would bring it to {value:g})"
        return None

    def _committed(self, entries: Mapping[int, Any], costs: Sequence[Cost]) -> tuple[int, float, int]:
        """Creates so far, their seconds, and reported usage plus an estimate for what is in flight."""
        estimate = self.estimates(entries, costs)
        spent = spent_by(entries, costs)
        pending = sum(estimate.get(costs[i].shape, 1) for i, e in entries.items() if e.awaiting_usage)
        return spent["videos"], spent["video_seconds"], spent["usage_tokens"] + pending

    @staticmethod
    def estimates(entries: Mapping[int, Any], costs: Sequence[Cost]) -> dict[tuple[Any, ...], int]:
        """Shape -> the largest usage a finished item of that shape reported."""
        found: dict[tuple[Any, ...], int] = {}
        for index, entry in entries.items():
            if entry.usage and tokens(entry.usage):
                shape = costs[index].shape
                found[shape] = max(found.get(shape, 0), tokens(entry.usage))
        return found


def spent_by(entries: Mapping[int, Any], costs: Sequence[Cost]) -> Spent:
    """What the journal's entries record as spent (earlier attempts included); usage as reported."""
    count = {i: (e.paid or 0) + e.created for i, e in entries.items()}
    return {
        "videos": sum(count.values()),
        "video_seconds": sum(n * costs[i].seconds for i, n in count.items()),
        "usage_tokens": sum((e.paid_tokens or 0) + tokens(e.usage) for e in entries.values()),
    }


def dry_run_plan(budget: Budget, costs: Sequence[Cost], known: Mapping[tuple[Any, ...], int]) -> PlanResult:
    """What a run would create, by the rules it would follow; ``known``: usage by shape, if any.
    Resolutions read "720p 16:9", a dimension, or "default"."""
    estimated = [known[c.shape] for c in costs if c.shape in known]
    admitted, limit = budget.admit({}, range(len(costs)), costs, known)
    return {
        "kind": "plan",
        "videos": len(costs),
        "video_seconds": sum(c.seconds for c in costs),
        "resolutions": dict(Counter(" ".join(v for v in c.shape[2:] if v) or "default" for c in costs)),
        "usage_tokens_estimate": sum(estimated) if estimated else None,
        "estimated": len(estimated),
        "within_limits": admitted,
        "stopped_by": limit,
    }
