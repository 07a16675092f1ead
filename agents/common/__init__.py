"""Training utilities shared by the SFT, reward-model and PPO trainers.

- :func:`learning_rate`: the learning rate at a step (linear warm-up, then cosine, linear or no decay).
- :class:`MetricLogger`: scalars to ``metrics.jsonl`` and TensorBoard.
- :func:`save_checkpoint_atomic` / :func:`load_checkpoint`, :func:`rng_state` /
  :func:`set_rng_state`, :func:`seed_everything`: exact stop-and-resume.
- :func:`set_dropout` / :func:`with_dropout`: residual dropout on a Hugging Face config/model.
- :func:`fuse_gelu_`: GPT-2's Python GELU swapped for torch's fused kernel (same formula).
- :func:`resolve_device` / :func:`autocast`: 'auto' device choice, bf16 autocast on GPU only.
- :mod:`agents.common.cli`: an argparse command line generated from a config dataclass.
- :mod:`agents.common.text`: the ``prompt ++ response`` batch layout of docs/architecture.md.
"""

from agents.common.checkpoint import load_checkpoint, rng_state, save_checkpoint_atomic, seed_everything, set_rng_state
from agents.common.device import autocast, resolve_device
from agents.common.dropout import set_dropout, with_dropout
from agents.common.fused import fuse_gelu_
from agents.common.metrics import MetricLogger
from agents.common.schedule import learning_rate, set_lr

__all__ = [
    "learning_rate",
    "set_lr",
    "MetricLogger",
    "save_checkpoint_atomic",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "seed_everything",
    "set_dropout",
    "with_dropout",
    "fuse_gelu_",
    "resolve_device",
    "autocast",
]
