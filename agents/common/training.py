"""What the supervised trainers share: one config block and the small pieces of a training loop.

SFT and the reward model (and pretraining, for the pieces it uses) call these functions from
their own loops, so each trainer file reads as its own loss plus a short loop; there is no base
trainer class to learn. The pieces, in the order a step uses them:

- :class:`TrainConfig`: the fields both configs have (schedule, clipping, lengths, run control);
- :func:`load_tokenizer`: the tokenizer given, named (``--tokenizer``), or the model's own;
- :func:`check_model_fits`: a model too small for the tokenizer or the data, refused before training;
- :func:`epoch_groups`: the seeded data order of an epoch, cut into optimizer steps;
- :func:`accumulate`: the micro-batches of one step, each forwarded and backpropagated;
- :func:`optimizer_step`: learning rate, gradient clipping, update;
- :func:`claim` and :class:`Run`: the output folder claimed, the metrics log and the progress
  bar, the checkpoint written and resumed, and ``stop_after`` checked.

Under ``torchrun`` (:mod:`agents.common.distributed`) the same loop is data-parallel: every rank
walks the same seeded order of steps, :func:`accumulate` forwards this rank's share of each
step's examples and weighs its loss so that DDP's gradient mean is the step's loss over all of
them, and only rank 0 claims the folder and writes logs and checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch

from agents.common import distributed
from agents.common.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from agents.common.device import autocast
from agents.common.distributed import Dist
from agents.common.lora import LoraSettings
from agents.common.metrics import MetricLogger, check_backends
from agents.common.rundir import claim_run_dir
from agents.common.scale import ScaleConfig
from agents.common.schedule import learning_rate, set_lr


@dataclass
class TrainConfig(ScaleConfig, LoraSettings):
    """The settings SFT (:class:`agents.sft.SFTConfig`) and the reward model
    (:class:`agents.reward.RewardConfig`) share; each adds its own data, model and loss fields. The
    LoRA, FSDP2 and memory fields are :class:`agents.common.lora.LoraSettings`' and
    :class:`agents.common.scale.ScaleConfig`'s."""

    tokenizer: str | None = None
    """the tokenizer (a local folder or hub name); None: the model's own folder's"""
    warmup_ratio: float = 0.03
    """fraction of the optimizer steps spent in linear warmup"""
    min_lr_ratio: float = 0.1
    """learning rate at the end of the cosine decay, as a fraction of the peak"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    grad_accum: int = 1
    """micro-batches per optimizer step (a micro-batch is split over the ranks under torchrun)"""
    max_grad_norm: float = 1.0
    """gradient clipping threshold on the global L2 norm (0 disables clipping)"""
    max_prompt_len: int = 64
    """prompts longer than this keep their last tokens"""
    max_response_len: int = 64
    """responses are cut to this many tokens, EOS included"""
    seed: int = 0
    """seed of the data order, dropout and initialisation"""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu' or 'cuda'; under torchrun 'auto' and 'cuda' are each rank's
    own GPU (cuda:LOCAL_RANK)"""
    bf16: bool = True
    """bf16 autocast on GPU (ignored on CPU)"""
    checkpoint_every: int = 0
    """save a resumable checkpoint every this many optimizer steps (0: at the end of each epoch only)"""
    resume_from: str | None = None
    """checkpoint folder (OUT/checkpoint) of an earlier run to continue exactly"""
    overwrite: bool = False
    """a fresh run into an out folder that holds a run replaces it (its logs and checkpoints are removed
    first); without it such a run is refused"""
    stop_after: int | None = None
    """end the run after this many optimizer steps, leaving a checkpoint (a planned interruption; the
    schedule still spans all epochs)"""
    tensorboard: bool = True
    """also write TensorBoard events to OUT/tb"""
    report_to: tuple[str, ...] = ()
    """more metric backends beside metrics.jsonl (and TensorBoard): 'wandb' (pip install 'textbandit[wandb]';
    WANDB_MODE=offline works without an account), 'trackio' (pip install 'textbandit[trackio]')"""
    project: str = "textbandit"
    """the W&B or trackio project the run is logged under (its name is the out folder's)"""
    progress: bool = True
    """show a tqdm progress bar"""

    def __post_init__(self):
        ScaleConfig.__post_init__(self)
        LoraSettings.__post_init__(self)
        if self.fsdp and self.lora:
            raise ValueError(
                "fsdp=True with lora_r > 0: LoRA's trainable weights are small, so they are replicated (DDP); "
                "set fsdp=False, or lora_r=0 to shard a fully trained model"
            )
        for name in ("grad_accum", "max_prompt_len"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name}={getattr(self, name)!r}; use an int >= 1")
        if self.max_response_len < 2:
            raise ValueError(f"max_response_len={self.max_response_len}; use >= 2 (one token plus EOS)")
        if not 0 <= self.warmup_ratio < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(
                f"warmup_ratio={self.warmup_ratio}, min_lr_ratio={self.min_lr_ratio}; "
                "use 0 <= warmup_ratio < 1 and 0 <= min_lr_ratio <= 1"
            )
        if self.max_grad_norm < 0 or self.weight_decay < 0 or self.checkpoint_every < 0:
            raise ValueError("max_grad_norm, weight_decay and checkpoint_every must be >= 0 (0 disables them)")
        if self.stop_after is not None and self.stop_after < 1:
            raise ValueError(f"stop_after={self.stop_after}; use >= 1 or None")
        check_backends(self.report_to)
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device={self.device!r}; use 'auto', 'cpu' or 'cuda[:i]'")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_tokenizer(config, tokenizer):
    """The tokenizer object given, else ``config.tokenizer``'s, else the one in ``config.model``'s folder."""
    from transformers import AutoTokenizer

    from textbandit.layout import check_tokenizer
    from textbandit.loading import load

    if tokenizer is None:
        source = config.tokenizer or config.model
        if source is None:
            raise ValueError("pass a tokenizer object (or set tokenizer) when the model is not given by path")
        tokenizer = load(
            AutoTokenizer.from_pretrained, source, "tokenizer" if config.tokenizer else "model", needs=None
        )
    check_tokenizer(tokenizer)
    return tokenizer


