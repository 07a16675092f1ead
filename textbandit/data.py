"""JSONL data of the RLHF pipeline: prompts, demonstrations, K-wise comparisons and pairs.

One JSON object per line; the schemas (docs/architecture.md) are:

==============  ============================================================================
prompts         ``{"prompt": str, ...}`` (extra fields such as ``customer``/``kind`` are kept)
demonstrations  ``{"prompt": str, "response": str}``
comparisons     ``{"prompt": str, "responses": [str, ...] (K >= 2), "ranking": [int] * K}``;
                ``ranking[i]`` is the rank of ``responses[i]``, 0 = best, equal ranks = ties
pairs           ``{"prompt": str, "chosen": str, "rejected": str}`` (a comparison with K = 2)
==============  ============================================================================

The same files load with ``datasets.load_dataset("json", data_files=path)``. A bad record
raises :class:`DataFormatError` naming the file, the line and the field.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable


class DataFormatError(ValueError):
    """A record of a JSONL file does not match its schema."""


def _fail(path, line: int, msg: str):
    raise DataFormatError(f"{path}:{line}: {msg}")


def read_jsonl(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """``(line_number, record)`` for every non-blank line of a JSONL file (1-based lines)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such JSONL file: {path}")
    records = []
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                _fail(
                    path,
                    n,
                    f"not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1}); save the file as UTF-8",
                )
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                _fail(path, n, f"not valid JSON ({e.msg} at column {e.colno})")
            if not isinstance(record, dict):
                _fail(path, n, f"expected a JSON object, got {type(record).__name__}")
            records.append((n, record))
    return records


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Write records as JSONL, atomically (a crash leaves the old file or none; writers never share a
    temporary file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _str_field(path, n: int, record: dict, field: str) -> str:
    if field not in record:
        _fail(path, n, f"missing field '{field}'")
    if not isinstance(record[field], str):
        _fail(path, n, f"field '{field}' must be a string, got {type(record[field]).__name__}")
    return record[field]


def _check_prompt(path, n: int, record: dict) -> str:
    prompt = _str_field(path, n, record, "prompt")
    if not prompt.strip():
        _fail(path, n, "field 'prompt' is empty")
    return prompt


def load_prompt_records(path: str | os.PathLike) -> list[dict]:
    """Prompt records (each with a non-empty ``prompt`` string) of a JSONL file."""
    records = read_jsonl(path)
    for n, r in records:
        _check_prompt(path, n, r)
    if not records:
        raise DataFormatError(f"{path}: no prompts in the file")
    return [r for _, r in records]


def load_demonstrations(path: str | os.PathLike) -> list[dict]:
    """Demonstration records ``{"prompt", "response"}`` of a JSONL file."""
    out = []
    for n, r in read_jsonl(path):
        out.append({**r, "prompt": _check_prompt(path, n, r), "response": _str_field(path, n, r, "response")})
    return out


def load_comparisons(path: str | os.PathLike) -> list[dict]:
    """K-wise comparison records of a JSONL file; ``pairs`` records are read as K = 2.

    A pair ``{"chosen", "rejected"}`` becomes ``{"responses": [chosen, rejected], "ranking": [0, 1]}``.
    """
    out = []
    for n, r in read_jsonl(path):
        prompt = _check_prompt(path, n, r)
        if "responses" not in r and "chosen" in r:
            responses = [_str_field(path, n, r, "chosen"), _str_field(path, n, r, "rejected")]
            out.append({**r, "prompt": prompt, "responses": responses, "ranking": [0, 1]})
            continue
        responses, ranking = r.get("responses"), r.get("ranking")
        if not isinstance(responses, list) or len(responses) < 2:
            _fail(path, n, "field 'responses' must be a list of at least 2 strings")
        if not all(isinstance(x, str) for x in responses):
            _fail(path, n, "field 'responses' must hold strings only")
        if (
            not isinstance(ranking, list)
            or len(ranking) != len(responses)
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in ranking)
        ):
            _fail(path, n, f"field 'ranking' must be a list of {len(responses)} non-negative ints (0 = best)")
        ended = r.get("ended_with_eos")
        if ended is not None and not (
            isinstance(ended, list) and len(ended) == len(responses) and all(isinstance(x, bool) for x in ended)
        ):
            _fail(
                path,
                n,
                f"field 'ended_with_eos' must be a list of {len(responses)} booleans (true/false, one per "
                f"response: whether it ended with EOS), got {json.dumps(ended)[:80]}",
            )
        out.append({**r, "prompt": prompt})
    return out


def load_pairs(path: str | os.PathLike) -> list[dict]:
    """Pair records ``{"prompt", "chosen", "rejected"}`` of a JSONL file."""
    out = []
    for n, r in read_jsonl(path):
        out.append(
            {
                **r,
                "prompt": _check_prompt(path, n, r),
                "chosen": _str_field(path, n, r, "chosen"),
                "rejected": _str_field(path, n, r, "rejected"),
            }
        )
    return out


def load_texts(path: str | os.PathLike) -> list[str]:
    """Documents of a .txt file (one a line) or a .jsonl file (a ``text`` string per record), e.g. the
    pretraining corpus of PPO-ptx."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return [_str_field(path, n, r, "text") for n, r in read_jsonl(path)]
    if not path.is_file():
        raise FileNotFoundError(f"no such text file: {path}")
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        raise DataFormatError(
            f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); save the file as UTF-8"
        ) from None


def load_prompts(source: Any) -> list[str]:
    """Prompt strings from a list of strings, a ``datasets.Dataset`` or a local JSONL path.

    Raises ``ValueError`` for an empty set or an empty prompt, ``TypeError`` for other inputs.
    """
    if isinstance(source, (str, os.PathLike)):
        prompts = [r["prompt"] for r in load_prompt_records(source)]
    elif hasattr(source, "column_names") and hasattr(source, "__getitem__"):  # datasets.Dataset
        if "prompt" not in source.column_names:
            raise ValueError(f"the dataset has no 'prompt' column (columns: {source.column_names}); rename yours")
        prompts = list(source["prompt"])
    elif isinstance(source, (list, tuple)):
        prompts = list(source)
    else:
        raise TypeError(
            f"prompts must be a list of strings, a datasets.Dataset or a JSONL path, got {type(source).__name__}"
        )
    if not prompts:
        raise ValueError("the prompt set is empty; pass at least one prompt")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompt {i} is {p!r}; every prompt must be a non-empty string")
    return prompts
