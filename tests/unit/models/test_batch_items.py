"""Batch items: every one validated up front, errors naming the item, its line and the field."""

from __future__ import annotations

import pytest

from airflow_provider_gptproto.exceptions import GPTProtoRequestError
from airflow_provider_gptproto.models.batch import build_items, failure_budget, fingerprint, rows_from_text


def test_prompts_and_dicts_merge_over_shared_fields() -> None:
    items = build_items(
        [(None, "a red kite"), (None, {"prompt": "a blue kite", "duration": "10s", "key": "sku-42"})],
        {"duration": "5s", "dimension": "1280:768"},
    )
    assert [i.key for i in items] == ["00000", "sku-42"]
    assert items[0].request.duration == "5s" and items[1].request.duration == "10s"
    assert items[1].request.dimension == "1280:768"
    assert items[1].params == {"prompt": "a blue kite", "duration": "10s", "dimension": "1280:768"}


def test_csv_errors_name_index_line_and_field() -> None:
    text = "key,prompt,duration,seed\nsku-1,a kite,5s,1\nsku-2,a boat,7s,2\nsku-3,a car,5s,notanumber\n"
    with pytest.raises(GPTProtoRequestError) as err:
        build_items(rows_from_text(text, "csv"), {}, source="catalog.csv")
    message = str(err.value)
    assert "2 of 3 batch items are invalid; nothing was sent" in message
    assert "item 1 (line 3 of catalog.csv)" in message and "duration" in message
    assert "item 2 (line 4 of catalog.csv)" in message and "seed" in message
    assert err.value.field == "duration"


def test_csv_values_are_coerced_and_blank_cells_fall_back_to_shared() -> None:
    text = "prompt,seed,loop,duration\na kite,42,true,\n"
    (item,) = build_items(rows_from_text(text, "csv"), {"duration": "10s"})
    assert item.request.seed == 42 and item.request.loop is True and item.request.duration == "10s"
    assert item.line == 2


def test_jsonl_lines_and_bad_json() -> None:
    rows = rows_from_text('{"prompt": "a"}\n\n{"prompt": "b"}\n', "jsonl")
    assert [line for line, _ in rows] == [1, 3]
    with pytest.raises(GPTProtoRequestError, match="line 2: not valid JSON"):
        rows_from_text('{"prompt": "a"}\n{"prompt": \n', "jsonl")


@pytest.mark.parametrize(
    "row, field",
    [
        ({"prompt": "x", "colour": "red"}, "colour"),
        ({"prompt": "x", "key": "../escape"}, "key"),
        ({"prompt": "x", "key": ".hidden"}, "key"),
        (42, None),
    ],
)
def test_bad_items_are_named(row: object, field: str | None) -> None:
    with pytest.raises(GPTProtoRequestError) as err:
        build_items([(None, "fine"), (None, row)], {})
    assert "item 1:" in str(err.value)
    assert err.value.field == field


def test_repeated_keys_are_refused() -> None:
    with pytest.raises(GPTProtoRequestError, match="key 'a' repeats item 0's"):
        build_items([(None, {"prompt": "x", "key": "a"}), (None, {"prompt": "y", "key": "a"})], {})


def test_empty_batch_is_refused() -> None:
    with pytest.raises(GPTProtoRequestError, match="no items"):
        build_items([], {})


def test_fingerprint_changes_with_the_input() -> None:
    one = build_items([(None, "a"), (None, "b")], {})
    two = build_items([(None, "a"), (None, "c")], {})
    assert fingerprint(one) == fingerprint(build_items([(None, "a"), (None, "b")], {}))
    assert fingerprint(one) != fingerprint(two)


def test_failure_budget() -> None:
    assert failure_budget(0, 100) == 0
    assert failure_budget(3, 100) == 3
    assert failure_budget(0.1, 1000) == 100
    assert failure_budget(0.05, 30) == 1
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(GPTProtoRequestError) as err:
            failure_budget(bad, 10)  # type: ignore[arg-type]
        assert err.value.field == "max_failed_items"


def test_takes_expand_each_item_in_place() -> None:
    from airflow_provider_gptproto.models.batch import expand_takes

    items = build_items([(3, "a lake"), (4, {"prompt": "a hill", "key": "hill"})], {})
    takes = expand_takes(items, 2, lambda item: [10 + item.index, 20 + item.index])
    assert [(i.index, i.key, i.line, i.take, i.takes, i.prompt_index, i.params["seed"]) for i in takes] == [
        (0, "00000-take-1", 3, 1, 2, 0, 10),
        (1, "00000-take-2", 3, 2, 2, 0, 20),
        (2, "hill-take-1", 4, 1, 2, 1, 11),
        (3, "hill-take-2", 4, 2, 2, 1, 21),
    ]
    assert expand_takes(items, 1, lambda item: []) == items
