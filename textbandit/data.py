"""Data of the RLHF pipeline: prompts, demonstrations, K-wise comparisons and pairs.

Each loader takes a local file (JSONL, one object per line; also ``.json``, ``.parquet``, ``.csv``
and folders written by ``datasets.Dataset.save_to_disk``), a ``datasets.Dataset`` or a list of
records, in textbandit's own schemas (docs/architecture.md) or TRL's dataset formats, standard or
conversational (:mod:`textbandit.formats`; messages are rendered with the tokenizer's chat
template, so pass ``tokenizer=`` for them). Our schemas are:

==============  ============================================================================
prompts         ``{"prompt": str, ...}`` (extra fields such as ``customer``/``kind`` are kept)
demonstrations  ``{"prompt": str, "response": str}``
comparisons     ``{"prompt": str, "responses": [str, ...] (K >= 2), "ranking": [int] * K}``;
                ``ranking[i]`` is the rank of ``responses[i]``, 0 = best, equal ranks = ties
pairs           ``{"prompt": str, "chosen": str, "rejected": str}`` (a comparison with K = 2)
==============  ============================================================================

The JSONL files load with ``datasets.load_dataset("json", data_files=path)`` too. A bad record
raises :class:`DataFormatError` naming the file and line (or the dataset row) and the field.

>>> load_demonstrations([{"prompt": "say one", "completion": "one"}])  # TRL's prompt-completion
[{'prompt': 'say one', 'response': 'one'}]
>>> load_comparisons([{"chosen": "say one one", "rejected": "say one two"}])[0]["responses"]  # implicit prompt
[' one', ' two']
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from textbandit.formats import (
    DataFormatError,
    demonstration_of,
    is_conversational,
    pair_of,
    prompt_of,
    to_pairs,
)

__all__ = [
    "DataFormatError",
    "is_conversational",
    "PromptSet",
    "read_jsonl",
    "write_jsonl",
    "read_rows",
    "load_prompt_set",
    "load_prompts",
    "load_prompt_records",
    "load_demonstrations",
    "load_comparisons",
    "load_pairs",
    "load_texts",
]


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


KNOWN_COLUMNS = {
    "prompts": ("prompt", "messages", "chosen"),
    "demonstrations": ("prompt", "messages"),
    "comparisons": ("prompt", "chosen", "responses"),
}


def check_columns(source: Any, kind: str) -> None:
    """Refuse a ``datasets.Dataset`` that has none of the columns ``kind`` of data is read from."""
    columns = getattr(source, "column_names", None)
    if isinstance(columns, list) and not set(columns) & set(KNOWN_COLUMNS[kind]):
        raise DataFormatError(
            f"the dataset has no 'prompt' column nor any other column {kind} are read from (columns: {columns}); "
            f"textbandit reads {', '.join(KNOWN_COLUMNS[kind])} (its own schemas and TRL's formats): rename yours"
        )


def read_rows(source: Any) -> list[tuple[str, dict]]:
    """``(where, record)`` of every record of ``source`` (``where`` names the file and line, or the
    dataset row, for error messages): a local file or folder, a ``datasets.Dataset``, or a list of
    records (strings count as ``{"prompt": s}``)."""
    if isinstance(source, (str, os.PathLike)):
        return _file_rows(Path(source))
    if hasattr(source, "column_names") and hasattr(source, "__getitem__"):
        if isinstance(source.column_names, dict):  # a DatasetDict
            raise TypeError(f"got a DatasetDict with splits {sorted(source.column_names)}; pass one, e.g. ds['train']")
        return [(f"row {i}", dict(r)) for i, r in enumerate(source)]
    if isinstance(source, (list, tuple)):
        out = []
        for i, r in enumerate(source):
            if isinstance(r, str):
                out.append((f"prompt {i}", {"prompt": r}))
            elif isinstance(r, dict):
                out.append((f"record {i}", r))
            else:
                raise ValueError(f"prompt {i} is {r!r}; every prompt must be a non-empty string (or a record dict)")
        return out
    raise TypeError(f"data must be a file path, a datasets.Dataset or a list of records, got {type(source).__name__}")


def _file_rows(path: Path) -> list[tuple[str, dict]]:
    if path.suffix == ".jsonl":
        return [(f"{path}:{n}", r) for n, r in read_jsonl(path)]
    if not path.exists():
        raise FileNotFoundError(f"no such data file or folder: {path}")
    import datasets

    if path.is_dir():  # written by Dataset.save_to_disk
        ds = datasets.load_from_disk(str(path))
    elif path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise DataFormatError(f"{path}: expected a JSON list of objects (or use .jsonl, one object per line)")
        return [(f"{path}[{i}]", r) for i, r in enumerate(data)]
    elif path.suffix in (".parquet", ".csv"):
        with tempfile.TemporaryDirectory() as cache:
            builder = datasets.Dataset.from_parquet if path.suffix == ".parquet" else datasets.Dataset.from_csv
            ds = builder(str(path), cache_dir=cache, keep_in_memory=True)
    else:
        raise DataFormatError(f"{path}: unknown data file type {path.suffix!r}; use .jsonl, .json, .parquet or .csv")
    return [(f"{path} row {i}", dict(r)) for i, r in enumerate(ds)]


@dataclass
class PromptSet:
    """Prompts as the environment serves them (:func:`load_prompt_set`)."""

    texts: list[str]
    """what the models see: the prompt strings, conversational prompts rendered with the chat template"""
    prompts: list
    """the prompts as the data holds them (strings or lists of messages): what reward functions get"""
    extras: list[dict] = field(default_factory=list)
    """the rest of each prompt's row (its other columns)"""

    def __post_init__(self):
        self.extras = self.extras or [{} for _ in self.texts]

    @property
    def conversational(self) -> bool:
        """Whether the prompts are lists of messages (TRL's conversational format)."""
        return is_conversational(self.prompts[0])

    def columns(self, idx) -> dict[str, list]:
        """The other columns of prompts ``idx`` (one value per index; None where a row lacks a column),
        as TRL passes them to reward functions."""
        rows = [self.extras[i] for i in idx]
        return {k: [r.get(k) for r in rows] for k in dict.fromkeys(k for r in rows for k in r)}

    def records(self) -> list[dict]:
        """One ``{"prompt": text, **rest of the row}`` dict per prompt."""
        return [{**extra, "prompt": t} for t, extra in zip(self.texts, self.extras)]


