"""The labeling server under load on the loopback address, and killed with SIGKILL in the middle of it.

20 labelers (threads) x 50 submissions each against ``textbandit label serve`` in a subprocess
(``benchmarks/label_load.py`` runs the same load and prints the numbers). Every acknowledged ranking
must be in the database exactly once, with the ranks that were sent; a hard deadline bounds each run.
"""

from __future__ import annotations

import pytest
from conftest import load_benchmark

LABELERS, SUBMISSIONS, DEADLINE_S = 20, 50, 45.0


@pytest.fixture(scope="module")
def load():
    return load_benchmark("label_load")


def assert_every_acknowledged_ranking_stored_once(result):
    assert not result["errors"], result["errors"][:5]
    assert not result["hung"], f"labelers still running at the deadline: {result['hung']}"
    assert result["acknowledged"] == result["expected"] == LABELERS * SUBMISSIONS
    check = result["check"]
    assert check["missing"] == [] and check["duplicated"] == [] and check["changed"] == []
    assert check["unacknowledged"] == [] and check["rows"] == result["acknowledged"]


def test_20_concurrent_labelers_x_50_submissions(load, tmp_path, capsys):
    result = load.run_load(tmp_path, LABELERS, SUBMISSIONS, timeout=DEADLINE_S)
    with capsys.disabled():
        print(
            f"\nlabel load: {result['acknowledged']} submissions in {result['seconds']:.1f} s "
            f"({result['throughput']:.0f}/s), latency p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms"
        )
    assert_every_acknowledged_ranking_stored_once(result)
    assert result["seconds"] < DEADLINE_S


def test_kill_9_during_the_load_loses_no_acknowledged_ranking(load, tmp_path, capsys):
    result = load.run_load(tmp_path, LABELERS, SUBMISSIONS, kill_after=LABELERS * SUBMISSIONS // 3, timeout=DEADLINE_S)
    with capsys.disabled():
        print(
            f"\nlabel kill -9: killed after {result['killed_at']} acknowledged submissions, restarted; "
            f"{result['retries']} requests retried, {result['unchanged']} answered 'unchanged'"
        )
    assert result["killed_at"] is not None and result["killed_at"] < result["expected"]
    assert result["retries"] > 0  # the labelers did meet the dead server
    assert_every_acknowledged_ranking_stored_once(result)  # read after the restarted server finished
