"""Every validation rule of docs/api-contract.md: a bad field answers 400 in the documented shape."""

from __future__ import annotations

from typing import Any

import pytest

SEED = {"model": "seedance-1-0-lite-i2v-250428", "prompt": "a cat"}
UPSTREAM = {"model": "doubao-seedance-1-0-pro-250528", "content": [{"type": "text", "text": "a cat"}]}
IMG = "https://example.com/frame.png"
PNG_DATA = "data:image/png;base64,iVBORw0KGgo="


def image(role: str | None = None, url: Any = IMG) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if role is not None:
        item["role"] = role
    return item


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("missing model", without(SEED, "model"), "model"),
    ("model not a string", {**SEED, "model": 5}, "model"),
    ("model empty", {**SEED, "model": "  "}, "model"),
    ("missing prompt", without(SEED, "prompt"), "prompt"),
    ("prompt empty", {**SEED, "prompt": ""}, "prompt"),
    ("prompt not a string", {**SEED, "prompt": ["a"]}, "prompt"),
    ("loop not bool", {**SEED, "loop": "false"}, "loop"),
    ("duration 7s", {**SEED, "duration": "7s"}, "duration"),
    ("duration 1", {**SEED, "duration": 1}, "duration"),
    ("duration 16", {**SEED, "duration": 16}, "duration"),
    ("duration bool", {**SEED, "duration": True}, "duration"),
    ("duration float", {**SEED, "duration": 5.5}, "duration"),
    ("dimension", {**SEED, "dimension": "720:720"}, "dimension"),
    ("seed 0", {**SEED, "seed": 0}, "seed"),
    ("seed too big", {**SEED, "seed": 2147483648}, "seed"),
    ("seed -2", {**SEED, "seed": -2}, "seed"),
    ("seed string", {**SEED, "seed": "123"}, "seed"),
    ("seed float", {**SEED, "seed": 1.5}, "seed"),
    ("seed bool", {**SEED, "seed": True}, "seed"),
    ("logo not object", {**SEED, "logo": "corner"}, "logo"),
    ("logo url not string", {**SEED, "logo": {"url": 5}}, "logo.url"),
    ("logo position not string", {**SEED, "logo": {"position": 1}}, "logo.position"),
    ("content empty", {**UPSTREAM, "content": []}, "content"),
    ("content not a list", {**UPSTREAM, "content": "a cat"}, "content"),
    ("content item not object", {**UPSTREAM, "content": ["a cat"]}, "content[0]"),
    ("content type missing", {**UPSTREAM, "content": [{"text": "a"}]}, "content[0].type"),
    ("content type unknown", {**UPSTREAM, "content": [{"type": "video_url"}]}, "content[0].type"),
    ("text not string", {**UPSTREAM, "content": [{"type": "text", "text": 1}]}, "content[0].text"),
    (
        "image url missing",
        {**UPSTREAM, "content": [{"type": "image_url", "image_url": {}}]},
        "content[0].image_url.url",
    ),
    ("image_url missing", {**UPSTREAM, "content": [{"type": "image_url"}]}, "content[0].image_url"),
    ("image url ftp", {**UPSTREAM, "content": [image(url="ftp://x/a.png")]}, "content[0].image_url.url"),
    (
        "image data url bad format",
        {**UPSTREAM, "content": [image(url="data:image/svg;base64,AAAA")]},
        "content[0].image_url.url",
    ),
    (
        "image data url upper-case format",
        {**UPSTREAM, "content": [image(url="data:image/PNG;base64,AAAA")]},
        "content[0].image_url.url",
    ),
    (
        "bare image url bad",
        {**UPSTREAM, "content": [{"type": "image_url", "image_url": "not a url"}]},
        "content[0].image_url",
    ),
    ("role unknown", {**UPSTREAM, "content": [image("middle_frame")]}, "content[0].role"),
    ("single last_frame", {**UPSTREAM, "content": [image("last_frame")]}, "content[].role"),
    (
        "two first frames",
        {**UPSTREAM, "content": [image("first_frame"), image("first_frame")]},
        "content[].role",
    ),
    ("first+last without roles", {**UPSTREAM, "content": [image(), image()]}, "content[].role"),
    (
        "three frames",
        {**UPSTREAM, "content": [image("first_frame"), image("last_frame"), image("first_frame")]},
        "content[].role",
    ),
    (
        "reference mixed with frame",
        {**UPSTREAM, "content": [image("reference_image"), image("first_frame")]},
        "content",
    ),
    ("five reference images", {**UPSTREAM, "content": [image("reference_image")] * 5}, "content"),
    ("ratio", {**UPSTREAM, "ratio": "2:1"}, "ratio"),
    ("resolution", {**UPSTREAM, "resolution": "4k"}, "resolution"),
    ("frames not 25+4n", {**UPSTREAM, "frames": 30}, "frames"),
    ("frames too many", {**UPSTREAM, "frames": 293}, "frames"),
    ("frames too few", {**UPSTREAM, "frames": 25}, "frames"),
    ("framespersecond", {**UPSTREAM, "framespersecond": 30}, "framespersecond"),
    ("framepersecond typo field", {**UPSTREAM, "framepersecond": 30}, "framepersecond"),
    ("camera_fixed", {**UPSTREAM, "camera_fixed": "yes"}, "camera_fixed"),
    ("camerafixed", {**SEED, "camerafixed": 1}, "camerafixed"),
    ("watermark", {**UPSTREAM, "watermark": "true"}, "watermark"),
    ("callback_url", {**UPSTREAM, "callback_url": "not-a-url"}, "callback_url"),
    ("return_last_frame", {**UPSTREAM, "return_last_frame": 1}, "return_last_frame"),
    ("service_tier", {**UPSTREAM, "service_tier": "cheap"}, "service_tier"),
    ("execution_expires_after low", {**UPSTREAM, "execution_expires_after": 3599}, "execution_expires_after"),
    (
        "execution_expires_after high",
        {**UPSTREAM, "execution_expires_after": 259201},
        "execution_expires_after",
    ),
    ("generate_audio", {**UPSTREAM, "generate_audio": "no"}, "generate_audio"),
    ("draft", {**UPSTREAM, "draft": 0}, "draft"),
    ("upstream prompt not a string", {**UPSTREAM, "prompt": 3}, "prompt"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BODIES, ids=[case for case, _, _ in BAD_BODIES])
