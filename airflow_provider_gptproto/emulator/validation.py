"""Request validation exactly as docs/api-contract.md states it; every failure names its field.

Both body formats are accepted in every dialect: the seed format (``prompt``, ``dimension``,
``duration: "5s"``) and the upstream content format (``content: [...]``, ``ratio``,
``resolution``, ``duration: 5``). Explicit body fields win over prompt flags, which win over
the format's defaults. ``null`` is treated as "not sent", because SDKs send unset options
as null.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError
from .prompt import RATIOS, RESOLUTIONS, parse_flags
from .sizes import DIMENSIONS, describe, size_for

SEED_MIN, SEED_MAX = 1, 2147483647
IMAGE_FORMATS = ("jpeg", "png", "webp", "bmp", "tiff", "gif", "heic", "heif")
IMAGE_ROLES = ("first_frame", "last_frame", "reference_image")
LIST_STATUSES = ("queued", "running", "cancelled", "succeeded", "failed", "expired")
SERVICE_TIERS = ("default", "flex")
_DATA_URL_RE = re.compile(r"data:image/(" + "|".join(IMAGE_FORMATS) + r");base64,[A-Za-z0-9+/=\s]+")
_HTTP_URL_RE = re.compile(r"https?://[^\s/]+\S*")
_TASK_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


@dataclass
class TaskRequest:
    """A validated create request, normalised across both body formats."""

    model: str
    prompt: str
    body_format: str  # "seed" or "content"
    width: int
    height: int
    ratio: str
    resolution: str
    duration: int
    frames: int | None = None
    framespersecond: int = 24
    seed: int = -1
    camera_fixed: bool = False
    watermark: bool = False
    loop: bool = False
    logo: dict[str, Any] | None = None
    callback_url: str | None = None
    return_last_frame: bool = False
    service_tier: str = "default"
    execution_expires_after: int = 172800
    generate_audio: bool | None = None
    draft: bool = False
    images: list[dict[str, str]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Length of the video to render."""
        return self.frames / 24 if self.frames else float(self.duration)


def invalid(param: str, detail: str) -> ApiError:
    return ApiError(
        "invalid_parameter",
        f"Invalid request parameters: parameter `{param}` {detail}",
        param,
        ark_message=f"The parameter `{param}` specified in the request is not valid: it {detail}.",
    )


def missing(param: str) -> ApiError:
    return ApiError(
        "missing_parameter",
        f"Invalid request parameters: missing required parameter `{param}`",
        param,
        ark_message=f"The request failed because it is missing a required parameter: `{param}`.",
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt_bool(body: Mapping[str, Any], *names: str) -> bool | None:
    for name in names:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, bool):
                raise invalid(name, "must be a boolean")
            return value
    return None


