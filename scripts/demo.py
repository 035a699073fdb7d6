"""`make demo`: generate one video with the example DAG and say where it is.

Without GPTPROTO_API_KEY it runs against the bundled emulator (no credits spent); with it, against
the real service (GPTPROTO_BASE_URL to override the host). Airflow state lives in .demo/ under the
project, never in ~/airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _emulator import running_emulator

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
VIDEOS = DEMO / "videos"
DAG_ID = "gptproto_text_to_video"


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def airflow_env(base_url: str, api_key: str) -> dict[str, str]:
    home = DEMO / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    conn = {"conn_type": "gptproto", "host": base_url, "password": api_key}
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags_examples"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_GPTPROTO_DEFAULT": json.dumps(conn),
    }


def describe(video: Path) -> str:
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        seconds = float(container.duration or 0) / 1_000_000
        return (
            f"{video}\n    {video.stat().st_size / 1_048_576:.2f} MiB, {seconds:.1f} s, "
            f"{stream.codec_context.width}x{stream.codec_context.height}, {stream.codec_context.name}"
        )


def main() -> int:
    airflow = str(Path(sys.executable).parent / "airflow")
    with ExitStack() as stack:
        real_key = os.environ.get("GPTPROTO_API_KEY")
        if real_key:
            base_url = os.environ.get("GPTPROTO_BASE_URL", "https://gptproto.com")
            api_key = real_key
            step(f"Using the real GPTProto service at {base_url} (this spends credits)")
        else:
            step("Starting the bundled GPTProto emulator (set GPTPROTO_API_KEY to use the real service)")
            base_url, api_key = stack.enter_context(
                running_emulator("--queue-seconds", "1", "--run-seconds", "4")
            )
            print(f"    emulator at {base_url}", flush=True)
        env = airflow_env(base_url, api_key)
        step(f"Preparing a throw-away Airflow home in {env['AIRFLOW_HOME']}")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        VIDEOS.mkdir(parents=True, exist_ok=True)
        started = time.time()
        step(f"Running the {DAG_ID} DAG with `airflow dags test`")
        conf = json.dumps({"output_dir": str(VIDEOS)})
        result = subprocess.run([airflow, "dags", "test", DAG_ID, "-c", conf], env=env)
        if result.returncode != 0:
            print(f"\nThe DAG run failed (exit {result.returncode}); see the log above.", file=sys.stderr)
            return result.returncode
    fresh = [p for p in VIDEOS.glob("*.mp4") if p.stat().st_mtime >= started - 1]
    if not fresh:
        print("The DAG finished but no new MP4 is in", VIDEOS, file=sys.stderr)
        return 1
    step("Done. Your video:")
    print("    " + describe(max(fresh, key=lambda p: p.stat().st_mtime)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
