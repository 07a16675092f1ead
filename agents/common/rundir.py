"""One writer per output folder, and a fresh run never mixed into an old one.

:func:`claim_run_dir` is what every trainer calls on its output folder before it writes:

- it takes an exclusive lock on ``OUT/.lock`` (``fcntl.flock``) and writes the owner's pid, host
  and command into it. A second run on the same folder is refused with an error naming that
  owner. The operating system drops the lock when its process dies, however it dies, so a lock
  file left by a killed run is stale by construction and is simply taken over;
- a fresh (not resumed) run into a folder that already holds a run (its metrics log, its
  checkpoint) is refused unless ``overwrite`` is set; then the old run's logs and checkpoints
  are removed first, so nothing of it is appended to or silently replaced.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import sys
from pathlib import Path

# What a trainer leaves in its output folder that marks it as holding a run.
RUN_MARKERS = ("metrics.jsonl", "samples.jsonl", "checkpoint", "checkpoint.old", "tb")


class RunDirBusyError(RuntimeError):
    """Another live process holds the output folder's lock."""


class RunDir:
    """A claimed output folder; :meth:`release` (or leaving the ``with`` block) frees it."""

    def __init__(self, path: Path, handle):
        self.path, self._handle = path, handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def held_run(path: Path) -> list[str]:
    """The names in ``path`` that show it holds a run (empty for a new or empty folder)."""
    return [name for name in RUN_MARKERS if (path / name).exists()]


def claim_run_dir(
    out: str | os.PathLike, *, resume: bool, overwrite: bool, what: str = "run", resume_flag: str = "--resume true"
) -> RunDir:
    """Lock ``out`` for this process and check that a fresh run may write there (see module docstring).

    ``resume``: this run continues the one in ``out`` (its logs are trimmed by the trainer).
    ``overwrite``: a fresh run replaces the one in ``out``. ``what`` and ``resume_flag`` name the
    trainer and its resume option in the error messages.
    """
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    handle = open(path / ".lock", "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise RunDirBusyError(
            f"{path} is in use by another {what} ({owner}); wait for it to finish, stop it, or write to another folder"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv)[:300]}\n")
    handle.flush()
    claimed = RunDir(path, handle)
    found = held_run(path)
    if found and not resume:
        if not overwrite:
            claimed.release()
            raise FileExistsError(
                f"{path} already holds a {what} ({', '.join(found)}); pass {resume_flag} to continue it, "
                "--overwrite true to replace it, or write to another folder"
            )
        for name in found:
            target = path / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    return claimed
