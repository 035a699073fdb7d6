"""The batch operator's durable journal: which items were started, created, finished or failed.

Written so that a retry, or a worker killed mid-batch, resumes without paying twice:

* before each create the item's *intent* is recorded, after it the remote id (small writes to one
  ``tail`` key, never a rewrite of the whole journal; in a run of creates, one write records an
  item's id and the next item's intent, so each create costs one round trip to the store);
* every ``FLUSH_EVERY`` creates, and at the end of each worker phase, changed entries move into
  fixed *shards* of ``SHARD_ITEMS`` items and the tail is emptied.

So a kill leaves at most one item whose create is ambiguous (intent, no id), which the operator
reconciles as the single operator does. Storage is a key-value store: Airflow 3.3's task state
store when the task has one (scoped to the DAG run, task and map index; it survives retries), else
JSON files in a hidden folder of the destination. Values stay far below the store's
``[state_store] max_value_storage_bytes`` (64 KiB by default; a shard of 200 finished items is
about 40 KB). Each entry is a small dict; ``s`` is its state:

==========  ===============================================================================
``c``       create started at ``t`` (unix seconds), no id known yet: maybe paid, reconcile
``r``       running remotely as ``id``, created at ``t`` (with the ``seed`` sent)
``d``       done: video stored; ``b`` bytes, ``h`` sha256, ``seed``, ``u`` usage
``f``       failed: ``st`` status word, ``e`` error, ``k`` kind (see ``retry_target``)
==========  ===============================================================================
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from airflow_provider_gptproto.exceptions import GPTProtoError
from airflow_provider_gptproto.models.results import ManifestRow

HEADER_KEY = "gptproto_batch"
TAIL_KEY = "gptproto_batch.tail"
SHARD_ITEMS = 200
FLUSH_EVERY = 50
JOURNAL_DIR = ".gptproto-journal"
MANIFEST_NAME = "manifest.jsonl"
# A retry into its input's own folder that fails records its rows here, leaving its input as it was.
RETRY_MANIFEST_NAME = "manifest.retry.jsonl"

# Failure kinds a new try of the Airflow task retries, and to which state. A content-policy
# rejection is not retried unless the user opts in (the same prompt is usually rejected again, and
# each attempt is paid), nor an ambiguous create (a retry could pay twice); a failed download
# re-reads the finished task instead of paying again. ``retry_failed_from`` follows the same rule.
RETRY_KINDS = {"remote": "todo", "timeout": "todo", "create": "todo", "download": "r"}
POLICY_KIND = "policy"


def retry_target(kind: str | None, retry_policy_failures: bool = False) -> str | None:
    """The state a failed item of ``kind`` goes back to when retried, or None: not retried.

    The one rule for a resume inside a batch and for ``retry_failed_from``.
    """
    if kind == POLICY_KIND:
        return "todo" if retry_policy_failures else None
    return RETRY_KINDS.get(kind or "")


class KeyValueStore(Protocol):
    def get(self, key: str) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...
    def delete(self, key: str) -> None: ...


class TaskStateStoreKV:
    """Airflow 3.3's ``context["task_state_store"]``; every call is one round trip to the API server."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def get(self, key: str) -> Any:
        return self._store.get(key)

    def set(self, key: str, value: Any) -> None:
        self._store.set(key, value)

    def delete(self, key: str) -> None:
        self._store.delete(key)


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
        write_text_atomically(self._folder / f"{key}.json", json.dumps(value, separators=(",", ":")))

    def delete(self, key: str) -> None:
        (self._folder / f"{key}.json").unlink(missing_ok=True)


def journal_store(context: Any, destination: Any, scope: str | None = None) -> KeyValueStore:
    """The task's state store, else a folder of ``destination`` (``scope``: a subfolder of it, so a
    ``retry_failed_from`` run into the earlier batch's destination never meets that batch's journal)."""
    store = context.get("task_state_store") if hasattr(context, "get") else None
    return TaskStateStoreKV(store) if store is not None else FolderKV(destination, scope)


