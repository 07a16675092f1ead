"""The pipeline's stages: each built once, reused only if built from the same inputs.

Every stage of ``textbandit pipeline`` is a sub-folder of ``--out``; :class:`Stages` runs a stage
unless its folder holds a ``.done`` record of the same inputs, and :class:`Invocations` keeps the
wall time of every call on one ``--out``. Under ``torchrun`` rank 0 decides, clears and records
every stage; the training stages run on every rank (data-parallel), the others on rank 0 alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path


class StageChangedError(ValueError):
    """A finished stage in ``--out`` was built with other settings than this run asks for."""


class Stages:
    """Runs each stage once, and reuses it only if it was built from the same inputs.

    ``stage(name, fn, inputs)`` runs ``fn(folder)`` unless the folder holds a ``.done`` file (and
    every file in ``requires``, for outputs that later versions added) whose recorded inputs equal
    ``inputs``: the stage's settings plus the identities (keys) of the stages it consumed, so a
    change anywhere upstream reaches every stage below it. A finished stage built from other
    inputs is a :class:`StageChangedError` naming the stage and the settings that differ, unless
    ``rebuild`` is set: then it is built again (and so, by their keys, is every stage after it).
    ``seconds`` holds what every stage took when it was built, in this call or an earlier one;
    ``built`` names the stages this call built.

    Under ``torchrun`` rank 0 reads and writes the records and clears a stage's folder; a stage
    called with ``every_rank=True`` (a trainer, which is data-parallel by itself) runs on every
    rank, any other on rank 0 while the others wait (:func:`agents.common.distributed.on_main`).

    With a :class:`agents.pipeline.background.Background`, a stage called with ``background=True``
    is built in a process of its own while this one goes on; :meth:`wait` waits for all of them
    (only then is such a stage's folder complete and recorded).
    """

    def __init__(self, out: Path, rebuild: bool = False, total: int | None = None, background=None):
        self.out, self.rebuild, self.total, self.background = out, rebuild, total, background
        self.seconds: dict[str, float] = {}
        self.keys: dict[str, str] = {}
        self.built: list[str] = []
        self.t0, self.count = time.time(), 0

    def announce(self, name: str, what: str = "running") -> None:
        """Print a banner for the next stage: its number of the run's ``total``, and the time since the start."""
        self.count += 1
        elapsed = int(time.time() - self.t0)
        of = f"{self.count}/{self.total}" if self.total else str(self.count)
        clock = f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
        print(f"== [stage {of}] {name}: {what} ({clock} elapsed) ==", flush=True)

    def __call__(
        self,
        name: str,
        fn,
        inputs: dict,
        requires: tuple[str, ...] = (),
        every_rank: bool = False,
        background: bool = False,
    ) -> Path:
        from agents.common import distributed

        path = self.out / name
        inputs = json.loads(json.dumps(inputs, sort_keys=True, default=str))
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
        self.keys[name] = key
        in_background = background and self.background is not None
        reused = distributed.on_main(self._prepare, name, path, key, inputs, requires, in_background)
        if reused is not None:
            self.seconds[name] = reused
            return path
        done = lambda seconds: self._record(name, path, key, inputs, seconds)  # noqa: E731
        if in_background:
            self.background.submit(name, fn, path, done)
            return path
        if self.background is not None:
            self.background.poll()  # the background may have finished: then this stage gets every core
        t0 = time.time()
        if every_rank:
            fn(path)
            distributed.barrier()
        else:
            distributed.on_main(fn, path)
        done(time.time() - t0)
        return path

    def wait(self) -> None:
        """Wait for the stages building in the background (none without a background)."""
        if self.background is not None:
            self.background.wait()

    def close(self) -> None:
        """Stop the stages still building in the background (after an error or an interrupt)."""
        if self.background is not None:
            self.background.close()

    def _record(self, name: str, path: Path, key: str, inputs: dict, seconds: float) -> None:
        from agents.common import distributed

        self.seconds[name] = seconds
        self.built.append(name)
        if distributed.is_main_process():
            path.mkdir(parents=True, exist_ok=True)
            (path / ".done").write_text(json.dumps({"seconds": seconds, "key": key, "inputs": inputs}))

    def _prepare(
        self, name: str, path: Path, key: str, inputs: dict, requires: tuple[str, ...], background: bool = False
    ) -> float | None:
        """The seconds of a finished stage built from these inputs (reused), or None after clearing
        the folder for a build (rank 0's decision)."""
        done = path / ".done"
        if done.exists() and all((path / f).exists() for f in requires):
            record = json.loads(done.read_text())
            if record.get("key") == key:
                self.announce(name, "reused (built earlier with the same settings)")
                return record.get("seconds", 0.0)
            if not self.rebuild:
                raise StageChangedError(
                    f"stage {name!r} in {self.out} was built with other settings: "
                    f"{_differences(record.get('inputs'), inputs)}; "
                    "pass --rebuild true to build it (and the stages after it) again, or use another --out"
                )
        if path.exists():  # an interrupted stage, or one to rebuild: start it again from scratch
            shutil.rmtree(path)
        self.announce(name, "building in a process of its own" if background else "building")
        return None


def _differences(old: dict | None, new: dict) -> str:
    """``"kl_coef was 0.05, now 0.1; ..."`` for the settings that differ between two input records."""
    if old is None:
        return "it was built by an older textbandit that did not record its settings"
    flat_old, flat_new = _flatten(old), _flatten(new)
    diffs = [
        f"{k} was {flat_old.get(k, '(unset)')}, now {flat_new.get(k, '(unset)')}"
        for k in sorted(set(flat_old) | set(flat_new))
        if flat_old.get(k) != flat_new.get(k)
    ]
    return "; ".join(diffs[:8]) + ("; ..." if len(diffs) > 8 else "")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def with_out(config, d: Path):
    """A copy of a stage config whose output folder is ``d``."""
    return dataclasses.replace(config, out=str(d))


def file_digest(path: str | os.PathLike) -> str:
    """A short sha256 of a file's bytes: the identity of a user's data file among a stage's inputs."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


# Fields added to the stage configs after stages recorded their inputs: left out while at these values,
# so that a stage built before them is reused (they cannot have differed then).
ADDED_FIELDS = {"reward_fn": (), "reward_weights": ()}
ADDED_TO_PPO_CONFIG = {"max_prompt_len": None, "value_lr_scale": 1.0}
ADDED_TO_TRAIN_CONFIG = {"tokenizer": None}


def settings_of(config, *skip: str) -> dict:
    """A stage config's fields as its inputs, without where it writes and how it reports progress
    (``out``, ``progress``, ``tensorboard``, ``report_to``, ``project``, ``device``), how it uses
    memory, processes and the sampler's cache (the :class:`agents.common.scale.ScaleConfig` fields,
    ``kv_cache``, ``compile_sampler``), the LoRA fields when LoRA is off, the fields in ``skip``, and
    fields added since stages recorded their inputs while at their defaults. PPO's ``world_size`` and
    ``rank`` are recorded as one process's (1 and 0, as before torchrun was supported): N ranks train
    what one process does, so every rank of a pipeline under torchrun, and a later run on one
    process, finds the same stage."""
    from agents.common.lora import LoraSettings
    from agents.common.scale import ScaleConfig
    from agents.common.training import TrainConfig
    from agents.ppo.config import PPOConfig

    drop = {"out", "progress", "tensorboard", "report_to", "project", "device", "kv_cache", "compile_sampler", *skip}
    drop |= {f.name for f in dataclasses.fields(ScaleConfig)}
    if not getattr(config, "lora_r", 0):
        drop |= {f.name for f in dataclasses.fields(LoraSettings)}
    added = dict(ADDED_FIELDS)
    added.update(ADDED_TO_TRAIN_CONFIG if isinstance(config, TrainConfig) else {})
    added.update(ADDED_TO_PPO_CONFIG if isinstance(config, PPOConfig) else {})
    values = {
        k: v for k, v in dataclasses.asdict(config).items() if k not in drop and not (k in added and v == added[k])
    }
    if "world_size" in values:
        values.update(world_size=1, rank=0)
    return values


class Invocations:
    """Wall time of every ``textbandit pipeline`` call on one ``--out`` (``invocations.json``), so the
    report's wall time counts the calls that built the stages it reuses, not only the last."""

    def __init__(self, out: Path):
        self.path, self.t0 = out / "invocations.json", time.time()
        self.past = json.loads(self.path.read_text()) if self.path.exists() else []
        self.recorded = False

    def record(self, finished: bool = True) -> float:
        """Write this call's time so far (again at each call); returns the total over all calls."""
        now = {"started": self.t0, "seconds": time.time() - self.t0, "finished": finished}
        self.path.write_text(json.dumps(self.past + [now], indent=1))
        self.recorded = finished
        return sum(i["seconds"] for i in self.past) + now["seconds"]
