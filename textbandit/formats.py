"""TRL's dataset formats read into textbandit's records, and K-wise rankings to and from pairs.

TRL's formats (huggingface.co/docs/trl/dataset_formats) come *standard* (strings) or
*conversational* (lists of ``{"role", "content"}`` messages):

====================================  ================================  =====================
TRL format                            columns                           read as
====================================  ================================  =====================
prompt-only                           ``prompt``                        a prompt
prompt-completion                     ``prompt``, ``completion``        a demonstration
language modeling (conversational)    ``messages``                      a demonstration (the
                                                                        last assistant turn is
                                                                        the response) or a prompt
preference                            ``prompt``, ``chosen``,           a comparison, K = 2
                                      ``rejected``
preference, implicit prompt           ``chosen``, ``rejected``          the same, the prompt
                                                                        their common prefix
====================================  ================================  =====================

Conversational rows are rendered with the tokenizer's chat template as TRL renders them: the
prompt with the generation prompt (or continuing a final assistant message), the completion as
what the template adds after it; the template's EOS at the end of a completion is dropped, since
textbandit appends the EOS token to every response itself. Our own records
(:mod:`textbandit.data`) pass through unchanged; the K-wise rankings are our extension, and
:func:`to_pairs` / :func:`from_pairs` convert them to and from pairwise preference data.

>>> comparisons = [{"prompt": "p", "responses": ["a", "b", "c"], "ranking": [1, 0, 2]}]
>>> to_pairs(comparisons)[0]
{'prompt': 'p', 'chosen': 'b', 'rejected': 'a'}
>>> from_pairs(to_pairs(comparisons)) == [{"prompt": "p", "responses": ["b", "a", "c"], "ranking": [0, 1, 2]}]
True
"""

from __future__ import annotations

from itertools import combinations
from typing import Any


class DataFormatError(ValueError):
    """A record of a data file or dataset does not match any format textbandit reads."""


def fail(where: str, msg: str):
    raise DataFormatError(f"{where}: {msg}")


class LazyTokenizer:
    """A tokenizer loaded when conversational data first needs its chat template (so that a bad record
    is named before anything is loaded): ``LazyTokenizer(lambda: AutoTokenizer.from_pretrained(path))``."""

    def __init__(self, load):
        self._load, self._tokenizer = load, None

    def get(self):
        if self._tokenizer is None:
            self._tokenizer = self._load()
        return self._tokenizer


def is_conversational(value: Any) -> bool:
    """Whether ``value`` is a list of messages (dicts with a ``role``), as TRL decides it."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "role" in value[0]


def check_messages(messages: Any, where: str, field: str) -> list[dict]:
    if not is_conversational(messages) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in messages
    ):
        fail(where, f"field '{field}' must be a string or a list of {{'role', 'content'}} messages")
    return messages


def check_template(tokenizer, where: str):
    """The tokenizer that renders conversational data, or an error: none given, or one without a chat template."""
    if isinstance(tokenizer, LazyTokenizer):
        tokenizer = tokenizer.get()
    if tokenizer is None:
        fail(where, "the data is conversational (lists of messages); pass the tokenizer whose chat template renders it")
    if not getattr(tokenizer, "chat_template", None):
        fail(
            where,
            f"the data is conversational (lists of messages) but the tokenizer ({type(tokenizer).__name__}) has no "
            "chat template to render them; set tokenizer.chat_template (a Jinja template, e.g. the instruct "
            "model's) or give the data as strings",
        )
    return tokenizer


def render_prompt(messages: list[dict], tokenizer) -> str:
    """A conversational prompt as text: the generation prompt added after a user (or tool) turn, a
    final assistant turn continued (TRL's ``apply_chat_template``)."""
    final = messages[-1]["role"] == "assistant"
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=not final, continue_final_message=final
    )


def common_prefix(*texts: str) -> str:
    n = 0
    for chars in zip(*texts):
        if any(c != chars[0] for c in chars):
            break
        n += 1
    return texts[0][:n]