def check_model_fits(model, tokenizer, lengths, what: str = "model") -> None:
    """Refuse, before training, a model whose embedding has fewer rows than the tokenizer has tokens,
    or whose position embeddings are shorter than the longest ``prompt + response`` in ``lengths``."""
    from textbandit.policy import max_positions, vocab_size_of

    vocab = vocab_size_of(model)
    if vocab is not None and vocab < len(tokenizer):
        raise ValueError(
            f"the {what}'s vocabulary ({vocab}) is smaller than the tokenizer's ({len(tokenizer)}); "
            "pass the tokenizer the model was trained with, or resize its embeddings "
            "(model.resize_token_embeddings(len(tokenizer)))"
        )
    n, longest = max_positions(model), max(lengths, default=0)
    if n is not None and longest > n:
        raise ValueError(
            f"the longest prompt + response in the data has {longest} tokens, more than the {what}'s "
            f"{n} positions; lower max_prompt_len or max_response_len so they sum to at most {n}"
        )


def epoch_groups(n_items: int, group_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The item indices of each optimizer step of ``epoch``: a permutation seeded by (seed, epoch),
    so a resumed run sees the same order, cut into groups of ``group_size``."""
    order = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return [order[i : i + group_size].tolist() for i in range(0, n_items, group_size)]


def accumulate(
    items: list,
    micro_batch: int,
    loss_fn: Callable,
    device,
    bf16: bool,
    model: torch.nn.Module | None = None,
    d: Dist | None = None,
) -> dict:
    """Forward and backpropagate ``items`` (an optimizer step's) in micro-batches of ``micro_batch``:
    ``loss_fn(chunk)`` returns ``(loss, stats)``, the loss normalised by the whole step's size
    (all ranks'); each loss is backpropagated (gradients add up) and the stats (numbers) are
    summed over the chunks and returned.

    Under data parallelism (``d`` with several ranks) this rank takes its share of ``items``
    (:func:`agents.common.distributed.share_batches`: micro-batches of ``micro_batch / world_size``,
    as many on every rank), its losses are multiplied by ``world_size`` (DDP's gradient mean
    divides it out again), ``model`` (the wrapped one) averages gradients only at the last
    backward, and the stats are summed over the ranks.
    """
    rank, world = (d.rank, d.world_size) if d is not None else (0, 1)
    batches = distributed.share_batches(items, -(-micro_batch // world), rank, world)
    totals: dict = {}
    for i, (chunk, real) in enumerate(batches):
        with distributed.no_sync(model, i < len(batches) - 1), autocast(device, bf16):
            loss, stats = loss_fn(chunk)
        with distributed.no_sync(model, i < len(batches) - 1):
            (loss * (world if real else 0)).backward()
        for k, v in stats.items():
            totals[k] = totals.get(k, 0) + (v if real else 0)
    return distributed.all_reduce_sums(totals) if world > 1 else totals


def optimizer_step(
    parameters: Iterable[torch.Tensor], optimizer: torch.optim.Optimizer, lr: float, max_grad_norm: float
) -> float:
    """Clip the gradients' global L2 norm to ``max_grad_norm`` (0: no clipping), set ``lr`` and step;
    returns the norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(list(parameters), max_grad_norm or float("inf"))
    set_lr(optimizer, lr)
    optimizer.step()
    return float(norm)


class Run:
    """The bookkeeping of one supervised run in ``config.out`` (claimed first with :func:`claim`):
    its epochs and steps (:meth:`epochs`, :meth:`steps`) and learning rate (:meth:`lr`), the
    metrics log and the progress bar, and the checkpoint (model weights, optimizer, position, RNG
    states and log rows: everything a resumed run needs to continue bit-identically). Use as a
    context manager; ``position`` is the trainer's own dict (step, epoch, group, and whatever else
    it must carry across a resume).
    """

    def __init__(
        self,
        config: TrainConfig,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        position: dict,
        n_items: int,
        group_size: int,
        desc: str,
        d: Dist | None = None,
    ):
        self.config, self.model, self.optimizer, self.position = config, model, optimizer, position
        self.is_main = d is None or d.is_main  # rank 0 writes the logs and checkpoints; every rank resumes
        self.group_size = group_size  # items per optimizer step
        self.total_steps, self.warmup_steps = steps_per_run(n_items, group_size, config.epochs, config.warmup_ratio)
        self.out = Path(config.out)
        resume_rows = None
        if config.resume_from is not None:
            state = load_checkpoint(config.resume_from)
            self._load_weights(state["model"])
            distributed.load_optimizer_state(model, optimizer, state["optimizer"])
            position.clear()
            position.update(state["position"])
            set_rng_state(state["rng"])
            resume_rows = state["log_rows"]
        # a resumed run logs again what was logged after its checkpoint, so each row appears once
        self.logger = (
            MetricLogger(
                self.out,
                tensorboard=config.tensorboard,
                report_to=config.report_to,
                project=config.project,
                config=config.to_dict(),
                resume_step=position["step"] if resume_rows is not None else None,
                resume_rows=resume_rows,
            )
            if self.is_main
            else _NoLogger()
        )
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=self.total_steps,
            initial=position["step"],
            desc=desc,
            disable=not (config.progress and self.is_main),
        )

    def _weights(self) -> dict:
        """The weights a checkpoint holds: the whole model's (gathered under FSDP2), or with LoRA only
        the trained ones (the frozen base is the start model's, loaded again on resume)."""
        weights = distributed.full_state_dict(self.model)
        if self.config.lora:
            trained = {n for n, p in distributed.unwrap(self.model).named_parameters() if p.requires_grad}
            weights = {k: v for k, v in weights.items() if k in trained}
        return weights

    def _load_weights(self, weights: dict) -> None:
        if not self.config.lora:
            distributed.load_full_state_dict(self.model, weights)
            return
        missing, unexpected = distributed.unwrap(self.model).load_state_dict(weights, strict=False)
        trained = {n for n, p in distributed.unwrap(self.model).named_parameters() if p.requires_grad}
        if unexpected or trained & set(missing):
            raise ValueError(
                f"{self.config.resume_from} is not a checkpoint of this LoRA model (missing trained weights "
                f"{sorted(trained & set(missing))[:3]}, unexpected {unexpected[:3]}); resume with the same "
                "lora_* settings"
            )

    def epochs(self) -> Iterator[int]:
        """The epochs left to run (from where a resumed run stopped); each one, once its loop body is
        done, moves the position to the next epoch and checkpoints."""
        while self.position["epoch"] < self.config.epochs:
            yield self.position["epoch"]
            self.position["epoch"] += 1
            self.position["group"] = 0
            self.checkpoint()

    def steps(self, items: list) -> Iterator[list]:
        """The items of each optimizer step left in this epoch: groups of ``group_size`` in the
        epoch's seeded order (:func:`epoch_groups`); :meth:`log_step` moves on to the next."""
        c, pos = self.config, self.position
        groups = epoch_groups(len(items), self.group_size, c.seed, pos["epoch"])
        while pos["group"] < len(groups):
            yield [items[i] for i in groups[pos["group"]]]

    def lr(self) -> float:
        """The learning rate of the next optimizer step (warm-up, then cosine decay to ``min_lr_ratio``)."""
        return learning_rate(
            self.position["step"],
            self.total_steps,
            self.config.lr,
            self.warmup_steps,
            "cosine",
            self.config.min_lr_ratio,
        )

    def checkpoint(self) -> None:
        """Write ``OUT/checkpoint`` (atomically; see :mod:`agents.common.checkpoint`): rank 0 writes,
        after every rank has helped gather the weights and optimizer state under FSDP2."""
        weights, opt_state = self._weights(), distributed.optimizer_state(self.model, self.optimizer)
        if self.is_main:
            save_checkpoint(
                self.out / "checkpoint",
                {
                    "model": weights,
                    "optimizer": opt_state,
                    "position": copy.deepcopy(self.position),
                    "rng": rng_state(),
                    "log_rows": dict(self.logger.rows),
                    "config": self.config.to_dict(),
                },
            )
        distributed.barrier()  # a rank that stops here stops with the checkpoint written

    def log_step(self, scalars: dict, **postfix) -> None:
        """Count, show and log an optimizer step (``scalars`` at the new step)."""
        pos = self.position
        pos["step"] += 1
        pos["group"] += 1
        self.bar.update(1)
        self.bar.set_postfix(**postfix)
        self.logger.log(pos["step"], scalars)

    def checkpoint_if_due(self) -> bool:
        """Checkpoint every ``checkpoint_every`` steps; returns True when the run is to stop here
        (``stop_after``), after a checkpoint. Call it once a step's rows are all logged."""
        c, step = self.config, self.position["step"]
        if c.checkpoint_every and step % c.checkpoint_every == 0:
            self.checkpoint()
        if c.stop_after is not None and step >= c.stop_after:
            self.checkpoint()
            return True
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()
        self.logger.close()


@contextlib.contextmanager
def claim(config: TrainConfig, what: str, d: Dist | None = None):
    """Claim ``config.out`` for this run (:func:`agents.common.rundir.claim_run_dir`; rank 0 only,
    the other ranks wait for it): use as ``with claim(...)``."""
    if d is not None and not d.is_main:
        distributed.barrier()
        yield None
        return
    with claim_run_dir(
        config.out,
        resume=config.resume_from is not None,
        overwrite=config.overwrite,
        what=what,
        resume_flag="--resume-from OUT/checkpoint",
    ) as run_dir:
        distributed.barrier()
        yield run_dir


class _NoLogger:
    """What ranks other than 0 log to: nothing."""

    rows: dict = {}

    def log(self, *_, **__) -> None:
        pass

    def log_samples(self, *_, **__) -> None:
        pass

    def close(self) -> None:
        pass


def steps_per_run(n_items: int, group_size: int, epochs: int, warmup_ratio: float) -> tuple[int, int]:
    """``(total, warmup)`` optimizer steps of a run of ``epochs`` over ``n_items`` in groups of ``group_size``."""
    total = math.ceil(n_items / group_size) * epochs
    return total, int(warmup_ratio * total)
