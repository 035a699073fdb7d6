"""Fault rules: which requests get a failure injected, and which failure.

Rules are checked in the order they were added; the first one that matches the endpoint
and filters, still has uses left and wins its probability roll is applied. The actions
themselves are carried out by the middleware, which is the only place that can drop a
connection or rewrite a reply.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import BODY_SHAPES

FaultEndpoint = Literal["create", "get", "list", "delete", "video", "last_frame", "*"]
FaultAction = Literal[
    "status",
    "rate_limit",
    "latency",
    "drop_before",
    "drop_after",
    "malformed_json",
    "html",
    "truncate",
    "wrong_content_type",
    "unknown_status",
    "missing_id",
]
DEFAULT_STATUS = {"status": 500, "rate_limit": 429, "html": 502, "malformed_json": 200}


class FaultRule(BaseModel):
    """One rule, as posted to ``POST /_emulator/faults`` or given to ``--fault``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    endpoint: FaultEndpoint | list[FaultEndpoint] = "*"
    action: FaultAction
    status: int | None = Field(default=None, ge=100, le=599)
    body_shape: str = "auto"
    message: str | None = None
    code: str | None = None
    error_type: str | None = None
    retry_after: float | str | None = None
    latency_seconds: float = Field(default=0.0, ge=0, le=600)
    probability: float = Field(default=1.0, ge=0, le=1)
    count: int | None = Field(default=None, ge=1)
    skip: int = Field(default=0, ge=0)
    prompt_contains: str | None = None
    task_id: str | None = None
    process: bool = False
    truncate_bytes: int | None = Field(default=None, ge=0)
    content_type: str = "text/html; charset=utf-8"
    status_word: str = "mystery_state"
    # Book-keeping, reported back but not settable.
    remaining: int | None = None
    applied: int = 0
    skipped: int = 0

    @field_validator("body_shape")
    @classmethod
    def _known_shape(cls, value: str) -> str:
        if value not in BODY_SHAPES:
            raise ValueError(f"must be one of {', '.join(BODY_SHAPES)}")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> FaultRule:
        if self.action == "latency" and self.latency_seconds <= 0:
            raise ValueError("action latency needs latency_seconds > 0")
        if self.status is None and self.action in DEFAULT_STATUS:
            self.status = DEFAULT_STATUS[self.action]
        if self.remaining is None:
            self.remaining = self.count
        return self

    def endpoints(self) -> list[str]:
        return list(self.endpoint) if isinstance(self.endpoint, list) else [self.endpoint]

    def matches(self, endpoint: str, prompt: str | None, task_id: str | None) -> bool:
        wanted = self.endpoints()
        if "*" not in wanted and endpoint not in wanted:
            return False
        if self.prompt_contains is not None and self.prompt_contains.lower() not in (prompt or "").lower():
            return False
        return self.task_id is None or self.task_id == task_id

    def retry_after_header(self) -> str | None:
        if self.retry_after is None:
            return None
        if isinstance(self.retry_after, float) and self.retry_after.is_integer():
            return str(int(self.retry_after))
        return str(self.retry_after)


class FaultRuleError(ValueError):
    """A rule that does not validate; the message lists every problem."""


def parse_rule(raw: Any) -> FaultRule:
    if not isinstance(raw, dict):
        raise FaultRuleError("a fault rule must be a JSON object")
    clean = {k: v for k, v in raw.items() if k not in ("id", "remaining", "applied", "skipped")}
    try:
        return FaultRule.model_validate(clean)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'rule'}: {err['msg']}" for err in exc.errors()
        )
        raise FaultRuleError(problems) from exc


class FaultRegistry:
    """The active rules, in order; a seeded RNG makes probabilistic runs reproducible."""

    def __init__(self, seed: int | None = None) -> None:
        self.rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self._next_id = 1

    def add(self, raw: Any) -> FaultRule:
        rule = parse_rule(raw)
        rule.id = f"fault-{self._next_id}"
        self._next_id += 1
        self.rules.append(rule)
        return rule

    def pick(self, endpoint: str, prompt: str | None, task_id: str | None) -> FaultRule | None:
        for rule in self.rules:
            if rule.remaining == 0 or not rule.matches(endpoint, prompt, task_id):
                continue
            if rule.skipped < rule.skip:
                rule.skipped += 1
                continue
            if rule.probability < 1 and self._random.random() >= rule.probability:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            rule.applied += 1
            return rule
        return None

    def remove(self, rule_id: str) -> bool:
        before = len(self.rules)
        self.rules = [rule for rule in self.rules if rule.id != rule_id]
        return len(self.rules) < before

    def clear(self) -> int:
        count = len(self.rules)
        self.rules.clear()
        return count

    def reset(self) -> None:
        """Forget all rules and restart the id numbering (``POST /_emulator/reset``)."""
        self.rules.clear()
        self._next_id = 1

    def listing(self) -> list[dict[str, Any]]:
        return [rule.model_dump() for rule in self.rules]
