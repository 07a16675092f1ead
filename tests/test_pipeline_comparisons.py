"""The comparison stage samples at the preset's comparison temperature, and keys it only when it
is not the default (so runs collected at 1.0 before the setting existed are reused); it collects as
many comparisons as the preset asks for, going through the training prompts again with fresh samples
when it asks for more than they are."""

import dataclasses

import pytest
from tiny import tiny_lm, tiny_tokenizer

import agents.reward.collect
from agents.pipeline import config as C
from agents.pipeline.config import PipelineConfig
from agents.pipeline.run import comparison_stage, cycle
from agents.reward.collect import collect_comparisons
from textbandit.task import load_task


class Collected(Exception):
    """Raised by the stand-in for collect_comparisons, carrying its keyword arguments."""


def fake_collect(*args, **kwargs):
    raise Collected(kwargs, args)


@pytest.mark.parametrize("temperature", [1.0, 1.3])
def test_comparisons_sample_at_the_presets_temperature(temperature, monkeypatch, tmp_path):
    monkeypatch.setitem(C.PRESETS, "quick", dataclasses.replace(C.PRESETS["quick"], comparison_temperature=temperature))
    monkeypatch.setattr(agents.reward.collect, "collect_comparisons", fake_collect)
    task, calls = load_task("default"), []

    def stage(name, build, settings, **kw):
        calls.append((name, build, settings))
        return tmp_path

    stage.keys = {"task": "t", "sft_small": "s"}
    comparison_stage(PipelineConfig(preset="quick"), stage, task, str(task.reference_model), "cpu")
    ((name, build, settings),) = calls
    assert name == "comparisons" and ("temperature" in settings) == (temperature != 1.0)
    with pytest.raises(Collected) as got:
        build(tmp_path / "comparisons")
    assert got.value.args[0]["temperature"] == temperature


def test_more_comparisons_than_training_prompts_go_through_them_again(monkeypatch, tmp_path):
    task = load_task("default")
    train = task.prompt_records("train")
    monkeypatch.setitem(C.PRESETS, "quick", dataclasses.replace(C.PRESETS["quick"], comparison_prompts=len(train) + 5))
    monkeypatch.setattr(agents.reward.collect, "collect_comparisons", fake_collect)
    calls = []

    def stage(name, build, settings, **kw):
        calls.append(build)
        return tmp_path

    stage.keys = {"task": "t", "sft_small": "s"}
    comparison_stage(PipelineConfig(preset="quick"), stage, task, str(task.reference_model), "cpu")
    with pytest.raises(Collected) as got:
        calls[0](tmp_path / "comparisons")
    prompts = got.value.args[1][2]
    assert len(prompts) == len(train) + 5  # not silently cut to the split's size
    assert prompts[: len(train)] == train and prompts[len(train) :] == train[:5]


def test_cycle_refuses_an_empty_split():
    assert cycle([{"prompt": "a"}], 0) == []
    with pytest.raises(ValueError, match="split is empty"):
        cycle([], 3)


def test_a_prompt_met_twice_gets_fresh_samples():
    tok = tiny_tokenizer()
    recs = collect_comparisons(
        tiny_lm(len(tok)), tok, ["write about cat ."] * 2, 4, lambda p, r, e: list(range(len(r))), max_new_tokens=12
    )
    assert recs[0]["prompt"] == recs[1]["prompt"] and recs[0]["responses"] != recs[1]["responses"]
