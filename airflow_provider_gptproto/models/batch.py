"""Pure core of the batch operator: items from rows, their keys, and the failure budget. No I/O.

Every item becomes a :class:`VideoGenerationRequest` here, before anything is paid for, and every
error names the item's index (and its line in a requests file) and the field at fault.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from airflow_provider_gptproto.exceptions import GPTProtoRequestError
from airflow_provider_gptproto.models.request import VideoGenerationRequest

# The item's own column naming its output file; not a request field.
KEY_FIELD = "key"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_ERRORS_SHOWN = 20
REQUEST_FIELDS = frozenset(VideoGenerationRequest.model_fields) - {"extra_body"} | {"content"}


@dataclass(frozen=True)
class BatchItem:
    """One item: its position, its output name, the request it sends, and which take it is."""

    index: int
    key: str
    line: int | None
    params: dict[str, Any]  # the item's merged, JSON-safe request fields (kept in the manifest)
    take: int = 1
    takes: int = 1
    prompt_index: int = -1  # the input item's index, before it became its takes (-1: ``index``)

    def __post_init__(self) -> None:
        if self.prompt_index < 0:
            object.__setattr__(self, "prompt_index", self.index)

    @cached_property
    def request(self) -> VideoGenerationRequest:
        return VideoGenerationRequest.build(**self.params)


def rows_from_text(text: str, fmt: str) -> list[tuple[int, Any]]:
    """(line number, row) pairs of a JSONL or CSV document; blank lines are skipped."""
    if fmt == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise GPTProtoRequestError(f"line {number}: not valid JSON ({exc.msg})") from None
        return rows
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        rows = []
        for row in reader:
            if None in row:
                raise GPTProtoRequestError(
                    f"line {reader.line_num}: more cells than the header has columns "
                    f"({len(reader.fieldnames or [])})"
                )
            rows.append((reader.line_num, {k.strip(): v for k, v in row.items() if v not in (None, "")}))
        return rows
    raise GPTProtoRequestError(f"requests_file format must be 'jsonl' or 'csv', got {fmt!r}", field="format")


def build_items(
    rows: Iterable[tuple[int | None, Any]],
    shared: Mapping[str, Any],
    source: str = "prompts",
    *,
    validate: bool = True,
) -> list[BatchItem]:
    """Validate every row (a prompt string or a dict of request fields) merged over ``shared``.

    Raises one :class:`GPTProtoRequestError` listing the first errors, each naming the item's
    index, its line (for files) and the field, so a bad catalogue costs nothing. ``validate=False``
    checks keys and field names only and builds each request when first used: for later worker
    phases of a batch whose first phase validated the same input (the journal's fingerprint says so).
    """
    items: list[BatchItem] = []
    errors: list[str] = []
    first_field: str | None = None
    seen: dict[str, int] = {}
    rows = list(rows)
    width = max(5, len(str(max(len(rows) - 1, 0))))
    for index, (line, row) in enumerate(rows):
        where = f"item {index}" + (f" (line {line} of {source})" if line is not None else "")
        try:
            params, key = _params_of(row, shared)
            key = key if key is not None else f"{index:0{width}d}"
            if key in seen:
                raise GPTProtoRequestError(f"key {key!r} repeats item {seen[key]}'s", field=KEY_FIELD)
            seen[key] = index
            item = BatchItem(index, key, line, params)
            if validate:
                _ = item.request
            items.append(item)
        except GPTProtoRequestError as exc:
            first_field = first_field or exc.field
            errors.append(f"{where}: {exc}" + (f" [field {exc.field}]" if exc.field else ""))
    if errors:
        more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise GPTProtoRequestError(
            f"{len(errors)} of {len(rows)} batch items are invalid; nothing was sent{more}:\n  "
            + "\n  ".join(errors[:MAX_ERRORS_SHOWN]),
            field=first_field,
        )
    if not items:
        raise GPTProtoRequestError(f"the batch has no items ({source} is empty)", field=source)
    return items


def expand_takes(
    items: list[BatchItem], takes: int, seeds_of: Callable[[BatchItem], list[int]]
) -> list[BatchItem]:
    """Each item as ``takes`` items, ``<key>-take-<k>`` at index ``prompt_index * takes + k - 1``,
    take k sending ``seeds_of(item)[k - 1]`` (unique keys stay unique). With one take, as they are."""
    if takes == 1:
        return items
    out: list[BatchItem] = []
    for item in items:
        for k, seed in enumerate(seeds_of(item), start=1):
            params = {**item.params, "seed": seed}
            out.append(BatchItem(len(out), f"{item.key}-take-{k}", item.line, params, k, takes, item.index))
    return out


def _params_of(row: Any, shared: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    if isinstance(row, str):
        row = {"prompt": row}
    if not isinstance(row, Mapping):
        raise GPTProtoRequestError(
            f"must be a prompt string or an object of request fields, got {type(row).__name__}"
        )
    unknown = sorted(set(row) - REQUEST_FIELDS - {KEY_FIELD})
    if unknown:
        raise GPTProtoRequestError(
            f"unknown field {unknown[0]!r}; allowed: {KEY_FIELD}, {', '.join(sorted(REQUEST_FIELDS))}",
            field=unknown[0],
        )
    key = row.get(KEY_FIELD)
    if key is not None and (not isinstance(key, str) or not KEY_PATTERN.match(key)):
        raise GPTProtoRequestError(
            f"key must be 1-128 characters of letters, digits, '.', '_' or '-' (not starting with '.', "
            f"'_' or '-'), got {key!r}",
            field=KEY_FIELD,
        )
    params = {k: v for k, v in shared.items() if v is not None}
    params.update((k, v) for k, v in row.items() if k != KEY_FIELD and v is not None)
    return params, key


def fingerprint(items: Iterable[BatchItem], extra: Any = None) -> str:
    """Identity of a batch's input, so a journal is never applied to a different catalogue.

    ``extra``: settings that change what the items mean (a storyboard's continuity).
    """
    digest = hashlib.sha256()
    if extra is not None:
        digest.update(json.dumps(extra, sort_keys=True).encode())
    for item in items:
        digest.update(json.dumps([item.key, item.params], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def failure_budget(max_failed_items: int | float, total: int) -> int:
    """How many failed items the batch tolerates: a count, or a fraction (0 to 1) of ``total``."""
    if isinstance(max_failed_items, bool) or not isinstance(max_failed_items, (int, float)):
        raise GPTProtoRequestError(
            "max_failed_items must be a count (int >= 0) or a fraction (float 0-1), "
            f"got {max_failed_items!r}",
            field="max_failed_items",
        )
    if isinstance(max_failed_items, int):
        if max_failed_items < 0:
            raise GPTProtoRequestError(
                f"max_failed_items must be >= 0, got {max_failed_items}", field="max_failed_items"
            )
        return max_failed_items
    if not 0.0 <= max_failed_items <= 1.0:
        raise GPTProtoRequestError(
            f"max_failed_items as a fraction must be between 0 and 1, got {max_failed_items}",
            field="max_failed_items",
        )
    return math.floor(max_failed_items * total + 1e-9)
