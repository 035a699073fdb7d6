"""The review of generated takes, with no I/O: which videos are candidates, how they group by prompt,
the form a reviewer fills in (Airflow HITL options and params), and what the answer chose.

The review request (XCom ``gptproto_review``, read by the plugin's review page) is::

    {"mode": "pick" | "approve", "groups": [{"number": n, "param": "pick_<n>" | None, "prompt": str | None,
      "failed": [take numbers that did not succeed], "takes": [{"label": "take k", "take": k, "seed",
      "uri", "video_url", "poster_uri", "gptproto_task_id", "duration", "resolution", "usage",
      "sha256", "source": {"dag_id", "run_id", "task_id", "map_index"}}]}]}

``failed`` and ``sha256`` go beyond the shared shape: a group with no succeeded take is listed with
``takes: []`` and its failed take numbers, and the publish step checks what it copies by sha256.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import quote

from typing_extensions import TypedDict

from airflow_provider_gptproto.exceptions import GPTProtoRequestError
from airflow_provider_gptproto.models.results import ChosenTake, ReviewResult, TakeSource

REVIEW_XCOM_KEY = "gptproto_review"
APPROVE, REJECT = "Approve", "Reject"
SUCCEEDED = "succeeded"
UI_PREFIX = "/gptproto"  # the plugin's URL prefix (plugins/gptproto.py URL_PREFIX)


class ReviewTake(TypedDict):
    label: str
    take: int
    seed: int | None
    uri: str | None
    video_url: str | None
    poster_uri: str | None
    gptproto_task_id: str | None
    duration: Any
    resolution: Any
    usage: dict[str, int] | None
    sha256: str | None
    source: TakeSource


class ReviewGroup(TypedDict):
    number: int
    param: str | None
    prompt: str | None
    takes: list[ReviewTake]
    failed: list[int]


class ReviewRequest(TypedDict):
    mode: Literal["pick", "approve"]
    groups: list[ReviewGroup]


def candidate(result: Mapping[str, Any], source: TakeSource) -> dict[str, Any]:
    """One video of an upstream result (a generate/saved/download result, a manifest row or a
    storyboard), in the review's terms plus its grouping hints (``_group``, ``_take``)."""
    request = result.get("request") or {}
    kind = result.get("kind")
    prompt = result.get("prompt") or request.get("prompt")
    if kind == "storyboard":
        group: tuple[Any, ...] = ("storyboard", source["task_id"], source["map_index"])
    elif isinstance(result.get("prompt_index"), int):  # a batch's rows: one group per input prompt
        group = ("row", source["task_id"], source["map_index"], result["prompt_index"])
    elif prompt:
        group = ("prompt", prompt)
    else:
        group = ("own", id(result))
    return {
        "_group": group,
        "_take": result.get("take") if isinstance(result.get("take"), int) else None,
        "_ok": result.get("status", SUCCEEDED) == SUCCEEDED,
        "prompt": prompt,
        "seed": result.get("seed", request.get("seed")),
        "uri": result.get("uri"),
        "video_url": result.get("video_url"),
        "poster_uri": result.get("poster_uri"),
        # A manifest row's or a task result's task_id is the GPTProto task's.
        "gptproto_task_id": result.get("task_id") if kind != "storyboard" else None,
        "duration": result.get("duration", request.get("duration")),
        "resolution": request.get("resolution") or request.get("dimension") or result.get("dimension"),
        "usage": result.get("usage"),
        "sha256": result.get("sha256"),
        "source": source,
    }


def build_review(candidates: Iterable[Mapping[str, Any]]) -> ReviewRequest:
    """Group ``candidates`` (from :func:`candidate`) into the review request.

    Groups are one per prompt, in order of first appearance. A group's takes are numbered by their
    ``take`` field when those are distinct, else 1, 2, ... in order; only succeeded takes are listed.
    """
    grouped: dict[Any, list[Mapping[str, Any]]] = {}
    for item in candidates:
        grouped.setdefault(item["_group"], []).append(item)
    groups: list[ReviewGroup] = []
    for number, items in enumerate(grouped.values(), start=1):
        numbers = [item["_take"] for item in items]
        if None in numbers or len(set(numbers)) != len(numbers):
            numbers = list(range(1, len(items) + 1))
        ordered = sorted(zip(numbers, items, strict=True), key=lambda pair: pair[0])
        takes = [_take(k, item) for k, item in ordered if item["_ok"]]
        groups.append(
            {
                "number": number,
                "param": f"pick_{number}" if len(takes) > 1 else None,
                "prompt": items[0]["prompt"],
                "takes": takes,
                "failed": [k for k, item in ordered if not item["_ok"]],
            }
        )
    mode: Literal["pick", "approve"] = "pick" if any(g["param"] for g in groups) else "approve"
    return {"mode": mode, "groups": groups}


def _take(k: int, item: Mapping[str, Any]) -> ReviewTake:
    fields = {name: value for name, value in item.items() if not name.startswith("_") and name != "prompt"}
    return {"label": f"take {k}", "take": k, **fields}  # type: ignore[typeddict-item]