class BatchJournal:
    """Per-item state of one batch, loaded whole at the start of each worker phase."""

    def __init__(self, kv: KeyValueStore, header: dict[str, Any], entries: dict[int, dict[str, Any]]) -> None:
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
        journal = cls(kv, header, {i: e for i, e in entries.items() if e.get("s") != "todo"})
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
        self._log(index, {"s": "c", "t": time.time()})

    def created(
        self, index: int, remote_id: str, then_begin: int | None = None, seed: int | None = None
    ) -> None:
        """Record the remote id (and the seed sent); with ``then_begin``, also the next create's intent."""
        now = time.time()
        self._set(
            index, {"s": "r", "id": remote_id, "t": now, **({"seed": seed} if seed is not None else {})}
        )
        self._tail[index] = self.entries[index]
        if then_begin is None:
            self._log(index, self.entries[index])
        else:
            self._log(then_begin, {"s": "c", "t": now})

    def reattach(self, index: int, remote_id: str, seed: int | None = None) -> None:
        """An item whose remote task already exists (an earlier batch's failed download): watch it."""
        self._set(index, {"s": "r", "id": remote_id, "t": time.time(), "seed": seed})

    def abandon_create(self, index: int) -> None:
        """The create provably did not happen (refused, 429, 503): the item is to do again."""
        self._log(index, None)

    def _log(self, index: int, entry: dict[str, Any] | None) -> None:
        self._set(index, entry)
        self._tail[index] = entry or {"s": "todo"}
        self._kv.set(TAIL_KEY, {str(i): e for i, e in self._tail.items()})
        if len(self._tail) >= FLUSH_EVERY:
            self.flush()

    # ------------------------------------------------------------------ outcomes (durable at flush)
    def done(self, index: int, nbytes: int, sha256: str, seed: int | None, usage: Any) -> None:
        entry = self.entries[index]
        seed = seed if seed is not None else entry.get("seed")  # the reply's, else the one sent
        self._set(
            index, {"s": "d", "id": entry.get("id"), "b": nbytes, "h": sha256, "seed": seed, "u": usage}
        )

    def failed(
        self, index: int, kind: str, error: str, status: str = "failed", usage: Any = None, seed: Any = None
    ) -> None:
        entry = self.entries.get(index, {})
        self._set(
            index,
            {
                "s": "f",
                "id": entry.get("id"),
                "k": kind,
                "st": status,
                "e": error[:500],
                "u": usage,
                "seed": seed if seed is not None else entry.get("seed"),
            },
        )

    def retry_failed(self, retry_policy_failures: bool = False) -> int:
        """At the start of a new try: failures worth another attempt go back to work."""
        count = 0
        for index, entry in list(self.entries.items()):
            target = retry_target(entry.get("k"), retry_policy_failures) if entry.get("s") == "f" else None
            if target == "todo":
                self._set(index, None)
            elif target == "r" and entry.get("id"):
                self._set(index, {"s": "r", "id": entry["id"], "t": time.time()})
            else:
                continue
            count += 1
        return count

    def _set(self, index: int, entry: dict[str, Any] | None) -> None:
        if entry is None or entry.get("s") == "todo":
            self.entries.pop(index, None)
        else:
            self.entries[index] = entry
        self._dirty.add(index)

    def flush(self) -> None:
        """Write changed shards, then empty the tail (a crash in between only repeats the tail)."""
        for shard in sorted({i // SHARD_ITEMS for i in self._dirty}):
            lo = shard * SHARD_ITEMS
            value = {str(i): self.entries[i] for i in range(lo, lo + SHARD_ITEMS) if i in self.entries}
            self._kv.set(f"{HEADER_KEY}.{shard}", value)
        if self._tail:
            self._kv.set(TAIL_KEY, {})
        self._dirty.clear()
        self._tail.clear()

    # ------------------------------------------------------------------ queries
    def state(self, index: int) -> str:
        return str(self.entries.get(index, {}).get("s", "todo"))

    def with_state(self, state: str) -> Iterator[tuple[int, dict[str, Any]]]:
        return ((i, e) for i, e in self.entries.items() if e.get("s") == state)

    def in_flight(self) -> dict[str, int]:
        """Remote id -> item index of every item running remotely."""
        return {e["id"]: i for i, e in self.with_state("r")}

    def known_ids(self) -> set[str]:
        return {e["id"] for e in self.entries.values() if e.get("id")}

    def counts(self) -> dict[str, int]:
        out = {"todo": int(self.header["n"]) - len(self.entries), "c": 0, "r": 0, "d": 0, "f": 0}
        for entry in self.entries.values():
            out[entry["s"]] += 1
        return out

    def finished(self) -> bool:
        counts = self.counts()
        return counts["d"] + counts["f"] == int(self.header["n"])


def _shards(total: int) -> int:
    return (total + SHARD_ITEMS - 1) // SHARD_ITEMS


def write_text_atomically(path: Any, text: str) -> None:
    """Write ``text`` to an ObjectStoragePath through a temporary sibling and a rename."""
    temp = path.parent / f".{path.name}.{uuid.uuid4().hex}.part"
    try:
        with temp.open("w") as out:
            out.write(text)
        temp.rename(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_manifest(destination: Any, rows: Iterable[ManifestRow], name: str = MANIFEST_NAME) -> str:
    """Write ``manifest.jsonl`` (or ``name``; one JSON row per item) atomically; returns its URI."""
    path = destination / name
    write_text_atomically(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
    return str(path)


def read_manifest(path: Any) -> list[ManifestRow]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise GPTProtoError(f"{path}: line {number} is not JSON; is this a batch manifest?") from None
    return rows
