"""benchmarks/best_of_n.py: the re-ranking ceilings it reports are ordered as their definitions say."""

import pytest
from conftest import load_benchmark


def test_best_of_n_rates_are_ordered_and_in_range(capsys):
    r = load_benchmark("best_of_n").main(["--n", "3", "--prompts", "24"])
    # the gold labeler's pick is at least as good as the reward model's among the same samples,
    # and no pick beats an always-perfect policy
    assert 0.0 <= r["best_of_n_rm"] <= r["best_of_n_gold"] <= r["ceiling"] <= 1.0
    assert r["mean_gold"]["best_of_n_rm"] <= r["mean_gold"]["best_of_n_gold"]
    assert r["ceiling"] == pytest.approx(1.0 - r["sft_at_top_gold"] / 2)  # perfect responses tie the SFT's perfect ones
    assert "24 test prompts, n=3" in capsys.readouterr().out
