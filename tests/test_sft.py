"""agents.sft: response-only loss, dropout, exact resume, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from agents.common import with_dropout
from agents.sft import SFTConfig, sft_loss_sum, train_sft
from agents.sft.__main__ import main as sft_main
from tests.tiny import tiny_lm, tiny_tokenizer

DEMOS = [
    ("write about the cat .", "the cat eats a fish ."),
    ("list two fish ?", "one fish , two fish"),
    ("say one", "one"),
    ("the big dog eats a red fish .", "the dog likes the fish ."),
    ("a bird", "a small bird runs"),
    ("write about a tree", "the tree is big ."),
    ("say two", "two"),
    ("list three dogs", "one dog , two dog , three dog"),
]


def write_demos(path, demos=DEMOS):
    path.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in demos))
    return str(path)


@torch.no_grad()
def test_loss_counts_response_tokens_only():
    tok, model = tiny_tokenizer(), tiny_lm(len(tiny_tokenizer()))
    examples = [
        (
            tok(p, add_special_tokens=False)["input_ids"],
            tok(r, add_special_tokens=False)["input_ids"] + [tok.eos_token_id],
        )
        for p, r in DEMOS[:4]
    ]
    total, count = sft_loss_sum(model, examples, tok.pad_token_id, "cpu")
    expected, n = 0.0, 0
    for p, r in examples:  # one unpadded row at a time; CE on the response positions only
        ids = torch.tensor([p + r])
        logits = model(input_ids=ids).logits[0, len(p) - 1 : -1]
        expected += float(F.cross_entropy(logits, torch.tensor(r), reduction="sum"))
        n += len(r)
    assert count == n
    assert float(total) == pytest.approx(expected, rel=1e-5)
    # changing prompt tokens' padding partner (a longer neighbour) does not change an example's loss
    alone, _ = sft_loss_sum(model, examples[2:3], tok.pad_token_id, "cpu")
    with_long, _ = sft_loss_sum(model, [examples[2], examples[3]], tok.pad_token_id, "cpu")
    only_3, _ = sft_loss_sum(model, examples[3:4], tok.pad_token_id, "cpu")
    assert float(with_long - only_3) == pytest.approx(float(alone), rel=1e-5)


def test_dropout_active_in_training_only():
    tok = tiny_tokenizer()
    model = with_dropout(tiny_lm(len(tok)), 0.2)
    assert model.config.resid_pdrop == 0.2
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    model.train()
    assert not torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
    model.eval()
    assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)


def tiny_llama(vocab_size: int, seed: int = 0):
    """A tiny Llama: its config has no residual-dropout field, only ``attention_dropout``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


def test_sft_with_default_dropout_on_a_llama(tmp_path):
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer()
    with pytest.warns(UserWarning, match="LlamaConfig has no residual dropout"):
        out = train_sft(_config(tmp_path, "llama", epochs=1), tiny_llama(64), tok)  # dropout=0.2, the default
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type == "llama" and model.config.attention_dropout == 0.2
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    model.train()
    assert not torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
    model.eval()
    assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)


def _config(tmp_path, out, **kw):
    base = dict(
        train=write_demos(tmp_path / "demos.jsonl"),
        val=write_demos(tmp_path / "val.jsonl", DEMOS[:3]),
        out=str(tmp_path / out),
        epochs=2,
        batch_size=2,
        grad_accum=2,
        lr=1e-3,
        warmup_ratio=0.25,
        device="cpu",
        progress=False,
        tensorboard=False,
        dropout=0.2,
    )
    return SFTConfig(**{**base, **kw})


