"""Run-time configuration of one emulator instance.

One mutable object, because tests switch dialect and response variants on a running
emulator (``POST /_emulator/config``) instead of paying for a new process each time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Dialect = Literal["envelope", "ark", "predictions"]
CreateIdField = Literal["auto", "id", "task_id", "data.task_id", "data.id"]
FpsField = Literal["framespersecond", "framepersecond"]

DIALECTS: tuple[str, ...] = get_args(Dialect)
CREATE_ID_FIELDS: tuple[str, ...] = get_args(CreateIdField)
FPS_FIELDS: tuple[str, ...] = get_args(FpsField)

DEFAULT_PORT = 8000

# Fields that POST /_emulator/config may change while the server runs.
RUNTIME_FIELDS = (
    "dialect",
    "queue_seconds",
    "run_seconds",
    "url_ttl_seconds",
    "video_bytes",
    "stringly_numbers",
    "create_id_field",
    "fps_field",
    "max_queued",
    "render_fps",
    "callback_timeout_seconds",
    "callback_retry_seconds",
)


@dataclass
class EmulatorConfig:
    """Everything the CLI can set; the defaults mirror the real service's behaviour closely enough."""

    host: str = "127.0.0.1"
    # None: the port recorded in the state file, else DEFAULT_PORT (see server.listen_port).
    port: int | None = None
    api_key: str | None = None
    dialect: Dialect = "envelope"
    queue_seconds: float = 2.0
    run_seconds: float = 5.0
    url_ttl_seconds: float = 86400.0
    state_file: str | None = None
    video_bytes: int = 0
    log_file: str | None = None
    quiet: bool = False
    stringly_numbers: bool = False
    create_id_field: CreateIdField = "auto"
    fps_field: FpsField = "framespersecond"
    max_queued: int = 0
    render_fps: int = 8
    public_url: str | None = None
    cache_dir: str | None = None
    fault_seed: int | None = None
    parent_pid: int | None = None
    callback_timeout_seconds: float = 5.0
    callback_retry_seconds: float = 1.0
    no_list_endpoint: bool = False
    faults: list[dict[str, Any]] = field(default_factory=list)

    def runtime_view(self) -> dict[str, Any]:
        """The subset shown and changed by the admin config endpoint (never the API key)."""
        return {name: getattr(self, name) for name in RUNTIME_FIELDS}

    def copy(self) -> EmulatorConfig:
        return dataclasses.replace(self, faults=list(self.faults))


def apply_runtime_changes(config: EmulatorConfig, changes: dict[str, Any]) -> list[str]:
    """Validate and apply admin config changes; returns a list of problems (empty when applied)."""
    problems: list[str] = []
    for name, value in changes.items():
        if name not in RUNTIME_FIELDS:
            problems.append(f"{name}: not a runtime setting (one of {', '.join(RUNTIME_FIELDS)})")
            continue
        problem = _check_runtime_value(name, value)
        if problem:
            problems.append(f"{name}: {problem}")
    if problems:
        return problems
    for name, value in changes.items():
        setattr(config, name, float(value) if name.endswith("_seconds") else value)
    return []


def _check_runtime_value(name: str, value: Any) -> str | None:
    choices = {"dialect": DIALECTS, "create_id_field": CREATE_ID_FIELDS, "fps_field": FPS_FIELDS}
    if name in choices:
        return None if value in choices[name] else f"must be one of {', '.join(choices[name])}"
    if name == "stringly_numbers":
        return None if isinstance(value, bool) else "must be a boolean"
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name.endswith("_seconds"):
        return None if is_number and value >= 0 else "must be a number >= 0"
    if name == "render_fps":
        return (
            None
            if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 60
            else ("must be an integer in 1..60")
        )
    return (
        None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else ("must be an integer >= 0")
    )
