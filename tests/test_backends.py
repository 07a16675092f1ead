"""Weights & Biases (offline) and trackio (local) as metrics backends beside metrics.jsonl, with the sample
table logged as a table; a missing backend package names its extra."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.common.metrics import MetricLogger, check_backends

ROOT = Path(__file__).parents[1]
SAMPLES = [{"prompt": "say one", "response": "one", "score": 0.5}, {"prompt": "say two", "response": "", "score": -1}]


def log_a_run(out, backend):
    logger = MetricLogger(out, tensorboard=False, report_to=(backend,), project="tb_test", config={"lr": 0.1})
    logger.log(1, {"train/loss": 2.5, "train/nan": float("nan")})
    logger.log(2, {"train/loss": 2.0})
    logger.log_samples(2, SAMPLES)
    logger.close()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # JSONL is written as ever


def test_wandb_offline_logs_scalars_and_the_samples_table(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    log_a_run(tmp_path / "run", "wandb")
    (run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    (table,) = (run / "files" / "media" / "table").glob("samples_2_*.table.json")
    assert json.loads(table.read_text()) == {
        "columns": ["prompt", "response", "score"],
        "data": [["say one", "one", 0.5], ["say two", "", -1]],
    }
    (events,) = run.glob("run-*.wandb")
    # wandb-core writes this log from its own process: once, on a loaded machine, it held only its header
    # just after finish() returned, so it gets a while to arrive (a lost record still fails)
    deadline = time.monotonic() + 30
    while b"train/loss" not in events.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert b"train/loss" in events.read_bytes()


def test_trackio_logs_scalars_and_the_samples_table(tmp_path):
    pytest.importorskip("trackio")
    # trackio reads TRACKIO_DIR (where its local database goes) when imported: a fresh process gets the test's
    code = "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; import test_backends as t; "
    code += f"t.log_a_run(Path({str(tmp_path / 'run')!r}), 'trackio')"
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    (db,) = (tmp_path / "trackio").glob("tb_test.db")
    rows = [json.loads(r[0]) for r in sqlite3.connect(db).execute("select metrics from metrics order by step, id")]
    assert rows[0] == {"train/loss": 2.5} and rows[1] == {"train/loss": 2.0}  # NaN is left out, not sent
    assert rows[2]["samples"]["_type"] == "trackio.table" and rows[2]["samples"]["_value"][0]["response"] == "one"


def test_unknown_and_missing_backends(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown backend\(s\) \['mlflow'\]"):
        check_backends(("mlflow",))
    from agents.ppo.config import PPOConfig

    with pytest.raises(ValueError, match="unknown backend"):
        PPOConfig(report_to=("tensorboard2",))
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'textbandit\[wandb\]'"):
        MetricLogger(tmp_path, tensorboard=False, report_to=("wandb",))