def test_stop_and_resume_ends_where_an_unbroken_run_ends(tmp_path):
    tok = tiny_tokenizer()
    full = train_sft(_config(tmp_path, "full"), tiny_lm(len(tok)), tok)
    cfg = _config(tmp_path, "broken", stop_after=3)  # stops mid-epoch 2 (2 steps per epoch)
    train_sft(cfg, tiny_lm(len(tok)), tok)
    resumed = train_sft(
        _config(tmp_path, "broken", resume_from=str(tmp_path / "broken" / "checkpoint")),
        tiny_lm(len(tok), seed=123),
        tok,
    )
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(full).state_dict()
    b = AutoModelForCausalLM.from_pretrained(resumed).state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["val/loss"] for r in rows if "val/loss" in r].__len__() == 2


def test_cli_trains_and_writes_hf_format(tmp_path):
    tok = tiny_tokenizer()
    base = tmp_path / "base"
    tiny_lm(len(tok)).save_pretrained(base)
    tok.save_pretrained(base)
    out = sft_main(
        [
            "--model",
            str(base),
            "--train",
            write_demos(tmp_path / "d.jsonl"),
            "--out",
            str(tmp_path / "o"),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--device",
            "cpu",
            "--progress",
            "false",
        ]
    )
    assert (tmp_path / "o" / "model.safetensors").is_file() and (tmp_path / "o" / "tokenizer.json").is_file()
    assert (tmp_path / "o" / "metrics.jsonl").is_file() and out == str(tmp_path / "o")


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="--train"):
        SFTConfig(out="x")
    with pytest.raises(ValueError, match="dropout"):
        SFTConfig(train="a", out="b", dropout=1.5)


def test_epoch_choice_by_reward_model(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    import agents.sft.trainer as trainer
    from textbandit.reward_model import RewardModel

    tok = tiny_tokenizer()
    RewardModel.from_causal_lm(tiny_lm(len(tok))).save_pretrained(tmp_path / "rm")
    # the reward model's score of each epoch, plus an offset so that the middle epoch is the best: keeping
    # the last (or the first) epoch's weights instead fails below; the weights are snapshot as they are scored
    offsets, snapshots, real_score = [0.0, 100.0, 50.0], [], trainer.mean_rm_score

    def score(model, *args, **kwargs):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_score(model, *args, **kwargs) + offsets[len(snapshots) - 1]

    monkeypatch.setattr(trainer, "mean_rm_score", score)
    out = train_sft(
        _config(
            tmp_path, "sel", epochs=3, select_by_rm=str(tmp_path / "rm"), select_prompts=3, select_max_new_tokens=4
        ),
        tiny_lm(len(tok)),
        tok,
    )
    rows = [json.loads(line) for line in (tmp_path / "sel" / "metrics.jsonl").read_text().splitlines()]
    scores = [r["val/rm_score"] for r in rows if "val/rm_score" in r]
    assert len(scores) == len(snapshots) == 3 and max(range(3), key=scores.__getitem__) == 1
    saved = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert saved.keys() <= snapshots[1].keys()
    assert all(torch.equal(saved[k], snapshots[1][k]) for k in saved)  # the best epoch's weights
    assert not all(torch.equal(saved[k], snapshots[2][k]) for k in saved)  # not the last epoch's
    assert not (tmp_path / "sel" / "best").exists() and out == str(tmp_path / "sel")


def test_data_longer_than_the_models_positions_and_a_missing_model_are_named(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = tiny_tokenizer()
    short = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2, n_positions=8))
    with pytest.raises(ValueError, match="more than the model's 8 positions; lower max_prompt_len or max_response_len"):
        train_sft(_config(tmp_path, "short", epochs=1), short, tok)
    small = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok) - 4, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises(ValueError, match="vocabulary .* is smaller than the tokenizer's"):
        train_sft(_config(tmp_path, "small", epochs=1), small, tok)
    for name in ("./runs/no_such_base", str(tmp_path / "no_such_base")):
        with pytest.raises(FileNotFoundError, match="no such local folder"):
            train_sft(_config(tmp_path, "missing", epochs=1, model=name))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: missing field 'response'"):  # before any model is loaded
        train_sft(_config(tmp_path, "bad", train=str(bad), model=name))
