"""What a run does to its files: no code run from a checkpoint, one writer per output folder, no
fresh run mixed into an old one, each logged row once after a resume, and a full disk reported
with the last checkpoint kept. For SFT, the reward model and PPO alike."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from agents.common import load_checkpoint, save_checkpoint
from agents.common.checkpoint import UnsafeCheckpointError
from agents.common.rundir import RunDirBusyError, claim_run_dir
from agents.ppo import train as ppo_train
from agents.reward import train_reward_model
from agents.sft import train_sft
from tests.test_ppo_learner import TOK, Stop, stop_at
from tests.test_ppo_learner import config as ppo_config
from tests.test_ppo_learner import env_kwargs as ppo_env
from tests.test_reward import _config as rm_config
from tests.test_sft import _config as sft_config
from tests.tiny import tiny_lm, tiny_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


class Payload:
    """Unpickling this runs ``Path(marker).touch()``: what a crafted checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {}, "trap": Payload(marker)}, path)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- no code from checkpoints -------------------------------------------------------------------


def test_a_crafted_state_file_is_refused_and_runs_nothing(tmp_path):
    from agents.common import rng_state

    marker = tmp_path / "pwned"
    _plant(tmp_path / "ckpt" / "trainer_state.pt", marker)
    with pytest.raises(UnsafeCheckpointError, match="do not resume from a checkpoint you do not trust"):
        load_checkpoint(tmp_path / "ckpt")
    assert not marker.exists()
    save_checkpoint(tmp_path / "good", {"w": torch.arange(3), "rng": rng_state()})
    assert torch.equal(load_checkpoint(tmp_path / "good")["w"], torch.arange(3))  # ours loads with weights_only


def test_sft_and_rm_refuse_a_crafted_checkpoint(tmp_path):
    tok, marker = tiny_tokenizer(), tmp_path / "pwned"
    _plant(tmp_path / "sft" / "checkpoint" / "trainer_state.pt", marker)
    with pytest.raises(UnsafeCheckpointError):
        train_sft(sft_config(tmp_path, "sft", resume_from=str(tmp_path / "sft" / "checkpoint")), tiny_lm(len(tok)), tok)
    _plant(tmp_path / "rm" / "checkpoint" / "trainer_state.pt", marker)
    with pytest.raises(UnsafeCheckpointError):
        train_reward_model(
            rm_config(tmp_path, "rm", resume_from=str(tmp_path / "rm" / "checkpoint")), tiny_lm(len(tok)), tok
        )
    assert not marker.exists()


@pytest.mark.parametrize("folder", ["checkpoint", "checkpoint.old"])
def test_ppo_refuses_a_crafted_trainer_state(tmp_path, folder):
    from agents.ppo import PolicyWithValueHead

    lm, marker = tiny_lm(len(TOK)), tmp_path / "pwned"
    ckpt = tmp_path / "run" / folder
    PolicyWithValueHead.from_pretrained(lm).save_pretrained(ckpt)  # a loadable policy beside the trap
    _plant(ckpt / "trainer_state.pt", marker)
    with pytest.raises(UnsafeCheckpointError):
        ppo_train(ppo_config(tmp_path / "run", resume=True), policy=lm, env_kwargs=ppo_env(lm))
    assert not marker.exists()


# --- one writer per output folder ---------------------------------------------------------------


def test_a_second_writer_is_refused_while_the_first_lives_and_a_stale_lock_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        from agents.common.rundir import claim_run_dir
        held = claim_run_dir({str(tmp_path / "out")!r}, resume=False, overwrite=False)
        print("locked", flush=True)
        time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        tok = tiny_tokenizer()
        with pytest.raises(RunDirBusyError, match=f"pid {holder.pid}"):
            train_sft(sft_config(tmp_path, "out"), tiny_lm(len(tok)), tok)
        lm = tiny_lm(len(TOK))
        with pytest.raises(RunDirBusyError, match="in use by another"):
            ppo_train(ppo_config(tmp_path / "out"), policy=lm, env_kwargs=ppo_env(lm))
    finally:
        holder.kill()
        holder.wait()
    assert "pid" in (tmp_path / "out" / ".lock").read_text()  # the dead owner's lock file is still there,
    with claim_run_dir(tmp_path / "out", resume=False, overwrite=False):  # but its lock died with it
        pass


def test_a_fresh_run_into_an_old_one_is_refused_unless_overwritten(tmp_path):
    lm = tiny_lm(len(TOK))
    ppo_train(ppo_config(tmp_path, total_iterations=3), policy=lm, env_kwargs=ppo_env(lm))
    with pytest.raises(FileExistsError, match="--resume true to continue it, --overwrite true to replace it"):
        ppo_train(ppo_config(tmp_path, total_iterations=3), policy=lm, env_kwargs=ppo_env(lm))
    ppo_train(ppo_config(tmp_path, total_iterations=3, overwrite=True), policy=lm, env_kwargs=ppo_env(lm))
    assert [r["step"] for r in _rows(tmp_path / "metrics.jsonl")] == [1, 2, 3]  # not [1, 2, 3, 1, 2, 3]
    assert [r["step"] for r in _rows(tmp_path / "samples.jsonl")] == [1, 2, 3]

    tok = tiny_tokenizer()
    train_sft(sft_config(tmp_path, "sft", epochs=1), tiny_lm(len(tok)), tok)
    with pytest.raises(FileExistsError, match="--resume-from OUT/checkpoint"):
        train_sft(sft_config(tmp_path, "sft", epochs=1), tiny_lm(len(tok)), tok)
    train_reward_model(rm_config(tmp_path, "rm", epochs=1), tiny_lm(len(tok)), tok)
    with pytest.raises(FileExistsError, match="already holds a reward-model run"):
        train_reward_model(rm_config(tmp_path, "rm", epochs=1), tiny_lm(len(tok)), tok)


