import json

import pytest

from agents.pipeline.findings import check_findings, overoptimisation, smooth
from agents.pipeline.report import write_report


def test_smooth_is_a_trailing_mean():
    assert smooth([1, 2, 3, 4], window=2) == [1, 1.5, 2.5, 3.5]


def test_overoptimisation_detects_gold_falling_while_proxy_rises():
    proxy = [0, 1, 2, 3, 4, 5, 6, 7]
    gold = [0.3, 0.4, 0.5, 0.6, 0.5, 0.4, 0.3, 0.2]
    r = overoptimisation(proxy, gold, window=1)
    assert r["overoptimised"] and r["gold_peak_iteration"] == 3
    assert r["gold_drop"] == pytest.approx(0.4)
    assert not overoptimisation(proxy, [0.3, 0.4, 0.5, 0.6, 0.6, 0.61, 0.62, 0.62], window=1)["overoptimised"]
    # gold falls but so does the proxy: not the proxy being gamed
    assert not overoptimisation([7, 6, 5, 4, 3, 2, 1, 0], gold, window=1)["overoptimised"]


def fake_results(acc=0.72, agree=0.73, ppo_vs_sft=0.8):
    curve = {"iteration": [0, 1, 2], "score": [0, 1, 2], "kl": [0, 1, 2], "gold": [0.5, 0.6, 0.6]}
    models = {m: {"params": 1000, "gold": 0.5, "kl_from_sft": 1.0} for m in ("base", "sft", "ppo", "ppo_ptx")}
    return {
        "preset": "test",
        "machine": "test",
        "seconds": {"total": 1.0},
        "eval_prompts": 3,
        "models": models,
        "win_rates": {
            "sft_again_vs_sft": {"win_rate": 0.5, "ci95": [0.45, 0.55]},
            "ppo_vs_sft": {"win_rate": ppo_vs_sft, "ci95": [ppo_vs_sft - 0.04, ppo_vs_sft + 0.04]},
            "ppo_vs_large_base": {"win_rate": 0.9, "ci95": [0.86, 0.94]},
        },
        "size_ratio": 10.0,
        "reward_model": {"accuracy": acc, "labeler_agreement": agree, "ablation": {"pairs, 1 epoch": 0.7}},
        "kl_sweep": {
            "no_kl": overoptimisation([0, 1, 2, 3], [0.5, 0.6, 0.4, 0.3], window=1),
            "default": overoptimisation([0, 1, 2, 3], [0.5, 0.6, 0.6, 0.62], window=1),
            "curves": {"kl_coef=0": curve, "kl_coef=0.05": curve},
        },
        "alignment_tax": {"ppo": 0.2, "ppo_ptx": 0.05},
        "per_kind": {"topic": {"sft": 0.5, "ppo": 0.7}, "end_with": {"sft": 0.1}},
        "undemonstrated_kinds": ["end_with"],
        "figure1": {"SFT": [(1000, 0.5, 0.45, 0.55), (10000, 0.6, 0.55, 0.65)], "PPO": [(1000, 0.8, 0.75, 0.85)]},
        "ngram_note": "note",
    }


def test_findings_follow_the_bars():
    rows = {f["finding"]: f["reproduced"] for f in check_findings(fake_results())}
    assert all(rows.values())
    low = fake_results(ppo_vs_sft=0.66)
    low["win_rates"]["ppo_vs_sft"]["ci95"] = [0.59, 0.72]  # above the bar, but not resolved from 60%
    assert not check_findings(low)[1]["reproduced"]
    rows = check_findings(fake_results(acc=0.80, ppo_vs_sft=0.6))
    assert not rows[0]["reproduced"] and not rows[1]["reproduced"]
    assert "rm_probes.py" in rows[0]["diagnose"] and "ppo_oracle.py" in rows[1]["diagnose"]
    assert not any("diagnose" in row for row in rows[2:])  # reproduced: nothing to diagnose


def test_report_says_what_to_run_where_a_finding_did_not_reproduce(tmp_path):
    write_report(fake_results(ppo_vs_sft=0.6), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert f"benchmarks/ppo_oracle.py --run {tmp_path}" in md and "rm_probes.py" not in md
    write_report(fake_results(), tmp_path)
    assert "Every finding reproduced." in (tmp_path / "report.md").read_text()


def test_write_report_writes_json_markdown_and_plots(tmp_path):
    write_report(fake_results(), tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert len(data["findings"]) == 5
    md = (tmp_path / "report.md").read_text()
    assert "end_with (no demonstrations)" in md and "PPO-ptx pays a smaller alignment tax" in md
    for name in data["plots"]:
        assert (tmp_path / name).stat().st_size > 1000


def test_report_words_and_intervals(tmp_path):
    r = fake_results()
    md_rows = {f["finding"]: f["measured"] for f in check_findings(r)}
    assert (
        "gold fell 0.300 from its peak while the proxy rose"
        in md_rows["the KL penalty holds off reward over-optimisation"]
    )
    assert "+" not in md_rows["the KL penalty holds off reward over-optimisation"]  # signs that match the words
    assert "80.0% (95% interval 76.0-84.0%)" in md_rows["PPO is preferred over its SFT start"]
    assert "SFT against another draw of itself: 50.0%" in md_rows["PPO is preferred over its SFT start"]
    r["alignment_tax"] = {"ppo": 0.2, "ppo_ptx": -0.1}
    assert "PPO-ptx ends below SFT" in check_findings(r)[-1]["measured"]
    write_report(fake_results(), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| ppo vs sft | 0.800 | 0.760-0.840 |" in md and "sft again vs sft" in md
    assert (tmp_path / "figure1_win_rate_by_size.png").exists()  # SFT at two sizes
    one_size = fake_results()
    one_size["figure1"] = {"SFT": [(1000, 0.5, 0.45, 0.55)], "PPO": [(1000, 0.8, 0.75, 0.85)]}
    data = write_report(one_size, tmp_path / "one")
    assert "figure1_win_rate_by_size.png" not in data["plots"]  # no figure of one point per method


def test_report_gives_each_runs_critic_explained_variance_over_its_last_third(tmp_path):
    r = fake_results()
    ev = [None, -0.3, 0.1, 0.2, 0.4, 0.5, 0.6, 0.55, 0.65]  # 8 values: the last third is the last 2
    curve = lambda n: {k: [0.5] * n for k in ("score", "kl", "gold")}  # noqa: E731
    r["kl_sweep"]["training_curves"] = {
        "kl_coef=0.05": {"iteration": list(range(1, 10)), "explained_variance": ev, **curve(9)},
        "kl_coef=0": {"iteration": [1, 2], "explained_variance": [0.2, 0.3], **curve(2)},  # the last of 2
    }
    write_report(r, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "kl_coef=0.05: 0.60; kl_coef=0: 0.30." in md  # (0.55 + 0.65) / 2
    del r["kl_sweep"]["training_curves"]  # a report of an older run: no line
    write_report(r, tmp_path)
    assert "The critic" not in (tmp_path / "report.md").read_text()
