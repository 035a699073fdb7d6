"""What the emulator reads out of a prompt: legacy ``--flag value`` settings and test markers.

Prompt flags are validated leniently (a bad value falls back to the default), as upstream
documents; markers (``[[fail:policy]]``, ``[[expire]]``, ...) script a task's outcome so
client code can be tested against failures without a real model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FLAG_RE = re.compile(r"--([A-Za-z_]+)\s+(\S+)")
_MARKER_RE = re.compile(r"\[\[\s*([a-z_]+)(?:\s*:\s*([^\]]*?))?\s*\]\]", re.IGNORECASE)
_FLAG_ALIASES = {
    "ratio": "ratio",
    "rt": "ratio",
    "resolution": "resolution",
    "rs": "resolution",
    "duration": "duration",
    "dur": "duration",
    "framespersecond": "framespersecond",
    "fps": "framespersecond",
    "watermark": "watermark",
    "wm": "watermark",
    "seed": "seed",
    "camerafixed": "camera_fixed",
    "cf": "camera_fixed",
}
HOSTILE_VIDEOS = ("redirect-metadata", "endless", "html")
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
RESOLUTIONS = ("480p", "720p", "1080p")

POLICY_FAILURE = (
    "OutputVideoSensitiveContentDetected",
    "The request failed because the output video may contain sensitive information.",
)
INTERNAL_FAILURE = ("InternalServiceError", "The service encountered an unexpected internal error.")


@dataclass
class PromptFlags:
    """Legacy settings embedded in the prompt text; None where absent or unusable."""

    ratio: str | None = None
    resolution: str | None = None
    duration: int | None = None
    framespersecond: int | None = None
    watermark: bool | None = None
    seed: int | None = None
    camera_fixed: bool | None = None


@dataclass
class Markers:
    """Test markers: scripted outcome and per-task timing overrides."""

    outcome: str = "succeeded"  # succeeded | failed | expired
    failure_code: str | None = None
    failure_message: str | None = None
    reject_status: int | None = None  # 400 or 503: refuse the create call itself
    queue_seconds: float | None = None
    run_seconds: float | None = None
    links_expired: bool = False  # [[link:expired]]: links are already past their expiry when handed out
    video: str | None = None  # [[video:redirect-metadata|endless|html]]: a hostile video link
    seen: list[str] = field(default_factory=list)


def _as_bool(text: str) -> bool | None:
    lowered = text.lower()
    return True if lowered == "true" else False if lowered == "false" else None


def _as_int(text: str) -> int | None:
    return int(text) if re.fullmatch(r"-?\d+", text) else None


def parse_flags(prompt: str) -> PromptFlags:
    """Read ``--ratio 16:9 --dur 5 ...``; unknown flags and bad values are ignored."""
    flags = PromptFlags()
    for raw_name, value in _FLAG_RE.findall(prompt):
        name = _FLAG_ALIASES.get(raw_name.lower())
        if name == "ratio" and value in RATIOS:
            flags.ratio = value
        elif name == "resolution" and value.lower() in RESOLUTIONS:
            flags.resolution = value.lower()
        elif name == "duration":
            number = _as_int(value)
            flags.duration = number if number is not None and 1 <= number <= 15 else None
        elif name == "framespersecond":
            number = _as_int(value)
            flags.framespersecond = number if number in (16, 24) else None
        elif name == "seed":
            number = _as_int(value)
            flags.seed = number if number is not None and -1 <= number <= 2147483647 else None
        elif name in ("watermark", "camera_fixed"):
            setattr(flags, name, _as_bool(value))
    return flags


def _seconds(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def parse_markers(prompt: str) -> Markers:
    """Read ``[[fail:policy]]``, ``[[fail:CODE]]``, ``[[expire]]``, ``[[reject:policy]]``,
    ``[[queue:S]]``, ``[[run:S]]``, ``[[link:expired]]`` and ``[[video:...]]``; unknown markers are
    left alone."""
    markers = Markers()
    for raw_name, raw_arg in _MARKER_RE.findall(prompt):
        name, arg = raw_name.lower(), (raw_arg or "").strip()
        if name == "fail":
            markers.outcome = "failed"
            if arg.lower() in ("", "policy"):
                markers.failure_code, markers.failure_message = POLICY_FAILURE
            elif arg.lower() == "internal":
                markers.failure_code, markers.failure_message = INTERNAL_FAILURE
            else:
                markers.failure_code, markers.failure_message = arg, f"Task failed with {arg} (scripted)."
        elif name == "expire":
            markers.outcome = "expired"
        elif name == "reject":
            markers.reject_status = 503 if arg.lower() in ("policy503", "503") else 400
        elif name == "queue":
            markers.queue_seconds = _seconds(arg)
        elif name == "run":
            markers.run_seconds = _seconds(arg)
        elif name == "link" and arg.lower() == "expired":
            markers.links_expired = True
        elif name == "video" and arg.lower() in HOSTILE_VIDEOS:
            markers.video = arg.lower()
        else:
            continue
        markers.seen.append(name)
    return markers


def strip_markers(prompt: str) -> str:
    """The prompt without markers, for drawing into frames."""
    return " ".join(_MARKER_RE.sub(" ", prompt).split())
