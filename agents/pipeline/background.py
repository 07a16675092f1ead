"""Stages built in processes of their own, beside the pipeline's main process, on a CPU.

On a CPU the pipeline's models are small, and one training run uses two cores poorly: its kernels
are short and its threads wait for each other at every step. Two runs at one thread each go
faster together than one after the other at two threads (measured on 2 cores: 1.39x for two
pretrainings, 1.33x for two PPO runs). So the stages that no later stage but the evaluation reads
run in processes of their own while the main process goes on: the large base model, and the PPO
runs, which read the same SFT and reward models.

:class:`Background` holds those processes. A job starts as soon as a slot is free: one slot while
the main process builds stages itself, ``slots_waiting`` while it waits in :meth:`Background.wait`.
Each process runs with ``threads`` torch threads, and so does the main process while any job runs.
A job that fails stops the pipeline with its stage named (the child prints its traceback). On any
exit the jobs still running are stopped, and a later call builds them again, as their folders hold
no ``.done`` record. On Linux they also die with the main process when it is killed outright
(``SIGKILL``), so that no orphan goes on writing into ``--out``. Processes are started with
``spawn``, not ``fork``: a forked child of a process that has used OpenMP threads can hang in its
first parallel kernel.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch


def _child(fn: Callable[[Path], object], path: Path, threads: int, parent: int) -> None:
    if sys.platform.startswith("linux"):  # killed with the pipeline, even by SIGKILL (prctl PR_SET_PDEATHSIG)
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    if os.getppid() != parent:  # the pipeline died before the line above
        return
    os.environ["TQDM_DISABLE"] = "1"  # two processes' bars would draw over each other
    torch.set_num_threads(threads)
    fn(path)


@dataclass
class _Job:
    name: str
    fn: Callable[[Path], object]
    path: Path
    on_done: Callable[[float], None]
    process: mp.Process | None = None
    started: float = 0.0


@dataclass
class Background:
    """Jobs ``fn(path)`` run in spawned processes, ``threads`` torch threads each."""

    threads: int
    slots_waiting: int
    queued: list[_Job] = field(default_factory=list)
    running: list[_Job] = field(default_factory=list)
    main_threads: int = field(default_factory=torch.get_num_threads)

    @classmethod
    def for_cpu(cls, cores: int | None = None) -> Background | None:
        """The background of a pipeline on ``cores`` CPU cores (all of this machine's by default),
        or None below 2 cores, where there is nothing to run beside."""
        cores = cores or os.cpu_count() or 1
        if cores < 2:
            return None
        threads = max(1, cores // 2)
        # single-threaded processes may share a core (the OS takes turns, no thread waits for
        # another); processes of several threads each may not (their threads would wait at every step)
        return cls(threads=threads, slots_waiting=2 * cores if threads == 1 else cores // threads)

    def submit(self, name: str, fn: Callable[[Path], object], path: Path, on_done: Callable[[float], None]) -> None:
        """Queue ``fn(path)``; ``on_done(seconds)`` is called in this process once it has succeeded.
        ``fn`` must pickle (a module-level function, or a ``functools.partial`` of one)."""
        self.queued.append(_Job(name, fn, path, on_done))
        self._fill(slots=1)

    def poll(self) -> None:
        """Record the jobs that have finished; once none is left, the main process has its threads
        back. The pipeline polls before each stage it builds itself, so a stage that follows the
        background's end runs on every core (the quick preset's reward model, after the large base)."""
        self._reap()

    def wait(self) -> None:
        """Run every queued job and wait until all have finished; the main process idles meanwhile."""
        while self.queued or self.running:
            self._fill(self.slots_waiting)
            time.sleep(0.2)
            self._reap()  # restores the main process's threads once every job has finished

    def close(self) -> None:
        """Stop the jobs still running (after an error or an interrupt in the main process)."""
        for job in self.running:
            if job.process.is_alive():
                job.process.terminate()
            job.process.join()
        self.running, self.queued = [], []
        torch.set_num_threads(self.main_threads)

    def _fill(self, slots: int) -> None:
        self._reap()
        while self.queued and len(self.running) < slots:
            job = self.queued.pop(0)
            job.process = mp.get_context("spawn").Process(
                target=_child, args=(job.fn, job.path, self.threads, os.getpid()), name=f"textbandit-{job.name}"
            )
            job.started = time.time()
            job.process.start()
            self.running.append(job)
            torch.set_num_threads(self.threads)  # the main process shares the cores with it

    def _reap(self) -> None:
        for job in [j for j in self.running if not j.process.is_alive()]:
            job.process.join()
            self.running.remove(job)
            if job.process.exitcode != 0:
                self.close()
                raise RuntimeError(
                    f"stage {job.name!r} failed in its own process (exit code {job.process.exitcode}; its error "
                    "is printed above); run the pipeline again to retry: the stages that finished are reused"
                )
            job.on_done(time.time() - job.started)
        if not self.running and not self.queued:
            torch.set_num_threads(self.main_threads)
