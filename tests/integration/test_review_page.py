"""The plugin's review page in-process: the real plugin app, Airflow's metadata DB and auth manager.

A review task instance is written to the DB as a GPTProtoReviewVideosOperator leaves it while it
waits (its ``gptproto_review`` XCom and HITL detail); requests carry JWTs the auth manager signed,
as the api-server's would, so Airflow's own permission checks decide (``alice`` may read another
DAG only: tests/support/dag_access_auth_manager.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow import __version__ as airflow_version
from packaging.version import Version

from tests.unit.plugins.test_pages_hostile import _Parsed as Parsed

pytestmark = [
    pytest.mark.usefixtures("airflow_db"),
    pytest.mark.skipif(
        Version(Version(airflow_version).base_version) < Version("3.1"),
        reason="HITL and plugin views need Airflow 3.1+",
    ),
]

DAG_ID, RUN_ID, OTHER_DAG = "review_page_dag", "manual__2026-01-01T00:00:00+00:00", "review_page_other"
HOSTILE = "<img src=x onerror=alert(1)>"
RUN = quote(RUN_ID, safe="")
PAGE = f"/gptproto/review/{DAG_ID}/{RUN}/review?map_index=-1"


def _take(take: int, remote_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "label": f"take {take}",
        "take": take,
        "seed": 100 + take,
        "uri": None,
        "video_url": None,
        "poster_uri": None,
        "gptproto_task_id": remote_id,
        "duration": "5s",
        "resolution": "1280:768",
        "usage": {"total_tokens": 1000 * take},
        "source": {"dag_id": DAG_ID, "run_id": RUN_ID, "task_id": "generate", "map_index": -1},
        **extra,
    }


def _insert(session: Any, video: Path) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import insert

    session.add(DagRun(dag_id=DAG_ID, run_id=RUN_ID, run_type="manual", state="running"))
    session.flush()
    ids = {}
    for task_id, state in (("generate", "success"), ("review", "awaiting_input")):
        ids[task_id] = uuid.uuid4()
        session.execute(
            insert(TaskInstance.__table__).values(
                id=ids[task_id], dag_id=DAG_ID, run_id=RUN_ID, task_id=task_id, map_index=-1,
                state=state, pool="default_pool", try_number=1, operator="Operator",
            )
        )  # fmt: skip
    generated = [
        {"kind": "generate", "task_id": "cgt-1", "status": "succeeded", "seed": 101},
        # take 2 was stored: the task recorded its copy (what the media endpoint serves)
        {"kind": "download", "task_id": "cgt-2", "uri": str(video), "bytes": video.stat().st_size},
    ]
    XComModel.set(
        "return_value", generated, dag_id=DAG_ID, task_id="generate", run_id=RUN_ID, session=session
    )
    signed = "https://cdn.example/v1.mp4?X-Tos-Date=20990101T000000Z&X-Tos-Expires=86400"
    review = {
        "mode": "pick",
        "groups": [
            {
                "number": 1,
                "param": "pick_1",
                "prompt": HOSTILE,
                "takes": [_take(1, "cgt-1", video_url=signed), _take(2, "cgt-2", uri=str(video))],
            },
            {
                "number": 2,
                "param": None,
                "prompt": "A lone take",
                "takes": [_take(1, "cgt-9")],
                "failed": [2, 3],
            },
        ],
    }
    XComModel.set("gptproto_review", review, dag_id=DAG_ID, task_id="review", run_id=RUN_ID, session=session)
    session.add(
        HITLDetail(
            ti_id=ids["review"],
            options=["Approve", "Reject"],
            subject="Pick the best take",
            params={
                "pick_1": {"value": "take 1", "description": None, "schema": {"enum": ["take 1", "take 2"]}}
            },
        )
    )


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The plugin's app mounted under /gptproto, with DagAccessAuthManager as [core] auth_manager."""
    from airflow.api_fastapi import app as api_app
    from airflow.utils.session import create_session
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_provider_gptproto.plugins.app import create_app

    patch = pytest.MonkeyPatch()
    patch.setenv("AIRFLOW__CORE__AUTH_MANAGER", "tests.support.dag_access_auth_manager.DagAccessAuthManager")
    patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,alice:viewer")
    patch.setenv("GPTPROTO_TEST_DAG_ACCESS", f"alice={OTHER_DAG}")
    patch.delenv("AIRFLOW__GPTPROTO__UI_MEDIA_ROOTS", raising=False)
    video = tmp_path_factory.mktemp("videos") / "take2.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    with create_session() as session:
        _insert(session, video)
    api_app.purge_cached_app()
    api_app.init_auth_manager()
    outer = FastAPI()
    outer.mount("/gptproto", create_app())
    try:
        with TestClient(outer) as test_client:
            yield test_client
    finally:
        api_app.purge_cached_app()
        patch.undo()