def _opt_choice(body: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or value not in choices:
        raise invalid(name, f"must be one of {', '.join(choices)}")
    return value


def _opt_int_range(body: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value) or not low <= value <= high:
        raise invalid(name, f"must be an integer in [{low}, {high}]")
    return int(value)


def _required_str(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise missing(name)
    if not isinstance(value, str) or not value.strip():
        raise invalid(name, "must be a non-empty string")
    return value


def _seed(body: Mapping[str, Any]) -> int | None:
    value = body.get("seed")
    if value is None:
        return None
    if not _is_int(value) or not (value == -1 or SEED_MIN <= value <= SEED_MAX):
        raise invalid("seed", f"must be an integer in [{SEED_MIN}, {SEED_MAX}] or -1")
    return int(value)


def _duration(body: Mapping[str, Any]) -> int | None:
    value = body.get("duration")
    if value is None:
        return None
    if isinstance(value, str):
        if value not in ("5s", "10s"):
            raise invalid("duration", 'must be "5s" or "10s" (or an integer number of seconds)')
        return int(value[:-1])
    if not _is_int(value) or not (value == -1 or 2 <= value <= 15):
        raise invalid("duration", 'must be an integer in [2, 15] or -1 (or "5s"/"10s")')
    return 5 if value == -1 else int(value)


def _frames(body: Mapping[str, Any]) -> int | None:
    value = body.get("frames")
    if value is None:
        return None
    if not _is_int(value) or not 29 <= value <= 289 or (value - 25) % 4:
        raise invalid("frames", "must be an integer in [29, 289] of the form 25 + 4n")
    return int(value)


def _fps(body: Mapping[str, Any]) -> int | None:
    for name in ("framespersecond", "framepersecond"):
        value = body.get(name)
        if value is not None:
            if not _is_int(value) or value not in (16, 24):
                raise invalid(name, "must be 16 or 24")
            return int(value)
    return None


def _logo(body: Mapping[str, Any]) -> dict[str, Any] | None:
    value = body.get("logo")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("logo", 'must be an object like {"position": ..., "url": ...}')
    for key in ("position", "url"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise invalid(f"logo.{key}", "must be a string")
    return dict(value)


def _callback_url(body: Mapping[str, Any]) -> str | None:
    value = body.get("callback_url")
    if value is None:
        return None
    if not isinstance(value, str) or not _HTTP_URL_RE.fullmatch(value):
        raise invalid("callback_url", "must be an http(s) URL")
    return value


def _image_item(item: Mapping[str, Any], where: str) -> dict[str, str]:
    raw = item.get("image_url")
    url_where = f"{where}.image_url"
    if isinstance(raw, dict):
        raw, url_where = raw.get("url"), f"{where}.image_url.url"
    if raw is None:
        raise missing(url_where)
    if not isinstance(raw, str) or not (_HTTP_URL_RE.fullmatch(raw) or _DATA_URL_RE.fullmatch(raw)):
        raise invalid(
            url_where, f"must be an http(s) URL or data:image/<{'|'.join(IMAGE_FORMATS)}>;base64,<data>"
        )
    role = item.get("role")
    if role is not None and role not in IMAGE_ROLES:
        raise invalid(f"{where}.role", f"must be one of {', '.join(IMAGE_ROLES)}")
    return {"url": raw if len(raw) < 200 else raw[:200] + "...", "role": role or ""}


def _content(value: Any) -> tuple[str, list[dict[str, str]]]:
    """Prompt text and images of an upstream ``content`` list, with the role rules applied."""
    if not isinstance(value, list) or not value:
        raise invalid("content", "must be a non-empty array of content items")
    texts: list[str] = []
    images: list[dict[str, str]] = []
    for index, item in enumerate(value):
        where = f"content[{index}]"
        if not isinstance(item, dict):
            raise invalid(where, "must be an object")
        kind = item.get("type")
        if kind is None:
            raise missing(f"{where}.type")
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str):
                raise invalid(f"{where}.text", "must be a string")
            texts.append(text)
        elif kind == "image_url":
            images.append(_image_item(item, where))
        else:
            raise invalid(f"{where}.type", 'must be "text" or "image_url"')
    _check_roles([image["role"] for image in images])
    if not texts and not images:
        raise invalid("content", "must contain a text item or an image")
    return "\n".join(texts), images


def _check_roles(roles: list[str]) -> None:
    if not roles:
        return
    if "reference_image" in roles:
        if any(role != "reference_image" for role in roles):
            raise invalid("content", "cannot mix reference_image items with first_frame/last_frame images")
        if len(roles) > 4:
            raise invalid("content", "accepts at most 4 reference_image items")
        return
    if len(roles) == 1:
        if roles[0] not in ("", "first_frame"):
            raise invalid("content[].role", "must give a single image the first_frame role")
        return
    if len(roles) == 2 and sorted(roles) == ["first_frame", "last_frame"]:
        return
    raise invalid(
        "content[].role", "must use roles first_frame + last_frame for two images, reference_image for more"
    )


def validate_create(body: Any) -> TaskRequest:
    """Validate a create body of either format; raises ApiError naming the first bad field."""
    if not isinstance(body, dict):
        raise ApiError("invalid_json", "Invalid request parameters: the body must be a JSON object", "body")
    model = _required_str(body, "model")
    images: list[dict[str, str]] = []
    if body.get("content") is not None:
        body_format = "content"
        prompt, images = _content(body["content"])
        if body.get("prompt") is not None:
            if not isinstance(body["prompt"], str):
                raise invalid("prompt", "must be a string")
            prompt = prompt or body["prompt"]
    else:
        body_format = "seed"
        prompt = _required_str(body, "prompt")
    flags = parse_flags(prompt)

    loop = _opt_bool(body, "loop")
    duration = _duration(body)
    dimension = _opt_choice(body, "dimension", tuple(DIMENSIONS))
    seed = _seed(body)
    logo = _logo(body)
    ratio = _opt_choice(body, "ratio", RATIOS)
    resolution = _opt_choice(body, "resolution", RESOLUTIONS)
    frames = _frames(body)
    fps = _fps(body)
    camera_fixed = _opt_bool(body, "camera_fixed", "camerafixed")
    watermark = _opt_bool(body, "watermark")
    callback_url = _callback_url(body)
    return_last_frame = _opt_bool(body, "return_last_frame")
    service_tier = _opt_choice(body, "service_tier", SERVICE_TIERS)
    expires_after = _opt_int_range(body, "execution_expires_after", 3600, 259200)
    generate_audio = _opt_bool(body, "generate_audio")
    draft = _opt_bool(body, "draft")

    if dimension is not None:
        width, height = DIMENSIONS[dimension]
        ratio, resolution = describe(width, height)
    elif (
        ratio is not None
        or resolution is not None
        or flags.ratio
        or flags.resolution
        or body_format == "content"
    ):
        ratio = ratio or flags.ratio or "16:9"
        resolution = resolution or flags.resolution or "720p"
        width, height = size_for(ratio, resolution)
    else:
        width, height = DIMENSIONS["768:768"]
        ratio, resolution = describe(width, height)
    return TaskRequest(
        model=model,
        prompt=prompt,
        body_format=body_format,
        width=width,
        height=height,
        ratio=ratio,
        resolution=resolution,
        duration=duration if duration is not None else flags.duration or 5,
        frames=frames,
        framespersecond=fps or flags.framespersecond or 24,
        seed=seed if seed is not None else flags.seed if flags.seed is not None else -1,
        camera_fixed=bool(camera_fixed if camera_fixed is not None else flags.camera_fixed),
        watermark=bool(watermark if watermark is not None else flags.watermark),
        loop=bool(loop),
        logo=logo,
        callback_url=callback_url,
        return_last_frame=bool(return_last_frame),
        service_tier=service_tier or "default",
        execution_expires_after=expires_after or 172800,
        generate_audio=generate_audio,
        draft=bool(draft),
        images=images,
    )


@dataclass
class ListQuery:
    """A validated list request."""

    page_num: int = 1
    page_size: int = 10
    status: str | None = None
    task_ids: list[str] = field(default_factory=list)
    model: str | None = None
    service_tier: str | None = None


def _page_param(params: Any, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\d+", raw) or not 1 <= int(raw) <= 500:
        raise invalid(name, "must be an integer in [1, 500]")
    return int(raw)


def validate_list(params: Any) -> ListQuery:
    """Validate list query parameters (a Starlette QueryParams or any mapping with getlist)."""
    status = params.get("filter.status") or None
    if status is not None and status.lower() not in LIST_STATUSES:
        raise invalid("filter.status", f"must be one of {', '.join(LIST_STATUSES)}")
    tier = params.get("filter.service_tier") or None
    if tier is not None and tier not in SERVICE_TIERS:
        raise invalid("filter.service_tier", f"must be one of {', '.join(SERVICE_TIERS)}")
    task_ids = [task_id for task_id in params.getlist("filter.task_ids") if task_id]
    return ListQuery(
        page_num=_page_param(params, "page_num", 1),
        page_size=_page_param(params, "page_size", 10),
        status=status.lower() if status else None,
        task_ids=task_ids,
        model=params.get("filter.model") or None,
        service_tier=tier,
    )


def check_task_id(task_id: str) -> None:
    """Reject ids that cannot be task ids (400), before looking them up (404)."""
    if not _TASK_ID_RE.fullmatch(task_id):
        raise ApiError("invalid_task_id", "Invalid task_id format", "task_id")
