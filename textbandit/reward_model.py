"""The reward model: a causal LM's trunk with its unembedding replaced by a scalar head.

As in InstructGPT, the reward model starts from the SFT model: the transformer trunk is kept,
the unembedding (LM head) is dropped, and a linear head ``d -> 1`` reads a reward from each
token's final hidden state. The reward of ``prompt ++ response`` is the head's output at the last
attended token (the response's EOS when it has one). See docs/architecture.md.

    >>> import tempfile, torch
    >>> from textbandit.task import load_task
    >>> task = load_task("default")
    >>> fresh = RewardModel.from_causal_lm(task.reference_model)   # the SFT trunk, a new scalar head
    >>> rm = RewardModel.from_pretrained(task.reward_model)        # the shipped, trained one
    >>> ids = torch.tensor([[5, 6, 7, 1], [0, 5, 6, 1]]); mask = (ids != 0).long()
    >>> rm.score(ids, mask).shape
    torch.Size([2])
    >>> out = tempfile.mkdtemp(); rm.save_pretrained(out)
    >>> torch.equal(RewardModel.from_pretrained(out).score(ids, mask), rm.score(ids, mask))
    True
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from textbandit.layout import position_ids as default_position_ids

HEAD_FILE = "reward_head.safetensors"


class RewardModel(nn.Module):
    """``trunk`` (a Hugging Face ``AutoModel``) plus a scalar head ``nn.Linear(d, 1)``.

    The head is initialised N(0, 1/sqrt(d + 1)) with bias 0 (lm-human-preferences' reward head).
    """

    def __init__(self, trunk: nn.Module, head: nn.Linear | None = None):
        super().__init__()
        self.trunk = trunk
        d = trunk.config.hidden_size
        if head is None:
            head = nn.Linear(d, 1)
            nn.init.normal_(head.weight, mean=0.0, std=1.0 / math.sqrt(d + 1))
            nn.init.zeros_(head.bias)
        self.head = head.to(next(trunk.parameters()).device)

    @property
    def config(self):
        return self.trunk.config

    @classmethod
    def from_causal_lm(cls, model_or_path, torch_dtype: torch.dtype | None = None) -> "RewardModel":
        """A reward model with the trunk weights of a causal LM (a module or a local path) and a fresh head."""
        if isinstance(model_or_path, (str, os.PathLike)):
            from transformers import AutoModelForCausalLM

            from textbandit.loading import load

            model_or_path = load(AutoModelForCausalLM.from_pretrained, model_or_path, "model", dtype=torch_dtype)
        trunk = getattr(model_or_path, "base_model", None)
        if trunk is None or trunk is model_or_path or not hasattr(trunk, "config"):
            raise TypeError(
                f"expected a Hugging Face causal LM (with a .base_model trunk), got {type(model_or_path).__name__}"
            )
        return cls(trunk)

    def forward(self, input_ids, attention_mask, position_ids=None) -> torch.Tensor:
        """Per-token rewards ``(N, T)`` (every position's head output; use :meth:`score` for the reward)."""
        hidden = self._hidden(input_ids, attention_mask, position_ids)
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1)

    def score(self, input_ids, attention_mask, position_ids=None) -> torch.Tensor:
        """Rewards ``(N,)`` at each row's last attended token (rightmost ``attention_mask == 1``)."""
        hidden = self._hidden(input_ids, attention_mask, position_ids)  # (N, T, d)
        T = attention_mask.shape[1]
        last = (attention_mask.long() * torch.arange(1, T + 1, device=attention_mask.device)).argmax(dim=1)
        h = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (N, d)
        return self.head(h.to(self.head.weight.dtype)).squeeze(-1)

    def _hidden(self, input_ids, attention_mask, position_ids):
        if position_ids is None:
            position_ids = default_position_ids(attention_mask)
        out = self.trunk(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
        return out.last_hidden_state

    @torch.no_grad()
    def normalize_(self, offset: float) -> None:
        """Subtract ``offset`` (e.g. the demonstrations' mean reward) from the head's bias, in place."""
        self.head.bias -= float(offset)

    def save_pretrained(self, save_directory: str | os.PathLike, tokenizer=None) -> None:
        """Write the trunk in Hugging Face format, the head to ``reward_head.safetensors`` and the tokenizer."""
        path = Path(save_directory)
        path.mkdir(parents=True, exist_ok=True)
        self.trunk.save_pretrained(str(path))
        head = {k: v.detach().float().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(head, str(path / HEAD_FILE))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(path))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, torch_dtype: torch.dtype | None = None) -> "RewardModel":
        """Load a reward model written by :meth:`save_pretrained`."""
        from transformers import AutoModel

        path = Path(directory)
        if not path.is_dir():
            raise FileNotFoundError(
                f"no reward model at {path}: no such folder (a reward model folder holds "
                f"config.json, model.safetensors and {HEAD_FILE})"
            )
        if not (path / HEAD_FILE).is_file():
            raise FileNotFoundError(
                f"{path} has no {HEAD_FILE}: not a textbandit reward model (build one with "
                "RewardModel.from_causal_lm, or train one with `python -m agents.reward`)"
            )
        # no dtype: the config's (as AutoModel does), not the dtype the tensors happen to be stored in
        trunk = AutoModel.from_pretrained(str(path), **({} if torch_dtype is None else {"dtype": torch_dtype}))
        state = load_file(str(path / HEAD_FILE))
        head = nn.Linear(state["weight"].shape[1], 1)
        head.load_state_dict(state)
        rm = cls(trunk, head)
        if torch_dtype is not None:  # else the head stays float32 (PPO may train it as a value head)
            rm.head.to(torch_dtype)
        return rm.eval()
