"""A real Airflow stack with the UI plugin, two users and finished video runs, for the plugin's tests.

* ``admin`` (role admin) and ``alice`` (role viewer, limited to ``ui_videos_alpha`` by
  :mod:`tests.support.dag_access_auth_manager`);
* one emulator (the "ark" dialect); the generate-only DAG's prompt asks it, with
  ``[[link:expired]]``, for links that are already expired, so no test waits for a link to expire;
* ``[gptproto] ui_media_roots`` = the output folder;
* Airflow's defaults otherwise: with ``[core] lazy_discover_providers = True`` the plugin comes from
  the ``airflow.plugins`` entry point. An editable install made before that entry point existed
  lacks it, so a stand-in ``.dist-info`` declaring the same entry point is put on PYTHONPATH then.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_gptproto.emulator.harness import EmulatorProcess, start_emulator
from dev.airflow_stack import REPO_ROOT, AirflowClient, AirflowStack, RunOutcome

DAGS = Path(__file__).parent / "video_plugin_dags"
ALPHA, BETA, SIGNED_ONLY, HOSTILE, BATCH = (
    "ui_videos_alpha",
    "ui_videos_beta",
    "ui_videos_signed_only",
    "ui_videos_hostile",
    "ui_videos_batch",
)
LIMITED_USER = "alice"
RUN_TIMEOUT = 240.0
ENTRY_POINT = "airflow_provider_gptproto.plugins.entrypoint:plugin"  # as in pyproject.toml


@dataclass
class VideoPluginStack:
    stack: AirflowStack
    emulator: EmulatorProcess
    output_dir: Path
    outside_dir: Path
    runs: dict[str, RunOutcome]
    alice: AirflowClient

    @property
    def admin(self) -> AirflowClient:
        return self.stack.client

    def run_id(self, dag_id: str) -> str:
        return self.runs[dag_id].run_id


@contextmanager
def video_plugin_stack(home: Path, work: Path) -> Iterator[VideoPluginStack]:
    """Start everything, run the five DAGs once, yield; stop everything."""
    output_dir, outside_dir = work / "videos", work / "outside"
    output_dir.mkdir()
    outside_dir.mkdir()
    alice_password = secrets.token_urlsafe(12)
    with ExitStack() as cleanup:
        # The "ark" dialect (the upstream task object) reports usage.
        emulator = cleanup.enter_context(start_emulator(dialect="ark", queue_seconds=0.5, run_seconds=1.5))
        conns = {
            "AIRFLOW_CONN_GPTPROTO_DEFAULT": {
                "conn_type": "gptproto",
                "host": emulator.url,
                "password": emulator.api_key,
            },
        }
        stack = AirflowStack(
            home,
            dags_folder=DAGS,
            wait_for_dags=(ALPHA, BETA, SIGNED_ONLY, HOSTILE, BATCH),
            dags_paused=False,
            extra_env={
                **{name: json.dumps(conn) for name, conn in conns.items()},
                "AIRFLOW_VAR_GPTPROTO_OUTPUT_DIR": str(output_dir),
                "GPTPROTO_TEST_DAG_ACCESS": f"{LIMITED_USER}={ALPHA}",
                "GPTPROTO_TEST_OUTSIDE_DIR": str(outside_dir),
                "PYTHONPATH": os.pathsep.join(
                    filter(
                        None, [str(REPO_ROOT), _entry_point_shim(work / "shim"), os.environ.get("PYTHONPATH")]
                    )
                ),
            },
            config={
                "core": {
                    "auth_manager": "tests.support.dag_access_auth_manager.DagAccessAuthManager",
                    "simple_auth_manager_users": f"admin:admin,{LIMITED_USER}:viewer",
                },
                "gptproto": {"ui_media_roots": str(output_dir)},
            },
        )
        cleanup.callback(_stop, stack)
        stack.prepare()
        passwords = stack.home / "passwords.json"
        passwords.write_text(json.dumps({**json.loads(passwords.read_text()), LIMITED_USER: alice_password}))
        stack.start()
        client = stack.client
        run_ids = [(dag_id, client.trigger(dag_id)) for dag_id in (ALPHA, BETA, SIGNED_ONLY, HOSTILE, BATCH)]
        finished = client.wait_for_runs(run_ids, timeout=RUN_TIMEOUT, poll=0.5)
        runs = {dag_id: finished[(dag_id, run_id)] for dag_id, run_id in run_ids}
        alice = AirflowClient(stack.base_url, LIMITED_USER, alice_password)
        cleanup.callback(alice.close)
        yield VideoPluginStack(stack, emulator, output_dir, outside_dir, runs, alice)


def _entry_point_shim(folder: Path) -> str | None:
    """A folder declaring the plugin's entry point, when the installed provider does not (else None)."""
    if any(ep.name == "gptproto" for ep in importlib.metadata.entry_points(group="airflow.plugins")):
        return None
    dist = folder / "gptproto_plugin_entry_point-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gptproto-plugin-entry-point\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(f"[airflow.plugins]\ngptproto = {ENTRY_POINT}\n")
    return str(folder)


def _stop(stack: AirflowStack) -> None:
    leftovers = stack.stop()
    assert not leftovers, f"processes survived the stack: {leftovers}"
