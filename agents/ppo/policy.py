"""The PPO policy: a Hugging Face causal LM with a scalar value head.

``PolicyWithValueHead`` implements the environment's policy protocol (``textbandit.policy``):
``response_logprobs(prompt_ids, prompt_mask, response_ids, response_mask, temperature)``, so
``gym.make_vec("TextBandit-v0", policy=policy)`` scores its KL penalty with it. The learner's
update calls the policy's ``forward`` (through ``DistributedDataParallel`` under torchrun), which
runs the *same* code on the same inputs, so the PPO ratio of the first minibatch is exactly 1
(N-details: dropout off, same temperature).

Memory: the logits are unembedded and turned into log-probs and entropies in chunks of rows
(``textbandit.scoring.map_row_chunks``, checkpointed under autograd), so the (N, L, V) logits
never exist whole; with LoRA (``agents.common.lora``) the LM is a PEFT model whose frozen base
is also the KL reference (``AdaptersOff``).

Values: by default a linear head on the LM's last hidden state (shared trunk), initialised to
zero so the first updates do not disturb the policy through a noisy value gradient. As in the
InstructGPT paper, a separate value model can be given instead (``value_model=``): any module
``value_model(input_ids, attention_mask, position_ids) -> (N, T)`` per-token values, such as a
``textbandit.reward_model.RewardModel`` initialised from the reward model.

Example::

    policy = PolicyWithValueHead.from_pretrained("runs/sft")
    responses = policy.generate(prompt_ids, prompt_mask, max_new_tokens=32, eos_token_id=1,
                                pad_token_id=0, temperature=1.0)
"""

from __future__ import annotations

import copy
import os
from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from agents.common.dropout import set_dropout
from agents.common.fused import fuse_gelu_
from agents.common.lora import ADAPTER_DIR, base_model_of, is_peft, merged
from agents.ppo.functions import entropy_from_logits
from agents.sampling import sample
from textbandit.layout import join
from textbandit.runtime import eval_mode
from textbandit.scoring import gather_logprobs, map_row_chunks, rows_per_chunk

VALUE_HEAD_FILE = "value_head.safetensors"


class ScoredRows(NamedTuple):
    """The rows the env last scored with the policy, and the values that forward computed."""

    prompt_ids: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    temperature: float
    values: torch.Tensor


VALUE_MODEL_DIR = "value_model"


