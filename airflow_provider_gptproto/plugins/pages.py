"""HTML of the Video tab and the gallery: Jinja2 templates (``templates/``) with autoescape on, so
no recorded value (prompt, ids, notices) can become markup. This module only shapes the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined

from airflow_provider_gptproto.plugins.records import VideoRecord

NO_PROMPT = "(no prompt recorded)"


@cache
def _environment() -> Environment:
    """The templates beside this module; autoescape on for all of them (the CSS and JS hold no values)."""
    return Environment(
        loader=PackageLoader("airflow_provider_gptproto.plugins", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,  # the included CSS and scripts end their last line
    )


def _render(template: str, **values: Any) -> str:
    return _environment().get_template(template).render(**values)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def run_href(ui_base: str, dag_id: str, run_id: str) -> str:
    """The UI's page of a DAG run."""
    return f"{ui_base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def video_tab(
    task_label: str,
    videos: Iterable[tuple[VideoRecord, str | None, str | None, str]],
    review_href: str | None = None,
) -> str:
    """The task instance's Video tab.

    :param task_label: the heading, e.g. ``download (GPTProtoDownloadVideoOperator)``.
    :param videos: (record, player source, download link, notice) per video; no source means no
        player, and the notice says why.
    :param review_href: a review task's review page, linked at the top.
    :return: the whole HTML document.
    """
    rows = [
        {
            "source": source,
            "download": download,
            "notice": notice,
            "fields": {name: str(value) for name, value in record.metadata().items()},
            "shots": record.extra.get("shots") or [],  # a storyboard's, from its storyboard.json
        }
        for record, source, download, notice in videos
    ]
    return _render(
        "video_tab.html", title="GPTProto video", task_label=task_label, videos=rows, review_href=review_href
    )


def review(task_label: str, groups: list[dict[str, Any]], hitl: Any, api: str, has_review: bool) -> str:
    """The review page: each group's takes side by side, a pick per group, the task's options as buttons.

    :param task_label: the review task's id.
    :param groups: per prompt: ``number``, ``param`` (``pick_<n>`` or None), ``prompt`` and ``takes``
        (``label``, player ``source`` or ``notice``, ``poster``, ``fields``, ``tab_href``).
    :param hitl: the task's HITL detail row; None until it asks for an answer.
    :param api: the ``PATCH .../hitlDetails`` URL of Airflow's API that the page answers through.
    :param has_review: whether the task pushed a ``gptproto_review`` XCom.
    :return: the whole HTML document.
    """
    raw = getattr(hitl, "params", None) or {}
    # Serialized params carry their value (Airflow 3.1.3+); older ones are the value itself.
    params = {k: v.get("value") if isinstance(v, Mapping) and "schema" in v else v for k, v in raw.items()}
    answered = hitl is not None and hitl.responded_at is not None
    given = (hitl.params_input or {}) if answered else params
    for group in groups:
        labels = [take["label"] for take in group["takes"]]
        picked = given.get(group["param"]) if group["param"] else None
        group["chosen"] = picked if picked in labels else next(iter(labels), None)
        for take in group["takes"]:
            take["fields"] = {k: str(v) for k, v in take["fields"].items() if v not in (None, "")}
    if answered:
        who = (hitl.responded_by or {}).get("name", "?")
        status = f"Answered {', '.join(hitl.chosen_options or [])} by {who} on {_when(hitl.responded_at)}."
    elif hitl is None:
        status = "Not waiting for an answer (yet)." if has_review else "This task asks for no review."
    else:
        status = ""
    return _render(
        "review.html",
        title="GPTProto review",
        task_label=task_label,
        groups=groups,
        no_prompt=NO_PROMPT,
        options=list(hitl.options or []) if hitl is not None and not answered else [],
        answered=answered,
        params=params,
        api=api,
        status=status,
    )


def video_tab_href(ui_base: str, record: VideoRecord) -> str:
    """The UI's page of the task instance's Video tab (``url_route`` ``gptproto-video``)."""
    task = f"{run_href(ui_base, record.dag_id, record.run_id)}/tasks/{quote(record.task_id, safe='')}"
    mapped = f"/mapped/{record.map_index}" if record.map_index >= 0 else ""
    return f"{task}{mapped}/plugin/gptproto-video"


def _card(ui_base: str, record: VideoRecord, poster: str | None, video: str | None) -> dict[str, Any]:
    """One gallery card: its picture plays the stored video in place, else opens the task's Video tab."""
    return {
        "event_id": record.event_id,
        "prompt": record.prompt or NO_PROMPT,
        "poster": poster,
        "video": video,
        "tab_href": video_tab_href(ui_base, record),
        "dag_id": record.dag_id,
        "dag_href": f"{ui_base}/dags/{quote(record.dag_id, safe='')}",
        "run_id": record.run_id,
        "run_href": run_href(ui_base, record.dag_id, record.run_id),
        "when": _when(record.timestamp),
    }


def gallery(
    ui_base: str,
    cards: Iterable[tuple[VideoRecord, str | None, str | None]],
    dag_ids: Iterable[str],
    selected_dag: str | None,
    offset: int,
    limit: int,
    total: int,
) -> str:
    """The "GPTProto videos" page: newest first, a DAG filter and paging links.

    :param ui_base: the UI's base path, prefixed to the links into Airflow's own pages.
    :param cards: (record, poster URL, stored video URL) per asset event; a card with a stored
        video plays it in a dialog when clicked, one without opens its task's Video tab.
    :param dag_ids: the DAGs offered in the filter.
    :param selected_dag: the DAG filtered on, or None for all.
    :param offset: how many newer videos come before this page.
    :param limit: videos per page.
    :param total: videos in all pages.
    :return: the whole HTML document.
    """
    return _render(
        "gallery.html",
        title="GPTProto videos",
        cards=[_card(ui_base, record, poster, video) for record, poster, video in cards],
        dag_ids=list(dag_ids),
        selected_dag=selected_dag,
        total=total,
        pager=_pager(selected_dag, offset, limit, total),
    )


def _pager(selected_dag: str | None, offset: int, limit: int, total: int) -> dict[str, Any] | None:
    """Newer / range / Older (None at an end: that button shows disabled); None when there is nothing."""

    def href(start: int) -> str:
        query = {"offset": start, "limit": limit, **({"dag_id": selected_dag} if selected_dag else {})}
        return "?" + urlencode(query)

    if not total:
        return None
    return {
        "newer": href(max(0, offset - limit)) if offset > 0 else None,
        "older": href(offset + limit) if offset + limit < total else None,
        "first": offset + 1,
        "last": min(offset + limit, total),
    }
