"""The main job end to end on the tiny preset: every stage runs, every output loads with the
transformers Auto classes, and report.json holds every key the report promises."""

import contextlib
import dataclasses
import io
import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from agents.cli import main as cli_main
from agents.cli import pipeline as pipeline_command
from agents.pipeline.config import PipelineConfig
from agents.pipeline.run import run_pipeline
from textbandit.reward_model import RewardModel

REPORT_KEYS = {
    "preset",
    "machine",
    "eval_prompts",
    "config",
    "models",
    "win_rates",
    "size_ratio",
    "reward_model",
    "kl_sweep",
    "alignment_tax",
    "per_kind",
    "undemonstrated_kinds",
    "figure1",
    "ngram",
    "ngram_note",
    "seconds",
    "findings",
    "plots",
}
MODEL_KEYS = {
    "params",
    "gold",
    "rm_score",
    "kl_from_sft",
    "eos_rate",
    "mean_length",
    "corpus_loss",
    "bleu",
    "rouge_l",
    "elo",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny preset, run as `textbandit pipeline` (what it prints is in results["printed"])."""
    out = tmp_path_factory.mktemp("pipeline")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        results = pipeline_command(["--out", str(out), "--preset", "tiny", "--progress", "false", "--device", "cpu"])
    results["printed"] = printed.getvalue()
    return out, results


def test_the_pipeline_shows_each_stage_and_where_its_report_is(tiny_run):
    out, results = tiny_run
    banners = [line for line in results["printed"].splitlines() if line.startswith("== [stage ")]
    assert banners[0].startswith("== [stage 1/12] task: building (0:00:0")
    assert [b.split("]")[1].split(":")[0].strip() for b in banners[-3:]] == ["evaluate", "report", "export"]
    assert banners[-1].startswith("== [stage 12/12] export") and len(banners) == 12
    assert f"The report is {out / 'report.md'}" in results["printed"]


def test_report_holds_every_key(tiny_run):
    out, _ = tiny_run
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert {"base", "base_large", "sft", "ppo", "ppo_ptx"} <= set(report["models"])
    for m in report["models"].values():
        assert MODEL_KEYS <= set(m)
    assert {"sft_again_vs_sft", "ppo_vs_sft", "ppo_ptx_vs_sft", "sft_vs_base", "ppo_vs_large_base"} <= set(
        report["win_rates"]
    )
    for w in report["win_rates"].values():  # every win rate carries its bootstrap interval
        assert w["ci95"][0] <= w["win_rate"] <= w["ci95"][1]
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
    assert set(report["plots"]) == {  # the tiny preset runs one size per method: no Fig. 1
        "ppo_training.png",
        "gold_vs_kl.png",
        "rm_accuracy.png",
    }
    for name in report["plots"]:
        assert (out / name).stat().st_size > 1000
    assert {"labelers"} <= set(report) and report["labelers"]["noises"]
    assert {"corr_bleu_gold", "corr_rouge_gold"} <= set(report["ngram"])
    # the per-kind breakdown keeps the kinds without demonstrations apart
    assert set(report["undemonstrated_kinds"]) == {"avoid_word", "end_with"}


def test_every_stage_output_loads_with_auto_classes(tiny_run):
    out, _ = tiny_run
    AutoTokenizer.from_pretrained(out / "task" / "tokenizer")
    task_vocab = AutoTokenizer.from_pretrained(out / "task" / "tokenizer").get_vocab()
    for d in ("base_small", "base_large", "sft_small", "ppo/final", "ppo_ptx/final", "ppo_kl0/final", "reward_model"):
        assert AutoTokenizer.from_pretrained(out / d).get_vocab() == task_vocab, d
    for d in ("base_small", "base_large", "sft_small", "ppo/final", "ppo_ptx/final", "ppo_kl0/final"):
        assert AutoModelForCausalLM.from_pretrained(out / d).config.vocab_size >= len(task_vocab)
    AutoModelForSequenceClassification.from_pretrained(out / "reward_model")  # plain transformers loads it
    RewardModel.from_pretrained(out / "reward_model")
    assert (out / "comparisons" / "train.jsonl").stat().st_size > 0
    # the export is a task folder the env loads: the run's SFT model as reference, its reward model
    import gymnasium as gym

    env = gym.make("TextBandit-v0", task=str(out / "export"), split="test")
    _, info = env.reset(seed=0)
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert np.isfinite(reward) and 0 <= info["gold_score"] <= 1 and info["prompt"].startswith("instruction :")
    export = AutoModelForCausalLM.from_pretrained(out / "export" / "sft").state_dict()
    sft = AutoModelForCausalLM.from_pretrained(out / "sft_small").state_dict()
    assert all(torch.allclose(export[k], sft[k], atol=1e-2) for k in sft)  # the run's SFT model, stored in fp16


def test_a_finished_pipeline_is_not_run_again(tiny_run):
    out, _ = tiny_run
    first = json.loads((out / "report.json").read_text())
    results = run_pipeline(PipelineConfig(out=str(out), preset="tiny", progress=False, device="cpu"))
    assert results["stages_built"] == []  # every stage was reused
    assert results["seconds"]["invocations"] == 2  # the wall time counts both calls
    assert results["seconds"]["total"] > first["seconds"]["total"]
    assert results["seconds"]["sft_small"] == first["seconds"]["sft_small"]  # as long as it took to build


def test_a_stage_built_with_other_settings_is_refused_or_rebuilt(tiny_run, tmp_path):
    import shutil

    from agents.pipeline.stages import StageChangedError

    out, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    done_before = {p.parent.name: p.read_text() for p in run.glob("*/.done")}
    with pytest.raises(StageChangedError, match=r"stage 'ppo'.*kl_coef was 0.05, now 0.1"):
        run_pipeline(PipelineConfig(out=str(run), preset="tiny", progress=False, device="cpu", kl_coef=0.1))
    with pytest.raises(StageChangedError, match=r"stage 'task'.*task.seed was 0, now 7"):
        run_pipeline(PipelineConfig(out=str(run), preset="tiny", progress=False, device="cpu", seed=7))
    assert {p.parent.name: p.read_text() for p in run.glob("*/.done")} == done_before  # nothing was touched
    results = run_pipeline(
        PipelineConfig(out=str(run), preset="tiny", progress=False, device="cpu", kl_coef=0.1, rebuild=True)
    )
    assert set(results["stages_built"]) == {"ppo", "ppo_ptx"}  # what the KL coefficient feeds, and nothing else
    assert results["config"]["kl_coef"] == 0.1


def test_the_reward_models_batching_is_the_users_choice(tiny_run, tmp_path):
    """--rm-batching pairs reaches the reward-model stage (its key and its trainer) and what reads it."""
    import shutil

    from agents.pipeline.stages import StageChangedError

    out, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    with pytest.raises(StageChangedError, match=r"stage 'reward_model'.*batching was kwise, now pairs"):
        run_pipeline(PipelineConfig(out=str(run), preset="tiny", progress=False, device="cpu", rm_batching="pairs"))
    results = run_pipeline(
        PipelineConfig(out=str(run), preset="tiny", progress=False, device="cpu", rm_batching="pairs", rebuild=True)
    )
    assert {"reward_model", "ppo", "ppo_ptx"} <= set(results["stages_built"])
    assert "sft_small" not in results["stages_built"]
    assert json.loads((run / "reward_model" / "summary.json").read_text())["batching"] == "pairs"
    with pytest.raises(ValueError, match="rm_batching='pair'; use 'kwise'"):
        PipelineConfig(rm_batching="pair")


def test_cli_help_and_bad_options(capsys):
    cli_main(["--help"])
    assert "pipeline" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["pipeline", "--preset", "nope"])
    with pytest.raises(SystemExit):
        cli_main(["pipeline", "--help"])
    assert "--export-defaults" in capsys.readouterr().out


def test_a_stage_missing_an_output_that_later_code_requires_runs_again(tmp_path):
    from agents.pipeline.stages import Stages

    calls = []

    def write_curve(d, tag):
        d.mkdir(parents=True, exist_ok=True)
        (d / "curve.json").write_text("{}")
        calls.append(tag)

    stages = Stages(tmp_path)
    stages("ppo", lambda d: calls.append("old"), {})  # a run by code that wrote no curve.json
    stages("ppo", lambda d: calls.append("reused?"), {})  # complete as far as it knows: reused
    stages("ppo", lambda d: write_curve(d, "new"), {}, requires=("curve.json",))  # now required: runs again
    stages("ppo", lambda d: calls.append("again?"), {}, requires=("curve.json",))  # and is then reused
    assert calls == ["old", "new"]
    assert set(stages.seconds) == {"ppo"}


def test_own_comparisons_are_split_by_prompt_and_leave_agreement_unjudged(tiny_run, tmp_path):
    out, _ = tiny_run
    own = out / "comparisons" / "train.jsonl"  # any K-wise file in the documented schema
    results = run_pipeline(
        PipelineConfig(out=str(tmp_path), preset="tiny", progress=False, device="cpu", comparisons=str(own))
    )
    train = [json.loads(line) for line in (tmp_path / "comparisons_given" / "train.jsonl").read_text().splitlines()]
    val = [json.loads(line) for line in (tmp_path / "comparisons_given" / "validation.jsonl").read_text().splitlines()]
    assert val and train and len(train) + len(val) == len(own.read_text().splitlines())
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in val}  # held out by prompt
    summary = json.loads((tmp_path / "reward_model" / "summary.json").read_text())
    assert summary["val"]["pairs"] > 0  # the accuracy is measured on the held-out part
    assert results["reward_model"]["labeler_agreement"] is None
    rm_row = results["findings"][0]
    assert rm_row["reproduced"] is None and "not measured" in rm_row["measured"]
    assert "not judged" in (tmp_path / "report.md").read_text()


def test_split_by_prompt():
    from agents.pipeline.run import split_by_prompt

    records = [{"prompt": f"p{i % 20}", "responses": ["a", "b"], "ranking": [0, 1]} for i in range(60)]
    train, held = split_by_prompt(records, 0.1, seed=0)
    assert len({r["prompt"] for r in held}) == 2 and len(held) == 6 and len(train) == 54
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in held}
    assert split_by_prompt(records, 0.1, seed=0) == (train, held)  # seeded
    with pytest.raises(ValueError, match="comparisons-val"):
        split_by_prompt(records[:1], 0.1, seed=0)
    with pytest.raises(ValueError, match="--comparisons too"):
        PipelineConfig(comparisons_val="val.jsonl")


def test_a_base_model_with_another_tokenizer_is_refused_before_any_training(tiny_run, tmp_path):
    from tiny import tiny_lm, tiny_tokenizer

    from agents.pipeline.bases import check_base_model

    out, _ = tiny_run
    task_tok = AutoTokenizer.from_pretrained(out / "task" / "tokenizer")
    check_base_model(str(out / "base_small"), task_tok, out / "task" / "tokenizer")  # the task's own: accepted
    other = tiny_tokenizer()
    tiny_lm(len(other)).save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="no tokenizer"):  # weights alone: SFT could not tokenize
        check_base_model(str(tmp_path / "other"), task_tok, out / "task" / "tokenizer")
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="task's tokenizer"):
        check_base_model(str(tmp_path / "other"), task_tok, out / "task" / "tokenizer")
    with pytest.raises(ValueError, match="task's tokenizer"):  # wired in: refused before the base stage
        run_pipeline(
            PipelineConfig(
                out=str(tmp_path / "run"),
                preset="tiny",
                progress=False,
                device="cpu",
                base_model=str(tmp_path / "other"),
            )
        )
    assert not (tmp_path / "run" / "sft_small").exists()


def test_the_users_own_data_files_are_checked_before_any_stage(tmp_path):
    from textbandit.data import DataFormatError

    bad = tmp_path / "demos.jsonl"
    bad.write_text('{"prompt": "instruction : list 2 colors . response :"}\n')
    with pytest.raises(DataFormatError, match="demos.jsonl:1: missing field 'response'"):
        run_pipeline(
            PipelineConfig(
                out=str(tmp_path / "run"), preset="tiny", progress=False, device="cpu", demonstrations=str(bad)
            )
        )
    bad.write_text('{"prompt": "p", "responses": ["a", "b"], "ranking": [0]}\n')
    with pytest.raises(DataFormatError, match="demos.jsonl:1: field 'ranking'"):
        run_pipeline(
            PipelineConfig(out=str(tmp_path / "run"), preset="tiny", progress=False, device="cpu", comparisons=str(bad))
        )
    assert not (tmp_path / "run" / "task").exists()  # nothing was built


def test_reward_functions_reach_the_ppo_stages_and_their_keys():
    """--reward-fn goes into every PPO stage's config and so into its key; runs without it keep their keys."""
    from agents.pipeline.config import PRESETS
    from agents.pipeline.run import ppo_config
    from agents.pipeline.stages import settings_of

    plain = ppo_config(PRESETS["tiny"], "sft", "rm", "-", 2, 0.05, 0)
    with_fn = ppo_config(PRESETS["tiny"], "sft", "rm", "-", 2, 0.05, 0, reward_fn=("m:f",), reward_weights=(1.0, 0.5))
    assert "reward_fn" not in settings_of(plain) and "reward_weights" not in settings_of(plain)
    assert "value_lr_scale" not in settings_of(plain)  # added since: at its default it leaves the key as it was
    assert settings_of(dataclasses.replace(plain, value_lr_scale=2.0))["value_lr_scale"] == 2.0
    assert settings_of(with_fn)["reward_fn"] == ("m:f",) and settings_of(with_fn)["reward_weights"] == (1.0, 0.5)
    with pytest.raises(ValueError, match="give 2 weights, the trained reward model's first"):
        PipelineConfig(reward_fn=("m:f",), reward_weights=(1.0,))


def test_the_presets_ppo_value_function_starts_from_the_reward_model():
    """The paper's critic: a separate value model initialised from the reward model, in every preset's PPO stages."""
    from agents.pipeline.config import PRESETS
    from agents.pipeline.run import ppo_config

    for preset in PRESETS.values():
        assert ppo_config(preset, "sft", "rm", "-", 2, 0.05, 0).value_model == "reward"
    assert ppo_config(PRESETS["tiny"], "sft", "rm", "-", 2, 0.05, 0, value_model="shared").value_model == "shared"


def test_the_kl_sweep_does_not_run_the_default_coefficient_twice():
    """A sweep point equal to the default KL coefficient is the ``ppo`` run itself: no second run of it."""
    from agents.pipeline.config import PRESETS
    from agents.pipeline.run import count_stages, sweep_coefs

    full = PRESETS["full"].kl_sweep
    assert 0.0 in full and len(full) >= 2 and PRESETS["full"].kl_coef not in full
    for default in full[1:]:
        cfg = PipelineConfig(preset="full", kl_coef=default)
        assert sweep_coefs(cfg) == [c for c in full if c != default]
        assert count_stages(cfg) == count_stages(PipelineConfig(preset="full")) - 1
    assert sweep_coefs(PipelineConfig(preset="quick")) == [0.0]


def test_the_default_kl_coefficient_is_the_presets_unless_given():
    from agents.pipeline.config import PRESETS

    for name, preset in PRESETS.items():
        assert PipelineConfig(preset=name).kl_coef == preset.kl_coef
        assert PipelineConfig(preset=name, kl_coef=0.3).kl_coef == 0.3
    assert PRESETS["quick"].kl_coef == 0.2 and PRESETS["full"].kl_coef == 0.05  # as measured (benchmarks/README.md)
    with pytest.raises(ValueError, match="must be > 0"):
        PipelineConfig(kl_coef=0.0)


def test_a_run_starts_from_the_shipped_base_model_and_exports_it(tiny_run, tmp_path, monkeypatch, capsys):
    from agents.pipeline import bases as bases_module
    from agents.pipeline.stages import file_digest

    out, first = tiny_run
    shipped = out / "export"  # a task folder with the run's small base model: the tiny task's "default task"
    assert (shipped / "base-small" / "pretrain_summary.json").exists() and not (shipped / "base-large").exists()
    real = bases_module.load_task
    monkeypatch.setattr(bases_module, "load_task", lambda t: real(shipped if t == "default" else t))
    run = tmp_path / "run"
    results = run_pipeline(PipelineConfig(out=str(run), preset="tiny", progress=False, device="cpu", pretrain=False))
    assert "base_small" not in results["stages_built"] and "base_large" in results["stages_built"]
    assert "base_small: the default task's pretrained one" in capsys.readouterr().out
    sft_inputs = json.loads((run / "sft_small" / ".done").read_text())["inputs"]
    assert sft_inputs["base_small"] == file_digest(shipped / "base-small" / "model.safetensors")
    # the run's export ships the same base model (fp16 both ways: exact), loading as float32
    ours = AutoModelForCausalLM.from_pretrained(run / "export" / "base-small").state_dict()
    theirs = AutoModelForCausalLM.from_pretrained(shipped / "base-small").state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert ours["transformer.wte.weight"].dtype == torch.float32
    # the tiny preset pretrains its own; it starts from the shipped one only when asked
    assert {"base_small", "base_large"} <= set(first["stages_built"])


def test_rm_data_benchmark_runs_on_a_finished_run(tiny_run, tmp_path, capsys):
    """benchmarks/rm_data.py end to end on the tiny run: comparisons from its PPO policy added to the
    run's, a reward model trained on both, PPO against it, and both PPO policies judged."""
    from conftest import load_benchmark

    out, _ = tiny_run
    run_comparisons = sum(1 for _ in open(out / "comparisons" / "train.jsonl"))
    load_benchmark("rm_data").main(
        ["--run", str(out), "--out", str(tmp_path), "--extra", "5", "--extra-from", "ppo", "--threads", "1"]
    )
    printed = capsys.readouterr().out
    assert sum(1 for _ in open(tmp_path / "train.jsonl")) == run_comparisons + 5
    assert json.loads((tmp_path / "reward_model" / "summary.json").read_text())["comparisons"] == run_comparisons + 5
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "ppo" / "final") is not None
    assert "| the run's PPO |" in printed and "| this PPO |" in printed

    again = tmp_path / "again"  # another call trains on the first call's extra comparisons too
    load_benchmark("rm_data").main(["--run", str(out), "--out", str(again), "--add", str(tmp_path / "extra.jsonl")])
    assert (again / "train.jsonl").read_text() == (tmp_path / "train.jsonl").read_text()
