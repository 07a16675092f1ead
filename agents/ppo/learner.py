"""PPO for RLHF in ``TextBandit-v0``, one flat loop (CleanRL style).

Each iteration: reset ``batch_size`` bandits, sample a response per prompt, ``step`` them (the
environment scores the response with the reward model and computes the per-token KL to the
reference with *our* policy's log-probs, and returns the per-token rewards), take the values of
that same scoring forward, run GAE, then ``update_epochs`` epochs of clipped-surrogate updates
over shuffled minibatches, optionally mixing in the pretraining loss (PPO-ptx). Example::

    from agents.ppo import PPOConfig, train
    result = train(PPOConfig(total_iterations=20, out="runs/ppo"))
    result["policy"].save_pretrained("runs/ppo/final")

Under ``torchrun`` the run is data-parallel (:mod:`agents.common.distributed`): rank ``r`` steps
envs ``r * n`` to ``(r + 1) * n`` of the global batch (``n = batch_size / world_size``), with the
prompts and the random numbers one process would have drawn for them; the ranks then share their
rollouts (``all_gather``), so GAE, whitening and the KL controller see the global batch, and each
global minibatch is cut into the ranks' shares. The update calls the policy's ``forward`` through
``DistributedDataParallel``, which averages the gradients; each rank's loss is its share of the
minibatch's token mean, so N ranks compute the update one process would (to float rounding).

Implementation details from "The N Implementation Details of RLHF with PPO" are marked
N-details where they happen.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch

import textbandit  # noqa: F401  (registers TextBandit-v0)
from agents.common import distributed
from agents.common.checkpoint import find_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from agents.common.device import adamw
from agents.common.distributed import Dist
from agents.common.metrics import MetricLogger
from agents.common.rundir import claim_run_dir
from agents.common.schedule import learning_rate, set_lr
from agents.ppo import functions as F
from agents.ppo.config import PPOConfig
from agents.ppo.models import build_policy, env_arguments, lora_policy, start_model
from agents.ppo.policy import PolicyWithValueHead
from agents.ppo.ptx import PretrainingBatches
from agents.sampling import decoding_steps, skip_draws
from textbandit.data import load_texts
from textbandit.layout import used_columns
from textbandit.task import Task, load_task


class Rollout(NamedTuple):
    """One batch of episodes, as tensors on the learner's device; token arrays are (N, L)."""

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    responses: torch.Tensor
    mask: torch.Tensor
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    token_rewards: torch.Tensor
    rewards: torch.Tensor  # (N,) the env's reward: score - kl_coef * kl
    score: torch.Tensor
    kl: torch.Tensor
    info: dict


# what the logs read of info (score_parts: each reward source's share of the score)
LOGGED_INFO = ("prompt", "response", "score", "score_parts", "truncated_response", "gold_score")


def gather_rollout(batch: Rollout) -> Rollout:
    """The global batch: every rank's rollout, rows in rank order (itself with one rank). Of
    ``info`` only what the logs read (:data:`LOGGED_INFO`) is gathered."""
    tensors = [distributed.all_gather_rows(t) for t in batch[:-1]]
    info = {k: batch.info[k] for k in LOGGED_INFO if k in batch.info}
    parts = distributed.all_gather_objects(info)
    if len(parts) > 1:
        info = {k: np.concatenate([p[k] for p in parts]) for k in info}
    return Rollout(*tensors, info)


