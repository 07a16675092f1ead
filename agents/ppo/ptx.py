"""PPO-ptx (InstructGPT): the pretraining corpus whose LM loss is mixed into each PPO update.

The corpus is read with :func:`textbandit.data.load_texts` (a .txt, or .jsonl with a ``text`` field).
"""

from __future__ import annotations

import numpy as np
import torch


class PretrainingBatches:
    """The PPO-ptx corpus: random batches of right-padded documents and their LM loss."""

    def __init__(
        self,
        texts: list[str],
        tokenizer,
        batch_size: int,
        max_len: int,
        device,
        autocast_dtype: torch.dtype | None = None,
    ):
        if not texts:
            raise ValueError("the pretraining corpus is empty; pass ptx_data with at least one document")
        ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        self.docs = [(d + [tokenizer.eos_token_id])[:max_len] for d in ids if d]
        self.pad, self.batch_size, self.device = tokenizer.pad_token_id, batch_size, device
        self.autocast_dtype = autocast_dtype  # the policy's (bf16 on CUDA only when the config asks)

    def batch(self, rows) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(self.docs[i]) for i in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for j, i in enumerate(rows):
            ids[j, : len(self.docs[i])] = torch.tensor(self.docs[i])
            mask[j, : len(self.docs[i])] = 1
        return ids.to(self.device), mask.to(self.device)

    def loss(self, lm, np_rng: np.random.Generator, rows=None, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        """Mean next-token cross-entropy of a batch (random rows unless given).

        With ``world_size`` > 1 every rank draws the same global batch and computes its share of
        the rows: the loss is weighted by the share's tokens (times ``world_size``, divided out again
        by DDP's gradient mean), so the ranks together follow the global batch's token mean."""
        from agents.common.distributed import share

        rows = np_rng.integers(len(self.docs), size=self.batch_size) if rows is None else rows
        mine = share(list(rows), rank, world_size) or list(rows[:1])  # a rank with no rows weighs 0
        ids, mask = self.batch(mine)
        labels = ids.masked_fill(mask == 0, -100)
        with torch.autocast(ids.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            loss = lm(input_ids=ids, attention_mask=mask, labels=labels).loss
        if world_size == 1:
            return loss
        tokens = lambda rs: sum(len(self.docs[i]) - 1 for i in rs)  # noqa: E731  (the predicted ones)
        local = tokens(mine) if share(list(rows), rank, world_size) else 0
        return loss * (local * world_size / max(tokens(rows), 1))
