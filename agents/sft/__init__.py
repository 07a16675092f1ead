"""Supervised fine-tuning (SFT) on demonstrations: :class:`SFTConfig` and :func:`train_sft`."""

from agents.sft.config import SFTConfig
from agents.sft.trainer import sft_loss_sum, train_sft, validation_loss

__all__ = ["SFTConfig", "train_sft", "sft_loss_sum", "validation_loss"]