@torch.no_grad()
def rollout(
    policy: PolicyWithValueHead,
    envs,
    seed: int,
    cfg: PPOConfig,
    generator: torch.Generator,
    prompt_indices=None,
    rows: tuple[int, int] | None = None,
    all_done=None,
) -> Rollout:
    """Reset the envs (seeded, so a resumed run sees the same prompts), sample, step, collect.

    ``rows=(offset, total)``: these envs are rows ``offset`` on of a global batch of ``total``
    (a data-parallel rank's): sub-env ``i`` is reset with seed ``seed + offset + i``, the prompt
    global row ``offset + i`` gets with one process, and sampling draws for all ``total`` rows
    (``agents.sampling.draw``). ``all_done``: see ``agents.sampling.sample``.
    """
    env = envs.unwrapped
    dev = next(policy.parameters()).device
    options = None if prompt_indices is None else {"prompt_indices": prompt_indices}
    obs, _ = envs.reset(seed=seed + (rows[0] if rows else 0), options=options)
    prompt_ids = torch.as_tensor(obs["input_ids"], device=dev)
    prompt_mask = torch.as_tensor(obs["attention_mask"], device=dev)
    tok = env.tokenizer
    responses = policy.generate(
        prompt_ids,
        prompt_mask,
        env.max_new_tokens,
        tok.eos_token_id,
        tok.pad_token_id,
        cfg.temperature,
        cfg.top_k,
        cfg.top_p,
        generator,
        draw_rows=rows,
        all_done=all_done,
        cache=cfg.kv_cache,
        compile=cfg.compile_sampler,
    )
    # SAME_STEP autoreset: step returns the next prompts; we reseed each iteration instead, so
    # prompts depend only on (seed, iteration) and a resumed run continues exactly.
    _, rewards, _, _, info = envs.step(responses.cpu().numpy())
    fi = info["final_info"]
    t = {
        k: torch.as_tensor(fi[k], device=dev)
        for k in ("response_mask", "logprobs", "ref_logprobs", "token_rewards", "score", "kl")
    }
    return Rollout(
        prompt_ids,
        prompt_mask,
        responses,
        t["response_mask"].long(),
        t["logprobs"],
        t["ref_logprobs"],
        t["token_rewards"],
        torch.as_tensor(rewards, device=dev),
        t["score"],
        t["kl"],
        fi,
    )


def advantages_and_returns(batch: Rollout, values: torch.Tensor, cfg: PPOConfig):
    """GAE over the env's per-token rewards, with the config's whitening (N-details)."""
    rewards = batch.token_rewards
    if cfg.whiten_rewards:  # rescale only: the sign of a reward means something (N-details)
        rewards = F.whiten(rewards, batch.mask, shift_mean=False)
    advantages, returns = F.gae(rewards, values, batch.mask, cfg.gamma, cfg.lam)
    if cfg.whiten_advantages:
        advantages = F.whiten(advantages, batch.mask)
    return advantages, returns


