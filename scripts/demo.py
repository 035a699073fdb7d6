"""`make demo`: generate one video with the example DAG, showing only the steps that matter.

Without GPTPROTO_API_KEY it runs against the bundled emulator (no credits spent); with it, against
the real service (GPTPROTO_BASE_URL to override the host). Airflow state lives in .demo/ under the
project (GPTPROTO_DEMO_DIR to move it), never in ~/airflow; GPTPROTO_DEMO_PROMPT replaces the
prompt. The terminal gets a short progress view read from the provider's own log lines; everything
(Airflow's output and the emulator's request log) goes to a log file, named at the end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).parent))
from _emulator import running_emulator

ROOT = Path(__file__).resolve().parent.parent
DEMO = Path(os.environ.get("GPTPROTO_DEMO_DIR") or ROOT / ".demo").resolve()
VIDEOS = DEMO / "videos"
DAG_ID = "gptproto_text_to_video"

# The provider's log lines worth a line of progress each (operator, trigger, download).
PROGRESS = (
    (re.compile(r"Created GPTProto task (\S+)"), "task created: {0}"),
    # "GPTProto task t1 is running" / "has succeeded" / "was cancelled"; an error says "t1 failed (...)".
    (re.compile(r"GPTProto task \S+ (?:is|has|was) (\w+)"), "status: {0}"),
    (re.compile(r"GPTProto task \S+ (failed|expired)\b"), "status: {0}"),
)
# The exception lines of a failure, e.g. "airflow_provider_gptproto.exceptions.GPTProtoTaskFailedError: ...".
ERROR = re.compile(r"^[\w.]*(Error|Exception): ")


def say(message: str) -> None:
    print(message, flush=True)


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
    """Size, duration and resolution, read from the file itself."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        seconds = float(container.duration or 0) / 1_000_000
        return (
            f"{video.stat().st_size / 1_048_576:.2f} MiB, {seconds:.1f} s, "
            f"{stream.codec_context.width}x{stream.codec_context.height} {stream.codec_context.name}"
        )


def run_logged(command: list[str], env: dict[str, str], log: TextIO) -> tuple[int, list[str]]:
    """Run ``command`` with all its output into ``log``; echo progress lines; return code and errors."""
    log.write(f"\n$ {' '.join(command)}\n")
    log.flush()
    errors: list[str] = []
    shown = ""
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            log.flush()
            for pattern, template in PROGRESS:
                match = pattern.search(line)
                if match:
                    progress = "  " + template.format(*match.groups())
                    if progress != shown:  # a traceback repeats the failure; show it once
                        say(progress)
                        shown = progress
                    break
            if ERROR.search(line) and line.rstrip() not in errors:
                errors.append(line.rstrip())
    return process.returncode, errors


def main() -> int:
    airflow = str(Path(sys.executable).parent / "airflow")
    logs = DEMO / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / time.strftime("demo-%Y%m%d-%H%M%S.log")
    started = time.time()
    with ExitStack() as stack:
        log = stack.enter_context(log_path.open("a", encoding="utf-8", buffering=1))
        real_key = os.environ.get("GPTPROTO_API_KEY")
        if real_key:
            base_url = os.environ.get("GPTPROTO_BASE_URL", "https://gptproto.com")
            api_key = real_key
            say(f"Using the real GPTProto service at {base_url} (this spends credits)")
        else:
            base_url, api_key = stack.enter_context(
                running_emulator(queue_seconds=1, run_seconds=4, log_file=log_path)
            )
            say(f"Emulator started at {base_url} (set GPTPROTO_API_KEY to use the real service)")
        env = airflow_env(base_url, api_key)
        code, errors = run_logged([airflow, "db", "migrate"], env, log)
        if code == 0:
            say(f"Airflow ready (home {env['AIRFLOW_HOME']}); running the {DAG_ID} DAG")
            VIDEOS.mkdir(parents=True, exist_ok=True)
            prompt = os.environ.get("GPTPROTO_DEMO_PROMPT")
            conf = json.dumps({"output_dir": str(VIDEOS), **({"prompt": prompt} if prompt else {})})
            code, errors = run_logged([airflow, "dags", "test", DAG_ID, "-c", conf], env, log)
    fresh = [p for p in VIDEOS.glob("*.mp4") if code == 0 and p.stat().st_mtime >= started - 1]
    if fresh:
        video = max(fresh, key=lambda p: p.stat().st_mtime)
        say(f"Video saved: {video}\n  {describe(video)}")
    else:
        say(f"FAILED (exit {code})" + "".join(f"\n  {line[:300]}" for line in errors[-3:]))
    say(f"Full logs: {log_path}")
    return 0 if fresh else (code or 1)


if __name__ == "__main__":
    raise SystemExit(main())
