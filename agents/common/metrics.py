"""``MetricLogger``: scalar metrics to ``metrics.jsonl`` and, when installed, TensorBoard."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path


class MetricLogger:
    """Append ``{"step": s, **scalars}`` lines to ``out_dir/metrics.jsonl``; mirror to TensorBoard.

    TensorBoard events go to ``out_dir/tb`` when the ``tensorboard`` package is installed (the
    ``report`` extra); without it only JSONL is written, with a warning. ``resume_step``: a run
    resumed from that step; what was logged after it is dropped, since the run logs it again.

    >>> import tempfile
    >>> log = MetricLogger(tempfile.mkdtemp(), tensorboard=False)
    >>> log.log(1, {"train/loss": 2.5})
    >>> log.close()
    """

    def __init__(self, out_dir: str | os.PathLike, tensorboard: bool = True, resume_step: int | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            drop_steps_after(self.out_dir / "metrics.jsonl", resume_step)
        self._file = (self.out_dir / "metrics.jsonl").open("a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # optional dependency: say so, and keep the JSONL log
                warnings.warn("tensorboard is not installed; metrics go to metrics.jsonl only "
                              "(pip install 'textbandit[report]')")
            else:
                purge = None if resume_step is None else resume_step + 1  # events from this step on are hidden
                self._tb = SummaryWriter(str(self.out_dir / "tb"), purge_step=purge)

    def log(self, step: int, scalars: dict) -> None:
        """Record numeric ``scalars`` at ``step`` (non-finite values are written as null in JSONL)."""
        clean = {k: float(v) for k, v in scalars.items()}
        row = {"step": int(step), **{k: (v if math.isfinite(v) else None) for k, v in clean.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in clean.items():
                self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def drop_steps_after(path: str | os.PathLike, step: int) -> None:
    """Rewrite the JSONL log ``path`` without its rows whose ``"step"`` is past ``step``.

    Atomic (a temporary file, then ``os.replace``); a torn last line of a killed run is dropped too.
    """
    path = Path(path)
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except json.JSONDecodeError:
            continue
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)