def load_prompt_set(source: Any, tokenizer=None) -> PromptSet:
    """The prompts of ``source`` in any format (:func:`read_rows`; TRL's prompt-only, or the prompt of any
    other row), with the rest of each row kept. Raises ``ValueError`` for an empty set."""
    if isinstance(source, dict) or not (
        isinstance(source, (str, os.PathLike, list, tuple)) or hasattr(source, "column_names")
    ):
        raise TypeError(
            f"prompts must be a list of strings, a datasets.Dataset or a data file path, got {type(source).__name__}"
        )
    check_columns(source, "prompts")
    rows = read_rows(source)
    if not rows:
        raise DataFormatError(f"{source if isinstance(source, (str, os.PathLike)) else 'the data'}: no prompts in it")
    parsed = [prompt_of(r, where, tokenizer) for where, r in rows]
    if len({is_conversational(p) for p, _, _ in parsed}) > 1:
        raise DataFormatError(f"{rows[0][0]}: the data mixes string and conversational prompts; use one format")
    return PromptSet([t for _, t, _ in parsed], [p for p, _, _ in parsed], [rest for _, _, rest in parsed])


def load_prompt_records(source: Any, tokenizer=None) -> list[dict]:
    """Prompt records (each with a non-empty ``prompt`` string, the rest of the row kept) of ``source``."""
    return load_prompt_set(source, tokenizer).records()


def load_prompts(source: Any, tokenizer=None) -> list[str]:
    """Prompt strings from a list of strings, a ``datasets.Dataset``, or a data file (:func:`read_rows`).

    Raises ``ValueError`` for an empty set or an empty prompt, ``TypeError`` for other inputs.
    """
    if isinstance(source, (list, tuple)) and not source:
        raise ValueError("the prompt set is empty; pass at least one prompt")
    return load_prompt_set(source, tokenizer).texts


def load_demonstrations(source: Any, tokenizer=None) -> list[dict]:
    """Demonstration records ``{"prompt", "response"}``: ours, TRL's prompt-completion or its ``messages``."""
    check_columns(source, "demonstrations")
    return [demonstration_of(r, where, tokenizer) for where, r in read_rows(source)]


def load_comparisons(source: Any, tokenizer=None) -> list[dict]:
    """K-wise comparison records; pairs (ours, or TRL's preference rows, explicit or implicit prompt) read as K = 2.

    A pair ``{"chosen", "rejected"}`` becomes ``{"responses": [chosen, rejected], "ranking": [0, 1]}``.
    """
    check_columns(source, "comparisons")
    out = []
    for where, r in read_rows(source):
        if "responses" not in r and "chosen" in r:
            pair = pair_of(r, where, tokenizer)
            out.append({**pair, "responses": [pair["chosen"], pair["rejected"]], "ranking": [0, 1]})
        else:
            out.append(_kwise(r, where))
    return out


def _kwise(r: dict, where: str) -> dict:
    if "prompt" not in r:
        raise DataFormatError(f"{where}: missing field 'prompt' (this record has {sorted(r)})")
    prompt = r["prompt"]
    if not isinstance(prompt, str):
        raise DataFormatError(f"{where}: field 'prompt' must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise DataFormatError(f"{where}: field 'prompt' is empty")
    responses, ranking = r.get("responses"), r.get("ranking")
    if not isinstance(responses, list) or len(responses) < 2:
        raise DataFormatError(f"{where}: field 'responses' must be a list of at least 2 strings")
    if not all(isinstance(x, str) for x in responses):
        raise DataFormatError(f"{where}: field 'responses' must hold strings only")
    if (
        not isinstance(ranking, list)
        or len(ranking) != len(responses)
        or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in ranking)
    ):
        raise DataFormatError(
            f"{where}: field 'ranking' must be a list of {len(responses)} non-negative ints (0 = best)"
        )
    ended = r.get("ended_with_eos")
    if ended is not None and not (
        isinstance(ended, list) and len(ended) == len(responses) and all(isinstance(x, bool) for x in ended)
    ):
        raise DataFormatError(
            f"{where}: field 'ended_with_eos' must be a list of {len(responses)} booleans (true/false, one per "
            f"response: whether it ended with EOS), got {json.dumps(ended)[:80]}"
        )
    return r


def load_pairs(source: Any, tokenizer=None) -> list[dict]:
    """Pair records ``{"prompt", "chosen", "rejected"}`` (texts): ours, TRL's preference rows, or K-wise
    comparisons expanded to their non-tied pairs (:func:`textbandit.formats.to_pairs`)."""
    check_columns(source, "comparisons")
    out = []
    for where, r in read_rows(source):
        out += to_pairs([_kwise(r, where)]) if "responses" in r else [pair_of(r, where, tokenizer)]
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