def ppo_update(
    policy,
    optimizer,
    batch: Rollout,
    values,
    advantages,
    returns,
    cfg: PPOConfig,
    np_rng: np.random.Generator,
    first_step: int,
    ptx=None,
    rank: int = 0,
    world_size: int = 1,
) -> dict:
    """``update_epochs`` epochs of minibatch PPO steps over one (global) rollout batch; returns mean stats.

    ``policy``: the module whose ``forward`` the step calls (the policy, or it in DDP).
    ``first_step``: the run's optimizer steps so far, where this update continues the schedule.
    Every rank draws the same minibatches (``np_rng`` is the run's, not the rank's) and takes
    its share of each: ``local_minibatch_size`` rows. Its loss is weighted by its share of the
    minibatch's tokens (times ``world_size``, which DDP's gradient mean divides out again), so
    the ranks together follow the gradient of the global minibatch's token mean.
    """
    policy.train()  # dropout is 0 (N-details), so train mode computes what eval mode did
    weighted: dict[str, list[float]] = {}  # each rank's share of a global token mean; summed over ranks
    norms, first_dev = [], None
    n, mb, lmb = batch.responses.shape[0], cfg.minibatch_size, cfg.local_minibatch_size
    step_index = first_step
    for _ in range(cfg.update_epochs):
        order = torch.as_tensor(np_rng.permutation(n), device=batch.responses.device)
        for start in range(0, n, mb):
            minibatch = order[start : start + mb]
            idx = minibatch[rank * lmb : (rank + 1) * lmb]
            rows_mask = batch.mask[idx]
            share = rows_mask.sum() * world_size / batch.mask[minibatch].sum()  # exactly 1 with one rank
            # only the columns these rows use: the env pads every rollout to its fixed widths
            cols, rcols = used_columns(batch.prompt_mask[idx], rows_mask)
            mask = rows_mask[:, rcols]
            logprobs, new_values, entropy = policy(
                batch.prompt_ids[idx, cols],
                batch.prompt_mask[idx, cols],
                batch.responses[idx, rcols],
                mask,
                cfg.temperature,
                entropy_grad=cfg.ent_coef > 0,
            )  # else the entropy is only logged
            old_logprobs, adv = batch.logprobs[idx, rcols], advantages[idx, rcols]
            pg = F.policy_loss(logprobs, old_logprobs, adv, mask, cfg.clip_coef)
            vf_loss, vf_clip = F.value_loss(new_values, values[idx, rcols], returns[idx, rcols], mask, cfg.value_clip)
            ent = F.masked_mean(entropy, mask)
            loss = (pg.loss + cfg.vf_coef * vf_loss - cfg.ent_coef * ent) * share
            w = share.item() / world_size
            step = {
                "loss/policy": pg.loss.item() * w,
                "loss/value": vf_loss.item() * w,
                "policy/entropy": ent.item() * w,
                "policy/clip_frac": pg.clip_frac.item() * w,
                "policy/approx_kl": pg.approx_kl.item() * w,
                "value/clip_frac": vf_clip.item() * w,
            }
            if first_dev is None:  # the env scored with this very policy: the ratio is 1 here (up to rounding)
                first_dev = (logprobs - old_logprobs).abs().max().item()
            if ptx is not None and cfg.ptx_coef > 0:
                ptx_loss = ptx.loss(distributed.unwrap(policy).lm, np_rng, rank=rank, world_size=world_size)
                loss = loss + cfg.ptx_coef * ptx_loss
                step["loss/ptx"] = ptx_loss.item() / world_size
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the gradients over the ranks here
            norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            norms.append(float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm))
            set_lr(optimizer, lr_of_step(cfg, step_index))
            optimizer.step()
            step_index += 1
            for k, v in step.items():
                weighted.setdefault(k, []).append(v)
    stats = {k: float(np.mean(v)) for k, v in weighted.items()}
    if world_size > 1:  # the ranks' shares add up to the global means; the first ratio is the worst rank's
        keys = sorted(stats)
        total = distributed.all_reduce(torch.tensor([stats[k] for k in keys], dtype=torch.float64))
        stats = dict(zip(keys, total.tolist()))
        first_dev = distributed.all_reduce(torch.tensor([first_dev], dtype=torch.float64), "max").item()
    stats["policy/grad_norm"] = float(np.mean(norms))  # the same on every rank (the averaged gradients')
    stats["policy/first_ratio_max_dev"] = first_dev
    return stats


def param_groups(policy, value_lr_scale: float) -> list[dict]:
    """The optimizer's groups: the policy's trained LM weights (all of them, or LoRA's adapters), and
    the value function (its head, or the separate value model) with its own learning-rate scale.

    ``policy``: the module the update calls, a :class:`PolicyWithValueHead` as it is, in DDP or
    sharded by FSDP2 (whose parameters are then the sharded ones: call this after wrapping). Frozen
    weights (LoRA's base) are in no group."""
    inner = distributed.unwrap(policy)
    value = inner.value_head if inner.value_head is not None else inner.value_model
    value_ids = {id(p) for p in value.parameters()}
    trained = [p for p in policy.parameters() if p.requires_grad]
    return [
        {"params": [p for p in trained if id(p) not in value_ids]},
        {"params": [p for p in trained if id(p) in value_ids], "lr_scale": value_lr_scale},
    ]


def lr_of_step(cfg: PPOConfig, step: int) -> float:
    """The learning rate of optimizer step ``step`` of the run (warm-up, then ``cfg.lr_schedule``)."""
    per_iteration = cfg.update_epochs * cfg.num_minibatches
    return learning_rate(
        step,
        cfg.total_iterations * per_iteration,
        cfg.learning_rate,
        cfg.warmup_iterations * per_iteration,
        cfg.lr_schedule,
    )


