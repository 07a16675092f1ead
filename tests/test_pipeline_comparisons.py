"""The comparison stage samples at the preset's comparison temperature, and keys it only when it
is not the default (so runs collected at 1.0 before the setting existed are reused)."""

import dataclasses

import pytest

import agents.reward.collect
from agents.pipeline import config as C
from agents.pipeline.config import PipelineConfig
from agents.pipeline.run import comparison_stage
from textbandit.task import load_task


class Collected(Exception):
    """Raised by the stand-in for collect_comparisons, carrying its keyword arguments."""


def fake_collect(*args, **kwargs):
    raise Collected(kwargs)


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
