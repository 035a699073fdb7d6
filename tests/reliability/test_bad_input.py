"""Bad input: random operator parameters and garbled API bodies never slip through or crash.

1. Random operator parameters give either a request the (independently written) emulator accepts,
   or a GPTProtoRequestError naming the field, raised before any HTTP request is sent.
2. 10,000 random and garbled reply bodies give a GenerationTask or a GPTProtoError, never any other
   exception (no KeyError, TypeError, ValueError, ... deep inside a DAG run).
"""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from airflow_provider_gptproto.exceptions import GPTProtoError, GPTProtoRequestError
from airflow_provider_gptproto.hooks._settings import ClientSettings
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook, decode_reply
from airflow_provider_gptproto.models import parse_create, parse_task, parse_task_list
from airflow_provider_gptproto.operators.gptproto import GPTProtoGenerateVideoOperator

_text = st.one_of(
    st.text(max_size=12), st.sampled_from(["", " ", "5s", "10s", "768:768", "16:9", "720p", "x"])
)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), _text, st.floats(allow_nan=True))
_image = st.one_of(
    st.sampled_from(
        ["https://img.example/a.png", "ftp://x/a.png", "data:image/png;base64,AAAA", "not a url"]
    ),
    st.fixed_dictionaries(
        {"url": st.sampled_from(["https://img.example/a.png", "file:///etc/passwd"])},
        optional={"role": st.sampled_from(["first_frame", "last_frame", "reference_image", "bogus"])},
    ),
)


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nine times in ten a valid value, else any scalar: both outcomes get exercised."""
    return st.integers(0, 9).flatmap(lambda roll: valid if roll else _scalar)


_prompt = _mostly(st.sampled_from(["a calm lake", "a fox --ratio 16:9 --dur 5"]))
_model = _mostly(st.just("seedance-1-0-lite-i2v-250428"))
_seed_format = {
    "duration": _mostly(st.sampled_from(["5s", "10s"])),
    "dimension": _mostly(st.sampled_from(["768:768", "768:1280", "1280:768"])),
    "seed": _mostly(st.integers(1, 2_147_483_647)),
    "loop": _mostly(st.booleans()),
    "logo": _mostly(st.just({"position": "top-left", "url": "https://l.example/l.png"})),
}
_upstream_format = {
    "duration": _mostly(st.sampled_from([5, 10, -1])),
    "seed": _mostly(st.integers(-1, 2**32 - 1)),
    "images": st.integers(0, 3).flatmap(
        lambda roll: st.lists(_image, max_size=5) if roll == 0 else st.just(["https://img.example/a.png"])
    ),
    "ratio": _mostly(st.sampled_from(["16:9", "1:1", "adaptive"])),
    "resolution": _mostly(st.sampled_from(["480p", "720p", "1080p"])),
    "frames": _mostly(st.sampled_from([29, 33, 289])),
    "framespersecond": _mostly(st.sampled_from([16, 24])),
    "camera_fixed": _mostly(st.booleans()),
    "watermark": _mostly(st.booleans()),
    "service_tier": _mostly(st.sampled_from(["default", "flex"])),
    "execution_expires_after": _mostly(st.sampled_from([3600, 86400, 259200])),
    "callback_url": _mostly(st.just("https://cb.example/hook")),
}
# Each wire format on its own (mostly valid), and the two mixed (mostly rejected: a mixing error).
_params = st.one_of(
    st.fixed_dictionaries({"prompt": _prompt}, optional={"model": _model, **_seed_format}),
    st.fixed_dictionaries(
        {"prompt": _prompt, "resolution": st.just("720p")},
        optional={"model": _model, **{k: v for k, v in _upstream_format.items() if k != "resolution"}},
    ),
    st.fixed_dictionaries({"prompt": _prompt}, optional={**_upstream_format, **_seed_format}),
)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(params=_params)
def test_random_operator_parameters_are_valid_or_name_the_field(
    params: dict[str, Any], emulator: Any
) -> None:
    creates_before = emulator.stats()["requests"]["create"]
    try:
        operator = GPTProtoGenerateVideoOperator(task_id="generate", **params)
    except GPTProtoRequestError as err:
        assert err.field, f"no field named for {params}"
        assert err.field.split(".")[0] in str(err)
        assert emulator.stats()["requests"]["create"] == creates_before  # nothing was sent
        event("rejected before sending")
        return
    request = operator.build_request()
    # What we accept, the emulator (written from the contract on its own) accepts too.
    task = GPTProtoHook().create_task(request)
    assert task.task_id
    assert emulator.stats()["requests"]["create"] == creates_before + 1
    event(f"accepted as {request.wire_format} format")


# ------------------------------------------------------------------------ garbled reply bodies
_SETTINGS = ClientSettings(base_url="http://127.0.0.1:9", api_key="sk-fuzz-key-0123456789")
_VALID = [
    {
        "code": 0,
        "message": "Success",
        "data": {"task_id": "t1", "status": "completed", "video_url": "https://v/1.mp4"},
    },
    {
        "id": "cgt-1",
        "status": "succeeded",
        "content": {"video_url": "https://v/2.mp4"},
        "seed": "16108",
        "created_at": "1766663633",
        "usage": {"completion_tokens": 1, "total_tokens": 1},
        "error": None,
    },
    {
        "code": 200,
        "message": "success",
        "data": {"id": "p1", "status": "processing", "outputs": [], "error": ""},
    },
    {"items": [{"id": "cgt-2", "status": "running"}], "total": 1},
    {"error": {"code": "InvalidParameter", "message": "bad", "param": "", "type": "BadRequest"}},
]
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
_KEYS = [
    "id",
    "task_id",
    "data",
    "status",
    "code",
    "message",
    "error",
    "content",
    "video_url",
    "outputs",
    "items",
    "total",
    "created_at",
    "updated_at",
    "seed",
    "usage",
    "model",
    "url",
]


def _garble(body: Any, rng: random.Random, value: Any) -> Any:
    """Replace, delete or retype one random node of a valid body."""
    if isinstance(body, dict) and body:
        key = rng.choice([*body, rng.choice(_KEYS)])
        garbled = dict(body)
        roll = rng.random()
        if roll < 0.3:
            garbled.pop(key, None)
        elif roll < 0.6 and isinstance(garbled.get(key), (dict, list)):
            garbled[key] = _garble(garbled[key], rng, value)
        else:
            garbled[key] = value
        return garbled
    if isinstance(body, list) and body:
        return [_garble(item, rng, value) for item in body]
    return value


def _check(raw: bytes, status: int) -> None:
    for parse in (parse_task, parse_create, parse_task_list):
        with contextlib.suppress(GPTProtoError):
            parse(decode_reply(_SETTINGS, status, None, raw))


@settings(max_examples=10_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    base=st.sampled_from(_VALID),
    value=_json,
    seed=st.integers(0, 2**32),
    status=st.sampled_from([200, 200, 200, 400, 401, 404, 429, 500, 503]),
    mode=st.sampled_from(["garble", "random", "truncate", "bytes"]),
)
def test_ten_thousand_garbled_bodies_give_a_task_or_a_gptproto_error(
    base: dict[str, Any], value: Any, seed: int, status: int, mode: str
) -> None:
    rng = random.Random(seed)
    if mode == "garble":
        raw = json.dumps(_garble(_garble(base, rng, value), rng, value)).encode()
    elif mode == "random":
        raw = json.dumps(value).encode()
    elif mode == "truncate":
        text = json.dumps(base).encode()
        raw = text[: rng.randrange(len(text))]
    else:
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    _check(raw, status)


@pytest.mark.parametrize("body", _VALID[:4])
def test_the_fuzzed_seeds_are_themselves_readable(body: dict[str, Any]) -> None:
    """A positive control: the valid bodies the fuzzer garbles parse cleanly."""
    parsed = parse_task_list(body) if "items" in body else parse_task(body)
    assert parsed