def iteration_seed(cfg: PPOConfig, iteration: int) -> int:
    """The env seed of an iteration, distinct per (seed, iteration): global row ``i`` of the batch
    is reset with this seed plus ``i``, whichever rank steps it."""
    # the 0 stands where the rank once was: single-process runs draw the prompts they always did
    return int(np.random.SeedSequence([cfg.seed, 0, iteration]).generate_state(1)[0])


def train(
    cfg: PPOConfig,
    policy=None,
    task: Task | None = None,
    env_kwargs: dict | None = None,
    ptx_texts: list[str] | None = None,
    callback=None,
) -> dict:
    """Train a PPO policy in ``TextBandit-v0``. Returns ``{"policy", "history", "envs"}``.

    ``policy``: a model or path to start from (default: ``cfg.sft_model``, else the task's SFT
    model). ``task``: a :class:`textbandit.task.Task` to train in instead of ``cfg.task``.
    ``env_kwargs``: any other ``gym.make_vec`` arguments, over the config's (e.g. your own model
    objects). ``ptx_texts``: the PPO-ptx corpus (else read from ``cfg.ptx_data``).
    ``callback(iteration, stats, policy)`` runs after each iteration on every rank (evaluation hooks).

    Under ``torchrun`` every rank calls it with the same arguments (see the module docstring);
    rank 0 claims ``out`` and writes every file, and every rank returns the same policy.
    """
    d = distributed.setup(cfg.device, cfg.dist_timeout_s)
    if (cfg.world_size, cfg.rank) != (d.world_size, d.rank):
        raise ValueError(
            f"the config says rank {cfg.rank} of {cfg.world_size} but this process is rank {d.rank} of "
            f"{d.world_size}; leave world_size and rank at their defaults (torchrun's WORLD_SIZE and RANK)"
        )
    # one writer per output folder; a fresh run never lands on an old one (rank 0 writes all files)
    run_dir = claim_run_dir(cfg.out, resume=cfg.resume, overwrite=cfg.overwrite, what="PPO run") if d.is_main else None
    try:
        distributed.barrier()  # no rank reads the folder before rank 0 has claimed (and maybe cleared) it
        return _train(cfg, d, policy, task, env_kwargs or {}, ptx_texts, callback)
    finally:
        if run_dir is not None:
            run_dir.release()


