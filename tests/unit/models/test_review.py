"""The review's pure core: candidates, grouping by prompt, the HITL form, the answer, the links."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_gptproto.exceptions import GPTProtoRequestError
from airflow_provider_gptproto.models.results import TakeSource
from airflow_provider_gptproto.models.review import (
    build_review,
    candidate,
    choose,
    markdown_text,
    pick_params,
    published_name,
    review_body,
    review_result,
    video_tab_path,
)

RUN = "manual__2026-12-05T02:00:00+00:00"


def src(task_id: str = "generate", map_index: int = -1) -> TakeSource:
    return {"dag_id": "dag", "run_id": RUN, "task_id": task_id, "map_index": map_index}


def row(prompt_index: int, take: int | None, status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    """A batch manifest row (``take``/``prompt_index`` as the takes branch records them)."""
    fields = {"prompt_index": prompt_index, "take": take} if take is not None else {}
    return {
        "index": prompt_index * 3 + (take or 1) - 1,
        "prompt": f"prompt {prompt_index}",
        "status": status,
        "uri": f"/v/{prompt_index}-{take}.mp4" if status == "succeeded" else None,
        "seed": 100 + (take or 0),
        "task_id": f"t{prompt_index}{take}",
        "sha256": "ab" * 32,
        "usage": {"total_tokens": 10},
        "request": {"prompt": f"prompt {prompt_index}", "duration": 5, "resolution": "720p"},
        **fields,
        **extra,
    }


def generate(prompt: str, seed: int, status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "generate",
        "task_id": f"g{seed}",
        "status": status,
        "video_url": f"https://cdn.test/{seed}.mp4" if status == "succeeded" else None,
        "seed": seed,
        "usage": None,
        "request": {"prompt": prompt, "seed": seed, "dimension": "1280:768"},
        **extra,
    }


def test_manifest_rows_group_by_prompt_index_and_only_succeeded_takes_are_candidates() -> None:
    rows = [row(p, k, "failed" if (p, k) == (0, 2) else "succeeded") for p in (0, 1, 2) for k in (1, 2, 3)]
    rows[6:9] = [row(2, k, "failed") for k in (1, 2, 3)]
    review = build_review(candidate(r, src("batch")) for r in rows)
    assert review["mode"] == "pick"
    groups = review["groups"]
    assert [(g["number"], g["param"], g["prompt"]) for g in groups] == [
        (1, "pick_1", "prompt 0"),
        (2, "pick_2", "prompt 1"),
        (3, None, "prompt 2"),
    ]
    assert [t["label"] for t in groups[0]["takes"]] == ["take 1", "take 3"]
    assert groups[0]["failed"] == [2]
    assert groups[2]["takes"] == [] and groups[2]["failed"] == [1, 2, 3]
    first = groups[1]["takes"][0]
    assert first == {
        "label": "take 1",
        "take": 1,
        "seed": 101,
        "uri": "/v/1-1.mp4",
        "video_url": None,
        "poster_uri": None,
        "gptproto_task_id": "t11",
        "duration": 5,
        "resolution": "720p",
        "usage": {"total_tokens": 10},
        "sha256": "ab" * 32,
        "source": src("batch"),
    }


def test_results_without_take_fields_group_by_prompt_text_in_order() -> None:
    """Before takes existed: each result is its own take, except results of one prompt form a group."""
    results = [
        (generate("a fox", 1), src("generate", 0)),
        (generate("a cat", 2), src("generate", 1)),
        (generate("a fox", 3), src("generate", 2)),
    ]
    review = build_review(candidate(r, s) for r, s in results)
    fox, cat = review["groups"]
    assert [(t["take"], t["seed"], t["source"]["map_index"]) for t in fox["takes"]] == [(1, 1, 0), (2, 3, 2)]
    assert fox["param"] == "pick_1" and cat["param"] is None
    assert cat["takes"][0]["video_url"] == "https://cdn.test/2.mp4"
    assert cat["takes"][0]["resolution"] == "1280:768"


def test_take_fields_order_the_takes_and_duplicates_are_renumbered() -> None:
    ordered = build_review(
        candidate(generate("p", seed, take=take, takes=3), src())
        for seed, take in ((30, 3), (10, 1), (20, 2))
    )
    assert [(t["take"], t["seed"]) for t in ordered["groups"][0]["takes"]] == [(1, 10), (2, 20), (3, 30)]
    # Two single-take tasks of one prompt both say take 1: numbered in order instead.
    clash = build_review(candidate(generate("p", s, take=1, takes=1), src()) for s in (5, 6))
    assert [(t["take"], t["seed"]) for t in clash["groups"][0]["takes"]] == [(1, 5), (2, 6)]


def test_a_single_video_is_approved_not_picked() -> None:
    review = build_review([candidate(generate("only one", 9), src())])
    assert review["mode"] == "approve"
    assert pick_params(review) == {}
    assert choose(review, {})[0]["seed"] == 9


def test_storyboards_of_one_task_are_one_group() -> None:
    boards = [
        {"kind": "storyboard", "uri": f"/s/take-{k}/storyboard.mp4", "duration": 30.0, "take": k, "takes": 2}
        for k in (1, 2)
    ]
    review = build_review(candidate(b, src("storyboard")) for b in boards)
    (group,) = review["groups"]
    assert [t["uri"] for t in group["takes"]] == ["/s/take-1/storyboard.mp4", "/s/take-2/storyboard.mp4"]
    assert group["param"] == "pick_1" and group["takes"][0]["duration"] == 30.0


def test_pick_params_offer_the_succeeded_takes_with_the_first_as_default() -> None:
    review = build_review(candidate(row(0, k, "failed" if k == 1 else "succeeded"), src()) for k in (1, 2, 3))
    assert pick_params(review) == {
        "pick_1": {
            "default": "take 2",
            "enum": ["take 2", "take 3"],
            "type": "string",
            "title": "Prompt 1: which take?",
            "description": "prompt 0",
        }
    }


def test_choose_takes_the_picks_defaults_and_refuses_an_unknown_take() -> None:
    review = build_review(candidate(row(p, k), src()) for p in (0, 1) for k in (1, 2, 3))
    chosen = choose(review, {"pick_1": "take 3"})
    assert [(c["group"], c["take"], c["uri"]) for c in chosen] == [(1, 3, "/v/0-3.mp4"), (2, 1, "/v/1-1.mp4")]
    with pytest.raises(
        GPTProtoRequestError, match="pick_2 must be one of 'take 1', 'take 2', 'take 3'"
    ) as exc:
        choose(review, {"pick_2": "take 7"})
    assert exc.value.field == "pick_2"


def test_review_result_records_who_answered_and_when() -> None:
    review = build_review(candidate(row(0, k), src()) for k in (1, 2))
    at = datetime(2026, 12, 5, 3, 0, tzinfo=timezone.utc)
    approved = review_result(
        review,
        {
            "chosen_options": ["Approve"],
            "params_input": {"pick_1": "take 2"},
            "responded_at": at,
            "responded_by_user": {"id": "admin", "name": "admin"},
        },
    )
    assert approved["approved"] and [c["take"] for c in approved["chosen"]] == [2]
    assert approved["responded_by"] == {"id": "admin", "name": "admin"}
    assert approved["responded_at"] == "2026-12-05T03:00:00+00:00" and approved["timed_out"] is False
    rejected = review_result(
        review, {"chosen_options": ["Reject"], "params_input": {"pick_1": "take 2"}, "responded_at": at}
    )
    assert rejected["approved"] is False and rejected["chosen"] == []


def test_body_links_the_review_page_and_every_takes_video_tab() -> None:
    from airflow_provider_gptproto.plugins.pages import video_tab_href
    from airflow_provider_gptproto.plugins.records import VideoRecord

    review = build_review(
        candidate(generate("A [link](http://evil) *fox*", seed), src("generate", i))
        for i, seed in enumerate((1, 2))
    )
    body = review_body(review, "/airflow", src("review"))
    assert (
        "[Open the review page](/airflow/gptproto/review/dag/manual__2026-12-05T02%3A00%3A00%2B00%3A00/review"
        "?map_index=-1)" in body
    )
    for i, take in enumerate(review["groups"][0]["takes"]):
        # The same page the plugin's gallery links to for that task instance.
        href = video_tab_href("/airflow", VideoRecord("dag", RUN, "generate", i))
        assert video_tab_path("/airflow", take["source"]) == href
        assert f"- [take {i + 1}]({href}) seed {i + 1}" in body
    assert "A \\[link\\]\\(http://evil\\) \\*fox\\*" in body  # the prompt is text, not a link
    assert "(choose in `pick_1`)" in body


def test_markdown_text_and_published_names() -> None:
    assert markdown_text("a  <b>\nc_d") == "a \\<b\\> c\\_d"
    take: Any = {"group": 3, "take": 2, "prompt": "A lighthouse at dusk, waves!"}
    assert published_name(take) == "03-a-lighthouse-at-dusk-waves-take2.mp4"
    assert published_name({**take, "prompt": None}) == "03-video-take2.mp4"
