"""Simulated labelers (agreement, calibration) and Bradley-Terry / Elo ratings."""

import numpy as np
import pytest

from agents.pipeline.rating import bradley_terry, pairs_from_ranking, win_probability
from textbandit.task import calibrate, measure_agreement
from textbandit.task.labelers import LabelerPool, expected_agreement, make_labelers


def _pool_of_golds(rng, n=3000, k=4):
    # gold scores of K responses, with ties (as real pools of short answers have)
    return np.round(rng.uniform(0, 1, (n, k)), 1).tolist()


def test_agreement_matches_setting_within_two_points():
    rng = np.random.default_rng(0)
    golds = _pool_of_golds(rng)
    mult = rng.uniform(0.7, 1.3, 10)
    for target in (0.73, 0.65, 0.85):
        scale = calibrate(golds, target, mult)
        pool = LabelerPool([scale * m for m in mult])
        assert expected_agreement(golds, pool.noises) == pytest.approx(target, abs=1e-3)
        measured = measure_agreement(pool, golds, rng)
        assert abs(measured - target) < 0.02, (target, measured)


def test_shipped_labelers_agree_about_73_percent():
    from textbandit.task import load_task
    from textbandit.task.build import LABELER_STREAM, calibration_pool

    task = load_task("default")
    rng = np.random.default_rng([task.config.seed, LABELER_STREAM])
    golds = calibration_pool(task.prompt_records("train"), ["the cat runs ."] * 10, rng, n=300)
    assert (
        abs(measure_agreement(task.labelers(), golds, np.random.default_rng(1), 4) - task.config.labeler_agreement)
        < 0.04
    )


def test_ranking_format_and_noise_levels():
    rng = np.random.default_rng(0)
    pool = make_labelers(5, 0.1, 0.3, rng)
    ranking = pool.rank([0.9, 0.1, 0.5], rng, labeler=0)
    assert sorted(ranking) == [0, 1, 2]
    # a labeler with tiny noise ranks by gold
    assert LabelerPool([1e-9]).rank([0.2, 0.9, 0.5], rng) == [2, 0, 1]


def test_calibrate_rejects_impossible_targets():
    with pytest.raises(ValueError, match="agree on only"):
        calibrate([[0.5, 0.5], [0.2, 0.2]], 0.73)
    with pytest.raises(ValueError):
        calibrate([[0.1, 0.9]], 0.4)


def test_bradley_terry_recovers_known_strengths():
    rng = np.random.default_rng(0)
    true = np.array([-300.0, -100.0, 0.0, 150.0, 400.0])
    true -= true.mean()
    comps = []
    for _ in range(6000):
        a, b = rng.choice(5, 2, replace=False)
        win = rng.random() < win_probability(true[a], true[b])
        comps.append((int(a), int(b)) if win else (int(b), int(a)))
    r = bradley_terry(comps, prior=0.0)
    est = np.array([r[i] for i in range(5)])
    assert np.abs(est - true).max() < 40
    assert abs(est.mean()) < 1e-6


def test_pairs_from_ranking_and_draws():
    assert pairs_from_ranking(["a", "b", "c"], [1, 0, 1]) == [("b", "a"), ("b", "c")]
    r = bradley_terry([("x", "y", 0.5)] * 5)
    assert r["x"] == pytest.approx(r["y"])
    with pytest.raises(ValueError):
        bradley_terry([("x",)])
