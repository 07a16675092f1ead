"""agents.common: schedule values, metric logging, checkpoints and RNG, dropout, the dataclass CLI."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from agents.common import (MetricLogger, cosine_with_warmup, load_checkpoint, rng_state, save_checkpoint_atomic,
                           set_dropout, set_lr, set_rng_state, with_dropout)
from agents.common.cli import build_parser, field_docs, parse_config
from tests.tiny import tiny_lm


def test_schedule_values_at_chosen_steps():
    lr = lambda s: cosine_with_warmup(s, total=110, warmup=10, peak_lr=1e-3, min_ratio=0.1)
    assert lr(0) == pytest.approx(1e-4)  # warmup: (step + 1) / warmup of the peak
    assert lr(4) == pytest.approx(5e-4)
    assert lr(9) == pytest.approx(1e-3)  # end of warmup: the peak
    assert lr(10) == pytest.approx(1e-3)  # start of the cosine
    assert lr(60) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # half-way down the cosine
    assert lr(35) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))))
    assert lr(110) == pytest.approx(1e-4)  # the floor at the end, and after it
    assert lr(500) == pytest.approx(1e-4)
    assert cosine_with_warmup(0, 10, 0, 1.0) == 1.0
    with pytest.raises(ValueError):
        cosine_with_warmup(0, 0, 0, 1.0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    set_lr(opt, 0.5)
    assert opt.param_groups[0]["lr"] == 0.5


def test_metric_logger_writes_jsonl_and_tensorboard(tmp_path):
    with MetricLogger(tmp_path) as log:
        log.log(1, {"train/loss": 2.0, "x": torch.tensor(3.0)})
        log.log(2, {"train/loss": float("nan")})
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 1, "train/loss": 2.0, "x": 3.0}, {"step": 2, "train/loss": None}]
    pytest.importorskip("tensorboard")
    assert any((tmp_path / "tb").iterdir())


def test_checkpoint_atomic_and_rng_roundtrip(tmp_path):
    path = tmp_path / "ck" / "state.pt"
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    save_checkpoint_atomic({"rng": state, "w": torch.arange(3)}, path)
    assert not (tmp_path / "ck" / "state.pt.tmp").exists()
    loaded = load_checkpoint(tmp_path / "ck")  # a directory means its state.pt
    set_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert torch.equal(loaded["w"], torch.arange(3))
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def test_set_dropout_on_config_and_model():
    model = tiny_lm(40)
    assert set_dropout(model.config, 0.3) == ["resid_pdrop"]
    new = with_dropout(tiny_lm(40), 0.2)
    drops = {m.p for n, m in new.named_modules() if isinstance(m, torch.nn.Dropout) and "resid" in n}
    assert drops == {0.2}
    for a, b in zip(tiny_lm(40).state_dict().values(), new.state_dict().values()):
        assert torch.equal(a, b)  # same weights
    with pytest.raises(ValueError, match="residual-dropout"):
        set_dropout(object(), 0.1)
    with pytest.raises(ValueError, match="0 <= p < 1"):
        set_dropout(model.config, 1.0)


def test_dropout_falls_back_on_configs_without_residual_dropout():
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config

    with pytest.warns(UserWarning, match="Qwen2Config has no residual dropout"):
        assert set_dropout(Qwen2Config(), 0.2) == ["attention_dropout"]
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2))
    with pytest.warns(UserWarning, match="attention_dropout"):
        new = with_dropout(llama, 0.2)
    assert new.config.attention_dropout == 0.2 and llama.config.attention_dropout == 0.0
    assert all(a.attention_dropout == 0.2 for a in new.modules() if hasattr(a, "attention_dropout"))
    for a, b in zip(llama.state_dict().values(), new.state_dict().values()):
        assert torch.equal(a, b)
    bare = torch.nn.Linear(2, 2)
    bare.config = type("BareConfig", (), {"model_type": "bare"})()
    with pytest.warns(UserWarning, match="bare has no dropout"):
        assert with_dropout(bare, 0.2) is bare  # nothing to set: the model as it is
    with pytest.raises(ValueError, match="0 <= p < 1"):
        with_dropout(bare, 1.0)


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