def test_bad_field_gets_400_naming_it(api: Any, case: str, body: dict[str, Any], field: str) -> None:
    response = api.create(body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_parameters"
    assert f"`{field}`" in error["message"]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BODIES[::6], ids=[c for c, _, _ in BAD_BODIES[::6]])
def test_bad_field_in_ark_dialect_names_it_in_param(
    api: Any, emu: Any, case: str, body: dict[str, Any], field: str
) -> None:
    emu.configure(dialect="ark")
    error = api.create(body).json()["error"]
    assert set(error) == {"code", "message", "param", "type"}
    assert error["param"] == field and error["type"] == "BadRequest"
    assert error["code"] in ("InvalidParameter", "MissingParameter") and "Request id:" in error["message"]


def test_missing_parameter_code_in_ark_dialect(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark")
    assert api.create(without(SEED, "model")).json()["error"]["code"] == "MissingParameter"


@pytest.mark.parametrize(
    ("data", "field"), [(b"{not json", "body"), (b"[1, 2]", "body"), (b'"text"', "body"), (b"", "body")]
)
def test_body_that_is_not_a_json_object(api: Any, data: bytes, field: str) -> None:
    response = api.create_raw(data)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_parameters"
    assert "body" in response.json()["error"]["message"]


GOOD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("seed minimal", SEED),
    (
        "seed full",
        {
            **SEED,
            "loop": True,
            "duration": "5s",
            "dimension": "1280:768",
            "seed": 2147483647,
            "logo": {"position": "top-left", "url": "https://e.com/l.png", "extra": [1]},
        },
    ),
    ("duration int in seed format", {**SEED, "duration": 2}),
    ("duration -1", {**UPSTREAM, "duration": -1}),
    ("seed -1", {**SEED, "seed": -1}),
    ("seed 1", {**SEED, "seed": 1}),
    (
        "nulls mean not sent",
        {
            **UPSTREAM,
            "seed": None,
            "ratio": None,
            "callback_url": None,
            "frames": None,
            "watermark": None,
            "service_tier": None,
        },
    ),
    ("unknown fields pass", {**SEED, "safety_identifier": "x", "priority": 1, "tools": []}),
    ("image only", {**UPSTREAM, "content": [image()]}),
    ("bare string image_url", {**UPSTREAM, "content": [{"type": "image_url", "image_url": IMG}]}),
    ("data url", {**UPSTREAM, "content": [image("first_frame", PNG_DATA)]}),
    (
        "first and last",
        {**UPSTREAM, "content": [UPSTREAM["content"][0], image("last_frame"), image("first_frame")]},
    ),
    ("four references", {**UPSTREAM, "content": [image("reference_image")] * 4}),
    (
        "all upstream options",
        {
            **UPSTREAM,
            "ratio": "21:9",
            "resolution": "1080p",
            "frames": 29,
            "framespersecond": 16,
            "seed": 5,
            "camera_fixed": True,
            "watermark": True,
            "callback_url": "http://127.0.0.1:9/cb",
            "return_last_frame": True,
            "service_tier": "flex",
            "execution_expires_after": 3600,
            "generate_audio": False,
            "draft": True,
        },
    ),
    ("misspelt fps field", {**UPSTREAM, "framepersecond": 24}),
    ("top-level camerafixed", {**SEED, "camerafixed": False}),
    ("adaptive ratio", {**UPSTREAM, "ratio": "adaptive"}),
    ("content plus prompt", {**UPSTREAM, "prompt": "ignored when content has text"}),
]


