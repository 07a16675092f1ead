"""The JSONL loaders of ``textbandit.data``: every schema, and errors that name file, line and field."""

from __future__ import annotations

import json

import pytest

from textbandit.data import (
    DataFormatError,
    load_comparisons,
    load_demonstrations,
    load_pairs,
    load_prompt_records,
    load_prompts,
    read_jsonl,
    write_jsonl,
)


def write(tmp_path, lines: list, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_write_then_read_round_trips(tmp_path):
    records = [{"prompt": "é ünïcode", "n": 1}, {"prompt": "b", "kind": None}]
    path = tmp_path / "sub" / "x.jsonl"
    write_jsonl(path, records)
    assert read_jsonl(path) == [(1, records[0]), (2, records[1])]
    assert not (tmp_path / "sub" / "x.jsonl.tmp").exists()


def test_prompts_keep_extra_fields_and_skip_blank_lines(tmp_path):
    path = write(tmp_path, [{"prompt": "a", "customer": 3, "kind": "list"}, "", "   ", {"prompt": "b"}])
    assert load_prompt_records(path) == [{"prompt": "a", "customer": 3, "kind": "list"}, {"prompt": "b"}]
    assert load_prompts(path) == ["a", "b"]
    assert load_prompts(str(path)) == ["a", "b"]


def test_demonstrations(tmp_path):
    path = write(tmp_path, [{"prompt": "p", "response": "r", "source": "demo"}])
    assert load_demonstrations(path) == [{"prompt": "p", "response": "r", "source": "demo"}]
    assert load_demonstrations(write(tmp_path, [{"prompt": "p", "response": ""}], "e.jsonl"))[0]["response"] == ""


def test_comparisons_and_pairs_read_as_comparisons(tmp_path):
    path = write(
        tmp_path,
        [
            {"prompt": "p", "responses": ["a", "b", "c"], "ranking": [1, 0, 1]},  # a tie
            {"prompt": "q", "chosen": "good", "rejected": "bad"},
        ],
    )
    got = load_comparisons(path)
    assert got[0] == {"prompt": "p", "responses": ["a", "b", "c"], "ranking": [1, 0, 1]}
    assert got[1]["responses"] == ["good", "bad"] and got[1]["ranking"] == [0, 1]


def test_pairs(tmp_path):
    path = write(tmp_path, [{"prompt": "q", "chosen": "good", "rejected": "bad"}])
    assert load_pairs(path) == [{"prompt": "q", "chosen": "good", "rejected": "bad"}]


BAD = [
    (load_prompt_records, '{"prompt": 3}', "field 'prompt' must be a string"),
    (load_prompt_records, '{"text": "a"}', "missing field 'prompt'"),
    (load_prompt_records, '{"prompt": "  "}', "field 'prompt' is empty"),
    (load_prompt_records, '{"prompt": "a"', "not valid JSON"),
    (load_prompt_records, '["a"]', "expected a JSON object"),
    (load_demonstrations, '{"prompt": "a"}', "missing field 'response'"),
    (load_demonstrations, '{"prompt": "a", "response": 1}', "field 'response' must be a string"),
    (load_comparisons, '{"prompt": "a", "responses": ["x"], "ranking": [0]}', "field 'responses'"),
    (load_comparisons, '{"prompt": "a", "responses": ["x", 2], "ranking": [0, 1]}', "field 'responses'"),
    (load_comparisons, '{"prompt": "a", "responses": ["x", "y"], "ranking": [0]}', "field 'ranking'"),
    (load_comparisons, '{"prompt": "a", "responses": ["x", "y"], "ranking": [0, -1]}', "field 'ranking'"),
    (load_comparisons, '{"prompt": "a", "responses": ["x", "y"], "ranking": [true, 0]}', "field 'ranking'"),
    (load_comparisons, '{"prompt": "a", "chosen": "x"}', "missing field 'rejected'"),
    (load_pairs, '{"prompt": "a", "chosen": "x", "rejected": null}', "field 'rejected' must be a string"),
    (load_pairs, '{"chosen": "x", "rejected": "y"}', "missing field 'prompt'"),
]


@pytest.mark.parametrize("loader,bad_line,message", BAD)
def test_a_bad_record_names_file_line_and_field(tmp_path, loader, bad_line, message):
    good = {
        load_prompt_records: {"prompt": "ok"},
        load_demonstrations: {"prompt": "ok", "response": "r"},
        load_comparisons: {"prompt": "ok", "responses": ["a", "b"], "ranking": [0, 1]},
        load_pairs: {"prompt": "ok", "chosen": "a", "rejected": "b"},
    }[loader]
    path = write(tmp_path, [good, "", bad_line, good])  # the bad record is on line 3
    with pytest.raises(DataFormatError) as err:
        loader(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such JSONL file"):
        read_jsonl(tmp_path / "nope.jsonl")
    empty = write(tmp_path, [""], "empty.jsonl")
    with pytest.raises(DataFormatError, match="no prompts"):
        load_prompt_records(empty)


def test_load_prompts_from_lists_and_datasets():
    assert load_prompts(["a", "b"]) == ["a", "b"]
    assert load_prompts(("a",)) == ["a"]
    with pytest.raises(ValueError, match="empty"):
        load_prompts([])
    with pytest.raises(ValueError, match="prompt 1"):
        load_prompts(["a", ""])
    with pytest.raises(TypeError, match="prompts must be"):
        load_prompts({"prompt": "a"})
    datasets = pytest.importorskip("datasets")
    assert load_prompts(datasets.Dataset.from_dict({"prompt": ["x", "y"], "kind": [1, 2]})) == ["x", "y"]


def test_the_same_files_load_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = write(tmp_path, [{"prompt": "p", "responses": ["a", "b"], "ranking": [1, 0]}])
    ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds[0]["ranking"] == load_comparisons(path)[0]["ranking"]


def test_non_utf8_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps({"prompt": "ok"}).encode() + b"\n" + '{"prompt": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1.jsonl:2: not UTF-8 text \(byte 0xe9"):
        load_prompt_records(path)


@pytest.mark.parametrize("ended", [["false", "true"], [True], [1, 0], "false"])
def test_ended_with_eos_must_be_one_boolean_per_response(tmp_path, ended):
    path = write(tmp_path, [{"prompt": "p", "responses": ["a", "b"], "ranking": [0, 1], "ended_with_eos": ended}])
    with pytest.raises(DataFormatError, match=r"data.jsonl:1: field 'ended_with_eos' must be a list of 2 booleans"):
        load_comparisons(path)
    from textbandit.task import gold_scores

    with pytest.raises(ValueError, match="ended_with_eos must be 2 booleans"):  # "false" would read as True
        gold_scores(["instruction : list 2 colors . response :"] * 2, ["red and blue .", "x"], ended)


def test_load_texts_reads_txt_and_jsonl_and_names_a_record_without_text(tmp_path):
    from textbandit.data import load_texts

    (tmp_path / "c.txt").write_text("one doc\n\ntwo doc\n")
    assert load_texts(tmp_path / "c.txt") == ["one doc", "two doc"]
    good = write(tmp_path, [{"text": "a"}, {"text": "b"}], "c.jsonl")
    assert load_texts(good) == ["a", "b"]
    bad = write(tmp_path, [{"text": "a"}, {"body": "b"}], "bad.jsonl")
    with pytest.raises(DataFormatError, match=r"bad.jsonl:2: missing field 'text'"):
        load_texts(bad)
