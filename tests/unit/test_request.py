"""Every rule of VideoGenerationRequest: field values, format selection, payload shape, image roles."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from airflow_provider_gptproto.exceptions import GPTProtoError, GPTProtoRequestError
from airflow_provider_gptproto.models import DEFAULT_MODEL, VideoGenerationRequest
from airflow_provider_gptproto.models.request import IMAGE_FORMATS, RATIOS, RESOLUTIONS, stable_seed

IMG = "https://img.example.com/a.png"
IMG2 = "https://img.example.com/b.jpg"
PNG_DATA = (  # a real 1x1 PNG
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
)


def build(**params: Any) -> VideoGenerationRequest:
    return VideoGenerationRequest.build(**params)


def rejected(**params: Any) -> GPTProtoRequestError:
    with pytest.raises(GPTProtoRequestError) as info:
        build(**params)
    return info.value


# --------------------------------------------------------------------------------------- defaults


def test_defaults_match_the_seed_page() -> None:
    req = build(prompt="a daisy field")
    assert DEFAULT_MODEL == "seedance-1-0-lite-i2v-250428"
    assert req.wire_format == "seed"
    assert req.to_payload() == {
        "model": "seedance-1-0-lite-i2v-250428",
        "prompt": "a daisy field",
        "loop": False,
        "duration": "5s",
        "dimension": "768:768",
    }


def test_seed_page_request_example_is_sent_unchanged() -> None:
    example = {
        "model": "seedance-1-0-lite-i2v-250428",
        "prompt": "Photorealistic style: a daisy field.  --ratio 16:9  --resolution 720p  --duration 5 "
        "--camerafixed false",
        "loop": False,
        "duration": "10s",
        "dimension": "768:768",
        "seed": 12345,
    }
    req = build(**example)
    assert req.wire_format == "seed"
    assert req.to_payload() == example


def test_none_values_mean_default() -> None:
    req = build(prompt="x", model=None, loop=None, duration=None, dimension=None, seed=None, images=None)
    assert req.to_payload() == build(prompt="x").to_payload()


def test_request_error_is_a_value_error_and_a_provider_error() -> None:
    err = rejected(prompt="x", dimension="1:1")
    assert isinstance(err, ValueError)
    assert isinstance(err, GPTProtoError)


def test_request_is_immutable() -> None:
    req = build(prompt="x")
    with pytest.raises(ValidationError):
        req.prompt = "y"  # type: ignore[misc]


# ----------------------------------------------------------------------------------- field rules

VALID = [
    ("model", "seedance-1-0-pro-250528"),
    ("model", "ep-20250101000000-abcde"),
    ("loop", True),
    ("loop", False),
    ("duration", "5s"),
    ("duration", "10s"),
    ("dimension", "768:768"),
    ("dimension", "768:1280"),
    ("dimension", "1280:768"),
    ("seed", 1),
    ("seed", 2_147_483_647),
    ("logo", {"position": "bottom-right", "url": "https://img.example.com/logo.png"}),
    ("logo", {}),
]


@pytest.mark.parametrize(("name", "value"), VALID)
def test_valid_seed_format_values(name: str, value: Any) -> None:
    req = build(prompt="p", **{name: value})
    assert req.wire_format == "seed"
    assert req.to_payload()[name] == value


UPSTREAM_VALID = [
    *[("ratio", r) for r in RATIOS],
    *[("resolution", r) for r in RESOLUTIONS],
    ("duration", 2),
    ("duration", 5),
    ("duration", 15),
    ("duration", -1),
    ("frames", 29),
    ("frames", 33),
    ("frames", 289),
    ("framespersecond", 16),
    ("framespersecond", 24),
    ("seed", -1),
    ("seed", 2_147_483_647),
    ("camera_fixed", True),
    ("camera_fixed", False),
    ("watermark", False),
    ("return_last_frame", True),
    ("generate_audio", True),
    ("draft", False),
    ("service_tier", "default"),
    ("service_tier", "flex"),
    ("execution_expires_after", 3600),
    ("execution_expires_after", 259_200),
    ("callback_url", "https://hooks.example.com/gptproto"),
    ("callback_url", "http://10.0.0.5:8080/cb"),
]


@pytest.mark.parametrize(("name", "value"), UPSTREAM_VALID)
def test_valid_upstream_values_switch_to_upstream_format(name: str, value: Any) -> None:
    kwargs = {name: value}
    if name == "seed" and value != -1:
        kwargs["ratio"] = "16:9"  # seeds above the seed-format range need the upstream format
    req = build(prompt="p", **kwargs)
    payload = req.to_payload()
    assert req.wire_format == "upstream"
    assert payload[name] == value
    assert payload["content"] == [{"type": "text", "text": "p"}]
    assert "prompt" not in payload
    for seed_only in ("loop", "dimension", "logo"):
        assert seed_only not in payload


INVALID = [
    # (params, field, text the message must contain: the allowed values)
    ({"model": ""}, "model", "non-empty"),
    ({"model": "   "}, "model", "non-empty"),
    ({"prompt": ""}, "prompt", "non-empty"),
    ({"prompt": " \n "}, "prompt", "non-empty"),
    ({"prompt": 42}, "prompt", "string"),
    ({"loop": "maybe"}, "loop", "bool"),
    ({"duration": "7s"}, "duration", "'5s', '10s'"),
    ({"duration": "5"}, "duration", "'5s', '10s'"),
    ({"duration": 1}, "duration", "from 2 to 15"),
    ({"duration": 16}, "duration", "from 2 to 15"),
    ({"duration": 0}, "duration", "from 2 to 15"),
    ({"duration": 5.5}, "duration", "'5s', '10s'"),
    ({"duration": True}, "duration", "'5s', '10s'"),
    ({"dimension": "1:1"}, "dimension", "'768:768', '768:1280', '1280:768'"),
    ({"dimension": "768x768"}, "dimension", "'768:768', '768:1280', '1280:768'"),
    ({"seed": 0}, "seed", "from 1 to 2147483647"),
    ({"seed": 2_147_483_648}, "seed", "from 1 to 2147483647"),
    ({"seed": -2}, "seed", "from 1 to 2147483647"),
    ({"seed": 2_147_483_648, "ratio": "16:9"}, "seed", "from 1 to 2147483647, or -1"),
    ({"seed": 4_294_967_295, "ratio": "16:9"}, "seed", "from 1 to 2147483647, or -1"),
    ({"seed": -2, "ratio": "16:9"}, "seed", "from 1 to 2147483647, or -1"),
    ({"seed": 1.5}, "seed", "integer"),
    ({"seed": True}, "seed", "integer"),
    ({"logo": "bottom-right"}, "logo", "dictionary"),
    ({"ratio": "2:1"}, "ratio", "'16:9', '4:3', '1:1', '3:4', '9:16', '21:9', 'adaptive', 'keep_ratio'"),
    ({"resolution": "360p"}, "resolution", "'480p', '720p', '1080p', '4k'"),
    ({"frames": 25}, "frames", "from 29 to 289"),
    ({"frames": 293}, "frames", "from 29 to 289"),
    ({"frames": 30}, "frames", "25 + 4n"),
    ({"frames": True}, "frames", "integer"),
    ({"framespersecond": 30}, "framespersecond", "16, 24"),
    ({"framespersecond": True}, "framespersecond", "integer"),
    ({"service_tier": "fast"}, "service_tier", "'default' or 'flex'"),
    ({"execution_expires_after": 3599}, "execution_expires_after", "from 3600 to 259200"),
    ({"execution_expires_after": 259_201}, "execution_expires_after", "from 3600 to 259200"),
    ({"callback_url": "ftp://example.com/cb"}, "callback_url", "http:// or https://"),
    ({"callback_url": "example.com/cb"}, "callback_url", "http:// or https://"),
    ({"camera_fixed": "sometimes"}, "camera_fixed", "bool"),
]


@pytest.mark.parametrize(("params", "field", "allowed"), INVALID, ids=[f"{p}" for p, _, _ in INVALID])
def test_invalid_values_name_field_and_allowed_values(
    params: dict[str, Any], field: str, allowed: str
) -> None:
    params = {"prompt": "p", **params}
    err = rejected(**params)
    assert err.field == field
    assert field in str(err)
    assert allowed in str(err)


def test_prompt_is_required_without_images() -> None:
    err = rejected()
    assert err.field == "prompt"
    assert "prompt is required" in str(err)


def test_images_alone_need_no_prompt() -> None:
    payload = build(images=IMG).to_payload()
    assert payload == {
        "model": DEFAULT_MODEL,
        "content": [{"type": "image_url", "image_url": {"url": IMG}}],
    }


def test_unknown_parameter_is_named_and_allowed_ones_listed() -> None:
    err = rejected(prompt="p", aspect_ratio="16:9")
    assert err.field == "aspect_ratio"
    assert "unknown parameter 'aspect_ratio'" in str(err)
    for name in ("prompt", "ratio", "dimension", "callback_url"):
        assert name in str(err)


def test_logo_passes_unknown_keys_through() -> None:
    logo = {"position": "top-left", "url": "https://img.example.com/l.png", "opacity": 0.4}
    assert build(prompt="p", logo=logo).to_payload()["logo"] == logo


def test_logo_omits_unset_documented_keys() -> None:
    assert build(prompt="p", logo={"url": "https://img.example.com/l.png"}).to_payload()["logo"] == {
        "url": "https://img.example.com/l.png"
    }


def test_prompt_flags_are_sent_verbatim() -> None:
    prompt = "a cat --rt 16:9 --rs 720p --dur 5 --fps 24 --wm false --seed 7 --cf true"
    assert build(prompt=prompt).to_payload()["prompt"] == prompt


# ---------------------------------------------------------------------- format selection, mixing


def test_full_upstream_payload_shape() -> None:
    req = build(
        prompt="a fox",
        images=[{"url": IMG, "role": "first_frame"}, {"url": IMG2, "role": "last_frame"}],
        ratio="adaptive",
        resolution="1080p",
        duration=10,
        seed=-1,
        camera_fixed=False,
        watermark=True,
        callback_url="https://hooks.example.com/cb",
        return_last_frame=True,
        service_tier="flex",
        execution_expires_after=7200,
        generate_audio=False,
        draft=True,
        framespersecond=24,
    )
    payload = req.to_payload()
    assert payload == {
        "model": DEFAULT_MODEL,
        "content": [
            {"type": "text", "text": "a fox"},
            {"type": "image_url", "image_url": {"url": IMG}, "role": "first_frame"},
            {"type": "image_url", "image_url": {"url": IMG2}, "role": "last_frame"},
        ],
        "ratio": "adaptive",
        "resolution": "1080p",
        "duration": 10,
        "seed": -1,
        "camera_fixed": False,
        "watermark": True,
        "callback_url": "https://hooks.example.com/cb",
        "return_last_frame": True,
        "service_tier": "flex",
        "execution_expires_after": 7200,
        "generate_audio": False,
        "draft": True,
        "framespersecond": 24,
    }
    assert json.loads(json.dumps(payload)) == payload


def test_seed_minus_one_alone_selects_upstream_format() -> None:
    req = build(prompt="p", seed=-1)
    assert req.wire_format == "upstream"
    assert req.to_payload() == {
        "model": DEFAULT_MODEL,
        "content": [{"type": "text", "text": "p"}],
        "seed": -1,
    }


def test_extra_body_selects_upstream_and_is_merged_last() -> None:
    req = build(prompt="p", ratio="1:1", extra_body={"new_option": {"a": 1}, "ratio": "9:16"})
    assert req.wire_format == "upstream"
    payload = req.to_payload()
    assert payload["new_option"] == {"a": 1}
    assert payload["ratio"] == "9:16"


SEED_ONLY = {
    "loop": True,
    "dimension": "768:1280",
    "logo": {"url": "https://img.example.com/l.png"},
    "duration": "5s",
}
UPSTREAM_ONLY = {
    "ratio": "16:9",
    "resolution": "720p",
    "images": IMG,
    "frames": 29,
    "framespersecond": 24,
    "camera_fixed": True,
    "watermark": False,
    "callback_url": "https://hooks.example.com/cb",
    "return_last_frame": True,
    "service_tier": "flex",
    "execution_expires_after": 3600,
    "generate_audio": True,
    "draft": True,
    "duration": 5,
    "seed": -1,
    "extra_body": {"x": 1},
}


MIXES = [(s, u) for s in sorted(SEED_ONLY) for u in sorted(UPSTREAM_ONLY) if s != u]  # duration: one value


@pytest.mark.parametrize(("seed_only", "upstream_only"), MIXES)
def test_mixing_seed_only_and_upstream_only_fields_is_rejected(seed_only: str, upstream_only: str) -> None:
    params = {"prompt": "p", seed_only: SEED_ONLY[seed_only], upstream_only: UPSTREAM_ONLY[upstream_only]}
    err = rejected(**params)
    assert err.field == seed_only
    message = str(err)
    assert f"{seed_only} exists only in the seed format" in message
    assert upstream_only in message
    assert "upstream format" in message


# --------------------------------------------------------------------------------- image inputs


@pytest.mark.parametrize(
    "images",
    [
        IMG,
        {"url": IMG},
        [IMG],
        (IMG,),
        [{"url": IMG, "role": "first_frame"}],
        [{"url": IMG, "role": None}],
    ],
)
def test_one_image_is_the_first_frame_mode(images: Any) -> None:
    payload = build(prompt="p", images=images).to_payload()
    assert payload["content"][1]["image_url"] == {"url": IMG}
    assert payload["content"][1].get("role") in (None, "first_frame")
    assert len(payload["content"]) == 2


@pytest.mark.parametrize(
    "roles",
    [
        ["first_frame", "last_frame"],
        ["last_frame", "first_frame"],
        ["reference_image"],
        ["reference_image"] * 2,
        ["reference_image"] * 3,
        ["reference_image"] * 4,
    ],
)
def test_valid_role_modes(roles: list[str]) -> None:
    images = [{"url": f"https://img.example.com/{i}.png", "role": role} for i, role in enumerate(roles)]
    content = build(prompt="p", images=images).to_payload()["content"]
    assert [item["role"] for item in content[1:]] == roles
    assert [item["image_url"]["url"] for item in content[1:]] == [i["url"] for i in images]


@pytest.mark.parametrize(
    "roles",
    [
        ["last_frame"],
        [None, None],
        ["first_frame", None],
        ["first_frame", "first_frame"],
        ["last_frame", "last_frame"],
        ["first_frame", "last_frame", "last_frame"],
        ["reference_image"] * 5,
        ["reference_image", "first_frame"],
        ["reference_image", "last_frame"],
        ["reference_image", None],
    ],
)
def test_invalid_role_modes(roles: list[str | None]) -> None:
    images = [{"url": f"https://img.example.com/{i}.png", "role": role} for i, role in enumerate(roles)]
    err = rejected(prompt="p", images=images)
    assert err.field == "images"
    for mode in ("first_frame", "last_frame", "1-4 reference_image", "modes do not mix"):
        assert mode in str(err)


def test_unknown_role_lists_the_roles() -> None:
    err = rejected(prompt="p", images=[{"url": IMG, "role": "hero"}])
    assert err.field == "images.0.role"
    assert "'first_frame', 'last_frame' or 'reference_image'" in str(err)


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_data_urls_of_every_image_format(fmt: str) -> None:
    url = f"data:image/{fmt};base64,QUJD"
    assert build(images=url).to_payload()["content"][0]["image_url"] == {"url": url}


def test_real_png_data_url() -> None:
    assert build(images=PNG_DATA).to_payload()["content"][0]["image_url"]["url"] == PNG_DATA


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("data:image/svg;base64,QUJD", "'jpeg', 'jpg', 'png'"),
        ("data:text/plain;base64,QUJD", "data:image/<format>;base64"),
        ("data:image/png;base64,", "data:image/<format>;base64"),
        ("data:image/png,QUJD", "data:image/<format>;base64"),
        ("file:///etc/passwd", "http:// or https://"),
        ("ftp://img.example.com/a.png", "http:// or https://"),
        ("img.example.com/a.png", "http:// or https://"),
        ("https://", "http:// or https://"),
    ],
)
def test_invalid_image_urls(url: str, expected: str) -> None:
    err = rejected(images=[url])
    assert err.field == "images.0.url"
    assert expected in str(err)


@pytest.mark.parametrize("images", [123, 4.5, True])
def test_images_of_wrong_type_are_a_request_error(images: Any) -> None:
    err = rejected(prompt="p", images=images)
    assert err.field == "images"
    assert "list" in str(err)


def test_image_item_of_wrong_type() -> None:
    err = rejected(prompt="p", images=[123])
    assert err.field == "images.0"


def test_image_item_with_unknown_key() -> None:
    err = rejected(prompt="p", images=[{"url": IMG, "weight": 2}])
    assert err.field == "images.0.weight"
    assert "unknown parameter" in str(err)


# ------------------------------------------------------------------------------- content items


def test_content_items_with_image_url_object() -> None:
    req = build(
        content=[
            {"type": "text", "text": "a fox"},
            {"type": "image_url", "image_url": {"url": IMG}, "role": "first_frame"},
            {"type": "image_url", "image_url": {"url": IMG2}, "role": "last_frame"},
        ],
        ratio="16:9",
    )
    assert req.prompt == "a fox"
    assert [(i.url, i.role) for i in req.images or ()] == [(IMG, "first_frame"), (IMG2, "last_frame")]
    assert req.to_payload()["content"][1:] == [
        {"type": "image_url", "image_url": {"url": IMG}, "role": "first_frame"},
        {"type": "image_url", "image_url": {"url": IMG2}, "role": "last_frame"},
    ]


def test_content_items_with_bare_string_image_url_are_normalised_to_objects() -> None:
    req = build(content=[{"type": "text", "text": "a fox"}, {"type": "image_url", "image_url": IMG}])
    assert req.to_payload()["content"] == [
        {"type": "text", "text": "a fox"},
        {"type": "image_url", "image_url": {"url": IMG}},
    ]


def test_content_data_url_image() -> None:
    req = build(content=[{"type": "image_url", "image_url": {"url": PNG_DATA}, "role": "reference_image"}])
    assert req.to_payload()["content"] == [
        {"type": "image_url", "image_url": {"url": PNG_DATA}, "role": "reference_image"}
    ]


def test_content_text_only_is_sent_in_seed_format() -> None:
    assert build(content=[{"type": "text", "text": "hi"}]).to_payload() == build(prompt="hi").to_payload()


def test_content_images_are_appended_to_images_argument() -> None:
    req = build(
        prompt="p",
        images=[{"url": IMG, "role": "reference_image"}],
        content=[{"type": "image_url", "image_url": IMG2, "role": "reference_image"}],
    )
    assert [i.url for i in req.images or ()] == [IMG, IMG2]


@pytest.mark.parametrize(
    ("content", "field", "expected"),
    [
        ("a fox", "content", "must be a list"),
        ({"type": "text", "text": "a"}, "content", "must be a list"),
        ([{"type": "video_url", "video_url": "x"}], "content.0.type", "'text', 'image_url'"),
        (["a fox"], "content.0.type", "'text', 'image_url'"),
        ([{"text": "a fox"}], "content.0.type", "'text', 'image_url'"),
        ([{"type": "text", "text": 5}], "content.0.text", "must be a string"),
        ([{"type": "image_url"}], "images.0.url", "string"),
        ([{"type": "image_url", "image_url": {}}], "images.0.url", "string"),
        ([{"type": "image_url", "image_url": "ftp://x/y.png"}], "images.0.url", "http:// or https://"),
        (
            [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "content.1.text",
            "second prompt",
        ),
    ],
)
def test_invalid_content_items(content: Any, field: str, expected: str) -> None:
    err = rejected(content=content)
    assert err.field == field
    assert expected in str(err)


def test_prompt_and_content_text_together_is_rejected_not_silently_dropped() -> None:
    err = rejected(prompt="a", content=[{"type": "text", "text": "b"}])
    assert err.field == "content.0.text"
    assert "second prompt" in str(err)


# -------------------------------------------------------------------------------- property test

_FIELDS = [n for n in VideoGenerationRequest.model_fields]
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
_values = (
    _json
    | st.sampled_from(["5s", "10s", "768:768", "16:9", "720p", "flex", IMG, PNG_DATA, "first_frame"])
    | st.integers(-2, 300)
    | st.lists(st.fixed_dictionaries({"url": st.sampled_from([IMG, IMG2])}), max_size=5)
)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from([*_FIELDS, "content", "bogus"]), _values, max_size=6),
    st.sampled_from(["p", None]),
)
def test_build_never_fails_with_anything_but_a_request_error(params: dict[str, Any], prompt: Any) -> None:
    if prompt is not None:
        params.setdefault("prompt", prompt)
    try:
        req = VideoGenerationRequest.build(**params)
    except GPTProtoRequestError as err:
        assert err.field, f"no field named for {params!r}: {err}"
        assert err.field.split(".")[0] in {*_FIELDS, "content", "bogus"}
        return
    payload = req.to_payload()
    json.dumps(payload)
    if req.wire_format == "seed":
        assert set(payload) <= {"model", "prompt", "loop", "duration", "dimension", "seed", "logo"}
        assert payload["duration"] in ("5s", "10s")
    else:
        assert isinstance(payload["content"], list)
        assert not isinstance(payload.get("duration"), str)
        assert not {"loop", "dimension", "logo"} & set(payload) - set(req.extra_body)


def test_with_seed_draws_only_where_nobody_chose() -> None:
    drawn = VideoGenerationRequest.build(prompt="a fox").with_seed()
    assert (
        drawn.seed is not None
        and 1 <= drawn.seed <= 2_147_483_647
        and drawn.to_payload()["seed"] == drawn.seed
    )
    assert VideoGenerationRequest.build(prompt="a fox", seed=5).with_seed(9).seed == 5
    upstream = VideoGenerationRequest.build(prompt="a fox", seed=-1, ratio="16:9").with_seed(9)
    assert upstream.seed == -1  # the server's choice, asked for
    assert VideoGenerationRequest.build(prompt="a fox --seed 12 --rs 720p").with_seed(9).seed is None
    # A seed in extra_body is sent last and wins: no other seed may be reported for the video.
    extra = VideoGenerationRequest.build(prompt="a fox", extra_body={"seed": 33}).with_seed(9)
    assert extra.seed is None and extra.to_payload()["seed"] == 33
    assert stable_seed("dag", "run", "task", -1) == stable_seed("dag", "run", "task", -1)
    assert stable_seed("dag", "run", "task", 0) != stable_seed("dag", "run", "task", 1)