def _train(cfg: PPOConfig, d: Dist, policy, task, env_kwargs: dict, ptx_texts, callback) -> dict:
    device = d.device
    torch.manual_seed(cfg.seed)  # every rank draws the same numbers: it takes its rows of them
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    np_rng = np.random.default_rng(cfg.seed)
    ckpt_dir = Path(cfg.out) / "checkpoint"
    resume_from = find_checkpoint(ckpt_dir) if cfg.resume else None
    if cfg.resume and resume_from is None:  # a warning, not an error: a restarted job may not have saved yet
        warnings.warn(f"resume=True but {ckpt_dir} holds no checkpoint; starting from iteration 0", stacklevel=3)

    the_task = load_task(task if task is not None else env_kwargs.get("task", cfg.task))
    overrides = {k: v for k, v in env_kwargs.items() if k != "task"}
    adapters = None
    if cfg.lora:  # one copy of the weights: the adapters train, the base with them off is the reference
        from agents.common.lora import AdaptersOff

        adapters = lora_policy(cfg, start_model(cfg, policy, the_task), device)
        if cfg.reference_model is None and "reference_model" not in overrides:
            overrides["reference_model"] = AdaptersOff(adapters.lm)
    kwargs = env_arguments(cfg, device, policy, task=the_task, **overrides)
    envs = gym.make_vec("TextBandit-v0", num_envs=cfg.local_batch_size, **kwargs)
    env = envs.unwrapped
    if adapters is not None:
        source = adapters
    else:
        source = str(resume_from) if resume_from else start_model(cfg, policy, kwargs["task"])
    policy = build_policy(cfg, env.tokenizer, device, source, env.reward_model)
    if adapters is not None and resume_from is not None:
        policy.load_adapter_state(resume_from)
    env.set_policy(policy)  # refuses a policy whose vocabulary differs from the reference's
    # the module the update's forward goes through; sharded (FSDP2), sampling and scoring gather it too
    train_policy = distributed.wrap(policy, d, fsdp=cfg.fsdp, methods=("generate", "response_logprobs", "values"))
    optimizer = adamw(
        param_groups(train_policy, cfg.value_lr_scale),
        device,
        lr=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        eps=1e-5,
    )
    kl_ctl = (
        F.AdaptiveKLController(env.kl_coef, cfg.target_kl, cfg.kl_horizon)
        if cfg.adaptive_kl
        else F.FixedKLController(env.kl_coef)
    )
    if ptx_texts is None and cfg.ptx_coef > 0:
        if not cfg.ptx_data:
            raise ValueError(
                "ptx_coef > 0 needs a pretraining corpus: set ptx_data (a .txt, or .jsonl with "
                "'text') or pass ptx_texts= to train()"
            )
        ptx_texts = load_texts(cfg.ptx_data)
    ptx = (
        PretrainingBatches(ptx_texts, env.tokenizer, cfg.ptx_batch_size, cfg.ptx_max_len, device, policy.autocast_dtype)
        if cfg.ptx_coef > 0
        else None
    )

    start, history, log_rows = 0, [], {}  # log_rows: what the logs held at the checkpoint (none: nothing)
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        distributed.load_optimizer_state(train_policy, optimizer, state["optimizer"])
        kl_ctl.load_state_dict(state["kl_ctl"])
        set_rng_state(state["rng"], generator, np_rng)
        start, history, log_rows = state["iteration"], state["history"], state["log_rows"]
    logger = None
    if d.is_main:  # a resumed run logs again what was logged after its checkpoint (all of it, without one)
        logger = MetricLogger(
            cfg.out,
            cfg.tensorboard,
            report_to=cfg.report_to,
            project=cfg.project,
            config=vars(cfg),
            resume_step=start if cfg.resume else None,
            resume_rows=log_rows if cfg.resume else None,
        )
    bar = None
    if cfg.progress and d.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.total_iterations, initial=start, desc="ppo")

    n_local = cfg.local_batch_size
    rows = (d.rank * n_local, cfg.batch_size) if d.world_size > 1 else None
    all_done = None
    if distributed.is_sharded(train_policy):  # every forward of a sharded model is a collective: stop together

        def all_done(done):
            return bool(distributed.all_reduce((~done).sum().reshape(1), "sum").item() == 0)

    for iteration in range(start, cfg.total_iterations):
        t0 = time.perf_counter()
        env.kl_coef = kl_ctl.value
        local = rollout(policy, envs, iteration_seed(cfg, iteration), cfg, generator, rows=rows, all_done=all_done)
        t_rollout = time.perf_counter() - t0
        values = policy.take_values(local.prompt_ids, local.prompt_mask, local.responses, local.mask, cfg.temperature)
        batch, values = gather_rollout(local), distributed.all_gather_rows(values)
        if rows is not None and cfg.temperature > 0:  # a rank whose rows ended early catches up with the batch
            own = decoding_steps(batch.mask) if all_done is not None else decoding_steps(local.mask)
            skip_draws(generator, cfg.batch_size, decoding_steps(batch.mask) - own, device)
        advantages, returns = advantages_and_returns(batch, values, cfg)
        t_update = time.perf_counter()
        steps_done = iteration * cfg.update_epochs * cfg.num_minibatches
        stats = ppo_update(
            train_policy,
            optimizer,
            batch,
            values,
            advantages,
            returns,
            cfg,
            np_rng,
            steps_done,
            ptx,
            d.rank,
            d.world_size,
        )
        t_update = time.perf_counter() - t_update
        kl_mean = torch.stack([batch.kl.mean(), batch.score.mean()])[0].item()  # the global batch's, on every rank
        kl_ctl.update(kl_mean, cfg.batch_size)
        dt = time.perf_counter() - t0
        n_tokens = batch.mask.sum().item()
        stats.update(
            {
                "env/score": batch.score.mean().item(),
                "env/kl": kl_mean,
                "env/kl_coef": kl_ctl.value,
                "env/reward": batch.rewards.mean().item(),
                "env/response_len": n_tokens / len(batch.mask),
                "env/no_eos_frac": float(np.mean(batch.info["truncated_response"])),
                "value/explained_variance": F.explained_variance(values, returns, batch.mask),
                "time/samples_per_s": cfg.batch_size / dt,
                "time/tokens_per_s": n_tokens / dt,
                "time/rollout_frac": t_rollout / dt,
                "time/update_s": t_update,
                "time/iteration_s": dt,
                "time/update_tokens": cfg.update_epochs * (batch.prompt_mask.sum() + batch.mask.sum()).item(),
                "lr": lr_of_step(cfg, steps_done + cfg.update_epochs * cfg.num_minibatches),
            }
        )
        parts = batch.info["score_parts"]
        if parts.shape[1] > 1:  # each reward source's mean (NaN where a function did not apply: not counted)
            for i, name in enumerate(env.reward_names):
                column = parts[:, i][~np.isnan(parts[:, i])]
                stats[f"env/score/{name}"] = float(column.mean()) if column.size else float("nan")
        if "gold_score" in batch.info:  # evaluation only: never enters a loss
            stats["eval/gold_score"] = float(np.mean(batch.info["gold_score"]))
        history.append({"iteration": iteration + 1, **stats})
        if logger is not None and (iteration + 1) % cfg.log_every == 0:
            logger.log(iteration + 1, stats)
        if logger is not None and cfg.samples_every and (iteration + 1) % cfg.samples_every == 0:
            logger.log_samples(
                iteration + 1,
                [
                    {"prompt": str(p), "response": str(r), "score": float(s)}
                    for p, r, s in list(zip(batch.info["prompt"], batch.info["response"], batch.info["score"]))[:8]
                ],
            )
        if bar is not None:
            post = {"score": f"{stats['env/score']:+.3f}", "kl": f"{kl_mean:.3f}"}
            if "eval/gold_score" in stats:
                post["gold"] = f"{stats['eval/gold_score']:+.3f}"
            bar.set_postfix(post)
            bar.update(1)
        last = iteration + 1 == cfg.total_iterations
        if (cfg.save_every and (iteration + 1) % cfg.save_every == 0) or last:
            save(
                cfg, d, ckpt_dir, policy, train_policy, optimizer, kl_ctl, generator, np_rng, history, logger, iteration
            )
        if callback is not None:
            callback(iteration + 1, stats, policy)
    if bar is not None:
        bar.close()
    if logger is not None:
        logger.close()
    return {"policy": policy, "history": history, "envs": envs}


