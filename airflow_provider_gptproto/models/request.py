"""The create-task request: one model for both wire formats the vendor accepts.

The seed format (``prompt``, ``duration: "5s"``, ``dimension``, ``loop``, ``logo``) is the default; any
upstream-only option (images, ``ratio``, integer ``duration``, ...) switches to the upstream Ark format.
Mixing the two is an error (the server would ignore half); every error names the field.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Mapping
from typing import Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from airflow_provider_gptproto.exceptions import GPTProtoRequestError
from airflow_provider_gptproto.models.results import RequestSummary

DEFAULT_MODEL = "seedance-1-0-lite-i2v-250428"
SEED_DURATIONS = ("5s", "10s")
SEED_DIMENSIONS = ("768:768", "768:1280", "1280:768")
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive", "keep_ratio")
RESOLUTIONS = ("480p", "720p", "1080p", "4k")
IMAGE_FORMATS = ("jpeg", "jpg", "png", "webp", "bmp", "tiff", "gif", "heic", "heif")
# The vendor documents 1..2147483647 (and -1 = random, which only the upstream format carries).
SEED_RANGE = (1, 2_147_483_647)
UPSTREAM_DURATION_RANGE = (2, 15)
FRAMES_RANGE = (29, 289)
FPS_VALUES = (16, 24)
EXPIRES_RANGE = (3600, 259_200)

_SEED_ONLY = ("loop", "dimension", "logo")
# Upstream-only options sent as top-level keys of the body as they are (images go into ``content``).
_UPSTREAM_BODY_OPTIONS = (
    *("ratio", "resolution", "frames", "framespersecond", "camera_fixed", "watermark", "callback_url"),
    *("return_last_frame", "service_tier", "execution_expires_after", "generate_audio", "draft"),
)
_UPSTREAM_ONLY = ("images", *_UPSTREAM_BODY_OPTIONS)
# Fields whose value must be one of a fixed set; one validator checks them all by field name.
_CHOICES: dict[str, tuple[Any, ...]] = {
    "dimension": SEED_DIMENSIONS,
    "ratio": RATIOS,
    "resolution": RESOLUTIONS,
    "framespersecond": FPS_VALUES,
}
_DATA_URL = re.compile(r"^data:image/([a-z]+);base64,[A-Za-z0-9+/=\s]+$")


def _allowed(values: tuple[Any, ...]) -> str:
    return ", ".join(repr(v) for v in values)


def _in_range(value: int, bounds: tuple[int, int], field: str, extra: str = "") -> int:
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"{field} must be an integer from {low} to {high}{extra}, got {value!r}")
    return value


def _check_http_url(value: str, field: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"{field} must be an http:// or https:// URL, got {value[:80]!r}")
    return value


class Logo(BaseModel):
    """Watermark of the seed format. Only position and url are documented; other keys pass through."""

    model_config = ConfigDict(extra="allow", frozen=True)

    position: str | None = None
    url: str | None = None


class ImageInput(BaseModel):
    """One input image: an http(s) URL or a ``data:image/<fmt>;base64,`` URL, with an optional role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    role: Literal["first_frame", "last_frame", "reference_image"] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        data = _DATA_URL.match(value)
        if data:
            if data.group(1) not in IMAGE_FORMATS:
                raise ValueError(
                    f"image format must be one of {_allowed(IMAGE_FORMATS)}, got {data.group(1)!r}"
                )
            return value
        if value.startswith("data:"):
            raise ValueError(
                "image data URL must look like data:image/<format>;base64,<data> with <format> one of "
                f"{_allowed(IMAGE_FORMATS)}, got {value[:40]!r}"
            )
        return _check_http_url(value, "image url")