# --- resumed logs hold each step once -------------------------------------------------------------


def test_sft_and_rm_resumes_log_each_row_once(tmp_path):
    tok = tiny_tokenizer()
    train_sft(sft_config(tmp_path, "sft_full", checkpoint_every=1), tiny_lm(len(tok)), tok)
    train_sft(sft_config(tmp_path, "sft", stop_after=3, checkpoint_every=1), tiny_lm(len(tok)), tok)
    with open(tmp_path / "sft" / "metrics.jsonl", "a") as f:  # rows a killed run wrote after its checkpoint
        f.write(json.dumps({"step": 4, "train/loss": 9.0}) + "\n" + '{"step": 5, "tra')
    train_sft(sft_config(tmp_path, "sft", resume_from=str(tmp_path / "sft" / "checkpoint")), tiny_lm(len(tok)), tok)
    assert _rows(tmp_path / "sft" / "metrics.jsonl") == _rows(tmp_path / "sft_full" / "metrics.jsonl")

    train_reward_model(rm_config(tmp_path, "rm_full", epochs=2), tiny_lm(len(tok)), tok)
    train_reward_model(rm_config(tmp_path, "rm", epochs=2, stop_after=6), tiny_lm(len(tok)), tok)
    train_reward_model(
        rm_config(tmp_path, "rm", epochs=2, resume_from=str(tmp_path / "rm" / "checkpoint")), tiny_lm(len(tok)), tok
    )
    resumed, full = _rows(tmp_path / "rm" / "metrics.jsonl"), _rows(tmp_path / "rm_full" / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [r["step"] for r in full]
    assert resumed == full


def test_a_ppo_run_killed_before_its_first_checkpoint_logs_step_one_once(tmp_path):
    lm = tiny_lm(len(TOK))
    with pytest.raises(Stop):  # killed after iteration 1 logged, before any checkpoint
        ppo_train(
            ppo_config(tmp_path, total_iterations=3, save_every=2),
            policy=lm,
            env_kwargs=ppo_env(lm),
            callback=stop_at(1),
        )
    with pytest.warns(UserWarning, match="no checkpoint"):
        ppo_train(ppo_config(tmp_path, total_iterations=3, resume=True), policy=lm, env_kwargs=ppo_env(lm))
    assert [r["step"] for r in _rows(tmp_path / "metrics.jsonl")] == [1, 2, 3]
    assert [r["step"] for r in _rows(tmp_path / "samples.jsonl")] == [1, 2, 3]


# --- a full disk -------------------------------------------------------------------------------


def _disk_full(*args, **kwargs):
    path = Path(args[1])
    path.write_bytes(b"half a checkpoint")  # a write that got part of the way
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_checkpoint_write_on_a_full_disk_says_so_and_keeps_the_last_one(tmp_path, monkeypatch):
    target = tmp_path / "ckpt"
    save_checkpoint(target, {"step": torch.tensor(1)})
    monkeypatch.setattr(torch, "save", _disk_full)
    with pytest.raises(OSError, match="the disk is full") as info:
        save_checkpoint(target, {"step": torch.tensor(2)})
    assert info.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == ["ckpt"]  # the temporary folder is gone
    monkeypatch.undo()
    assert int(load_checkpoint(target)["step"]) == 1  # the last good one


def test_ppo_checkpoint_on_a_full_disk_keeps_the_last_one(tmp_path, monkeypatch):
    import agents.common.checkpoint as checkpoint

    lm = tiny_lm(len(TOK))
    real_save = checkpoint.save_checkpoint
    calls = []

    def save_then_fill_the_disk(directory, state, write_model):
        calls.append(state["iteration"])
        if len(calls) == 2:
            monkeypatch.setattr(checkpoint.torch, "save", _disk_full)
        real_save(directory, state, write_model)

    monkeypatch.setattr("agents.ppo.learner.save_checkpoint", save_then_fill_the_disk)
    with pytest.raises(OSError, match="the disk is full"):
        ppo_train(ppo_config(tmp_path, total_iterations=4, save_every=1), policy=lm, env_kwargs=ppo_env(lm))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir() if "checkpoint" in p.name) == ["checkpoint"]  # no temp folder
    from agents.common.checkpoint import load_state

    assert load_state(tmp_path / "checkpoint" / "trainer_state.pt")["iteration"] == 1