class PolicyWithValueHead(nn.Module):
    """A causal LM (the policy) plus a value function; see the module docstring.

    Args:
        lm: a Hugging Face causal LM (``AutoModelForCausalLM``), e.g. the SFT model.
        value_model: ``None`` for a zero-initialised head on the shared trunk, or a separate
            value network ``(input_ids, attention_mask, position_ids) -> (N, T)``.
        pad_token_id: the tokenizer's pad id (distinct from EOS; architecture.md).
        forward_batch_size: rows per forward pass in ``response_logprobs``; the learner sets it
            to its minibatch size so that rollout scoring and the update see identical shapes.
        autocast_dtype: e.g. ``torch.bfloat16`` on CUDA; ``None`` runs in the weights' dtype.
        tokenizer: saved next to the LM by ``save_pretrained`` when given (the learner sets the
            environment's), so a saved policy loads with ``AutoTokenizer`` too.
    """

    def __init__(
        self,
        lm: nn.Module,
        value_model: nn.Module | None = None,
        pad_token_id: int = 0,
        forward_batch_size: int | None = None,
        autocast_dtype: torch.dtype | None = None,
        tokenizer=None,
    ):
        super().__init__()
        self.lm = fuse_gelu_(set_dropout(lm, 0.0))  # N-details: dropout off, else log-probs depend on the mask drawn
        self.value_model = set_dropout(value_model, 0.0) if value_model is not None else None
        if value_model is None:
            hidden = lm.config.hidden_size if hasattr(lm.config, "hidden_size") else lm.config.n_embd
            self.value_head = nn.Linear(hidden, 1)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        else:
            self.value_head = None
        self.pad_token_id = pad_token_id
        self.forward_batch_size = forward_batch_size
        self.autocast_dtype = autocast_dtype
        self.tokenizer = tokenizer
        self._handoff: ScoredRows | None = None  # the values of the env's last scoring forward; see take_values

    @property
    def config(self):
        """The LM's config (the environment reads ``config.vocab_size`` from it)."""
        return self.lm.config

    @classmethod
    def from_pretrained(cls, path_or_model, value_model=None, pad_token_id: int | None = None, **kwargs):
        """Build from a causal LM object or a local directory (with its value head if saved there)."""
        path = None
        if isinstance(path_or_model, (str, os.PathLike)):
            from transformers import AutoModelForCausalLM

            from textbandit.loading import load

            path = Path(path_or_model)
            lm = load(AutoModelForCausalLM.from_pretrained, path_or_model, "sft_model")
            if value_model is None and (path / VALUE_MODEL_DIR).is_dir():
                from textbandit.reward_model import RewardModel

                value_model = RewardModel.from_pretrained(str(path / VALUE_MODEL_DIR))
        else:
            lm = copy.deepcopy(path_or_model)  # never train the caller's model (it may be the reference)
        if pad_token_id is None:
            pad_token_id = lm.config.pad_token_id if lm.config.pad_token_id is not None else 0
        policy = cls(lm, value_model=value_model, pad_token_id=pad_token_id, **kwargs)
        if path is not None and policy.value_head is not None and (path / VALUE_HEAD_FILE).exists():
            from safetensors.torch import load_file

            policy.value_head.load_state_dict(load_file(str(path / VALUE_HEAD_FILE)))
        return policy

    def save_pretrained(self, directory, merge: bool = True, state_dict: dict | None = None) -> None:
        """The LM in Hugging Face format (``AutoModelForCausalLM`` loads it), the value function and the tokenizer.

        With LoRA the adapter goes to ``directory/adapter`` (PEFT format) and, with ``merge``, the
        LM with its adapters merged to ``directory`` (the learner's checkpoints skip the merge:
        they hold the adapter and the value head only). ``state_dict``: this policy's whole
        weights, where the module holds only a shard of them (FSDP2).
        """
        directory = Path(directory)
        weights = state_dict
        if is_peft(self.lm):
            self.lm.save_pretrained(str(directory / ADAPTER_DIR))
            if merge:
                merged(self.lm).save_pretrained(str(directory))
            else:
                directory.mkdir(parents=True, exist_ok=True)
        elif weights is not None:
            from agents.common.distributed import plain_copy

            plain_copy(self.lm, _under(weights, "lm.")).save_pretrained(str(directory))
        else:
            self.lm.save_pretrained(str(directory))
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(directory))
        if self.value_head is not None:
            from safetensors.torch import save_file

            head = _under(weights, "value_head.") if weights is not None else self.value_head.state_dict()
            save_file({k: v.detach().contiguous() for k, v in head.items()}, str(directory / VALUE_HEAD_FILE))
        else:
            # textbandit's own format: the trained head and trunk exactly as they are, so a resumed run continues
            # bit for bit (the Hugging Face format would fold the head's bias into the trunk's final norm)
            self.value_model.save_pretrained(str(directory / VALUE_MODEL_DIR), format="textbandit")

    def load_adapter_state(self, directory) -> None:
        """Load the trained adapter and value head a LoRA checkpoint holds (``save_pretrained(merge=False)``)."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        directory = Path(directory)
        set_peft_model_state_dict(self.lm, load_file(str(directory / ADAPTER_DIR / "adapter_model.safetensors")))
        self.value_head.load_state_dict(load_file(str(directory / VALUE_HEAD_FILE)))

    def _autocast(self, device: torch.device):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def forward(
        self,
        prompt_ids,
        prompt_mask,
        response_ids,
        response_mask,
        temperature: float,
        with_values: bool = True,
        entropy_grad: bool = True,
    ):
        """One forward over ``prompt ++ response``: per-token log-probs, values and entropies.

        Returns three (N, L) float32 tensors, 0 where ``response_mask`` is 0. The value for token
        ``t`` is read at the position whose logits predict it (``P + t - 1``): V of the state
        before the token is chosen. ``entropy_grad=False`` computes the entropy for logging only
        (no graph: the (N, L, V) tensors it needs are freed at once).
        """
        P = prompt_ids.shape[1]
        input_ids, attention_mask, pos = join(prompt_ids, prompt_mask, response_ids, response_mask, self.pad_token_id)
        with self._autocast(input_ids.device):
            trunk = base_model_of(self.lm).base_model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=pos
            )
            hidden = trunk.last_hidden_state[:, P - 1 : -1]  # (N, L, d): the states that predict the response
            if with_values:
                if self.value_head is not None:
                    values = self.value_head(hidden).squeeze(-1)
                else:
                    values = self.value_model(input_ids, attention_mask, pos)[:, P - 1 : -1]
        unembed = self.lm.get_output_embeddings()
        track_entropy = entropy_grad and torch.is_grad_enabled()

        def logprobs_and_entropy(h, tokens):  # rows of (N, L, d) -> (N, L) twice; see map_row_chunks
            # Unembed only the response positions: prompt logits are never used (saves P*V*d FLOPs).
            with self._autocast(h.device):
                logits = unembed(h)
            # N-details: logits divided by the sampling temperature, as the sampler and env did.
            logits = logits.float() if temperature == 1.0 else logits.float() / temperature
            logprobs = gather_logprobs(logits, tokens)
            with torch.set_grad_enabled(track_entropy):
                entropy = entropy_from_logits(logits)
            return logprobs, entropy

        vocab = getattr(unembed, "out_features", None) or self.config.vocab_size
        rows = rows_per_chunk(hidden.shape[0], hidden.shape[1] * vocab)
        logprobs, entropy = map_row_chunks(logprobs_and_entropy, hidden, input_ids[:, P:], rows=rows)
        mask = response_mask.to(torch.float32)
        values = values.float() * mask if with_values else None
        return logprobs * mask, values, entropy * mask

    @torch.no_grad()
    def response_logprobs(self, prompt_ids, prompt_mask, response_ids, response_mask, temperature):
        """The policy protocol (``textbandit.policy``): (N, L) log-probs, 0 where masked.

        With the shared value head the same forward gives the values for free: they are handed
        over to :meth:`take_values` (the learner's next call), with the rows they belong to.
        """
        with eval_mode(self):
            n = prompt_ids.shape[0]
            step = self.forward_batch_size or n
            logprobs, values = [], []
            for i in range(0, n, step):
                s = slice(i, i + step)
                lp, v, _ = self(
                    prompt_ids[s],
                    prompt_mask[s],
                    response_ids[s],
                    response_mask[s],
                    temperature,
                    with_values=self.value_head is not None,
                )  # the head is free; a value model is not
                logprobs.append(lp)
                values.append(v)
            if self.value_head is not None:
                self._handoff = ScoredRows(prompt_ids, response_ids, response_mask, temperature, torch.cat(values))
            return torch.cat(logprobs)

    @torch.no_grad()
    def take_values(self, prompt_ids, prompt_mask, response_ids, response_mask, temperature: float) -> torch.Tensor:
        """(N, L) values of each response token's state: the ones the env's scoring forward handed
        over (the weights have not changed since: the learner asks before its update), or, with a
        separate value model, one forward here (eval mode, chunked like the update).

        A handoff for other rows than these is a ``RuntimeError``, never a silent second forward.
        """
        handoff, self._handoff = self._handoff, None
        if handoff is not None:
            ours = (prompt_ids, response_ids, response_mask)
            same = handoff.temperature == temperature and all(
                a.shape == b.shape and torch.equal(a.to(b.device), b) for a, b in zip(handoff[:3], ours)
            )
            if not same:
                raise RuntimeError(
                    "the values handed over by the env's scoring forward are for other rows than "
                    "these; call take_values with the rollout the env just scored"
                )
            return handoff.values.to(prompt_ids.device)
        if self.value_head is not None:
            raise RuntimeError(
                "no values were handed over: the env has not scored these rows with this policy "
                "(attach it with envs.set_policy(policy) before stepping)"
            )
        return self.values(prompt_ids, prompt_mask, response_ids, response_mask, temperature)

    @torch.no_grad()
    def values(self, prompt_ids, prompt_mask, response_ids, response_mask, temperature: float = 1.0):
        """(N, L) values of each response token's state, from a forward pass (no grad, eval mode),
        in chunks of ``forward_batch_size`` rows like the update."""
        with eval_mode(self):
            n, step = prompt_ids.shape[0], self.forward_batch_size or prompt_ids.shape[0]
            out = [
                self(
                    prompt_ids[i : i + step],
                    prompt_mask[i : i + step],
                    response_ids[i : i + step],
                    response_mask[i : i + step],
                    temperature,
                )[1]
                for i in range(0, n, step)
            ]
            return torch.cat(out)

    @torch.no_grad()
    def generate(
        self,
        prompt_ids,
        prompt_mask,
        max_new_tokens: int,
        eos_token_id: int,
        pad_token_id: int | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator=None,
        draw_rows: tuple[int, int] | None = None,
        all_done=None,
        cache: str = "dynamic",
        compile: bool = False,
    ) -> torch.Tensor:
        """Sample (N, max_new_tokens) responses with a KV cache (``agents.sampling.sample``; see
        there for ``draw_rows`` and ``all_done``, which a data-parallel learner passes, and for
        ``cache`` and ``compile``).

        Sampling filters with top-k/top-p but the log-probs the env and the update use are of the
        unfiltered tempered distribution (as TRL and lm-human-preferences do); keep the
        defaults (0, 1.0) for an exactly on-policy ratio.
        """
        with eval_mode(self), self._autocast(prompt_ids.device):
            return sample(
                self.lm,
                prompt_ids,
                prompt_mask,
                max_new_tokens,
                eos_token_id,
                self.pad_token_id if pad_token_id is None else pad_token_id,
                temperature,
                top_k,
                top_p,
                generator,
                draw_rows=draw_rows,
                all_done=all_done,
                cache=cache,
                compile=compile,
            )


def _under(state: dict, prefix: str) -> dict:
    """The entries of ``state`` under ``prefix``, with it removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
