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
        "win_rates": {"ppo_vs_sft": ppo_vs_sft, "ppo_vs_large_base": 0.9},
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
        "figure1": {"SFT": [(1000, 0.5), (10000, 0.6)], "PPO": [(1000, 0.8)]},
        "ngram_note": "note",
    }


def test_findings_follow_the_bars():
    rows = {f["finding"]: f["reproduced"] for f in check_findings(fake_results())}
    assert all(rows.values())
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