def strip_eos(text: str, tokenizer) -> str:
    """``text`` without the EOS token (and what follows it) at its end: textbandit appends the EOS itself."""
    eos = getattr(tokenizer, "eos_token", None)
    stripped = text.rstrip()
    return stripped[: -len(eos)].rstrip() if eos and stripped.endswith(eos) else text


def render_completions(prompt: list[dict], completions: list[list[dict]], tokenizer) -> tuple[str, list[str]]:
    """``(prompt_text, completion_texts)`` of a conversational prompt and its completions: each
    completion is what the template adds after the prompt (the prompt text is the prefix all the
    renderings share, as TRL takes it, for templates that render a generation prompt differently)."""
    text = render_prompt(prompt, tokenizer)
    full = [tokenizer.apply_chat_template(prompt + c, tokenize=False) for c in completions]
    text = common_prefix(text, *full)
    return text, [strip_eos(f[len(text) :], tokenizer) for f in full]


def extract_prompt(chosen, rejected) -> tuple[Any, Any, Any]:
    """TRL's implicit prompt: the common prefix of ``chosen`` and ``rejected`` (whole messages for
    conversational data; for strings, characters, the prompt leaving a shared space to the answers)."""
    idx = 0
    for idx in range(min(len(chosen), len(rejected))):
        if chosen[idx] != rejected[idx]:
            if idx > 0 and chosen[idx - 1] == " ":
                idx -= 1
            break
    else:
        idx = min(len(chosen), len(rejected))
    return chosen[:idx], chosen[idx:], rejected[idx:]


def split_conversation(messages: list[dict], where: str) -> tuple[list[dict], list[dict]]:
    """``(prompt, completion)`` of a ``messages`` conversation: the last assistant turn is the completion."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    if last <= 0:
        fail(where, "field 'messages' needs an assistant turn after at least one other turn (the response)")
    return messages[:last], messages[last:]


def prompt_of(row: dict, where: str, tokenizer) -> tuple[Any, str, dict]:
    """``(prompt as in the data, prompt text, the other columns)`` of a prompt row in any format."""
    if "prompt" in row and not (is_conversational(row.get("chosen")) and not is_conversational(row["prompt"])):
        prompt, used = row["prompt"], ("prompt",)
    elif "messages" in row:
        messages = check_messages(row["messages"], where, "messages")
        prompt = split_conversation(messages, where)[0] if messages[-1]["role"] == "assistant" else messages
        used = ("messages",)
    elif "chosen" in row and "rejected" in row:
        prompt, used = extract_prompt(row["chosen"], row["rejected"])[0], ()
    else:
        fail(where, f"missing field 'prompt' (a prompt row has 'prompt' or 'messages'; this one has {sorted(row)})")
    if isinstance(prompt, str):
        text = prompt
    elif isinstance(prompt, list) and prompt:
        tokenizer = check_template(tokenizer, where)
        text = render_prompt(check_messages(prompt, where, "prompt"), tokenizer)
    else:
        fail(where, f"field 'prompt' must be a string or a list of messages, got {type(prompt).__name__}")
    if not text.strip():
        fail(where, "field 'prompt' is empty")
    return prompt, text, {k: v for k, v in row.items() if k not in used}


def demonstration_of(row: dict, where: str, tokenizer) -> dict:
    """A demonstration ``{"prompt", "response", ...}`` from ours or TRL's prompt-completion or messages rows."""
    if "prompt" not in row and "messages" in row:
        prompt, completion = split_conversation(check_messages(row["messages"], where, "messages"), where)
        rest = {k: v for k, v in row.items() if k != "messages"}
    elif "prompt" in row:
        prompt, key = row["prompt"], "response" if "response" in row else "completion"
        if key not in row:
            fail(where, "missing field 'response' (or TRL's 'completion')")
        completion = row[key]
        rest = {k: v for k, v in row.items() if k not in ("response", "completion")}
    else:
        fail(where, f"missing field 'prompt' (a demonstration has 'prompt' and 'response', or 'messages'; "
             f"this one has {sorted(row)})")  # fmt: skip
    if isinstance(prompt, list) or isinstance(completion, list):
        tokenizer = check_template(tokenizer, where)
        p = check_messages(prompt, where, "prompt")
        prompt, (completion,) = render_completions(p, [check_messages(completion, where, "completion")], tokenizer)
    else:
        for name, value in (("prompt", prompt), ("response", completion)):
            if not isinstance(value, str):
                fail(where, f"field '{name}' must be a string, got {type(value).__name__}")
    if not prompt.strip():
        fail(where, "field 'prompt' is empty")
    return {**rest, "prompt": prompt, "response": completion}


