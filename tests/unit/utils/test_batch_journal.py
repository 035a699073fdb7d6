"""The batch journal: what survives a killed worker, and how a new try treats failures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_gptproto.exceptions import GPTProtoError
from airflow_provider_gptproto.utils import batch_journal
from airflow_provider_gptproto.utils.batch_journal import (
    HEADER_KEY,
    SHARD_ITEMS,
    TAIL_KEY,
    BatchJournal,
    FolderKV,
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
    assert again.state(0) == "r" and again.entries[0]["id"] == "task-0"
    assert again.state(1) == "c"
    assert again.state(2) == "todo"
    assert again.deadline == 1e12  # the first try's deadline, not a fresh one
    assert again.in_flight() == {"task-0": 0}


def test_abandoned_create_is_todo_again_after_reload() -> None:
    kv = DictKV()
    journal = BatchJournal.open(kv, "fp", 3, deadline=1e12)
    journal.begin_create(2)
    journal.abandon_create(2)
    assert BatchJournal.open(kv, "fp", 3, deadline=0).state(2) == "todo"


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
    assert BatchJournal.open(kv, "fp", SHARD_ITEMS + 5, deadline=0).in_flight() == {
        "t1": 1,
        f"t{SHARD_ITEMS + 2}": SHARD_ITEMS + 2,
    }


def test_a_full_shard_stays_under_the_state_store_value_limit() -> None:
    kv = DictKV()
    journal = BatchJournal.open(kv, "fp", SHARD_ITEMS, deadline=1e12)
    for index in range(SHARD_ITEMS):
        journal.entries[index] = {"s": "r", "id": f"cgt-20260101000000-{index:08d}-abcdef", "t": 1.0}
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
    assert len(BatchJournal.open(kv, "fp", 500, deadline=0).in_flight()) == 300


def test_a_journal_of_other_input_is_refused() -> None:
    kv = DictKV()
    BatchJournal.open(kv, "fp-one", 3, deadline=1e12)
    with pytest.raises(GPTProtoError, match="different input"):
        BatchJournal.open(kv, "fp-two", 3, deadline=1e12)


def test_retry_failed_retries_only_what_cannot_pay_twice_or_fail_again() -> None:
    kv = DictKV()
    journal = BatchJournal.open(kv, "fp", 6, deadline=1e12)
    for index in range(6):
        journal.entries[index] = {"s": "r", "id": f"t{index}", "t": 1.0}
    journal.failed(0, "remote", "failed")
    journal.failed(1, "policy", "content policy")
    journal.failed(2, "ambiguous", "reply lost")
    journal.failed(3, "download", "truncated")
    journal.failed(4, "timeout", "late")
    journal.done(5, 1, "h", None, None)

    assert journal.retry_failed() == 3
    assert [journal.state(i) for i in range(6)] == ["todo", "f", "f", "r", "todo", "d"]
    assert journal.entries[3]["id"] == "t3"  # the finished remote task is downloaded again, not re-created


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
    assert BatchJournal.open(FolderKV(folder), "fp", 2, deadline=0).in_flight() == {"t0": 0}

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
    assert again.in_flight() == {"t0": 0, "t1": 1}
    assert again.state(2) == "c"
