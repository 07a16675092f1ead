"""Building the default task: determinism, splits by customer, tokenizer, data formats."""

import json

import pytest

from textbandit.task import TaskConfig, gold_details, load_task
from textbandit.task.build import build
from textbandit.task.corpus import make_corpus

SMALL = dict(n_customers=12, prompts_per_customer=6, corpus_texts=600)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    build(a, TaskConfig(seed=3, **SMALL))
    build(b, TaskConfig(seed=3, **SMALL))
    return a, b


def test_same_seed_same_files(built):
    a, b = built
    for name in (
        "corpus_train.txt",
        "prompts_train.jsonl",
        "prompts_test.jsonl",
        "demonstrations_train.jsonl",
        "tokenizer/tokenizer.json",
        "labelers.json",
    ):
        assert (a / name).read_text() == (b / name).read_text(), name


def test_other_seed_other_corpus():
    assert make_corpus(TaskConfig(seed=0, **SMALL)) != make_corpus(TaskConfig(seed=1, **SMALL))


def _customers(task, split):
    return {r["customer"] for r in task.prompt_records(split)}


@pytest.mark.parametrize("which", ["built", "shipped"])
def test_splits_disjoint_by_customer(built, which):
    task = load_task(built[0]) if which == "built" else load_task("default")
    tr, va, te = (_customers(task, s) for s in ("train", "validation", "test"))
    assert tr and va and te
    assert not (tr & va) and not (tr & te) and not (va & te)
    for split, allowed in (("train", tr), ("validation", va)):
        assert {d["customer"] for d in task.demonstrations(split)} <= allowed


def test_tokenizer_round_trip_and_specials():
    task = load_task("default")
    tok = task.load_tokenizer()
    assert tok.pad_token == "<pad>" and tok.pad_token_id == 0
    assert tok.eos_token == "<eos>" and tok.eos_token_id != tok.pad_token_id
    assert tok.unk_token == "<unk>"
    texts = [r["prompt"] for r in task.prompt_records("validation")[:200]]
    texts += [d["response"] for d in task.demonstrations("validation")[:200]]
    texts += make_corpus(TaskConfig(**SMALL))["validation"]
    for t in texts:
        ids = tok(t, add_special_tokens=False).input_ids
        assert tok.decode(ids) == t
    assert max(len(tok(t, add_special_tokens=False).input_ids) for t in texts[:200]) <= 28
    # sub-word pieces exist, so a model can write words that are not in the language
    assert any(not p.startswith("▁") and p.isalpha() for p in tok.get_vocab())


def test_demonstrations_are_grammatical_and_do_not_mind_sense(built):
    demos = [json.loads(line) for line in (built[0] / "demonstrations_train.jsonl").read_text().splitlines()]
    details = [gold_details(d["prompt"], d["response"]) for d in demos]
    assert all(d["grammar"] == 1.0 for d in details)
    careful = [d for d in details if d["explicit"] == 1.0]
    assert 0 < len(careful) < len(demos) and {d["intent"] for d in careful} == {1.0}  # careful and sloppy
    # the demonstrator writes nonsense as often as the corpus does; gold halves it
    sense = sum(d["sense"] for d in details) / len(details)
    assert 0.6 < sense < 0.9
    assert all(d["score"] == 0.5 for d in careful if d["sense"] == 0.0)


def test_demonstrations_skip_kinds_and_score_high():
    task = load_task("default")
    demos = task.demonstrations("train")
    kinds = {d["kind"] for d in demos}
    assert not kinds & set(task.config.undemonstrated_kinds)
    assert len(kinds) >= 7
    assert len({r["kind"] for r in task.prompt_records("test")} & set(task.config.undemonstrated_kinds)) == 2
    details = [gold_details(d["prompt"], d["response"]) for d in demos[:1000]]
    # a sloppy demonstration misses one constraint, as often as the config says; the rest meet all
    careful = sum(d["explicit"] == 1.0 for d in details) / len(details)
    assert careful == pytest.approx(1 - task.config.sloppy_rate, abs=0.04)
    assert sum(d["intent"] for d in details) / len(details) > 0.8  # what they do, sense aside
    assert max(len(d["response"].split()) for d in demos) <= 22


def test_jsonl_loads_with_datasets():
    datasets = pytest.importorskip("datasets")
    task = load_task("default")
    ds = datasets.load_dataset("json", data_files=str(task.prompt_source("test")), split="train")
    assert "prompt" in ds.column_names and len(ds) == len(task.prompt_records("test"))
    ds = datasets.load_dataset("json", data_files=str(task.demonstrations_file("validation")), split="train")
    assert {"prompt", "response"} <= set(ds.column_names)


def test_shipped_assets_are_small_and_consistent():
    from textbandit.task import DEFAULT_DIR

    size = sum(p.stat().st_size for p in DEFAULT_DIR.rglob("*") if p.is_file())
    assert size < 10_000_000  # the bound for all shipped data, models included
    cfg = json.loads((DEFAULT_DIR / "task_config.json").read_text())
    assert TaskConfig.from_dict(cfg) == TaskConfig(**{**cfg})


@pytest.mark.parametrize(
    "bad",
    [
        dict(n_customers=2),
        dict(split_fractions=(0.5, 0.5, 0.5)),
        dict(undemonstrated_kinds=("nope",)),
        dict(vocab_size=10),
        dict(labeler_agreement=0.4),
        dict(sloppy_rate=2.0),
    ],
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        TaskConfig(**bad)
