"""The reward model: a causal LM's trunk with its unembedding replaced by a scalar head.

As in InstructGPT, the reward model starts from the SFT model: the transformer trunk is kept,
the unembedding (LM head) is dropped, and a linear head ``d -> 1`` reads a reward from each
token's final hidden state. The reward of ``prompt ++ response`` is the head's output at the last
attended token (the response's EOS when it has one). See docs/architecture.md.

``save_pretrained`` writes a Hugging Face sequence classifier with one label, which
``AutoModelForSequenceClassification.from_pretrained`` (and TRL) load and which scores as this
model does; ``from_pretrained`` reads that, any such classifier (TRL's ``RewardTrainer`` output),
and textbandit's older format (the trunk plus ``reward_head.safetensors``).

    >>> import tempfile, torch
    >>> from textbandit.task import load_task
    >>> task = load_task("default")
    >>> fresh = RewardModel.from_causal_lm(task.reference_model)   # the SFT trunk, a new scalar head
    >>> rm = RewardModel.from_pretrained(task.reward_model)        # the shipped, trained one
    >>> ids = torch.tensor([[5, 6, 7, 1], [0, 5, 6, 1]]); mask = (ids != 0).long()
    >>> rm.score(ids, mask).shape
    torch.Size([2])
    >>> out = tempfile.mkdtemp(); rm.save_pretrained(out)
    >>> torch.allclose(RewardModel.from_pretrained(out).score(ids, mask), rm.score(ids, mask), atol=1e-5)
    True
    >>> from transformers import AutoModelForSequenceClassification
    >>> hf = AutoModelForSequenceClassification.from_pretrained(out)   # plain transformers
    >>> pos = (mask.cumsum(1) - 1).clamp(min=0)                       # positions that skip left padding
    >>> scores = hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, 0]
    >>> torch.allclose(scores, rm.score(ids, mask), atol=1e-5)
    True
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from textbandit.layout import position_ids as default_position_ids

HEAD_FILE = "reward_head.safetensors"


class RewardModel(nn.Module):
    """``trunk`` (a Hugging Face ``AutoModel``) plus a scalar head ``nn.Linear(d, 1)``.

    The head is initialised N(0, ``initializer_range``) with bias 0, as Hugging Face initialises
    ``AutoModelForSequenceClassification``'s score head (0.02 when the trunk's config has none).
    lm-human-preferences' N(0, 1/sqrt(d + 1)) (0.088 for d = 128) generalised about 2.5 points worse
    on the default task's held-out rankings (benchmarks/README.md, "Our reward-model trainer against TRL's").
    """

    def __init__(self, trunk: nn.Module, head: nn.Linear | None = None):
        super().__init__()
        self.trunk = trunk
        d = trunk.config.hidden_size
        if head is None:
            head = nn.Linear(d, 1)
            nn.init.normal_(head.weight, mean=0.0, std=getattr(trunk.config, "initializer_range", 0.02))
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

    def save_pretrained(self, save_directory: str | os.PathLike, tokenizer=None, format: str = "auto") -> None:
        """Write the reward model (and the tokenizer, when given) to ``save_directory``.

        ``format="hf"``: a Hugging Face sequence-classification checkpoint (one label) that
        ``AutoModelForSequenceClassification.from_pretrained`` loads and that scores as this model
        does (:meth:`to_sequence_classifier`); ``"textbandit"``: the trunk in Hugging Face format plus
        ``reward_head.safetensors`` (the older format, which only textbandit reads); ``"auto"``
        (default): ``"hf"`` where it is exact, else ``"textbandit"`` with a warning saying why.
        """
        if format not in ("auto", "hf", "textbandit"):
            raise ValueError(f"format={format!r}; use 'auto', 'hf' or 'textbandit'")
        path = Path(save_directory)
        path.mkdir(parents=True, exist_ok=True)
        pad = getattr(tokenizer, "pad_token_id", None)
        if format != "textbandit":
            try:
                model = self.to_sequence_classifier(pad_token_id=pad)
            except ValueError as e:
                if format == "hf":
                    raise
                warnings.warn(f"{e}; saving textbandit's own format instead", stacklevel=2)
            else:
                model.save_pretrained(str(path))
                (path / HEAD_FILE).unlink(missing_ok=True)  # a stale head would be read instead of the checkpoint
                format = "hf"
        if format != "hf":
            self.trunk.save_pretrained(str(path))
            head = {k: v.detach().float().cpu().contiguous() for k, v in self.head.state_dict().items()}
            save_file(head, str(path / HEAD_FILE))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(path))

    @torch.no_grad()
    def to_sequence_classifier(self, pad_token_id: int | None = None):
        """This reward model as a Hugging Face ``...ForSequenceClassification`` with one label that gives
        the same scores (read at the last non-pad token, which is the last attended one in the env's
        layout). Hugging Face's score heads have no bias, so the head's bias ``b`` goes into the bias
        of the trunk's final norm: ``w . (beta + b w / |w|^2) = w . beta + b``, exact because the
        head is linear. A ``ValueError`` when there is no such norm (RMSNorm has no bias) and
        ``b != 0``. ``pad_token_id``: the tokenizer's, which the pooling finds the last token by.
        """
        from transformers import AutoModelForSequenceClassification

        config = copy.deepcopy(self.trunk.config)
        config.num_labels, config.architectures = 1, None
        config.problem_type = "regression"
        if pad_token_id is not None:
            config.pad_token_id = pad_token_id
        dtype = next(self.trunk.parameters()).dtype
        model = AutoModelForSequenceClassification.from_config(config, dtype=dtype)
        head = getattr(model, "score", None)
        if not (isinstance(head, nn.Linear) and head.bias is None):
            raise ValueError(
                f"{type(model).__name__} has no bias-free linear 'score' head to hold the reward head exactly"
            )
        base = getattr(model, model.base_model_prefix)
        base.load_state_dict(self.trunk.state_dict())
        weight = self.head.weight.detach().float()
        head.weight.copy_(weight)
        bias = float(self.head.bias) if self.head.bias is not None else 0.0
        if bias != 0.0:
            name = final_norm(self.trunk)
            if name is None:
                raise ValueError(
                    f"the reward head's bias ({bias:+.4g}) cannot be exported exactly: the {type(self.trunk).__name__} "
                    "trunk's final norm has no bias to hold it (AutoModelForSequenceClassification's score head has "
                    "none); train without normalisation to export this architecture"
                )
            norm = base.get_submodule(name)
            folded = norm.bias.detach().float() + bias * weight[0] / weight[0].pow(2).sum()
            norm.bias.copy_(folded.to(norm.bias.dtype))
        return model.to(next(self.trunk.parameters()).device).eval()

    @classmethod
    def from_sequence_classifier(cls, model) -> "RewardModel":
        """A reward model on the trunk and linear score head of a Hugging Face sequence classifier with one label."""
        head = getattr(model, "score", None)
        if getattr(model.config, "num_labels", None) != 1 or not (
            isinstance(head, nn.Linear) and head.out_features == 1
        ):
            raise ValueError(
                f"{type(model).__name__} is not a one-label sequence classifier with a linear 'score' head; use it "
                "as the env's reward_model as it is"
            )
        new = nn.Linear(head.in_features, 1).to(head.weight.device)
        with torch.no_grad():
            new.weight.copy_(head.weight.float())
            new.bias.copy_(head.bias.float() if head.bias is not None else torch.zeros(1))
        return cls(getattr(model, model.base_model_prefix), new)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, torch_dtype: torch.dtype | None = None) -> "RewardModel":
        """Load a reward model written by :meth:`save_pretrained` (either format), or any Hugging Face
        sequence classifier with one label and a linear ``score`` head (e.g. TRL's ``RewardTrainer`` output)."""
        from transformers import AutoModel

        path = Path(directory)
        if not path.is_dir():
            raise FileNotFoundError(
                f"no reward model at {path}: no such folder (a reward model folder holds "
                f"config.json and model.safetensors, and {HEAD_FILE} in textbandit's older format)"
            )
        kwargs = {} if torch_dtype is None else {"dtype": torch_dtype}
        if not (path / HEAD_FILE).is_file():
            config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
            if not any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
                raise FileNotFoundError(
                    f"{path} has neither a sequence-classification checkpoint nor {HEAD_FILE}: not a reward model "
                    "(build one with RewardModel.from_causal_lm, or train one with `textbandit rm`)"
                )
            from transformers import AutoModelForSequenceClassification

            rm = cls.from_sequence_classifier(AutoModelForSequenceClassification.from_pretrained(str(path), **kwargs))
        else:
            # no dtype: the config's (as AutoModel does), not the dtype the tensors happen to be stored in
            trunk = AutoModel.from_pretrained(str(path), **kwargs)
            state = load_file(str(path / HEAD_FILE))
            head = nn.Linear(state["weight"].shape[1], 1)
            head.load_state_dict(state)
            rm = cls(trunk, head)
        if torch_dtype is not None:  # else the head stays float32 (PPO may train it as a value head)
            rm.head.to(torch_dtype)
        return rm.eval()


@torch.no_grad()
def final_norm(trunk: nn.Module) -> str | None:
    """The name of the trunk's module with a bias whose output is the trunk's ``last_hidden_state``
    (GPT-2's ``ln_f``), found by running the trunk once on four tokens; None when there is none."""
    d = trunk.config.hidden_size
    candidates = {
        n: m
        for n, m in trunk.named_modules()
        if isinstance(getattr(m, "bias", None), torch.Tensor)
        and isinstance(getattr(m, "weight", None), torch.Tensor)
        and tuple(m.weight.shape) == (d,)
        and tuple(m.bias.shape) == (d,)
    }
    outputs: dict[str, list] = {n: [] for n in candidates}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: outputs[n].append(o)) for n, m in candidates.items()]
    try:
        ids = torch.arange(4, device=next(trunk.parameters()).device).unsqueeze(0)
        hidden = trunk(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    finally:
        for h in hooks:
            h.remove()
    for n, outs in outputs.items():  # called once (a norm used twice could not take the bias alone)
        if len(outs) == 1 and isinstance(outs[0], torch.Tensor) and torch.equal(outs[0], hidden):
            return n
    return None
