"""benchmarks/calibrate.py's sft_fit: does the SFT model meet its demonstrations' constraints?"""

import json
from pathlib import Path

import numpy as np
from conftest import load_benchmark
from transformers import AutoModelForCausalLM

from textbandit.task import instructions as I
from textbandit.task import load_task
from textbandit.task.gold import gold_details


def test_constraint_names_cover_every_kind():
    calibrate = load_benchmark("calibrate")
    assert set(calibrate.CONSTRAINTS) == set(I.KINDS)
    task = load_task("default")
    seen = set()
    for r in task.prompt_records("train"):
        ins = I.parse(r["prompt"])
        if ins.kind not in seen:  # one name per entry of constraints(), for every kind
            assert len(calibrate.CONSTRAINTS[ins.kind]) == len(I.constraints(ins, [["the", "cat", "sits"]]))
            seen.add(ins.kind)
    assert seen == set(I.KINDS)


def test_sft_fit_counts_demonstrations_and_samples(one_thread):
    calibrate = load_benchmark("calibrate")
    task = load_task("default")
    sft = AutoModelForCausalLM.from_pretrained(str(task.reference_model)).eval()
    r = calibrate.sft_fit(task, sft, per_kind=5, seed=0)
    demonstrated = set(I.KINDS) - set(task.config.undemonstrated_kinds)
    assert set(r) == demonstrated
    for kind, row in r.items():
        assert row["n"] == 5 and list(row["met"]) == list(calibrate.CONSTRAINTS[kind])
        demos = [d for d in task.demonstrations("train") if I.parse(d["prompt"]).kind == kind][:5]
        details = [gold_details(d["prompt"], d["response"]) for d in demos]
        for j, m in enumerate(row["met"].values()):
            assert m["demonstrations"] == np.mean([g["constraints"][j] for g in details])
            assert 0.0 <= m["sft"] <= 1.0
        assert row["gold"]["demonstrations"] == np.mean([g["score"] for g in details])


def test_sft_fit_counts_an_empty_sample_as_meeting_nothing(monkeypatch):
    import agents.sampling

    calibrate = load_benchmark("calibrate")
    monkeypatch.setattr(
        agents.sampling, "sample_texts", lambda m, t, prompts, n, seed: ([""] * len(prompts), [True] * len(prompts))
    )
    r = calibrate.sft_fit(load_task("default"), None, per_kind=3, seed=0)
    assert all(m["sft"] == 0.0 for row in r.values() for m in row["met"].values())
    assert all(row["gold"]["sft"] == 0.0 and row["gold"]["demonstrations"] > 0 for row in r.values())


def test_differing_pairs_counts_each_constraint_by_hand():
    calibrate = load_benchmark("calibrate")
    prompt = "instruction : write about food . include a color . response :"
    record = {"prompt": prompt, "responses": ["the cake is red .", "the pear is big .", "the cake is blue .", ""]}
    share = calibrate.differing_pairs([record], ["include_word"])["include_word"]
    # "has a color": red, no, blue, none -> pairs (0,1) (0,3) (1,2) (2,3) differ: 4 of 6;
    # "on topic": food words in the first three, none in the empty one -> 3 of 6
    assert share == {"on topic": 3 / 6, "has a word of the category": 4 / 6}


def test_rm_vs_gold_orders_pairs_by_what_differs(monkeypatch, tmp_path, one_thread):
    import shutil

    import torch

    import agents.reward.data

    calibrate = load_benchmark("calibrate")
    task = load_task("default")
    run = tmp_path / "run"
    (run / "comparisons").mkdir(parents=True)
    shutil.copytree(task.reward_model, run / "reward_model")
    prompt = "instruction : write about food . include a color . response :"
    # gold 1.0, 0.7 (no color), 0.5 (a cake that runs: nonsense), 0.35 (both)
    responses = ["the cake is red .", "the cake is big .", "the red cake runs .", "the cake runs ."]
    details = [gold_details(prompt, r) for r in responses]
    assert [round(d["score"], 2) for d in details] == [1.0, 0.7, 0.5, 0.35]
    record = {"prompt": prompt, "responses": responses, "ranking": [0, 1, 2, 3], "ended_with_eos": [True] * 4}
    (run / "comparisons" / "validation.jsonl").write_text(json.dumps(record) + "\n")
    # a reward model that orders them A > C > B > D: wrong on B against C alone
    fake = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    monkeypatch.setattr(agents.reward.data, "score_comparisons", lambda rm, comps, pad, device: (fake, None, None))
    r = calibrate.rm_vs_gold(run, task)
    assert r["all"] == {"accuracy": 5 / 6, "pairs": 6}
    assert r["explicit, not sense"] == {"accuracy": 1.0, "pairs": 2}  # A-B, C-D
    assert r["not explicit, sense"] == {"accuracy": 1.0, "pairs": 2}  # A-C, B-D
    assert r["explicit, sense"] == {"accuracy": 0.5, "pairs": 2}  # A-D right, B-C wrong
    assert "not explicit, not sense" not in r


