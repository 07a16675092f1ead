"""Which base models a pipeline run starts from: the default task's shipped small one (the quick
preset, as InstructGPT started from a pretrained GPT-3), or its own pretrained ones (--pretrain true,
the full and tiny presets, a size the task does not ship, or a task the shipped one does not fit)."""

import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agents.pipeline.bases import shipped_bases
from agents.pipeline.config import PRESETS, PipelineConfig
from agents.pretrain import SIZES
from textbandit.task import TaskConfig, load_task
from textbandit.task.build import build


@pytest.fixture(scope="module")
def other_task(tmp_path_factory):
    """A small task of another size, whose tokenizer differs from the default task's."""
    path = tmp_path_factory.mktemp("task")
    build(path, TaskConfig(n_customers=20, prompts_per_customer=6, corpus_texts=400))
    task = load_task(path)
    assert task.load_tokenizer().get_vocab() != load_task("default").load_tokenizer().get_vocab()
    return task


def test_the_quick_preset_starts_from_the_shipped_small_base_of_the_default_task():
    default = load_task("default")
    small = {"small": str(default.path / "base-small")}
    assert default.base_model("large") is None  # 21 MB in fp16: the shipped data stays under 10 MB
    assert shipped_bases(PipelineConfig(preset="quick"), default, ["large", "small"]) == small
    assert shipped_bases(PipelineConfig(preset="quick", pretrain=True), default, ["large", "small"]) == {}
    assert shipped_bases(PipelineConfig(preset="full"), default, ["large", "small"]) == {}
    assert shipped_bases(PipelineConfig(preset="full", pretrain=False), default, ["small"]) == small
    with pytest.raises(ValueError, match="ships no base model"):
        shipped_bases(PipelineConfig(preset="quick", pretrain=False), default, ["large"])


def test_a_task_the_shipped_bases_do_not_fit_is_pretrained_for_or_refused(other_task, capsys):
    assert shipped_bases(PipelineConfig(preset="quick"), other_task, ["large", "small"]) == {}
    printed = capsys.readouterr().out
    assert "pretraining the base models" in printed and "pretrained with another tokenizer" in printed
    with pytest.raises(ValueError, match="--pretrain true"):
        shipped_bases(PipelineConfig(preset="quick", pretrain=False), other_task, ["small"])


def test_a_rebuilt_default_task_does_not_start_from_a_base_of_its_old_tokenizer(other_task, tmp_path, monkeypatch):
    """The default task rebuilt with a new tokenizer (``textbandit task --out textbandit/assets/default``)
    while its shipped base keeps the old one: the base is checked against the run's task, not the
    default task's tokenizer against itself."""
    from agents.pipeline import bases

    rebuilt = tmp_path / "default"
    shutil.copytree(load_task("default").path, rebuilt)
    shutil.rmtree(rebuilt / "tokenizer")
    shutil.copytree(other_task.path / "tokenizer", rebuilt / "tokenizer")
    monkeypatch.setattr(bases, "load_task", lambda name: load_task(rebuilt))
    assert shipped_bases(PipelineConfig(preset="quick"), load_task(rebuilt), ["large", "small"]) == {}
    with pytest.raises(ValueError, match="base-small was pretrained with another tokenizer"):
        shipped_bases(PipelineConfig(preset="quick", pretrain=False), load_task(rebuilt), ["small"])


def test_the_shipped_base_is_what_the_quick_preset_would_pretrain():
    default = load_task("default")
    vocab = default.load_tokenizer().get_vocab()
    path = default.base_model("small")
    summary = json.loads((default.path / "base-small" / "pretrain_summary.json").read_text())
    assert summary["args"]["steps"] == PRESETS["quick"].pretrain_steps["small"] and summary["args"]["seed"] == 0
    assert summary["args"]["size"] == "small" and summary["args"]["lr"] == 3e-3
    model = AutoModelForCausalLM.from_pretrained(path)
    assert {k: getattr(model.config, k) for k in SIZES["small"]} == SIZES["small"]
    assert model.dtype == torch.float32 and model.config.vocab_size == len(vocab)
    assert AutoTokenizer.from_pretrained(path).get_vocab() == vocab
    assert summary["parameters"] == sum(p.numel() for p in model.parameters())


def test_the_default_task_rewards_with_the_quick_presets_kl_coefficient():
    """The shipped task is the quick preset's export, so TextBandit-v0's KL penalty is that preset's."""
    import gymnasium as gym

    assert load_task("default").kl_coef == PRESETS["quick"].kl_coef != TaskConfig().kl_coef
    assert gym.make("TextBandit-v0").unwrapped.kl_coef == PRESETS["quick"].kl_coef
