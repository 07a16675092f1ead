"""Training utilities shared by the pretraining, SFT, reward-model and PPO trainers.

- :mod:`agents.common.training`: the config block and loop pieces SFT and the RM share.
- :func:`learning_rate` / :func:`set_lr`: the one schedule (linear warm-up, then cosine, linear or no decay).
- :class:`MetricLogger`: scalars and sample tables to JSONL and TensorBoard.
- :func:`save_checkpoint` / :func:`load_checkpoint`, :func:`rng_state` / :func:`set_rng_state`,
  :func:`seed_everything`: exact stop-and-resume, with no code run from a checkpoint.
- :func:`claim_run_dir`: one writer per output folder.
- :func:`set_dropout` / :func:`with_dropout`: one dropout probability for a whole model.
- :func:`fuse_gelu_`: GPT-2's Python GELU swapped for torch's fused kernel (same formula).
- :func:`autocast` / :func:`adamw`: bf16 autocast on GPU only, fused AdamW.
- :mod:`agents.common.cli`: an argparse command line generated from a config dataclass.
- :mod:`agents.common.lm`: corpus blocks and perplexity.
- :mod:`agents.common.distributed`: torchrun's process group, this rank's device and data share, DDP / FSDP2.
- :mod:`agents.common.lora`: LoRA adapters through PEFT (settings, merging, the adapters-off reference).
- :mod:`agents.common.scale`: the memory and parallelism settings every trainer has.

The prompt ++ response layout, the device resolver and the eval-mode context live in the env
package (:mod:`textbandit.layout`, :mod:`textbandit.runtime`): the env and the agents share them.
"""

from agents.common.checkpoint import load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state
from agents.common.device import adamw, autocast
from agents.common.dropout import set_dropout, with_dropout
from agents.common.fused import fuse_gelu_
from agents.common.metrics import MetricLogger
from agents.common.rundir import claim_run_dir
from agents.common.schedule import learning_rate, set_lr

__all__ = [
    "learning_rate",
    "set_lr",
    "MetricLogger",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "seed_everything",
    "claim_run_dir",
    "set_dropout",
    "with_dropout",
    "fuse_gelu_",
    "autocast",
    "adamw",
]
