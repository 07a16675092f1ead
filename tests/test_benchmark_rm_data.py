"""benchmarks/rm_data.py: the comparisons it adds are the policy's samples ranked by the run's labelers,
and its tie count is over every pair of a comparison."""

import numpy as np
from conftest import load_benchmark
from transformers import AutoModelForCausalLM

from textbandit.task import LabelerPool, load_task

rm_data = load_benchmark("rm_data")


def test_extra_comparisons_are_the_policys_samples_ranked_by_gold_through_the_labelers():
    task = load_task("default")
    policy = AutoModelForCausalLM.from_pretrained(str(task.reference_model))
    records = task.prompt_records("train")[:3]
    got = rm_data.extra_comparisons(task, policy, LabelerPool([1e-9, 1e-9]), records, (4, 5), seed=0)
    assert [r["prompt"] for r in got] == [r["prompt"] for r in records]
    for r in got:
        assert 4 <= len(r["responses"]) <= 5 and sorted(r["ranking"]) == list(range(len(r["responses"])))
        gold = task.gold_scores([r["prompt"]] * len(r["responses"]), r["responses"], r["ended_with_eos"])
        by_rank = [gold[i] for i in np.argsort(r["ranking"])]  # best first, as near-noiseless labelers see it
        assert by_rank == sorted(gold, reverse=True)
    again = rm_data.extra_comparisons(task, policy, LabelerPool([1e-9, 1e-9]), records, (4, 5), seed=1)
    assert [r["responses"] for r in again] != [r["responses"] for r in got]  # the seed is the samples'


def test_gold_ties_counts_every_pair():
    task = load_task("default")
    p = "instruction : list 2 colors . response :"
    good, bad = "red and blue .", "red and red ."
    assert task.gold_scores([p, p], [good, bad]) != task.gold_scores([p, p], [good, good])
    assert rm_data.gold_ties(task, [{"prompt": p, "responses": [good, good, bad]}]) == 1 / 3


def test_mean_score_model_scores_the_mean_of_its_members_and_its_copy_trains_the_first(tmp_path):
    import copy

    import torch

    from agents.ppo.models import value_model_from
    from textbandit.reward_model import RewardModel

    task = load_task("default")
    paths = []
    for seed in (0, 1):  # two reward models that differ in their heads
        torch.manual_seed(seed)
        rm = RewardModel.from_causal_lm(str(task.reference_model))
        rm.save_pretrained(tmp_path / f"rm{seed}")
        paths.append(str(tmp_path / f"rm{seed}"))
    members = [RewardModel.from_pretrained(p).eval() for p in paths]
    ensemble = rm_data.mean_score_model(paths)
    ids = torch.tensor([[5, 6, 7, 8], [5, 9, 10, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.no_grad():
        scores = [m.score(ids, mask) for m in members]
        assert not torch.allclose(scores[0], scores[1])
        torch.testing.assert_close(ensemble.score(ids, mask), (scores[0] + scores[1]) / 2)
        critic = value_model_from(ensemble)  # PPO's critic: a copy whose weights are the first member's alone
        torch.testing.assert_close(critic(ids, mask), value_model_from(members[0])(ids, mask))
    assert sum(p.numel() for p in critic.parameters()) == sum(p.numel() for p in members[0].parameters())
    assert copy.deepcopy(ensemble).others[0] is not ensemble.others[0]
