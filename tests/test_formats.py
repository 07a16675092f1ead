"""TRL's dataset formats, standard and conversational, read by every loader; K-wise rankings to and from
pairs; and the errors for data no format matches."""

from __future__ import annotations

import json

import pytest
from tiny import tiny_chat_tokenizer

from textbandit.data import (
    DataFormatError,
    load_comparisons,
    load_demonstrations,
    load_pairs,
    load_prompt_set,
    load_prompts,
)
from textbandit.formats import from_pairs, to_pairs

U = lambda text: {"role": "user", "content": text}  # noqa: E731
A = lambda text: {"role": "assistant", "content": text}  # noqa: E731


@pytest.fixture(scope="module")
def tok():
    return tiny_chat_tokenizer()


def test_prompts_in_every_format(tok):
    assert load_prompts([{"prompt": "say one"}]) == ["say one"]  # TRL's standard prompt-only (and ours)
    assert load_prompts([{"prompt": [U("say one")]}], tok) == ["user : say one assistant :"]
    assert load_prompts([{"messages": [U("say one"), A("one")]}], tok) == ["user : say one assistant :"]
    assert load_prompts([{"prompt": [U("say"), A("one")]}], tok) == ["user : say assistant : one"]  # continued
    assert load_prompts([{"chosen": "say one two", "rejected": "say one one"}]) == ["say one"]  # implicit prompt
    ps = load_prompt_set([{"prompt": [U("say one")], "solution": "one"}], tok)
    assert ps.prompts == [[U("say one")]] and ps.columns([0]) == {"solution": ["one"]} and ps.conversational


def test_demonstrations_in_every_format(tok):
    want = {"prompt": "user : say one assistant :", "response": " one"}
    assert load_demonstrations([{"prompt": "say one", "completion": "one"}]) == [
        {"prompt": "say one", "response": "one"}
    ]
    assert load_demonstrations([{"prompt": [U("say one")], "completion": [A("one")]}], tok) == [want]
    assert load_demonstrations([{"messages": [U("say one"), A("one")], "id": 7}], tok) == [{**want, "id": 7}]
    # the template's EOS after the answer is dropped: textbandit appends the EOS token itself
    assert not load_demonstrations([{"messages": [U("say one"), A("one")]}], tok)[0]["response"].endswith("<eos>")


def test_preferences_in_every_format(tok):
    standard = load_comparisons([{"prompt": "say", "chosen": " one", "rejected": " two", "margin": 1.0}])[0]
    assert standard["responses"] == [" one", " two"] and standard["ranking"] == [0, 1] and standard["margin"] == 1.0
    chat = load_comparisons([{"prompt": [U("say")], "chosen": [A("one")], "rejected": [A("two")]}], tok)[0]
    assert chat["prompt"] == "user : say assistant :" and chat["responses"] == [" one", " two"]
    implicit = load_comparisons([{"chosen": [U("say"), A("one")], "rejected": [U("say"), A("two")]}], tok)[0]
    assert implicit["prompt"] == chat["prompt"] and implicit["responses"] == chat["responses"]
    assert load_pairs([{"chosen": "say one", "rejected": "say two"}]) == [
        {"chosen": " one", "rejected": " two", "prompt": "say"}
    ]


def test_datasets_and_other_files(tmp_path, tok):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([{"prompt": [U("say one")], "completion": [A("one")]}] * 2)
    assert len(load_demonstrations(ds, tok)) == 2
    ds.save_to_disk(str(tmp_path / "saved"))
    assert load_demonstrations(str(tmp_path / "saved"), tok)[0]["response"] == " one"
    flat = datasets.Dataset.from_list([{"prompt": "say", "chosen": " one", "rejected": " two"}])
    flat.to_parquet(str(tmp_path / "p.parquet"))
    assert load_comparisons(tmp_path / "p.parquet")[0]["responses"] == [" one", " two"]
    (tmp_path / "a.json").write_text(json.dumps([{"prompt": "say one"}]))
    assert load_prompts(tmp_path / "a.json") == ["say one"]
    with pytest.raises(TypeError, match="DatasetDict"):
        load_prompts(datasets.DatasetDict({"train": flat}))


def test_data_no_format_matches_is_a_clear_error(tok):
    datasets = pytest.importorskip("datasets")
    other = datasets.Dataset.from_list([{"question": "q", "answer": "a"}])
    for loader in (load_prompts, load_demonstrations, load_comparisons):
        with pytest.raises(DataFormatError, match=r"no 'prompt' column .*columns: \['question', 'answer'\]"):
            loader(other)
    with pytest.raises(DataFormatError, match="record 0: missing field 'prompt'"):
        load_demonstrations([{"text": "a whole document"}])


def test_chat_data_needs_a_tokenizer_with_a_chat_template():
    plain = tiny_chat_tokenizer()
    plain.chat_template = None
    chat = [{"prompt": [U("say one")], "completion": [A("one")]}]
    with pytest.raises(DataFormatError, match="record 0: the data is conversational .* has no chat template"):
        load_demonstrations(chat, plain)
    with pytest.raises(DataFormatError, match="pass the tokenizer whose chat template renders it"):
        load_demonstrations(chat)


def test_kwise_rankings_to_pairs_and_back():
    ranked = [{"prompt": "p", "responses": ["a", "b", "c", "d"], "ranking": [2, 0, 3, 1]}]
    pairs = to_pairs(ranked)
    assert len(pairs) == 6 and {"prompt": "p", "chosen": "b", "rejected": "c"} in pairs
    assert from_pairs(pairs) == [{"prompt": "p", "responses": ["b", "d", "a", "c"], "ranking": [0, 1, 2, 3]}]
    tied = [{"prompt": "q", "responses": ["a", "b", "c"], "ranking": [0, 0, 1]}]  # a tie: no pair a-b
    back = from_pairs(to_pairs(tied))
    assert [c["responses"] for c in back] == [["a", "c"], ["b", "c"]]  # not merged: a-b was never stated
    cyclic = [{"prompt": "r", "chosen": x, "rejected": y} for x, y in (("a", "b"), ("b", "c"), ("c", "a"))]
    assert len(from_pairs(cyclic)) == 3
    assert load_pairs([ranked[0]]) == pairs  # a K-wise file read as pairs