def test_report_prints_the_run_ppo_win_rate_per_kind(capsys):
    calibrate = load_benchmark("calibrate")
    gold = {"sft": np.array([0.5, 0.5, 1.0, 0.0]), "ppo": np.array([1.0, 0.5, 0.0, 1.0])}
    kinds = ["topic", "topic", "avoid_word", "avoid_word"]
    wins = calibrate.win_table(gold["ppo"], gold["sft"], kinds, seed=0)
    assert wins["all"]["win_rate"] == (1 + 0.5 + 0 + 1) / 4  # ties count half
    assert wins["topic"]["win_rate"] == 0.75 and wins["avoid_word"]["win_rate"] == 0.5
    parts = {k: 0.5 for k in calibrate.PARTS}
    calibrate.report({"run": "r", "machine": "m", "components": {"sft": parts, "ppo": parts, "ppo_over_sft": wins}})
    out = capsys.readouterr().out
    assert "run's PPO over SFT" in out
    assert "| topic | 75.0%" in out and "| avoid_word | 50.0%" in out and "| all | 62.5%" in out


def test_ppo_gold_trains_on_one_kinds_prompts_when_asked(monkeypatch, tmp_path, one_thread):
    import types

    import pytest

    import agents.ppo.learner
    from agents.pipeline.config import PRESETS
    from textbandit.vector_env import TextBanditVectorEnv

    calibrate = load_benchmark("calibrate")
    task = load_task("default")
    sft = AutoModelForCausalLM.from_pretrained(str(task.reference_model)).eval()
    seen = {}

    def fake_train(cfg, env_kwargs=None, **kw):  # what PPO would train on; the SFT model stands in for its result
        seen.update(env_kwargs, kl_coef=cfg.kl_coef)
        return {"policy": types.SimpleNamespace(lm=sft)}

    monkeypatch.setattr(agents.ppo.learner, "train", fake_train)
    monkeypatch.syspath_prepend(str(Path(calibrate.__file__).parent))  # ppo_gold imports ppo_oracle, as a script does
    envs = TextBanditVectorEnv(num_envs=4, task=task, split="test")
    idx = np.arange(8)
    kinds = calibrate.by_kind(task, [envs.prompts[i] for i in idx])
    run = tmp_path / "run"
    (run / "sft_small").mkdir(parents=True)
    r = calibrate.ppo_gold(run, task, PRESETS["tiny"], envs, sft, idx, kinds, 0, 1, ["list_category"])
    want = [p["prompt"] for p in task.prompt_records("train") if p["kind"] == "list_category"]
    assert seen["prompts"] == want and len(want) > 0 and r["trained_on"] == "list_category"
    assert seen["reward_model"] is None and len(seen["reward_fns"]) == 1 and seen["kl_coef"] == 0.05
    assert calibrate.ppo_gold(run, task, PRESETS["tiny"], envs, sft, idx, kinds, 0, 1, kl_coef=0.2)["kl_coef"] == 0.2
    assert seen["kl_coef"] == 0.2  # the run's default KL coefficient reaches PPO
    seen.clear()
    assert calibrate.ppo_gold(run, task, PRESETS["tiny"], envs, sft, idx, kinds, 0, 1)["trained_on"] == "all"
    assert "prompts" not in seen
    calibrate.ppo_gold(run, task, PRESETS["tiny"], envs, sft, idx, kinds, 0, 1, ["topic", "list_category"])
    both = [p["prompt"] for p in task.prompt_records("train") if p["kind"] in ("topic", "list_category")]
    assert seen["prompts"] == both
    with pytest.raises(SystemExit, match="no training prompt of that kind"):
        calibrate.ppo_gold(run, task, PRESETS["tiny"], envs, sft, idx, kinds, 0, 1, ["topic", "haiku"])
