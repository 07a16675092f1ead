"""``TextActions``: ``TextBandit-v0`` with the response as text, for agents that write it elsewhere.

An agent that generates with another engine (vLLM, an API, a person) has text, not token ids.
``TextActions`` takes the response text as the action, tokenizes it with the env's tokenizer
(no special tokens) and appends the EOS; a response longer than ``max_new_tokens - 1`` tokens is
cut to ``max_new_tokens`` and has no EOS (``info["truncated_response"]``, as a sampled response
that ran out of tokens). The observation keeps the token ids and adds ``"prompt"``, the prompt's
text. Without a policy attached (``env.unwrapped.set_policy``) the KL term is 0: the env cannot
know the log-probs of a model it does not run.

>>> import gymnasium as gym, textbandit
>>> from gymnasium.utils.env_checker import check_env
>>> env = TextActions(gym.make("TextBandit-v0"))
>>> obs, info = env.reset(seed=0)
>>> obs["prompt"] == info["prompt"], obs["prompt"].endswith("response :")
(True, True)
>>> obs, reward, terminated, truncated, info = env.step("the cat is red .")
>>> info["response"], bool(info["truncated_response"])
('the cat is red .', False)
>>> check_env(env.unwrapped), check_env(env, skip_render_check=True)
(None, None)
"""

from __future__ import annotations

import string

import gymnasium as gym
import numpy as np
from gymnasium import spaces


def encode_actions(tokenizer, texts: list[str], max_new_tokens: int) -> np.ndarray:
    """Response texts as the env's ``(n, max_new_tokens)`` int64 actions: each text's tokens (no special
    tokens) and the EOS, padded with the pad token; a text of ``max_new_tokens`` tokens or more is cut
    to ``max_new_tokens`` tokens, without EOS. Works for the vector env too.

    >>> from textbandit.task import load_task
    >>> tok = load_task("default").load_tokenizer()
    >>> a = encode_actions(tok, ["red and blue ."], 8)
    >>> a.shape, tok.decode(a[0], skip_special_tokens=True)
    ((1, 8), 'red and blue .')
    """
    out = np.full((len(texts), max_new_tokens), tokenizer.pad_token_id, dtype=np.int64)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"a text action must be a str (the response), got {type(text).__name__}: {text!r}")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = ids[:max_new_tokens] if len(ids) >= max_new_tokens else ids + [tokenizer.eos_token_id]
        out[i, : len(ids)] = ids
    return out


def charset(tokenizer, texts: list[str]) -> str:
    """Every character a response or prompt can hold: printable ASCII, the vocabulary's and ``texts``'."""
    chars = set(string.printable) | {c for t in texts for c in t}
    for token in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))):
        chars |= set(tokenizer.convert_tokens_to_string([token]))
    return "".join(sorted(c for c in chars if c.isprintable() or c == " "))


class TextActions(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """``TextBandit-v0`` whose action is the response text and whose observation carries the prompt
    text (module docstring). Spaces: ``action_space = Text(max_length, charset)`` (the vocabulary's
    characters; longer texts are cut to ``max_new_tokens`` tokens anyway);
    ``observation_space = Dict(input_ids, attention_mask, prompt=Text)``."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)  # lets gymnasium (check_env) re-create the wrapped env
        gym.Wrapper.__init__(self, env)
        base = env.unwrapped
        tok, prompts = base.tokenizer, list(base.prompts)
        chars = charset(tok, prompts)
        longest = max(len(tok.convert_tokens_to_string([t])) for t in tok.convert_ids_to_tokens(list(range(len(tok)))))
        self.action_space = spaces.Text(max_length=max(1, base.max_new_tokens * longest), min_length=0, charset=chars)
        self.observation_space = spaces.Dict(
            {
                **env.observation_space.spaces,
                "prompt": spaces.Text(max_length=max(len(p) for p in prompts), min_length=1, charset=chars),
            }
        )
        self._prompt: str | None = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._prompt = info["prompt"]
        return {**obs, "prompt": self._prompt}, info

    def step(self, action: str):
        base = self.env.unwrapped
        ids = encode_actions(base.tokenizer, [action], base.max_new_tokens)[0]
        obs, reward, terminated, truncated, info = self.env.step(ids)
        return {**obs, "prompt": info["prompt"]}, reward, terminated, truncated, info