def save(
    cfg, d: Dist, ckpt_dir, policy, train_policy, optimizer, kl_ctl, generator, np_rng, history, logger, iteration
):
    """Rank 0 writes the checkpoint (with LoRA: the adapter and value head, not a merged model);
    under FSDP2 every rank first helps gather the whole weights and optimizer state."""
    weights = distributed.full_state_dict(train_policy) if distributed.is_sharded(train_policy) else None
    opt_state = distributed.optimizer_state(train_policy, optimizer)
    if d.is_main:
        save_checkpoint(
            ckpt_dir,
            {
                "iteration": iteration + 1,
                "optimizer": opt_state,
                "kl_ctl": kl_ctl.state_dict(),
                "rng": rng_state(generator, np_rng),
                "history": history,
                "log_rows": dict(logger.rows),
                "config": vars(cfg),
            },
            lambda tmp: policy.save_pretrained(tmp, merge=False, state_dict=weights),
        )
    distributed.barrier()  # a rank that stops after this iteration stops with the checkpoint written


def save_policy(policy: PolicyWithValueHead, directory) -> None:
    """Write a trained policy (``train(...)["policy"]``) to ``directory``: every rank calls it, FSDP2
    gathers the weights, rank 0 writes (``PolicyWithValueHead.save_pretrained``), and every rank
    returns once it is written."""
    weights = distributed.full_state_dict(policy) if distributed.is_sharded(policy) else None
    if distributed.is_main_process():
        policy.save_pretrained(directory, state_dict=weights)
    distributed.barrier()
