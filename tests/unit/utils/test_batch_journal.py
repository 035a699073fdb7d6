"""The batch journal: what survives a killed worker, and how a new try treats failures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_gptproto.exceptions import GPTProtoError
from airflow_provider_gptproto.models.batch import BatchItem
from airflow_provider_gptproto.models.batch_plan import ItemState, JournalEntry, in_flight, resume
from airflow_provider_gptproto.utils import batch_journal
from airflow_provider_gptproto.utils.batch_journal import (
    HEADER_KEY,
    SHARD_ITEMS,
    TAIL_KEY,
    BatchJournal,
    FolderKV,
    manifest_entry,
    manifest_row,
    read_manifest,
    write_manifest,
)


class DictKV:
    """The task state store's get/set/delete over a dict, counting writes."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.writes = 0

    def get(self, key: str) -> Any:
        return json.loads(json.dumps(self.data[key])) if key in self.data else None

    def set(self, key: str, value: Any) -> None:
        self.writes += 1
        self.data[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def test_intent_and_id_are_durable_before_any_flush() -> None:
    kv = DictKV()
    journal = BatchJournal.open(kv, "fp", 10, deadline=1e12)
    journal.begin_create(0)
    journal.created(0, "task-0")
    journal.begin_create(1)  # killed here: no flush ever ran

    again = BatchJournal.open(kv, "fp", 10, deadline=0)
    assert again.entry(0).state is ItemState.RUNNING and again.entry(0).task_id == "task-0"
    assert again.entry(1).state is ItemState.CREATING
    assert again.entry(2).state is ItemState.TODO
    assert again.deadline == 1e12  # the first try's deadline, not a fresh one
    assert in_flight(again.entries) == {"task-0": 0}


def test_abandoned_create_is_todo_again_after_reload() -> None:
    kv = DictKV()
    journal = BatchJournal.open(kv, "fp", 3, deadline=1e12)
    journal.begin_create(2)
    journal.abandon_create(2)
    assert BatchJournal.open(kv, "fp", 3, deadline=0).entry(2) == JournalEntry(ItemState.TODO)


def test_flush_moves_the_tail_into_shards() -> None:
    kv = DictKV()
    journal = BatchJournal.open(kv, "fp", SHARD_ITEMS + 5, deadline=1e12)
    for index in (1, SHARD_ITEMS + 2):
        journal.begin_create(index)
        journal.created(index, f"t{index}")
    journal.flush()
    assert kv.data[TAIL_KEY] == {}
    assert set(kv.data[f"{HEADER_KEY}.0"]) == {"1"}
    assert set(kv.data[f"{HEADER_KEY}.1"]) == {str(SHARD_ITEMS + 2)}
    assert in_flight(BatchJournal.open(kv, "fp", SHARD_ITEMS + 5, deadline=0).entries) == {
        "t1": 1,
        f"t{SHARD_ITEMS + 2}": SHARD_ITEMS + 2,
    }


def test_a_full_shard_stays_under_the_state_store_value_limit() -> None:
    kv = DictKV()
    journal = BatchJournal.open(kv, "fp", SHARD_ITEMS, deadline=1e12)
    for index in range(SHARD_ITEMS):
        journal.entries[index] = JournalEntry(
            ItemState.RUNNING, f"cgt-20260101000000-{index:08d}-abcdef", at=1.0
        )
        journal.done(
            index, 123_456_789, "f" * 64, 2_147_483_647, {"completion_tokens": 99999, "total_tokens": 99999}
        )
    journal.flush()
    assert len(json.dumps(kv.data[f"{HEADER_KEY}.0"])) < 65535  # [state_store] max_value_storage_bytes


def test_tail_writes_are_bounded_by_periodic_flushes() -> None:
    kv = DictKV()
    journal = BatchJournal.open(kv, "fp", 500, deadline=1e12)
    for index in range(300):
        journal.begin_create(index)
        journal.created(index, f"t{index}")
        assert len(kv.data[TAIL_KEY]) <= batch_journal.FLUSH_EVERY
    assert len(in_flight(BatchJournal.open(kv, "fp", 500, deadline=0).entries)) == 300


def test_a_journal_of_other_input_is_refused() -> None:
    kv = DictKV()
    BatchJournal.open(kv, "fp-one", 3, deadline=1e12)
    with pytest.raises(GPTProtoError, match="different input"):
        BatchJournal.open(kv, "fp-two", 3, deadline=1e12)


def test_delete_forgets_the_batch() -> None:
    kv = DictKV()
    journal = BatchJournal.open(kv, "fp", 3, deadline=1e12)
    journal.begin_create(0)
    journal.flush()
    journal.delete()
    assert kv.data == {}


def test_folder_store_and_manifest_are_written_whole(tmp_path: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    folder = ObjectStoragePath(f"file://{tmp_path}")
    kv = FolderKV(folder)
    journal = BatchJournal.open(kv, "fp", 2, deadline=1e12)
    journal.begin_create(0)
    journal.created(0, "t0")
    assert in_flight(BatchJournal.open(FolderKV(folder), "fp", 2, deadline=0).entries) == {"t0": 0}

    uri = write_manifest(folder, [{"index": 0, "status": "succeeded"}, {"index": 1, "status": "failed"}])
    assert read_manifest(ObjectStoragePath(uri)) == [
        {"index": 0, "status": "succeeded"},
        {"index": 1, "status": "failed"},
    ]
    assert not [p for p in tmp_path.rglob("*.part")]


def test_a_run_of_creates_costs_one_write_each() -> None:
    kv = DictKV()
    journal = BatchJournal.open(kv, "fp", 10, deadline=1e12)
    before = kv.writes
    journal.begin_create(0)
    journal.created(0, "t0", then_begin=1)
    journal.created(1, "t1", then_begin=2)  # killed before item 2's create: its intent is durable
    assert kv.writes - before == 3
    again = BatchJournal.open(kv, "fp", 10, deadline=0)
    assert in_flight(again.entries) == {"t0": 0, "t1": 1}
    assert again.entry(2).state is ItemState.CREATING


# A journal as the code before the typed entries wrote it: shard 0 and the tail, in the compact form.
LEGACY = {
    HEADER_KEY: {"v": 1, "fp": "fp", "n": 6, "deadline": 1e12, "started": 1.0},
    f"{HEADER_KEY}.0": {
        "0": {"s": "d", "id": "t0", "b": 12, "h": "ab" * 32, "seed": 7, "u": {"total_tokens": 3}},
        "1": {"s": "f", "id": "t1", "k": "policy", "st": "failed", "e": "rejected", "u": None, "seed": None},
        "2": {"s": "r", "id": "t2", "t": 5.0},
        "3": {"s": "r", "id": "t3", "t": 6.0, "seed": 9},
    },
    TAIL_KEY: {
        "3": {"s": "todo"},
        "4": {"s": "c", "t": 8.0},
        "5": {"s": "r", "id": "t5", "t": 8.5, "seed": 1},
    },
}


def test_a_journal_in_the_compact_form_written_before_is_read_as_typed_entries() -> None:
    kv = DictKV()
    kv.data = json.loads(json.dumps(LEGACY))
    journal = BatchJournal.open(kv, "fp", 6, deadline=0)
    assert journal.entries == {
        0: JournalEntry(ItemState.DONE, "t0", seed=7, nbytes=12, sha256="ab" * 32, usage={"total_tokens": 3}),
        1: JournalEntry(ItemState.FAILED, "t1", status="failed", error="rejected", kind="policy"),
        2: JournalEntry(ItemState.RUNNING, "t2", at=5.0),
        4: JournalEntry(ItemState.CREATING, at=8.0),  # item 3 was abandoned in the tail: to do
        5: JournalEntry(ItemState.RUNNING, "t5", at=8.5, seed=1),
    }
    journal.flush()  # and written back in the same compact form
    shard = kv.data[f"{HEADER_KEY}.0"]
    assert shard["0"] == LEGACY[f"{HEADER_KEY}.0"]["0"] and shard["2"] == LEGACY[f"{HEADER_KEY}.0"]["2"]
    assert shard["4"] == {"s": "c", "t": 8.0} and "3" not in shard and kv.data[TAIL_KEY] == {}


def test_an_unknown_state_code_is_refused() -> None:
    kv = DictKV()
    kv.data = {HEADER_KEY: LEGACY[HEADER_KEY], f"{HEADER_KEY}.0": {"0": {"s": "x"}}}
    with pytest.raises(GPTProtoError, match="Unknown batch journal entry state 'x'"):
        BatchJournal.open(kv, "fp", 6, deadline=0)


def test_the_manifest_row_names_what_was_asked_and_what_the_api_did(tmp_path: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    folder = ObjectStoragePath(f"file://{tmp_path}")
    item = BatchItem(2, "clip", 4, {"prompt": "a lake", "duration": 5})
    ok = manifest_row(item, JournalEntry(ItemState.DONE, "t2", seed=7, nbytes=12, sha256="ab"), folder)
    assert ok == {
        "index": 2,
        "key": "clip",
        "line": 4,
        "prompt_index": 2,
        "take": 1,
        "takes": 1,
        "prompt": "a lake",
        "task_id": "t2",
        "status": "succeeded",
        "uri": str(folder / "clip.mp4"),
        "bytes": 12,
        "sha256": "ab",
        "seed": 7,
        "usage": None,
        "error": None,
        "error_kind": None,
        "request": {"prompt": "a lake", "duration": 5},
    }
    bad = manifest_row(
        item, JournalEntry(ItemState.FAILED, "t2", status="expired", error="late", kind="remote"), folder
    )
    assert (bad["status"], bad["uri"], bad["error"], bad["error_kind"]) == ("expired", None, "late", "remote")


def test_an_earlier_manifest_resumes_by_the_same_rule_a_failed_download_watched_on_its_task() -> None:
    earlier = [
        {"key": "a", "status": "succeeded", "task_id": "t0"},
        {"key": "b", "status": "failed", "error_kind": "download", "task_id": "t1", "seed": 4},
        {"key": "c", "status": "failed", "error_kind": "remote", "task_id": "t2"},
        {"key": "d", "status": "failed", "error_kind": "download", "task_id": None},
        {"key": "e", "status": "failed", "error_kind": "policy", "task_id": "t4"},
    ]
    entries = {i: manifest_entry(row) for i, row in enumerate(earlier)}
    assert entries[0].state is ItemState.DONE and entries[1].kind == "download"
    assert resume(entries, False, 9.0) == {
        1: JournalEntry(ItemState.RUNNING, "t1", at=9.0, seed=4),  # fetched again, not paid again
        2: JournalEntry(),
    }
    assert 4 in resume(entries, True, 9.0)


def test_an_item_to_retry_keeps_its_new_seed_and_attempt_through_a_create_and_a_reload() -> None:
    kv = DictKV()
    journal = BatchJournal.open(kv, "fp", 3, deadline=1e12)
    journal.update({1: JournalEntry(seed=4242, attempt=1)})
    journal.flush()
    reloaded = BatchJournal.open(kv, "fp", 3, deadline=1e12)
    assert reloaded.entry(1) == JournalEntry(seed=4242, attempt=1)
    reloaded.begin_create(1)
    assert (reloaded.entry(1).state, reloaded.entry(1).seed) == (ItemState.CREATING, 4242)
    reloaded.created(1, "t9", seed=4242)
    assert reloaded.entry(1).attempt == 1
    reloaded.failed(1, "remote", "boom")
    assert reloaded.entry(1).attempt == 1 and reloaded.entry(1).seed == 4242