def pair_of(row: dict, where: str, tokenizer) -> dict:
    """A pair ``{"prompt", "chosen", "rejected", ...}`` (texts) from TRL's preference rows (either prompt)."""
    for name in ("chosen", "rejected"):
        if name not in row:
            fail(where, f"missing field '{name}'")
    chosen, rejected = row["chosen"], row["rejected"]
    conversational = is_conversational(chosen)
    prompt = row.get("prompt")
    if prompt is None or is_conversational(prompt) != conversational:  # TRL: then the prompt is implicit
        prompt, chosen, rejected = extract_prompt(chosen, rejected)
        if not prompt:
            fail(where, "missing field 'prompt', and 'chosen' and 'rejected' share no prefix to take it from")
    if conversational:
        tokenizer = check_template(tokenizer, where)
        p = check_messages(prompt, where, "prompt")
        texts = [check_messages(x, where, name) for x, name in ((chosen, "chosen"), (rejected, "rejected"))]
        prompt, (chosen, rejected) = render_completions(p, texts, tokenizer)
    else:
        for name, value in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
            if not isinstance(value, str):
                fail(where, f"field '{name}' must be a string, got {type(value).__name__}")
    if not prompt.strip():
        fail(where, "field 'prompt' is empty")
    return {**row, "prompt": prompt, "chosen": chosen, "rejected": rejected}


def to_pairs(comparisons: list[dict]) -> list[dict]:
    """Pairwise preference records ``{"prompt", "chosen", "rejected"}``: one for every non-tied pair
    of every K-wise comparison (ties have no preferred response)."""
    out = []
    for c in comparisons:
        responses, ranking = c["responses"], c["ranking"]
        for i, j in combinations(range(len(responses)), 2):
            if ranking[i] != ranking[j]:
                w, lose = (i, j) if ranking[i] < ranking[j] else (j, i)
                out.append({"prompt": c["prompt"], "chosen": responses[w], "rejected": responses[lose]})
    return out


def from_pairs(pairs: list[dict]) -> list[dict]:
    """K-wise comparisons from pairwise records: a prompt's pairs become one ranking when they are
    exactly the C(K, 2) pairs of one order of its K responses (what :func:`to_pairs` writes for a
    ranking without ties); otherwise each pair stays a comparison of K = 2, since merging would
    claim preferences nobody stated."""
    by_prompt: dict[str, list[dict]] = {}
    for p in pairs:
        by_prompt.setdefault(p["prompt"], []).append(p)
    out = []
    for prompt, group in by_prompt.items():
        responses = list(dict.fromkeys(x for p in group for x in (p["chosen"], p["rejected"])))
        wins = {r: 0 for r in responses}
        for p in group:
            wins[p["chosen"]] += 1
        k = len(responses)
        stated = {frozenset((p["chosen"], p["rejected"])) for p in group}
        if len(group) == k * (k - 1) // 2 == len(stated) and sorted(wins.values()) == list(range(k)):
            ordered = sorted(responses, key=lambda r: -wins[r])
            out.append({"prompt": prompt, "responses": ordered, "ranking": list(range(k))})
        else:
            out += [{"prompt": prompt, "responses": [p["chosen"], p["rejected"]], "ranking": [0, 1]} for p in group]
    return out
