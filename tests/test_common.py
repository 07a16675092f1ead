"""agents.common: schedule values, metric logging, checkpoints and RNG, dropout, the dataclass CLI."""

from __future__ import annotations

import json
import math
import random
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from agents.common import (
    MetricLogger,
    learning_rate,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_dropout,
    set_lr,
    set_rng_state,
    with_dropout,
)
from agents.common.cli import build_parser, field_docs, parse_config
from agents.common.dropout import dropout_fields, dropout_sites, has_dropout
from tests.tiny import tiny_lm


def test_schedule_values_at_chosen_steps():
    lr = lambda s: learning_rate(s, total=110, peak=1e-3, warmup=10, min_ratio=0.1)
    assert lr(0) == pytest.approx(1e-4)  # warmup: (step + 1) / warmup of the peak
    assert lr(4) == pytest.approx(5e-4)
    assert lr(9) == pytest.approx(1e-3)  # end of warmup: the peak
    assert lr(10) == pytest.approx(1e-3)  # start of the cosine
    assert lr(60) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # half-way down the cosine
    assert lr(35) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))))
    assert lr(110) == pytest.approx(1e-4)  # the floor at the end, and after it
    assert lr(500) == pytest.approx(1e-4)
    assert learning_rate(0, 10, 1.0) == 1.0
    linear = lambda s: learning_rate(s, total=110, peak=1.0, warmup=10, decay="linear")  # PPO's default
    assert [linear(s) for s in (0, 9, 10, 60, 110, 200)] == pytest.approx([0.1, 1.0, 1.0, 0.5, 0.0, 0.0])
    assert {learning_rate(s, 110, 2.0, warmup=10, decay="constant") for s in range(10, 200)} == {2.0}
    for bad in (dict(total=0), dict(warmup=-1), dict(min_ratio=2.0), dict(decay="step")):
        with pytest.raises(ValueError):
            learning_rate(0, **{"total": 10, "peak": 1.0, **bad})
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    set_lr(opt, 0.5)
    assert opt.param_groups[0]["lr"] == 0.5


def test_metric_logger_writes_jsonl_and_tensorboard(tmp_path):
    with MetricLogger(tmp_path) as log:
        log.log(1, {"train/loss": 2.0, "x": torch.tensor(3.0)})
        log.log(2, {"train/loss": float("nan")})
        log.log_samples(2, [{"prompt": "p", "response": "r", "score": 0.5}])
        assert log.rows == {"metrics": 2, "samples": 1}
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 1, "train/loss": 2.0, "x": 3.0}, {"step": 2, "train/loss": None}]
    with MetricLogger(tmp_path, tensorboard=False, resume_rows={"metrics": 1}) as log:  # resumed after row 1
        assert log.rows == {"metrics": 1, "samples": 0}
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 1 and not (tmp_path / "samples.jsonl").read_text()
    pytest.importorskip("tensorboard")
    assert any((tmp_path / "tb").iterdir())


def test_checkpoint_atomic_and_rng_roundtrip(tmp_path):
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    save_checkpoint(tmp_path / "ck", {"rng": state, "w": torch.arange(3)}, lambda d: (d / "model.bin").write_text("m"))
    save_checkpoint(tmp_path / "ck", {"rng": state, "w": torch.arange(3)}, lambda d: (d / "model.bin").write_text("m"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temporary or .old folder left
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["model.bin", "trainer_state.pt"]
    loaded = load_checkpoint(tmp_path / "ck")
    set_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert torch.equal(loaded["w"], torch.arange(3))
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def _dropout_models():
    """Tiny GPT-2, Llama and Qwen2 models whose configs turn some dropout on."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    small = dict(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        attention_dropout=0.1,
    )
    gpt2 = tiny_lm(40)
    gpt2.config.resid_pdrop = gpt2.config.embd_pdrop = gpt2.config.attn_pdrop = 0.1
    gpt2 = type(gpt2)(gpt2.config)  # built with GPT-2's usual 0.1 on residual, embedding and attention dropout
    return {
        "gpt2": gpt2,
        "llama": LlamaForCausalLM(LlamaConfig(**small)),
        "qwen2": Qwen2ForCausalLM(Qwen2Config(**small)),
    }


def _train_forward(model, seed: int) -> torch.Tensor:
    ids = torch.arange(2, 14).view(2, 6)
    torch.manual_seed(seed)
    return model.train()(input_ids=ids).logits


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2"])
def test_dropout_setting_holds_for_every_dropout_of_the_architecture(arch):
    model = _dropout_models()[arch]
    assert has_dropout(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Llama and Qwen2 have no residual dropout: a warning says so
        off = with_dropout(model, 0.0)
        on = with_dropout(model, 0.2)
    assert has_dropout(model) and not has_dropout(off)  # a copy; the original keeps its dropout
    assert all(getattr(m, a) == 0.0 for m, a in dropout_sites(off)) and dropout_sites(off)
    assert all(getattr(off.config, f) == 0.0 for f in dropout_fields(off.config))
    assert all(getattr(m, a) == 0.2 for m, a in dropout_sites(on))
    for a, b in zip(model.state_dict().values(), off.state_dict().values()):
        assert torch.equal(a, b)  # same weights
    # behaviour, not fields: with dropout 0 a train-mode forward is the eval-mode one, whatever the seed
    torch.testing.assert_close(_train_forward(off, 0), _train_forward(off, 1), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(_train_forward(off, 0), off.eval()(input_ids=torch.arange(2, 14).view(2, 6)).logits)
    assert not torch.equal(_train_forward(on, 0), _train_forward(on, 1))


def test_dropout_warnings_and_bad_values():
    models = _dropout_models()
    with pytest.warns(UserWarning, match="Qwen2Config has no residual dropout"):
        set_dropout(models["qwen2"], 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        set_dropout(models["gpt2"], 0.2)  # GPT-2 has residual dropout: no warning
        set_dropout(models["qwen2"], 0.0)  # turning dropout off needs no warning
    bare = torch.nn.Linear(2, 2)
    bare.config = type("BareConfig", (), {"model_type": "bare"})()
    with pytest.warns(UserWarning, match="bare has no dropout"):
        assert set_dropout(bare, 0.2) is bare
    for p in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="0 <= p < 1"):
            with_dropout(bare, p)


@dataclass
class _Cfg:
    name: str = ""
    """the name"""
    steps: int = 3
    """how many steps"""
    rate: float | None = None
    """an optional rate"""
    flag: bool = True
    """a switch"""
    ks: tuple[int, int] = (4, 9)
    """a range"""

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError("steps must be >= 1")


def test_cli_from_dataclass():
    assert field_docs(_Cfg)["steps"] == "how many steps"
    cfg = parse_config(_Cfg, ["--name", "x", "--steps", "5", "--rate", "0.5", "--flag", "false", "--ks", "2", "3"])
    assert cfg == _Cfg(name="x", steps=5, rate=0.5, flag=False, ks=(2, 3))
    assert parse_config(_Cfg, ["--rate", "none"]).rate is None
    assert "how many steps" in build_parser(_Cfg).format_help()
    with pytest.raises(SystemExit):
        parse_config(_Cfg, ["--steps", "0"])
