"""``textbandit collect --rank none``: unranked items for people, for any prompts and any model, no task loaded."""

from __future__ import annotations

import json

import pytest

from agents.cli import main as cli_main
from agents.label.data import load_items
from tests.tiny import tiny_lm, tiny_tokenizer


def test_collect_writes_unranked_items_without_loading_a_task(tmp_path, monkeypatch):
    import textbandit.task

    def no_task(*args, **kwargs):
        raise AssertionError("--rank none must not load a task")

    monkeypatch.setattr(textbandit.task, "load_task", no_task)
    tok = tiny_tokenizer()
    tiny_lm(len(tok)).save_pretrained(tmp_path / "sft")
    tok.save_pretrained(tmp_path / "sft")
    prompts = tmp_path / "prompts.jsonl"  # not the default task's prompts
    prompts.write_text(
        "".join(json.dumps({"prompt": p, "source": "mine"}) + "\n" for p in ["list two fish ?", "a bird"])
    )
    cli_main(
        [
            "collect",
            "--model",
            str(tmp_path / "sft"),
            "--prompts",
            str(prompts),
            "--out",
            str(tmp_path / "items.jsonl"),
            "--rank",
            "none",
            "--k-min",
            "3",
            "--k-max",
            "3",
            "--max-new-tokens",
            "4",
        ]
    )
    records = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in records] == ["list two fish ?", "a bird"]
    assert all("ranking" not in r and len(r["responses"]) == 3 and len(r["ended_with_eos"]) == 3 for r in records)
    items = load_items(tmp_path / "items.jsonl")
    assert items[0]["extra"] == {"source": "mine", "ended_with_eos": records[0]["ended_with_eos"]}


def test_collect_refuses_an_unknown_rank_option():
    from agents.reward.collect import main as collect_main

    with pytest.raises(SystemExit):  # --rank takes only 'task' or 'none'
        collect_main(["--model", "m", "--prompts", "p", "--out", "o", "--rank", "people"])
