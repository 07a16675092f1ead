"""The pretraining command, end to end with tiny settings."""

import json

from transformers import AutoModelForCausalLM

from textbandit.task import TaskConfig, load_default_task
from textbandit.task.build import build
from textbandit.task.lm import sample


def test_pretrain_command_saves_a_loadable_model(tmp_path):
    from agents.pretrain import main

    build(tmp_path / "task", TaskConfig(n_customers=6, prompts_per_customer=3, corpus_texts=300))
    out = tmp_path / "base"
    main(["--size", "small", "--out", str(out), "--task", str(tmp_path / "task"),
          "--steps", "3", "--batch-size", "4", "--warmup", "1"])
    summary = json.loads((out / "pretrain_summary.json").read_text())
    assert 0.5e6 < summary["parameters"] < 1.5e6 and summary["validation_perplexity"] > 1
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tok = load_default_task(tmp_path / "task").tokenizer()
    texts, ended = sample(model, tok, ["instruction : list 2 colors . response :"] * 3,
                          max_new_tokens=5)
    assert len(texts) == 3 and len(ended) == 3
