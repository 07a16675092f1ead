"""The pretraining command, end to end with tiny settings."""

import json

from transformers import AutoModelForCausalLM

from agents.sampling import sample_texts
from textbandit.task import TaskConfig, load_task
from textbandit.task.build import build


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
    tok = load_task(tmp_path / "task").load_tokenizer()
    texts, ended = sample_texts(model, tok, ["instruction : list 2 colors . response :"] * 3, max_new_tokens=5)
    assert len(texts) == 3 and len(ended) == 3


def test_pretrain_with_bf16_autocast_on_a_cpu_keeps_float32_weights(tmp_path):
    import torch

    from agents.pretrain import PretrainArgs, pretrain

    build(tmp_path / "task", TaskConfig(n_customers=6, prompts_per_customer=3, corpus_texts=300))
    runs = {}
    for bf16 in (True, False):
        out = tmp_path / f"bf16_{bf16}"
        args = dict(size="small", task=str(tmp_path / "task"), out=str(out), steps=3, batch_size=4, warmup=1)
        summary = pretrain(PretrainArgs(**args, cpu_bf16=bf16, device="cpu", progress=False))
        assert summary["precision"] == ("bf16 autocast" if bf16 else "float32")
        runs[bf16] = (AutoModelForCausalLM.from_pretrained(str(out)), summary["validation_perplexity"])
    w_bf16, w_fp32 = (runs[b][0].transformer.h[0].mlp.c_fc.weight for b in (True, False))
    assert w_bf16.dtype == torch.float32  # autocast computes in bf16; the weights it updates stay float32
    assert not torch.equal(w_bf16, w_fp32)  # the bf16 products took effect
    assert abs(runs[True][1] / runs[False][1] - 1) < 0.05  # and learned the same


def test_cached_sampling_matches_recomputation():
    """The sampler's KV cache gives the tokens a full recomputation of every step gives (same draws)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from agents.sampling import draw, sample
    from textbandit.layout import encode_prompt, left_pad, position_ids

    tok = load_task("default").load_tokenizer()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2)).eval()
    prompts = [
        "instruction : list 2 colors . response :",
        "instruction : write about animals in at most 5 words . response :",
    ]
    ids, mask = left_pad([encode_prompt(tok, p, 32) for p in prompts], tok.pad_token_id)
    cached = sample(model, ids, mask, 8, tok.eos_token_id, tok.pad_token_id, generator=torch.Generator().manual_seed(3))
    g, seq, seq_mask, done, out = torch.Generator().manual_seed(3), ids, mask, torch.zeros(2, dtype=torch.bool), []
    with torch.no_grad():
        for _ in range(8):  # no cache: the whole sequence again at every step
            logits = model(input_ids=seq, attention_mask=seq_mask, position_ids=position_ids(seq_mask)).logits[:, -1]
            token = torch.where(done, tok.pad_token_id, draw(torch.softmax(logits.float(), dim=-1), g))
            out.append(token)
            done |= token == tok.eos_token_id
            seq, seq_mask = (
                torch.cat([seq, token[:, None]], 1),
                torch.cat([seq_mask, torch.ones(2, 1, dtype=torch.long)], 1),
            )
            if done.all():
                break
    recomputed = torch.stack(out, 1)
    assert torch.equal(cached[:, : recomputed.shape[1]], recomputed)