def pick_params(review: ReviewRequest) -> dict[str, dict[str, Any]]:
    """The HITL form: a ``pick_<n>`` choice per group with several takes, defaulting to its first take
    (what the form preselects and what a ``response_timeout`` with ``defaults`` takes)."""
    return {
        group["param"]: {
            "default": group["takes"][0]["label"],
            "enum": [take["label"] for take in group["takes"]],
            "type": "string",
            "title": f"Prompt {group['number']}: which take?",
            "description": _short(group["prompt"]) or f"group {group['number']}",
        }
        for group in review["groups"]
        if group["param"]
    }


def choose(review: ReviewRequest, params_input: Mapping[str, Any]) -> list[ChosenTake]:
    """The takes an approval chose: a group's pick (its first take when not given), one per group
    with a succeeded take.

    :raises GPTProtoRequestError: a pick names no take of its group (the error names the allowed ones).
    """
    chosen: list[ChosenTake] = []
    for group in review["groups"]:
        if not group["takes"]:
            continue
        labels = [take["label"] for take in group["takes"]]
        label = (params_input.get(group["param"]) if group["param"] else None) or labels[0]
        if label not in labels:
            raise GPTProtoRequestError(
                f"{group['param']} must be one of {', '.join(map(repr, labels))}, got {label!r}",
                field=str(group["param"]),
            )
        take = group["takes"][labels.index(label)]
        chosen.append(
            {
                "group": group["number"],
                "prompt": group["prompt"],
                "take": take["take"],
                "seed": take["seed"],
                "uri": take["uri"],
                "video_url": take["video_url"],
                "sha256": take["sha256"],
                "gptproto_task_id": take["gptproto_task_id"],
                "source": take["source"],
            }
        )
    return chosen


def review_result(review: ReviewRequest, event: Mapping[str, Any]) -> ReviewResult:
    """The operator's result from Airflow's HITL resume event (chosen options, params, who, when)."""
    approved = list(event.get("chosen_options") or []) == [APPROVE]
    at = event.get("responded_at")
    by = event.get("responded_by_user")
    return {
        "kind": "review",
        "approved": approved,
        "chosen": choose(review, event.get("params_input") or {}) if approved else [],
        "responded_by": {"id": str(by["id"]), "name": str(by["name"])} if by else None,
        "responded_at": at if at is None or isinstance(at, str) else at.isoformat(),
        "timed_out": bool(event.get("timedout")),
    }


def task_path(ui_base: str, source: Mapping[str, Any]) -> str:
    """The UI's path of a task instance (``/dags/<dag>/runs/<run>/tasks/<task>[/mapped/<i>]``)."""
    dag, run, task = (quote(str(source[k]), safe="") for k in ("dag_id", "run_id", "task_id"))
    mapped = f"/mapped/{source['map_index']}" if source["map_index"] >= 0 else ""
    return f"{ui_base}/dags/{dag}/runs/{run}/tasks/{task}{mapped}"


def video_tab_path(ui_base: str, source: Mapping[str, Any]) -> str:
    """The task instance's Video tab (the plugin's ``gptproto-video`` view)."""
    return f"{task_path(ui_base, source)}/plugin/gptproto-video"


def review_page_path(ui_base: str, source: Mapping[str, Any]) -> str:
    """The plugin's review page of a review task instance."""
    dag, run, task = (quote(str(source[k]), safe="") for k in ("dag_id", "run_id", "task_id"))
    return f"{ui_base}{UI_PREFIX}/review/{dag}/{run}/{task}?map_index={source['map_index']}"


def review_body(review: ReviewRequest, ui_base: str, me: TakeSource) -> str:
    """The Markdown body of the HITL request: the review page, then each group's takes with a link
    to the Video tab of the task instance that holds the take."""
    lines = [
        f"[Open the review page]({review_page_path(ui_base, me)}) to play the takes side by side.",
        "",
        "Approve to publish the chosen takes, Reject to publish nothing."
        if review["mode"] == "pick"
        else "Approve to publish, Reject to publish nothing.",
    ]
    for group in review["groups"]:
        pick = f" (choose in `{group['param']}`)" if group["param"] else ""
        lines += [
            "",
            f"**Prompt {group['number']}**{pick}: {markdown_text(group['prompt'] or '(no prompt)')}",
        ]
        lines += [
            f"- [{take['label']}]({video_tab_path(ui_base, take['source'])}) seed {take['seed']}"
            for take in group["takes"]
        ]
        if group["failed"]:
            failed = ", ".join(f"take {k}" for k in group["failed"])
            lines.append(f"- did not succeed: {failed}" + ("" if group["takes"] else " (nothing to choose)"))
    return "\n".join(lines)


def markdown_text(text: str) -> str:
    """``text`` shown literally in Markdown (no links, emphasis or HTML from a prompt)."""
    return re.sub(r"([\\`*_{}\[\]()<>#+!|~-])", r"\\\1", " ".join(text.split()))


def _short(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slug(text: str | None, limit: int = 40) -> str:
    """A file-name-safe form of a prompt: lower-case words joined by ``-`` (empty when none)."""
    return "-".join(re.findall(r"[a-z0-9]+", (text or "").lower()))[:limit].strip("-")


def published_name(take: ChosenTake) -> str:
    """The stable file name of a chosen take: ``<group>-<prompt slug>-take<k>.mp4``."""
    words = slug(take["prompt"]) or "video"
    return f"{take['group']:02d}-{words}-take{take['take']}.mp4"
