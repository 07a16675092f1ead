"""The main job end to end on the tiny preset: every stage runs, every output loads with the
transformers Auto classes, and report.json holds every key the report promises."""

import json

import pytest
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from agents.cli import main as cli_main
from agents.pipeline.config import PipelineConfig
from agents.pipeline.run import run_pipeline
from textbandit.reward_model import RewardModel

REPORT_KEYS = {
    "preset", "machine", "eval_prompts", "config", "models", "win_rates", "size_ratio", "reward_model",
    "kl_sweep", "alignment_tax", "per_kind", "undemonstrated_kinds", "figure1", "ngram", "ngram_note",
    "seconds", "findings", "plots",
}
MODEL_KEYS = {"params", "gold", "rm_score", "kl_from_sft", "eos_rate", "mean_length", "corpus_loss", "bleu",
              "rouge_l", "elo"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    results = run_pipeline(PipelineConfig(out=str(out), preset="tiny", progress=False, device="cpu"))
    return out, results


def test_report_holds_every_key(tiny_run):
    out, _ = tiny_run
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert {"base", "base_large", "sft", "ppo", "ppo_ptx"} <= set(report["models"])
    for m in report["models"].values():
        assert MODEL_KEYS <= set(m)
    assert {"ppo_vs_sft", "ppo_ptx_vs_sft", "sft_vs_base", "ppo_vs_large_base"} <= set(report["win_rates"])
    assert {"accuracy", "labeler_agreement", "forwards_per_comparison"} <= set(report["reward_model"])
    assert {"no_kl", "default", "curves", "training_curves"} <= set(report["kl_sweep"])
    for label, curve in report["kl_sweep"]["curves"].items():  # held out: point 0 (SFT), then every iteration
        assert curve["iteration"] == [0, 1, 2], label
        assert curve["kl"][0] == pytest.approx(0.0, abs=1e-4)  # point 0 is the reference model itself
        assert all(0 <= g <= 1 for g in curve["gold"])
    assert "## Over-optimisation: the KL sweep" in (out / "report.md").read_text()
    assert {"ppo", "ppo_ptx"} == set(report["alignment_tax"])
    assert len(report["findings"]) == 5 and all(isinstance(f["reproduced"], bool) for f in report["findings"])
    assert "## The paper's findings" in (out / "report.md").read_text()
    for name in report["plots"]:
        assert (out / name).stat().st_size > 1000


def test_every_stage_output_loads_with_auto_classes(tiny_run):
    out, _ = tiny_run
    AutoTokenizer.from_pretrained(out / "task" / "tokenizer")
    for d in ("base_small", "base_large", "sft_small", "ppo/final", "ppo_ptx/final", "ppo_kl0/final"):
        assert AutoModelForCausalLM.from_pretrained(out / d).config.vocab_size > 0
        AutoTokenizer.from_pretrained(out / d) if (out / d / "tokenizer.json").exists() else None
    AutoModel.from_pretrained(out / "reward_model")  # the trunk; the scalar head is reward_head.safetensors
    RewardModel.from_pretrained(out / "reward_model")
    assert (out / "comparisons" / "train.jsonl").stat().st_size > 0


def test_a_finished_pipeline_is_not_run_again(tiny_run):
    out, _ = tiny_run
    results = run_pipeline(PipelineConfig(out=str(out), preset="tiny", progress=False, device="cpu"))
    assert set(results["seconds"]) == {"total"}  # every stage was reused


def test_cli_help_and_bad_options(capsys):
    cli_main(["--help"])
    assert "pipeline" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["pipeline", "--preset", "nope"])
    with pytest.raises(SystemExit):
        cli_main(["pipeline", "--help"])
    assert "--export-defaults" in capsys.readouterr().out


def test_a_stage_missing_an_output_that_later_code_requires_runs_again(tmp_path):
    from agents.pipeline.run import Stages

    calls = []

    def write_curve(d, tag):
        d.mkdir(parents=True, exist_ok=True)
        (d / "curve.json").write_text("{}")
        calls.append(tag)

    stages = Stages(tmp_path)
    stages("ppo", lambda d: calls.append("old"))  # a run by code that wrote no curve.json
    stages("ppo", lambda d: calls.append("reused?"))  # complete as far as it knows: reused
    stages("ppo", lambda d: write_curve(d, "new"), requires=("curve.json",))  # now required: runs again
    stages("ppo", lambda d: calls.append("again?"), requires=("curve.json",))  # and is then reused
    assert calls == ["old", "new"]
    assert set(stages.seconds) == {"ppo"}
