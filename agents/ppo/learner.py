"""PPO for RLHF in ``TextBandit-v0``, one flat loop (CleanRL style).

Each iteration: reset ``batch_size`` bandits, sample a response per prompt, ``step`` them (the
environment scores the response with the reward model and computes the per-token KL to the
reference with *our* policy's log-probs, and returns the per-token rewards), take the values of
that same scoring forward, run GAE, then ``update_epochs`` epochs of clipped-surrogate updates
over shuffled minibatches, optionally mixing in the pretraining loss (PPO-ptx). Example::

    from agents.ppo import PPOConfig, train
    result = train(PPOConfig(total_iterations=20, out="runs/ppo"))
    result["policy"].save_pretrained("runs/ppo/final")

Implementation details from "The N Implementation Details of RLHF with PPO" are marked
N-details where they happen.
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch

import textbandit  # noqa: F401  (registers TextBandit-v0)
from agents.common.checkpoint import find_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from agents.common.device import adamw
from agents.common.metrics import MetricLogger
from agents.common.rundir import claim_run_dir
from agents.common.schedule import learning_rate, set_lr
from agents.ppo import functions as F
from agents.ppo.config import PPOConfig
from agents.ppo.policy import VALUE_MODEL_DIR, PolicyWithValueHead
from agents.ppo.ptx import PretrainingBatches
from textbandit.data import load_texts
from textbandit.runtime import resolve_device
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


def start_model(cfg: PPOConfig, policy=None, task: Task | None = None):
    """What the policy starts from: ``policy`` (a model or path), else ``cfg.sft_model``, else the task's SFT model."""
    source = policy if policy is not None else cfg.sft_model
    if source is None and task is not None:
        source = task.reference_model
    if source is None:
        raise ValueError(
            "no model to start the policy from: set sft_model (--sft-model), or use a task that has an SFT model"
        )
    return source


def reference_model(cfg: PPOConfig, start):
    """The KL reference: ``cfg.reference_model`` when set, else the policy's starting model (as in
    lm-human-preferences and TRL), so the first iteration's KL is 0 whatever the policy starts from."""
    if cfg.reference_model is not None:
        return cfg.reference_model
    if isinstance(start, PolicyWithValueHead):
        return copy.deepcopy(start.lm)  # frozen at the start; the policy itself trains on
    return start


def env_arguments(cfg: PPOConfig, device, start=None, **overrides) -> dict:
    """The ``gym.make_vec("TextBandit-v0")`` arguments of a run: its task (``overrides["task"]`` when
    given, else ``cfg.task``), the config's own models and prompts beside it, its settings, then the
    other ``overrides``."""
    task = load_task(overrides.pop("task") if "task" in overrides else cfg.task)
    kwargs = dict(
        task=task,
        kl_coef=cfg.kl_coef,
        max_new_tokens=cfg.max_new_tokens,
        max_prompt_len=cfg.max_prompt_len,
        temperature=cfg.temperature,
        missing_eos_penalty=cfg.missing_eos_penalty,
        device=str(device),
        forward_batch_size=cfg.local_minibatch_size,
    )  # the reference and RM forwards in minibatches too
    if task is not None:
        kwargs["split"] = cfg.split
    for name in ("reward_model", "tokenizer", "prompts"):
        if getattr(cfg, name) is not None:
            kwargs[name] = getattr(cfg, name)
    if cfg.reward_fn:  # "module:function" strings: the env imports them
        kwargs["reward_fns"] = list(cfg.reward_fn)
    if cfg.reward_weights:
        kwargs["reward_weights"] = list(cfg.reward_weights)
    if task is None and cfg.tokenizer is None and cfg.sft_model is not None:
        kwargs["tokenizer"] = cfg.sft_model  # the SFT model's folder holds its tokenizer
    if "reference_model" not in overrides:
        kwargs["reference_model"] = reference_model(cfg, start_model(cfg, start, task))
    return {**kwargs, **overrides}


def build_policy(cfg: PPOConfig, tokenizer, device, source, reward_model=None) -> PolicyWithValueHead:
    """The policy from ``source`` (a model or a path: the start, or a checkpoint), on ``device``.

    ``value_model='reward'``: the value model starts as a trainable copy of ``reward_model`` (the
    environment's), unless ``source`` is a saved policy with its own (a checkpoint: its trained one).
    """
    value_model = None
    saved_value_model = isinstance(source, (str, os.PathLike)) and (Path(source) / VALUE_MODEL_DIR).is_dir()
    if cfg.value_model == "reward" and not isinstance(source, PolicyWithValueHead) and not saved_value_model:
        value_model = value_model_from(reward_model)
    autocast = torch.bfloat16 if (device.type == "cuda" and cfg.bf16) else None
    if isinstance(source, PolicyWithValueHead):
        policy = source
        policy.forward_batch_size, policy.autocast_dtype = cfg.local_minibatch_size, autocast
    else:
        policy = PolicyWithValueHead.from_pretrained(
            source,
            value_model=value_model,
            pad_token_id=tokenizer.pad_token_id,
            forward_batch_size=cfg.local_minibatch_size,
            autocast_dtype=autocast,
        )
    policy.tokenizer = tokenizer  # saved with the policy: its folders load with AutoTokenizer too
    vocab = policy.config.vocab_size
    if vocab < len(tokenizer):
        raise ValueError(
            f"the policy's vocabulary ({vocab}) is smaller than the environment tokenizer's "
            f"({len(tokenizer)}); start the policy from the SFT model trained with that tokenizer"
        )
    return policy.to(device)


