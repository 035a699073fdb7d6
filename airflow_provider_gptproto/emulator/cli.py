"""``gptproto-emulator``: command-line entry point (also ``python -m airflow_provider_gptproto.emulator``)."""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import CREATE_ID_FIELDS, DIALECTS, FPS_FIELDS, EmulatorConfig

API_KEY_ENV = "GPTPROTO_EMULATOR_API_KEY"
_SIZE_RE = re.compile(r"(\d+)\s*([kmgt]?)(i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def byte_size(text: str) -> int:
    """``1048576``, ``512K``, ``10M``, ``2GiB`` -> bytes (binary units)."""
    match = _SIZE_RE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a byte size: {text!r} (e.g. 1048576, 512K, 10M, 2G)")
    return int(match[1]) * _UNITS[match[2].lower()]


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def fault_rules(text: str) -> list[dict[str, Any]]:
    """A JSON rule, a JSON array of rules, or ``@path`` to a file holding either."""
    raw = Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--fault is not valid JSON: {exc}") from None
    rules = data if isinstance(data, list) else [data]
    from .faults import FaultRuleError, parse_rule

    for rule in rules:
        try:
            parse_rule(rule)
        except FaultRuleError as exc:
            raise argparse.ArgumentTypeError(f"invalid --fault rule: {exc}") from None
    return rules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gptproto-emulator",
        description="Local emulator of the GPTProto video-generation task API (see docs/emulator.md).",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    add(
        "--port",
        type=int,
        default=None,
        help="port; 0 picks a free one (default: the port recorded in --state-file, else 8000);"
        " with --state-file, a restart without a non-zero --port comes back on the recorded port",
    )
    add(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"required key (Bearer or bare); default ${API_KEY_ENV}; unset = any non-empty key",
    )
    add("--dialect", choices=DIALECTS, default="envelope", help="response format (default envelope)")
    add("--queue-seconds", type=seconds, default=2.0, help="time a task stays queued (default 2)")
    add("--run-seconds", type=seconds, default=5.0, help="time a task stays running (default 5)")
    add(
        "--url-ttl-seconds",
        type=seconds,
        default=86400.0,
        help="video links expire this long after the task finished (default 86400)",
    )
    add("--state-file", default=None, help="persist tasks to this JSON file and reload them on start")
    add(
        "--video-bytes",
        type=byte_size,
        default=0,
        help="pad every MP4 to this size, e.g. 50M (default: no pad)",
    )
    add("--log-file", default=None, help="write the JSON-lines request log here instead of stderr")
    add("--quiet", action="store_true", help="no request log on stderr")
    add("--stringly-numbers", action="store_true", help="send seed/created_at/updated_at as strings")
    add(
        "--create-id-field",
        choices=CREATE_ID_FIELDS,
        default="auto",
        help="where the create reply puts the task id (default: the dialect's own)",
    )
    add(
        "--fps-field",
        choices=FPS_FIELDS,
        default="framespersecond",
        help="name of the fps field in task objects",
    )
    add("--max-queued", type=int, default=0, help="answer 429 beyond this many queued tasks (0 = no limit)")
    add("--render-fps", type=int, default=8, help="frame rate of the rendered MP4s (default 8)")
    add("--public-url", default=None, help="base URL used in video links (default: the Host the client used)")
    add("--cache-dir", default=None, help="keep rendered videos here (default: a temp dir removed on exit)")
    add(
        "--fault",
        type=fault_rules,
        action="append",
        default=[],
        metavar="JSON",
        help="preload a fault rule (JSON object/array or @file); repeatable",
    )
    add("--fault-seed", type=int, default=None, help="seed for probabilistic fault rules")
    add(
        "--callback-timeout-seconds",
        type=seconds,
        default=5.0,
        help="a webhook not acknowledged within this long counts as failed (default 5)",
    )
    add(
        "--callback-retry-seconds",
        type=seconds,
        default=1.0,
        help="pause between retries of terminal webhooks (default 1)",
    )
    add(
        "--no-list-endpoint",
        action="store_true",
        help="serve no list endpoint: GET on the tasks path answers like an unknown route",
    )
    add(
        "--parent-pid",
        type=int,
        default=None,
        help="exit when this process exits (used by the pytest plugin)",
    )
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> EmulatorConfig:
    args = build_parser().parse_args(argv)
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        dialect=args.dialect,
        queue_seconds=args.queue_seconds,
        run_seconds=args.run_seconds,
        url_ttl_seconds=args.url_ttl_seconds,
        state_file=args.state_file,
        video_bytes=args.video_bytes,
        log_file=args.log_file,
        quiet=args.quiet,
        stringly_numbers=args.stringly_numbers,
        create_id_field=args.create_id_field,
        fps_field=args.fps_field,
        max_queued=args.max_queued,
        render_fps=max(1, min(60, args.render_fps)),
        public_url=args.public_url,
        cache_dir=args.cache_dir,
        fault_seed=args.fault_seed,
        parent_pid=args.parent_pid,
        callback_timeout_seconds=args.callback_timeout_seconds,
        callback_retry_seconds=args.callback_retry_seconds,
        no_list_endpoint=args.no_list_endpoint,
        faults=[rule for group in args.fault for rule in group],
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags and serve until SIGTERM/SIGINT; the first stdout line is the base URL."""
    config = config_from_args(argv)
    from .server import serve  # imported late so --help works without the [emulator] extra

    serve(config)


if __name__ == "__main__":
    main()
