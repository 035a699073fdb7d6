"""The batch operator's durable journal: which items were started, created, finished or failed.

Written so that a retry, or a worker killed mid-batch, resumes without paying twice:

* before each create the item's *intent* is recorded, after it the remote id (small writes to one
  ``tail`` key, never a rewrite of the whole journal; in a run of creates, one write records an
  item's id and the next item's intent, so each create costs one round trip to the store);
* every ``FLUSH_EVERY`` creates, and at the end of each worker phase, changed entries move into
  fixed *shards* of ``SHARD_ITEMS`` items and the tail is emptied.

So a kill leaves at most one ambiguous create (intent, no id), reconciled as the single operator
does. The store is the task state store or a folder (docs/batch.md, "Durability"); a shard of 200
finished items is about 40 KB, far below ``[state_store] max_value_storage_bytes``. Each entry, a
typed :class:`JournalEntry` elsewhere, is stored as a small dict; ``s`` is its :class:`ItemState`:

==========  ===============================================================================
``c``       CREATING: started at ``t`` (unix seconds), no id known yet: maybe paid, reconcile
``r``       RUNNING remotely as ``id``, created at ``t`` (with the ``seed`` sent)
``d``       DONE: video stored; ``b`` bytes, ``h`` sha256, ``seed``, ``u`` usage
``f``       FAILED: ``st`` status word, ``e`` error, ``k`` kind (see ``retry_target``)
``todo``    to create again within the task (``item_retries``) with ``seed``; ``a``: the attempt
==========  ===============================================================================

Any entry may carry ``p`` and ``pt``: creates of earlier attempts and the usage they reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from airflow_provider_gptproto.exceptions import GPTProtoError, GPTProtoRequestError
from airflow_provider_gptproto.models.batch import BatchItem, rows_from_text
from airflow_provider_gptproto.models.batch_plan import ItemState, JournalEntry, describe
from airflow_provider_gptproto.models.results import ManifestRow
from airflow_provider_gptproto.storage import write_bytes_atomically
from airflow_provider_gptproto.utils.task_state import KeyValueStore

HEADER_KEY = "gptproto_batch"
TAIL_KEY = "gptproto_batch.tail"
SHARD_ITEMS = 200
FLUSH_EVERY = 50
JOURNAL_DIR = ".gptproto-journal"
MANIFEST_NAME = "manifest.jsonl"
# A retry into its input's own folder that fails records its rows here, leaving its input as it was.
RETRY_MANIFEST_NAME = "manifest.retry.jsonl"


class FolderKV:
    """JSON files under ``<destination>/.gptproto-journal/`` (older Airflow, or no state store).

    Each value is written to a temporary sibling and renamed, so a reader sees whole values only.
    """

    def __init__(self, folder: Any, scope: str | None = None) -> None:
        self._folder = folder / JOURNAL_DIR if scope is None else folder / JOURNAL_DIR / scope

    def get(self, key: str) -> Any:
        path = self._folder / f"{key}.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None

    def set(self, key: str, value: Any) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(
            json.dumps(value, separators=(",", ":")).encode(), self._folder / f"{key}.json"
        )

    def delete(self, key: str) -> None:
        (self._folder / f"{key}.json").unlink(missing_ok=True)


def journal_store(context: Any, destination: Any, scope: str | None = None) -> KeyValueStore:
    """The task's state store, else a folder of ``destination`` (``scope``: a subfolder of it, so a
    ``retry_failed_from`` run into the earlier batch's destination never meets that batch's journal)."""
    store = context.get("task_state_store") if hasattr(context, "get") else None
    return store if store is not None else FolderKV(destination, scope)  # the store has get/set/delete


class BatchJournal:
    """Per-item state of one batch, loaded whole at the start of each worker phase.

    ``entries`` holds the typed entries of the items not to do; their encoding stays in this module.
    """

    def __init__(self, kv: KeyValueStore, header: dict[str, Any], entries: dict[int, JournalEntry]) -> None:
        self._kv = kv
        self.header = header
        self.entries = entries
        self._tail: dict[int, dict[str, Any]] = {}
        self._dirty: set[int] = set()

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, kv: KeyValueStore, fingerprint: str, total: int, deadline: float) -> BatchJournal:
        """Load the journal of this input, or start one (recording the batch's absolute deadline)."""
        header = kv.get(HEADER_KEY)
        if not isinstance(header, dict):
            header = {"v": 1, "fp": fingerprint, "n": total, "deadline": deadline, "started": time.time()}
            kv.set(HEADER_KEY, header)
            return cls(kv, header, {})
        if header.get("fp") != fingerprint:
            raise GPTProtoError(
                "This task's batch journal belongs to different input (the items changed since an earlier "
                f"try). Not resuming, so nothing is paid twice. Delete the state keys '{HEADER_KEY}*' (or "
                f"the destination's {JOURNAL_DIR}/ folder) to start afresh."
            )
        entries: dict[int, dict[str, Any]] = {}
        for shard in range(_shards(int(header["n"]))):
            raw = kv.get(f"{HEADER_KEY}.{shard}")
            if isinstance(raw, dict):
                entries.update((int(i), e) for i, e in raw.items())
        raw_tail = kv.get(TAIL_KEY)
        tail = {int(i): e for i, e in raw_tail.items()} if isinstance(raw_tail, dict) else {}
        entries.update(tail)  # newer than the shards
        decoded = {i: _decode(e) for i, e in entries.items()}
        journal = cls(kv, header, {i: e for i, e in decoded.items() if e != JournalEntry()})
        journal._tail = tail
        journal._dirty = set(tail)
        return journal

    def delete(self) -> None:
        """Forget the batch once its manifest is written, so clearing the task regenerates."""
        for shard in range(_shards(int(self.header["n"]))):
            self._kv.delete(f"{HEADER_KEY}.{shard}")
        self._kv.delete(TAIL_KEY)
        self._kv.delete(HEADER_KEY)

    @property
    def deadline(self) -> float:
        return float(self.header["deadline"])

    # ------------------------------------------------------------------ create path (durable at once)
    def begin_create(self, index: int) -> None:
        self._log({index: replace(self.entry(index), state=ItemState.CREATING, at=time.time())})

    def created(
        self, index: int, remote_id: str, then_begin: int | None = None, seed: int | None = None
    ) -> None:
        """Record the remote id (and the seed sent); with ``then_begin``, also the next create's intent."""
        now = time.time()
        entry = self.entry(index)
        changes = {index: entry.running(remote_id, now, seed, entry.attempt)}
        if then_begin is not None:
            changes[then_begin] = replace(self.entry(then_begin), state=ItemState.CREATING, at=now)
        self._log(changes)

    def abandon_create(self, index: int) -> None:
        """The create provably did not happen (refused, 429, 503): the item is to do again."""
        self._log({index: replace(self.entry(index), state=ItemState.TODO, at=None)})

    def _log(self, changes: dict[int, JournalEntry]) -> None:
        """Apply ``changes`` and make them durable in one write of the tail."""
        self.update(changes)
        self._tail.update((index, _encode(entry)) for index, entry in changes.items())
        self._kv.set(TAIL_KEY, {str(i): e for i, e in self._tail.items()})
        if len(self._tail) >= FLUSH_EVERY:
            self.flush()

    # ------------------------------------------------------------------ outcomes (durable at flush)
    def update(self, changes: Mapping[int, JournalEntry]) -> None:
        for index, entry in changes.items():
            if entry == JournalEntry():  # a to-do item with a retry's seed is kept
                self.entries.pop(index, None)
            else:
                self.entries[index] = entry
            self._dirty.add(index)

    def done(self, index: int, nbytes: int, sha256: str, seed: int | None, usage: Any) -> None:
        self.update({index: self.entry(index).done(nbytes, sha256, seed, usage)})

    def failed(
        self, index: int, kind: str, error: str, status: str = "failed", usage: Any = None, seed: Any = None
    ) -> None:
        self.update({index: self.entry(index).failed(kind, error, status, usage, seed)})

    def flush(self) -> None:
        """Write changed shards, then empty the tail (a crash in between only repeats the tail)."""
        for shard in sorted({i // SHARD_ITEMS for i in self._dirty}):
            lo = shard * SHARD_ITEMS
            value = {
                str(i): _encode(self.entries[i]) for i in range(lo, lo + SHARD_ITEMS) if i in self.entries
            }
            self._kv.set(f"{HEADER_KEY}.{shard}", value)
        if self._tail:
            self._kv.set(TAIL_KEY, {})
        self._dirty.clear()
        self._tail.clear()

    # ------------------------------------------------------------------ queries
    def entry(self, index: int) -> JournalEntry:
        return self.entries.get(index, JournalEntry())

    def with_state(self, state: ItemState) -> Iterator[tuple[int, JournalEntry]]:
        return ((i, e) for i, e in self.entries.items() if e.state is state)

    def describe(self) -> str:
        return describe(self.entries, int(self.header["n"]))

    def known_ids(self) -> set[str]:
        return {e.task_id for e in self.entries.values() if e.task_id}


# The compact encoding: state codes and short keys, as every journal so far was written.
_CODES = {
    "todo": ItemState.TODO,
    "c": ItemState.CREATING,
    "r": ItemState.RUNNING,
    "d": ItemState.DONE,
    "f": ItemState.FAILED,
}
_KEYS = {
    "task_id": "id",
    "at": "t",
    "seed": "seed",
    "nbytes": "b",
    "sha256": "h",
    "usage": "u",
    "status": "st",
    "error": "e",
    "kind": "k",
    "attempt": "a",
    "paid": "p",
    "paid_tokens": "pt",
}


def _encode(entry: JournalEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"s": next(c for c, state in _CODES.items() if state is entry.state)}
    out.update((key, getattr(entry, name)) for name, key in _KEYS.items() if getattr(entry, name) is not None)
    return out


def _decode(raw: dict[str, Any]) -> JournalEntry:
    state = _CODES.get(str(raw.get("s")))
    if state is None:
        raise GPTProtoError(
            f"Unknown batch journal entry state {raw.get('s')!r}; was it written by a newer version?"
        )
    return JournalEntry(state, **{name: raw.get(key) for name, key in _KEYS.items()})


def manifest_row(item: BatchItem, entry: JournalEntry, folder: Any) -> ManifestRow:
    """One manifest line: what was asked, what the API did, and where the video is."""
    succeeded = entry.state is ItemState.DONE
    return {
        "index": item.index,
        "key": item.key,
        "line": item.line,
        "prompt_index": item.prompt_index,
        "take": item.take,
        "takes": item.takes,
        "prompt": item.request.prompt,
        "task_id": entry.task_id,
        "status": "succeeded" if succeeded else entry.status or "failed",
        "uri": str(folder / f"{item.key}.mp4") if succeeded else None,
        "bytes": entry.nbytes,
        "sha256": entry.sha256,
        "seed": entry.seed,
        "usage": entry.usage,
        "error": None if succeeded else entry.error,
        "error_kind": None if succeeded else entry.kind,
        "request": item.params,
    }


def manifest_entry(row: Mapping[str, Any]) -> JournalEntry:
    """What an earlier manifest's row says of its item, for ``retry_failed_from``."""
    state = ItemState.DONE if row.get("status") == "succeeded" else ItemState.FAILED
    return JournalEntry(state, row.get("task_id"), seed=row.get("seed"), kind=row.get("error_kind"))


def _shards(total: int) -> int:
    return (total + SHARD_ITEMS - 1) // SHARD_ITEMS


def write_manifest(destination: Any, rows: Iterable[ManifestRow], name: str = MANIFEST_NAME) -> str:
    """Write ``manifest.jsonl`` (or ``name``; one JSON row per item) atomically; returns its URI."""
    path = destination / name
    write_bytes_atomically("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows).encode(), path)
    return str(path)


def read_manifest(path: Any) -> list[ManifestRow]:
    try:
        return [row for _, row in rows_from_text(path.read_text(), "jsonl")]
    except GPTProtoRequestError as exc:
        raise GPTProtoError(f"{path}: {exc}; is this a batch manifest?") from None
