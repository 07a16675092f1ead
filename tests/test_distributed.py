"""Data parallelism under torchrun on the CPU (gloo): two ranks train what one process trains (with
DDP and with FSDP2), a resumed distributed run equals an unbroken one, and a rank that fails or
hangs stops the run.

The runs themselves are tests/distributed_worker.py's (tiny models, a few steps); each launch is
bounded by a subprocess timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.common import distributed

WORKER = Path(__file__).parent / "distributed_worker.py"
ROOT = Path(__file__).parents[1]
DEMOS = [
    ("write about the cat .", "the cat eats a fish ."),
    ("list two fish ?", "one fish , two fish ."),
    ("say one", "one"),
    ("a bird", "a bird sees a tree ."),
    ("the big dog eats a red fish .", "the dog likes fish ."),
    ("say two", "two three"),
    ("write about the dog", "the dog runs ."),
    ("list one bird", "a small bird ."),
    ("say three", "three"),
    ("the red tree", "a big red tree ."),
]  # 10 demonstrations in steps of 8: the last step's 2 are split 1 + 1 over two ranks


def write_data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "demos.jsonl").write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in DEMOS))
    comparisons = [
        {"prompt": p, "responses": [r, "the the", "fish", "a cat"][: 2 + i % 3], "ranking": [0, 1, 2, 1][: 2 + i % 3]}
        for i, (p, r) in enumerate(DEMOS[:7])
    ]  # K = 2, 3, 4: uneven rows per rank
    (folder / "comparisons.jsonl").write_text("".join(json.dumps(c) + "\n" for c in comparisons))
    return folder


def environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in distributed.TORCHRUN_VARIABLES}
    pythonpath = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return {
        **env,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": pythonpath,
    }


def launch(out: Path, data: Path, jobs: list[str], ranks: int | None) -> subprocess.Popen:
    """The worker as one process (``ranks=None``) or under ``torchrun --nproc_per_node ranks``."""
    runner = [sys.executable] if ranks is None else [sys.executable, "-m", "torch.distributed.run"]
    if ranks is not None:
        runner += ["--standalone", f"--nproc_per_node={ranks}"]
    return subprocess.Popen(
        [*runner, str(WORKER), str(out), str(data), *jobs],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"the launch did not end within {timeout} s:\n{output[-3000:]}")
    return proc.returncode, output


def assert_same_weights(a: dict, b: dict, atol: float, what: str) -> None:
    assert a.keys() == b.keys(), what
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=lambda m, k=k: f"{what} {k}: {m}")


def test_two_ranks_train_what_one_process_trains_and_resume(tmp_path):
    data = write_data(tmp_path / "data")
    jobs = ["sft", "rm", "ppo", "ppo_lora", "ppo_critic", "pretrain"]
    one = launch(tmp_path / "one", data, jobs, None)
    sharded = ["sft_fsdp", "rm_fsdp", "ppo_fsdp", "sft_fsdp_resume"]
    two = launch(tmp_path / "two", data, ["stages", "groups", *jobs, "sft_resume", "ppo_resume", *sharded], 2)
    for proc in (one, two):
        code, output = finish(proc, 400)
        assert code == 0, output[-4000:]
    load = lambda where, job: torch.load(tmp_path / where / f"{job}.pt")  # noqa: E731
    for job in ("sft", "ppo", "ppo_lora"):  # float rounding of other batch shapes, through Adam
        assert_same_weights(load("one", job), load("two", job), 2e-5, job)
    # pretraining's learning rate (3e-3) is 3x SFT's, and Adam turns the same rounding into larger steps
    # (3.6e-5 on one weight of 65,536 on an AVX512 CPU)
    assert_same_weights(load("one", "pretrain"), load("two", "pretrain"), 1e-4, "pretrain")
    for job in ("sft", "ppo"):
        assert_same_weights(load("one", job), load("two", f"{job}_fsdp"), 2e-5, f"{job} (FSDP2)")
    # The ranking loss does not change when every score shifts, so the gradient of the head's bias
    # (and of what moves all scores alike) is rounding noise, which Adam turns into steps of up to lr.
    assert_same_weights(load("one", "rm"), load("two", "rm"), 2e-4, "rm")
    assert_same_weights(load("one", "rm"), load("two", "rm_fsdp"), 2e-4, "rm (FSDP2)")
    # the pipeline's critic, a value model from the reward model: its embedding rows of tokens seen
    # once get gradients of rounding size, which Adam turns into steps of up to lr, as in the RM
    assert_same_weights(load("one", "ppo_critic"), load("two", "ppo_critic"), 2e-4, "ppo (value model)")
    for job in ("sft", "ppo", "sft_fsdp"):  # a resumed distributed run equals the unbroken distributed run
        assert_same_weights(load("two", job), load("two", f"{job}_resume"), 0.0, f"{job} resumed")
    one_h, two_h = (json.loads((tmp_path / w / "ppo.json").read_text()) for w in ("one", "two"))
    assert [h["iteration"] for h in two_h] == [1, 2]
    for a, b in zip(one_h, two_h):
        assert a.keys() == b.keys()
        for k in a:
            # a clip fraction counts values on either side of a boundary: rounding moves one of the
            # 48-96 across it now and then (0.208 against 0.219 on an AVX512 CPU)
            tol = dict(abs=0.03) if k.endswith("clip_frac") else dict(abs=1e-4, rel=1e-3)
            assert a[k] == pytest.approx(b[k], **tol), k
        assert b["policy/first_ratio_max_dev"] < 1e-5  # the env scored with the policy on every rank
    rm_one, rm_two = (json.loads((tmp_path / w / "rm.json").read_text()) for w in ("one", "two"))
    assert rm_one[0]["pairs"] == rm_two[0]["pairs"] and rm_one[0]["accuracy"] == rm_two[0]["accuracy"]
    # the pipeline's stages: rank 0 alone builds "alone", every rank "together"; the second pass reuses both
    ran = [json.loads((tmp_path / "two" / "stages" / f"ran_by_rank{r}.json").read_text()) for r in (0, 1)]
    assert ran == [["alone", "together"], ["together"]]
    assert sorted(p.name for p in (tmp_path / "two" / "stages" / "together").iterdir()) == [".done", "rank0", "rank1"]
    # PPO's value head keeps its own optimizer group (value_lr_scale) in DDP and under FSDP2
    groups = json.loads((tmp_path / "two" / "groups.json").read_text())
    for how, sharded in (("ddp", False), ("fsdp", True)):
        assert groups[how] == {
            "value_group_is_the_head": True,
            "every_parameter_once": True,
            "sharded": sharded,
            "lr_scale": 3.0,
        }, how
    rows = (tmp_path / "two" / "ppo" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [1, 2]  # one writer (rank 0): each row once


def test_a_rank_that_fails_or_hangs_stops_the_run(tmp_path):
    data = write_data(tmp_path / "data")
    runs = {job: launch(tmp_path / job, data, [job], 2) for job in ("fail", "hang")}
    for job, proc in runs.items():
        code, output = finish(proc, 200)  # the hang: a 5 s collective timeout, not the 600 s sleep
        assert code != 0, output[-3000:]
        expected = "rank 1 failed on purpose" if job == "fail" else "Timed out"
        assert expected in output, output[-3000:]


def test_world_size_without_torchrun_is_refused(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="torchrun"):
        distributed.setup("cpu")


def test_devices_are_per_rank():
    assert distributed.device_for("cpu", 1) == torch.device("cpu")
    if torch.cuda.is_available():
        assert distributed.device_for("auto", 0) == torch.device("cuda", 0)
    else:
        assert distributed.device_for("auto", 1) == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA"):
            distributed.device_for("cuda", 0)
