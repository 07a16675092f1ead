"""The pretraining command, end to end with tiny settings."""

import json

from transformers import AutoModelForCausalLM

from textbandit.task import TaskConfig, load_default_task
from textbandit.task.build import build
from textbandit.task.lm import sample


def test_pretrain_command_saves_a_loadable_model(tmp_path, capsys):
    from agents.pretrain import main

    build(tmp_path / "task", TaskConfig(n_customers=6, prompts_per_customer=3, corpus_texts=300))
    out = tmp_path / "base"
    args = ["--size", "small", "--task", str(tmp_path / "task"), "--steps", "3", "--batch-size", "4", "--warmup", "1"]
    main(args + ["--out", str(tmp_path / "quiet"), "--progress", "false"])
    assert "pretrain small" not in capsys.readouterr().err  # --progress false: no bar
    main(args + ["--out", str(out)])
    assert "pretrain small" in capsys.readouterr().err
    summary = json.loads((out / "pretrain_summary.json").read_text())
    assert 0.5e6 < summary["parameters"] < 1.5e6 and summary["validation_perplexity"] > 1
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tok = load_default_task(tmp_path / "task").tokenizer()
    texts, ended = sample(model, tok, ["instruction : list 2 colors . response :"] * 3,
                          max_new_tokens=5)
    assert len(texts) == 3 and len(ended) == 3


def test_cached_sampling_matches_recomputation():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = load_default_task().tokenizer()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32,
                                       n_layer=2, n_head=2))
    prompts = ["instruction : list 2 colors . response :",
               "instruction : write about animals in at most 5 words . response :"]
    a = sample(model, tok, prompts, max_new_tokens=8, seed=3, use_cache=True)
    b = sample(model, tok, prompts, max_new_tokens=8, seed=3, use_cache=False)
    assert a == b
