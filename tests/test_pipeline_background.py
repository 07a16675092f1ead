"""Stages built in processes of their own (agents/pipeline/background.py): they run beside the main
process, are recorded only once they have finished, stop the pipeline with their name when they
fail, are stopped on any exit, and build what the same stage built in turn builds."""

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agents.pipeline.background import Background
from agents.pipeline.config import PipelineConfig
from agents.pipeline.run import run_pipeline
from agents.pipeline.stages import Stages


def _write(seconds: float, d):  # module-level: a spawned process unpickles it by name
    time.sleep(seconds)
    d.mkdir(parents=True, exist_ok=True)
    (d / "out.json").write_text(json.dumps({"pid": os.getpid(), "threads": torch.get_num_threads()}))


def _fail(d):
    raise ValueError("this stage breaks")


def _never(d):
    raise AssertionError("a finished stage was built again")


def test_background_stages_run_in_their_own_processes_and_are_recorded_once_finished(tmp_path):
    stages = Stages(tmp_path, background=Background(threads=1, slots_waiting=2))
    for name in ("a", "b"):
        assert stages(name, functools.partial(_write, 1.0), {"x": name}, background=True) == tmp_path / name
    assert not (tmp_path / "a" / ".done").exists()  # still building: nothing recorded yet
    assert torch.get_num_threads() == 1  # the main process shares the cores meanwhile
    stages.wait()
    for name in ("a", "b"):
        out = json.loads((tmp_path / name / "out.json").read_text())
        assert out["pid"] != os.getpid() and out["threads"] == 1
        assert json.loads((tmp_path / name / ".done").read_text())["inputs"] == {"x": name}
    assert set(stages.built) == {"a", "b"} and stages.seconds["a"] >= 1.0
    assert torch.get_num_threads() == stages.background.main_threads

    again = Stages(tmp_path, background=Background(threads=1, slots_waiting=2))
    again("a", _never, {"x": "a"}, background=True)  # the same inputs: reused, not built
    again.wait()
    assert again.built == []


def _threads_here(d):
    d.mkdir(parents=True, exist_ok=True)
    (d / "out.json").write_text(json.dumps({"pid": os.getpid(), "threads": torch.get_num_threads()}))


def test_a_stage_built_after_the_background_has_finished_gets_every_thread_back(tmp_path):
    stages = Stages(tmp_path, background=Background(threads=1, slots_waiting=2, main_threads=2))
    stages("bg", functools.partial(_write, 0.1), {"x": 1}, background=True)
    stages("during", _threads_here, {"x": 2})  # built while the background job may still run
    deadline = time.time() + 60
    while not (tmp_path / "bg" / "out.json").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the job's process exits after writing
    stages("after", _threads_here, {"x": 3})
    after = json.loads((tmp_path / "after" / "out.json").read_text())
    assert after["pid"] == os.getpid() and after["threads"] == 2  # not the 1 it shared the cores with
    assert (tmp_path / "bg" / ".done").exists()  # and the finished job was recorded on the way
    stages.wait()


def test_a_failing_background_stage_stops_the_run_and_names_the_stage(tmp_path):
    stages = Stages(tmp_path, background=Background(threads=1, slots_waiting=2))
    stages("bad", _fail, {}, background=True)
    with pytest.raises(RuntimeError, match="stage 'bad' failed in its own process"):
        stages.wait()
    assert not (tmp_path / "bad" / ".done").exists()


def test_close_stops_the_stages_still_building_and_a_later_call_builds_them_again(tmp_path):
    stages = Stages(tmp_path, background=Background(threads=1, slots_waiting=2))
    stages("slow", functools.partial(_write, 60.0), {}, background=True)
    job = stages.background.running[0]
    t0 = time.time()
    stages.close()
    assert time.time() - t0 < 30 and not job.process.is_alive()
    assert not (tmp_path / "slow" / ".done").exists()
    later = Stages(tmp_path)  # no background: built in this process
    later("slow", functools.partial(_write, 0.0), {})
    assert json.loads((tmp_path / "slow" / "out.json").read_text())["pid"] == os.getpid()


def test_one_core_has_no_background():
    assert Background.for_cpu(1) is None
    two = Background.for_cpu(2)
    assert (two.threads, two.slots_waiting) == (1, 4)  # the large base and three PPO runs side by side
    assert (Background.for_cpu(16).threads, Background.for_cpu(16).slots_waiting) == (8, 2)


def test_the_tiny_pipeline_builds_the_same_models_with_or_without_concurrent_stages(tmp_path):
    """The large base and the PPO runs built in their own processes (one thread each on 2 cores)
    match the same stages built in turn, up to float rounding of another thread count."""
    runs = {}
    for concurrent in (False, True):
        out = tmp_path / str(concurrent)
        cfg = PipelineConfig(out=str(out), preset="tiny", progress=False, device="cpu", concurrent=concurrent)
        runs[concurrent] = (out, run_pipeline(cfg))
    (serial, a), (together, b) = runs[False], runs[True]
    assert b["win_rates"].keys() == a["win_rates"].keys()
    for stage in ("base_large", "ppo/final", "ppo_ptx/final", "ppo_kl0/final"):
        x, y = load_file(serial / stage / "model.safetensors"), load_file(together / stage / "model.safetensors")
        assert x.keys() == y.keys()
        assert all(torch.allclose(x[k], y[k], atol=1e-4) for k in x), stage
    kl0 = (together / "ppo_kl0" / "curve.json").read_text()
    assert json.loads(kl0).keys() == json.loads((serial / "ppo_kl0" / "curve.json").read_text()).keys()


KILLED_PARENT = """
import functools, os, signal, sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from agents.pipeline.stages import Stages
from agents.pipeline.background import Background
from test_pipeline_background import _write
stages = Stages(Path({out!r}), background=Background(threads=1, slots_waiting=2))
stages("slow", functools.partial(_write, 60.0), {{}}, background=True)
print("PID", stages.background.running[0].process.pid, flush=True)
time.sleep(5)  # the child is up and sleeping
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_background_stage_dies_with_a_pipeline_killed_outright(tmp_path):
    code = KILLED_PARENT.format(tests=str(Path(__file__).parent), out=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    child = int(done.stdout.split("PID ")[-1].split()[0])
    deadline = time.time() + 20
    while time.time() < deadline and _alive(child):
        time.sleep(0.2)
    assert not _alive(child)
    assert not (tmp_path / "slow" / "out.json").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return status not in ("Z", "X")  # a zombie has exited