def _auth(user: str | None) -> dict[str, str]:
    """A bearer token the auth manager signed for ``user`` (admin: role admin; others: viewer)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    if user is None:
        return {}
    role = "admin" if user == "admin" else "viewer"
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=user, role=role))
    return {"Authorization": f"Bearer {token}"}


def _get(client: Any, path: str, user: str | None = "admin") -> Any:
    return client.get(path, headers=_auth(user))


def test_the_page_shows_each_groups_takes_with_a_pick_and_the_options(client: Any) -> None:
    resp = _get(client, PAGE)
    assert resp.status_code == 200, resp.text[:500]
    page = Parsed(resp.text)
    groups = page.tags("fieldset")
    assert len(groups) == 2
    videos = page.tags("video")
    # Take 1 plays its signed link; take 2 the stored copy, through the generate task's media endpoint.
    assert [v["src"] for v in videos] == [
        "https://cdn.example/v1.mp4?X-Tos-Date=20990101T000000Z&X-Tos-Expires=86400",
        f"/gptproto/media/ti/{DAG_ID}/{RUN}/generate/0/video?map_index=-1",  # its one recorded video
    ]
    assert client.get(videos[1]["src"], headers=_auth("admin")).content == (
        b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
    )
    radios = page.tags("input")
    assert [(r["name"], r["value"], "checked" in r) for r in radios] == [
        ("pick_1", "take 1", True),
        ("pick_1", "take 2", False),
    ]  # the lone take of group 2 has nothing to pick
    assert [b.get("value") for b in page.tags("button")] == ["Approve", "Reject"]
    form = page.tags("form")[0]
    assert form["data-api"] == f"/api/v2/dags/{DAG_ID}/dagRuns/{RUN}/taskInstances/review/-1/hitlDetails"
    assert form["data-params"] == '{"pick_1": "take 1"}'
    text = " ".join(page.texts)
    shown_texts = (
        "101",
        "102",
        "5s",
        "1280:768",
        "total_tokens: 2000",
        "cgt-2",
        "Did not succeed: take 2, take 3.",
    )
    for shown in shown_texts:
        assert shown in text, shown
    links = [a["href"] for a in page.tags("a")]
    assert f"/dags/{DAG_ID}/runs/{RUN}/tasks/generate/plugin/gptproto-video" in links


def test_a_hostile_prompt_is_text(client: Any) -> None:
    resp = _get(client, PAGE)
    assert HOSTILE not in resp.text  # escaped in the markup
    page = Parsed(resp.text)
    assert f"1. {HOSTILE}" in [t.strip() for t in page.texts]
    assert not [attrs for attrs in page.tags("img")] and not page.handlers()


def test_a_user_without_access_to_the_dag_gets_403(client: Any) -> None:
    assert _get(client, PAGE, user="alice").status_code == 403
    assert _get(client, PAGE, user=None).status_code == 401
    missing = f"/gptproto/review/{DAG_ID}/{RUN}/no_such_task"
    assert _get(client, missing).status_code == 404


def test_the_video_tab_of_a_review_task_links_its_review_page(client: Any) -> None:
    tab = Parsed(_get(client, f"/gptproto/ti/{DAG_ID}/{RUN}/review?map_index={{MAP_INDEX}}").text)
    assert [a["href"] for a in tab.tags("a")] == [f"/gptproto/review/{DAG_ID}/{RUN}/review?map_index=-1"]
    generate = Parsed(_get(client, f"/gptproto/ti/{DAG_ID}/{RUN}/generate").text)
    assert not any("/review/" in (a["href"] or "") for a in generate.tags("a"))


def test_an_answered_review_says_who_answered_and_offers_no_buttons(client: Any) -> None:
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        detail = session.scalar(
            select(HITLDetail)
            .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
            .where(TaskInstance.dag_id == DAG_ID, TaskInstance.task_id == "review")
        )
        detail.responded_by = {"id": "bob", "name": "bob"}
        detail.responded_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        detail.chosen_options = ["Approve"]
        detail.params_input = {"pick_1": "take 2"}
    try:
        page = Parsed(_get(client, PAGE).text)
        assert page.tags("button") == []
        assert [("checked" in r, "disabled" in r) for r in page.tags("input")] == [
            (False, True),
            (True, True),
        ]
        assert "Answered Approve by bob on 2026-01-02 03:04:05 UTC." in " ".join(page.texts)
    finally:
        with create_session() as session:
            detail = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == detail.ti_id))
            detail.responded_by = detail.responded_at = detail.chosen_options = None
            detail.params_input = {}