def value_model_from(reward_model) -> torch.nn.Module:
    """A trainable float32 copy of the environment's reward model (the paper's value initialisation)."""
    from textbandit.reward_model import RewardModel
    from textbandit.rewards import is_sequence_classifier

    if is_sequence_classifier(reward_model):  # a Hugging Face reward model (ours as saved, or TRL's)
        return RewardModel.from_sequence_classifier(copy.deepcopy(reward_model)).float().requires_grad_(True)
    if not isinstance(reward_model, RewardModel):
        raise ValueError(
            f"value_model='reward' initialises the value model from the environment's reward model, "
            f"which must be a textbandit.reward_model.RewardModel or a Hugging Face sequence classifier "
            f"(got {type(reward_model).__name__}); pass one (or a path to one) as reward_model, or use "
            "value_model='shared'"
        )
    return copy.deepcopy(reward_model).float().requires_grad_(True)  # never train the env's reward


@torch.no_grad()
def rollout(
    policy: PolicyWithValueHead, envs, seed: int, cfg: PPOConfig, generator: torch.Generator, prompt_indices=None
) -> Rollout:
    """Reset the envs (seeded, so a resumed run sees the same prompts), sample, step, collect."""
    env = envs.unwrapped
    dev = next(policy.parameters()).device
    options = None if prompt_indices is None else {"prompt_indices": prompt_indices}
    obs, _ = envs.reset(seed=seed, options=options)
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
    )
    # SAME_STEP autoreset: step returns the next prompts; we reseed each iteration instead, so
    # prompts depend only on (seed, rank, iteration) and a resumed run continues exactly.
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
) -> dict:
    """``update_epochs`` epochs of minibatch PPO steps over one rollout batch; returns mean stats.

    ``first_step``: the run's optimizer steps so far, where this update continues the schedule."""
    policy.train()  # dropout is 0 (N-details), so train mode computes what eval mode did
    stats: dict[str, list[float]] = {}
    n, mb = batch.responses.shape[0], cfg.local_minibatch_size
    step_index, first = first_step, True
    for _ in range(cfg.update_epochs):
        order = torch.as_tensor(np_rng.permutation(n), device=batch.responses.device)
        for start in range(0, n, mb):
            idx = order[start : start + mb]
            mask = batch.mask[idx]
            logprobs, new_values, entropy = policy.forward_logprobs_and_values(
                batch.prompt_ids[idx],
                batch.prompt_mask[idx],
                batch.responses[idx],
                mask,
                cfg.temperature,
                entropy_grad=cfg.ent_coef > 0,
            )  # else the entropy is only logged
            pg = F.policy_loss(logprobs, batch.logprobs[idx], advantages[idx], mask, cfg.clip_coef)
            vf_loss, vf_clip = F.value_loss(new_values, values[idx], returns[idx], mask, cfg.value_clip)
            ent = F.masked_mean(entropy, mask)
            loss = pg.loss + cfg.vf_coef * vf_loss - cfg.ent_coef * ent
            step = {
                "loss/policy": pg.loss.item(),
                "loss/value": vf_loss.item(),
                "policy/entropy": ent.item(),
                "policy/clip_frac": pg.clip_frac.item(),
                "policy/approx_kl": pg.approx_kl.item(),
                "value/clip_frac": vf_clip.item(),
            }
            if first:  # the env scored with this very policy: the ratio is exactly 1 here
                step["policy/first_ratio_max_dev"] = (logprobs - batch.logprobs[idx]).abs().max().item()
                first = False
            if ptx is not None and cfg.ptx_coef > 0:
                ptx_loss = ptx.loss(policy.lm, np_rng)
                loss = loss + cfg.ptx_coef * ptx_loss
                step["loss/ptx"] = ptx_loss.item()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            all_reduce_mean_([p.grad for p in policy.parameters() if p.grad is not None])
            step["policy/grad_norm"] = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm).item()
            set_lr(optimizer, lr_of_step(cfg, step_index))
            optimizer.step()
            step_index += 1
            for k, v in step.items():
                stats.setdefault(k, []).append(v)
    return {k: (v[0] if k == "policy/first_ratio_max_dev" else float(np.mean(v))) for k, v in stats.items()}