@pytest.mark.parametrize(("case", "body"), GOOD_BODIES, ids=[case for case, _ in GOOD_BODIES])
def test_valid_variants_are_accepted(api: Any, case: str, body: dict[str, Any]) -> None:
    response = api.create(body)
    assert response.status_code == 200, response.text


def test_prompt_flags_are_lenient_and_body_fields_win(api: Any) -> None:
    lenient = api.new_task("a cat --ratio 99:1 --resolution 480p --dur abc --seed x --cf maybe")
    request = api.task(lenient)["request"]
    assert (request["ratio"], request["resolution"], request["duration"]) == ("16:9", "480p", 5)
    flags = api.new_task("a cat --rt 9:16 --rs 480p --dur 3 --seed 42 --fps 16 --wm true --cf true")
    request = api.task(flags)["request"]
    assert (request["width"], request["height"], request["duration"], request["seed"]) == (480, 864, 3, 42)
    assert request["framespersecond"] == 16 and request["watermark"] and request["camera_fixed"]
    body_wins = api.new_task(
        "a cat --ratio 9:16 --resolution 480p --duration 3 --seed 42",
        ratio="1:1",
        resolution="480p",
        duration=4,
        seed=7,
    )
    request = api.task(body_wins)["request"]
    assert (request["width"], request["height"], request["duration"], request["seed"]) == (640, 640, 4, 7)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page_num": "0"}, "page_num"),
        ({"page_num": "abc"}, "page_num"),
        ({"page_size": "501"}, "page_size"),
        ({"page_size": "-1"}, "page_size"),
        ({"filter.status": "done"}, "filter.status"),
        ({"filter.service_tier": "gold"}, "filter.service_tier"),
    ],
)
def test_bad_list_parameter_gets_400_naming_it(api: Any, params: dict[str, str], field: str) -> None:
    response = api.list(params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_parameters" and f"`{field}`" in error["message"]


def test_list_page_bounds_are_inclusive(api: Any) -> None:
    assert api.list({"page_num": "1", "page_size": "500"}).status_code == 200
    assert api.list({"page_num": "500", "page_size": "1"}).status_code == 200