class VideoGenerationRequest(BaseModel):
    """A validated create-task request. Build it with :meth:`build` to get errors as GPTProtoRequestError."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    prompt: str | None = None
    # seed format
    loop: bool | None = None
    duration: str | int | None = None
    dimension: str | None = None
    seed: int | None = None
    logo: Logo | None = None
    # upstream (Ark) format
    images: tuple[ImageInput, ...] | None = None
    ratio: str | None = None
    resolution: str | None = None
    frames: int | None = None
    framespersecond: int | None = None
    camera_fixed: bool | None = None
    watermark: bool | None = None
    callback_url: str | None = None
    return_last_frame: bool | None = None
    service_tier: Literal["default", "flex"] | None = None
    execution_expires_after: int | None = None
    generate_audio: bool | None = None
    draft: bool | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def build(cls, **params: Any) -> VideoGenerationRequest:
        """Validate keyword parameters; drop the ones left at None so defaults apply."""
        given = {k: v for k, v in params.items() if v is not None}
        if "content" in given:
            given = _merge_content(given)
        try:
            return cls.model_validate(given)
        except ValidationError as err:
            field, msg = _describe(err)
            raise GPTProtoRequestError(f"Invalid GPTProto request: {msg}", field=field) from None

    @field_validator("model", "prompt")
    @classmethod
    def _not_blank(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            what = f"model or endpoint id, e.g. {DEFAULT_MODEL!r}" if info.field_name == "model" else "string"
            raise ValueError(f"{info.field_name} must be a non-empty {what}")
        return value

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> str | int:
        low, high = UPSTREAM_DURATION_RANGE
        if isinstance(value, str) and value in SEED_DURATIONS:
            return value
        if isinstance(value, int) and not isinstance(value, bool) and (value == -1 or low <= value <= high):
            return value
        raise ValueError(
            f"duration must be one of {_allowed(SEED_DURATIONS)} (seed format) or an integer number of "
            f"seconds from {low} to {high} or -1 (upstream format), got {value!r}"
        )

    @field_validator("seed", "frames", "framespersecond", "execution_expires_after", mode="before")
    @classmethod
    def _not_bool(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"{info.field_name} must be an integer, got {value!r}")
        return value

    @field_validator(*_CHOICES)
    @classmethod
    def _one_of(cls, value: Any, info: ValidationInfo) -> Any:
        allowed = _CHOICES[str(info.field_name)]
        if value not in allowed:
            raise ValueError(f"{info.field_name} must be one of {_allowed(allowed)}, got {value!r}")
        return value

    @field_validator("frames")
    @classmethod
    def _frames(cls, value: int) -> int:
        _in_range(value, FRAMES_RANGE, "frames", " with frames = 25 + 4n")
        if (value - 25) % 4:
            raise ValueError(f"frames must be 25 + 4n (29, 33, ..., 289), got {value!r}")
        return value

    @field_validator("execution_expires_after")
    @classmethod
    def _expires(cls, value: int) -> int:
        return _in_range(value, EXPIRES_RANGE, "execution_expires_after", " seconds")

    @field_validator("callback_url")
    @classmethod
    def _callback(cls, value: str) -> str:
        return _check_http_url(value, "callback_url")

    @field_validator("images", mode="before")
    @classmethod
    def _images(cls, value: Any) -> Any:
        if isinstance(value, (str, Mapping)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError(
                "images must be a URL, a {'url': ..., 'role': ...} mapping or a list of them, "
                f"got {type(value).__name__}"
            )
        return [{"url": v} if isinstance(v, str) else v for v in value]

    @model_validator(mode="after")
    def _cross_field(self) -> VideoGenerationRequest:
        if self.prompt is None and not self.images:
            raise ValueError("prompt is required (or give images for image-to-video)")
        seed_only = [f for f in _SEED_ONLY if getattr(self, f) is not None]
        if isinstance(self.duration, str):
            seed_only.append("duration")
        upstream = self.upstream_fields()
        # seed=-1 and extra_body also force the upstream format, which would silently drop seed-only options.
        if self.seed == -1:
            upstream.append("seed=-1")
        if self.extra_body:
            upstream.append("extra_body")
        if seed_only and upstream:
            raise ValueError(
                f"{seed_only[0]} exists only in the seed format and cannot be combined with "
                f"{upstream[0]} (upstream format); use ratio/resolution and an integer duration instead"
            )
        if self.seed is not None and self.seed != -1:
            _in_range(self.seed, SEED_RANGE, "seed", ", or -1 for a random seed")
        if self.images:
            _check_roles(self.images)
        return self

    def upstream_fields(self) -> list[str]:
        """Names of the set options that only the upstream format can carry."""
        names = [f for f in _UPSTREAM_ONLY if getattr(self, f) is not None]
        if isinstance(self.duration, int):
            names.append("duration")
        return names

    @property
    def wire_format(self) -> Literal["seed", "upstream"]:
        uses_upstream = self.upstream_fields() or self.seed == -1 or self.extra_body
        return "upstream" if uses_upstream else "seed"

    def with_seed(self, seed: int | None = None) -> VideoGenerationRequest:
        """This request with a concrete seed (default: drawn at random), so its result can say which
        seed made the video; a seed the request already chose (docs/requests.md, "Seeds") is kept."""
        chosen = self.seed is not None or "seed" in self.extra_body
        if chosen or (self.prompt is not None and _SEED_FLAG.search(self.prompt)):
            return self
        return self.model_copy(update={"seed": seed if seed is not None else random.randint(*SEED_RANGE)})

    def expiring_within(self, seconds: float) -> VideoGenerationRequest:
        """On the flex tier with no ``execution_expires_after`` given: the caller's own wait
        (``seconds``, clamped to the API's range), so a remote task never outlives the wait that
        pays for it. The API's minimum is an hour: a shorter wait still cancels at its timeout."""
        given = self.execution_expires_after is not None or "execution_expires_after" in self.extra_body
        if self.service_tier != "flex" or given:
            return self
        expires = min(max(math.ceil(seconds), EXPIRES_RANGE[0]), EXPIRES_RANGE[1])
        return self.model_copy(update={"execution_expires_after": expires})

    def summary(self) -> RequestSummary:
        """The set scalar options (no images, logo or extra body): small and JSON-safe, for XCom."""
        dumped = self.model_dump(exclude={"images", "logo", "extra_body"})
        return cast("RequestSummary", {name: value for name, value in dumped.items() if value is not None})

    def to_payload(self) -> dict[str, Any]:
        """The JSON body to POST. Seed format unless an upstream-only option is set."""
        if self.wire_format == "seed":
            body: dict[str, Any] = {
                "model": self.model,
                "prompt": self.prompt,
                "loop": bool(self.loop),
                "duration": self.duration or SEED_DURATIONS[0],
                "dimension": self.dimension or SEED_DIMENSIONS[0],
            }
            if self.seed is not None:
                body["seed"] = self.seed
            if self.logo is not None:
                body["logo"] = self.logo.model_dump(exclude_none=True)
            return body
        content: list[dict[str, Any]] = []
        if self.prompt is not None:
            content.append({"type": "text", "text": self.prompt})
        for image in self.images or ():
            item: dict[str, Any] = {"type": "image_url", "image_url": {"url": image.url}}
            if image.role:
                item["role"] = image.role
            content.append(item)
        body = {"model": self.model, "content": content}
        for name in (*_UPSTREAM_BODY_OPTIONS, "seed", "duration"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        body.update(self.extra_body)
        return body


_SEED_FLAG = re.compile(r"(?:^|\s)--seed\b")


def stable_seed(*parts: object) -> int:
    """A seed in 1..2147483647 that depends only on ``parts`` (e.g. a task instance's identity)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_RANGE[1] + 1


def _describe(err: ValidationError) -> tuple[str | None, str]:
    """The first error as (field, message), the message always starting with the field name."""
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(n for n in VideoGenerationRequest.model_fields if n != "extra_body")
        return field, f"unknown parameter {field!r}; allowed: {allowed}"
    if field is None:
        head = msg.split(" ", 1)[0].rstrip(":")
        field = head if head in VideoGenerationRequest.model_fields else None
    elif not msg.startswith(field.split(".")[0]):
        msg = f"{field}: {msg}"
    return field, msg


def _check_roles(images: tuple[ImageInput, ...]) -> None:
    roles = [img.role for img in images]
    if len(images) == 1 and roles[0] in (None, "first_frame"):
        return
    if sorted(r or "" for r in roles) == ["first_frame", "last_frame"]:
        return
    if all(r == "reference_image" for r in roles) and 1 <= len(roles) <= 4:
        return
    raise ValueError(
        "images: roles must be one image (role first_frame or none), or first_frame + last_frame, "
        f"or 1-4 reference_image; modes do not mix. Got roles {roles!r}"
    )


def _merge_content(params: dict[str, Any]) -> dict[str, Any]:
    """Accept upstream ``content`` items (text + image_url, object or bare-string url) as prompt/images."""
    params = dict(params)
    content = params.pop("content")
    if not isinstance(content, list):
        raise GPTProtoRequestError(
            "Invalid GPTProto request: content must be a list of items", field="content"
        )
    images: list[Any] = []
    for index, item in enumerate(content):
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str):
                raise GPTProtoRequestError(
                    f"Invalid GPTProto request: content[{index}].text must be a string, got {text!r}",
                    field=f"content.{index}.text",
                )
            if "prompt" in params:
                # Two prompts (prompt= and a text item, or two text items): one would be dropped.
                raise GPTProtoRequestError(
                    f"Invalid GPTProto request: content[{index}] is a second prompt; give the prompt once, "
                    "either as prompt= or as one text item in content",
                    field=f"content.{index}.text",
                )
            params["prompt"] = text
        elif kind == "image_url":
            raw = item.get("image_url")
            url = raw.get("url") if isinstance(raw, Mapping) else raw
            images.append({"url": url, "role": item.get("role")})
        else:
            raise GPTProtoRequestError(
                f"Invalid GPTProto request: content[{index}].type must be one of 'text', 'image_url'",
                field=f"content.{index}.type",
            )
    if images:
        given = params.get("images", [])
        given = [given] if isinstance(given, (str, Mapping)) else given
        # Appended to the images given; one of another type is left for the images validator to refuse.
        params["images"] = [*given, *images] if isinstance(given, (list, tuple)) else given
    return params
