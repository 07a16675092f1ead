"""benchmarks/rm_probes.py's minimal pairs: two responses that differ only in the category the prompt names."""

import shutil
from pathlib import Path

from conftest import load_benchmark

from textbandit.task import gold
from textbandit.task.instructions import parse
from textbandit.task.language import COLORS

DEFAULT = Path(__file__).resolve().parents[1] / "textbandit" / "assets" / "default"


def test_minimal_pairs_differ_only_in_the_color_and_gold_prefers_the_one_holding_it():
    records = load_benchmark("rm_probes").minimal_pairs(60, seed=0)
    assert len(records) == 60
    firsts = set()
    for r in records:
        ins = parse(r["prompt"])
        assert ins.kind == "include_word" and ins.params["category"] == "colors" and sorted(r["ranking"]) == [0, 1]
        best, worse = (r["responses"][r["ranking"].index(i)].split() for i in (0, 1))
        assert set(best) & set(COLORS) and not set(worse) & set(COLORS) and len(best) == len(worse)
        changed = [(a, b) for a, b in zip(best, worse) if a != b]
        assert changed and all(a in COLORS for a, _ in changed) and len({b for _, b in changed}) == 1
        g_best, g_worse = (gold.gold_details(ins, " ".join(x)) for x in (best, worse))
        assert g_best["grammar"] == g_worse["grammar"] == 1.0
        assert g_best["score"] > g_worse["score"] and g_best["constraints"][1] and not g_worse["constraints"][1]
        firsts.add(r["ranking"][0])
    assert firsts == {0, 1}  # the one holding the color is listed first in some records and second in others


def test_minimal_pairs_probe_trains_and_reports_train_and_held_out_accuracy(tmp_path, capsys, one_thread):
    run = tmp_path / "run"
    (run / "comparisons").mkdir(parents=True)
    (run / "comparisons" / "train.jsonl").write_text("")  # the probe needs none of the run's comparisons
    shutil.copytree(DEFAULT / "sft", run / "sft_small")
    rows = load_benchmark("rm_probes").main(
        ["--run", str(run), "--labels", "--minimal-pairs", "16", "--held-out", "24"]
    )
    (row,) = rows
    assert row["label"] == "minimal_pairs" and row["pairs"] == 24
    assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["train_accuracy"] <= 1.0
    assert "minimal_pairs" in capsys.readouterr().out
