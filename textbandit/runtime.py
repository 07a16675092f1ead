"""Where and how models run: the one device resolver and the one eval-mode context."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``'auto'`` means CUDA when available, else CPU; anything else is passed to ``torch.device``.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def eval_mode(*modules: torch.nn.Module):
    """Put ``modules`` in eval mode (dropout off) inside the block, and back in the mode each was in.

    >>> lin = torch.nn.Linear(2, 2).train()
    >>> with eval_mode(lin):
    ...     lin.training
    False
    >>> lin.training
    True
    """
    was_training = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, was_training):
            m.train(mode)