def all_reduce_mean_(tensors) -> None:
    """Average tensors over data-parallel ranks in place (a no-op without ``torch.distributed``).

    Gradients are averaged by hand rather than through ``DistributedDataParallel`` because the
    update calls ``forward_logprobs_and_values``, not ``forward``; every rank runs the same number
    of minibatch steps (``PPOConfig`` checks the arithmetic), so the collectives line up.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    world = torch.distributed.get_world_size()
    for t in tensors:
        torch.distributed.all_reduce(t)
        t.div_(world)


def param_groups(policy: PolicyWithValueHead, value_lr_scale: float) -> list[dict]:
    """The optimizer's groups: the policy's LM, and the value function with its own learning-rate scale."""
    value = policy.value_head if policy.value_head is not None else policy.value_model
    value_ids = {id(p) for p in value.parameters()}
    return [
        {"params": [p for p in policy.parameters() if id(p) not in value_ids]},
        {"params": list(value.parameters()), "lr_scale": value_lr_scale},
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
    """The env seed of an iteration: distinct per (seed, rank, iteration), so ranks see different prompts."""
    return int(np.random.SeedSequence([cfg.seed, cfg.rank, iteration]).generate_state(1)[0])


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
    ``callback(iteration, stats, policy)`` runs after each iteration (evaluation hooks).
    """
    # one writer per output folder; a fresh run never lands on an old one (rank 0 writes all files)
    run_dir = (
        claim_run_dir(cfg.out, resume=cfg.resume, overwrite=cfg.overwrite, what="PPO run") if cfg.rank == 0 else None
    )
    try:
        return _train(cfg, policy, task, env_kwargs or {}, ptx_texts, callback)
    finally:
        if run_dir is not None:
            run_dir.release()


def _train(cfg: PPOConfig, policy, task, env_kwargs: dict, ptx_texts, callback) -> dict:
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.rank_seed)
    generator = torch.Generator(device=device).manual_seed(cfg.rank_seed)
    np_rng = np.random.default_rng(cfg.rank_seed)
    ckpt_dir = Path(cfg.out) / "checkpoint"
    resume_from = find_checkpoint(ckpt_dir) if cfg.resume else None
    if cfg.resume and resume_from is None:  # a warning, not an error: a restarted job may not have saved yet
        warnings.warn(f"resume=True but {ckpt_dir} holds no checkpoint; starting from iteration 0", stacklevel=3)

    kwargs = env_arguments(cfg, device, policy, **({"task": task} if task is not None else {}), **env_kwargs)
    envs = gym.make_vec("TextBandit-v0", num_envs=cfg.local_batch_size, **kwargs)
    env = envs.unwrapped
    source = str(resume_from) if resume_from else start_model(cfg, policy, kwargs["task"])
    policy = build_policy(cfg, env.tokenizer, device, source, env.reward_model)
    env.set_policy(policy)  # refuses a policy whose vocabulary differs from the reference's
    optimizer = adamw(
        param_groups(policy, cfg.value_lr_scale), device, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, eps=1e-5
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
        optimizer.load_state_dict(state["optimizer"])
        kl_ctl.load_state_dict(state["kl_ctl"])
        set_rng_state(state["rng"], generator, np_rng)
        start, history, log_rows = state["iteration"], state["history"], state["log_rows"]
    logger = None
    if cfg.rank == 0:  # a resumed run logs again what was logged after its checkpoint (all of it, without one)
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
    if cfg.progress and cfg.rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.total_iterations, initial=start, desc="ppo")

    for iteration in range(start, cfg.total_iterations):
        t0 = time.perf_counter()
        env.kl_coef = kl_ctl.value
        batch = rollout(policy, envs, iteration_seed(cfg, iteration), cfg, generator)
        t_rollout = time.perf_counter() - t0
        values = policy.take_values(batch.prompt_ids, batch.prompt_mask, batch.responses, batch.mask, cfg.temperature)
        advantages, returns = advantages_and_returns(batch, values, cfg)
        t_update = time.perf_counter()
        steps_done = iteration * cfg.update_epochs * cfg.num_minibatches
        stats = ppo_update(policy, optimizer, batch, values, advantages, returns, cfg, np_rng, steps_done, ptx)
        t_update = time.perf_counter() - t_update
        kl_sum = torch.stack([batch.kl.mean(), batch.score.mean()])
        all_reduce_mean_([kl_sum])  # the adaptive KL controller must see the global mean on every rank
        kl_mean = kl_sum[0].item()
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
                "time/samples_per_s": cfg.local_batch_size / dt,
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
        if cfg.rank == 0 and ((cfg.save_every and (iteration + 1) % cfg.save_every == 0) or last):
            save_checkpoint(
                ckpt_dir,
                {
                    "iteration": iteration + 1,
                    "optimizer": optimizer.state_dict(),
                    "kl_ctl": kl_ctl.state_dict(),
                    "rng": rng_state(generator, np_rng),
                    "history": history,
                    "log_rows": dict(logger.rows),
                    "config": vars(cfg),
                },
                policy.save_pretrained,
            )
        if callback is not None:
            callback(iteration + 1, stats, policy)
    if bar is not None:
        bar.close()
    if logger is not None:
        logger.close()
    return {"policy": policy, "history": history, "envs": envs}
