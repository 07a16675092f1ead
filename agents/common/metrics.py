"""``MetricLogger``: scalar metrics to ``metrics.jsonl`` and, when installed, TensorBoard, Weights &
Biases and trackio (``report_to``)."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

from agents.common.checkpoint import atomic_write


class MetricLogger:
    """Append ``{"step": s, **scalars}`` lines to ``out_dir/metrics.jsonl`` and tables of samples to
    ``out_dir/samples.jsonl``; mirror both to TensorBoard and to the backends of ``report_to``:
    ``"wandb"`` (Weights & Biases; ``WANDB_MODE=offline`` logs without an account, into
    ``out_dir/wandb``) and ``"trackio"`` (local by default), each imported only when asked for, the
    samples logged as a table. ``project`` and ``config`` go to their ``init``; the run is named
    after ``out_dir``.

    TensorBoard events go to ``out_dir/tb`` when the ``tensorboard`` package is installed (the
    ``report`` extra); without it only JSONL is written, with a warning. A resumed run passes
    ``resume_rows``, the rows its checkpoint had logged (``rows`` when it was saved): the rows
    after them are dropped, since the run logs them again, so each step is logged once;
    ``resume_step``, the checkpoint's step, hides later TensorBoard events the same way.

    >>> import tempfile
    >>> log = MetricLogger(tempfile.mkdtemp(), tensorboard=False)
    >>> log.log(1, {"train/loss": 2.5})
    >>> log.log_samples(1, [{"prompt": "p", "response": "r", "score": 0.5}])
    >>> log.rows
    {'metrics': 1, 'samples': 1}
    >>> log.close()
    """

    FILES = ("metrics", "samples")

    def __init__(
        self,
        out_dir: str | os.PathLike,
        tensorboard: bool = True,
        resume_step: int | None = None,
        resume_rows: dict[str, int] | None = None,
        report_to: tuple[str, ...] = (),
        project: str = "textbandit",
        config: dict | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        paths = {name: self.out_dir / f"{name}.jsonl" for name in self.FILES}
        # rows in each log: a checkpoint stores them, a resumed run passes them back as resume_rows
        self.rows = {
            name: keep_rows(path, (resume_rows or {}).get(name, 0)) if resume_rows is not None else count_rows(path)
            for name, path in paths.items()
        }
        self._paths, self._files = paths, {}  # opened at their first row: SFT writes no samples.jsonl
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # optional dependency: say so, and keep the JSONL log
                warnings.warn(
                    "tensorboard is not installed; metrics go to metrics.jsonl only (pip install 'textbandit[report]')",
                    stacklevel=2,
                )
            else:
                purge = None if resume_step is None else resume_step + 1  # events from this step on are hidden
                self._tb = SummaryWriter(str(self.out_dir / "tb"), purge_step=purge)
        check_backends(report_to)
        self._runs = {name: start_backend(name, project, self.out_dir, config) for name in report_to}

    def _write(self, name: str, row: dict) -> None:
        if name not in self._files:
            self._files[name] = self._paths[name].open("a", encoding="utf-8")
        self._files[name].write(json.dumps(row) + "\n")
        self._files[name].flush()
        self.rows[name] += 1

    def log(self, step: int, scalars: dict) -> None:
        """Record numeric ``scalars`` at ``step`` (non-finite values are written as null in JSONL)."""
        clean = {k: float(v) for k, v in scalars.items()}
        self._write("metrics", {"step": int(step), **{k: (v if math.isfinite(v) else None) for k, v in clean.items()}})
        if self._tb is not None:
            for k, v in clean.items():
                self._tb.add_scalar(k, v, step)
        for run in self._runs.values():
            run.log({k: v for k, v in clean.items() if math.isfinite(v)}, step=int(step))

    def log_samples(self, step: int, rows: list[dict]) -> None:
        """Record a table of samples (``prompt``, ``response``, ``score`` per row) at ``step``."""
        self._write("samples", {"step": int(step), "samples": rows})
        if self._tb is not None:
            header = "| prompt | response | score |\n|---|---|---|\n"
            body = "".join(f"| {r['prompt']} | {r['response']} | {r['score']:+.3f} |\n" for r in rows)
            self._tb.add_text("samples", header + body, step)
        for name, run in self._runs.items():
            columns = list(dict.fromkeys(k for r in rows for k in r))
            table = backend_module(name).Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])
            run.log({"samples": table}, step=int(step))

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        if self._tb is not None:
            self._tb.close()
        for run in self._runs.values():
            run.finish()
        self._runs = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


BACKENDS = {"wandb": "wandb", "trackio": "trackio"}  # report_to name -> the extra that installs it


def check_backends(report_to) -> None:
    """Refuse an unknown metrics backend by name (before a run starts)."""
    unknown = [b for b in report_to if b not in BACKENDS]
    if unknown:
        raise ValueError(
            f"report_to={list(report_to)}: unknown backend(s) {unknown}; use 'wandb' and/or 'trackio' "
            "(metrics.jsonl is always written; TensorBoard has its own switch, --tensorboard)"
        )


def backend_module(name: str):
    """The ``wandb`` or ``trackio`` module, or an ``ImportError`` saying which extra installs it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(
            f"report_to {name!r} needs the {name} package: pip install 'textbandit[{BACKENDS[name]}]'"
        ) from e


def start_backend(name: str, project: str, out_dir: Path, config: dict | None):
    """A started run of the backend ``name``: an object with ``log(dict, step=)`` and ``finish()``."""
    module = backend_module(name)
    config = json.loads(json.dumps(config or {}, default=str))  # plain values only
    if name == "wandb":
        (out_dir / "wandb").parent.mkdir(parents=True, exist_ok=True)
        return module.init(project=project, name=out_dir.name, dir=str(out_dir), config=config, reinit="create_new")
    return module.init(project=project, name=out_dir.name, config=config)


def count_rows(path: str | os.PathLike) -> int:
    """Complete (newline-terminated) rows of a JSONL log; 0 when it does not exist."""
    path = Path(path)
    if not path.exists():
        return 0
    return path.read_bytes().count(b"\n")


def keep_rows(path: str | os.PathLike, rows: int) -> int:
    """Rewrite the JSONL log ``path`` with only its first ``rows`` rows (a resumed run logs the rest
    again); a torn last line of a killed run goes too. Atomic. Returns the rows kept."""
    path = Path(path)
    if not path.exists():
        return 0
    kept = path.read_text(encoding="utf-8").splitlines(keepends=True)[:rows]
    kept = [line for line in kept if line.endswith("\n")]
    atomic_write(path, lambda tmp: tmp.write_text("".join(kept), encoding="utf-8"))
    return len(kept)
