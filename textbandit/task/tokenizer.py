"""The default task's tokenizer: a small BPE trained with Hugging Face ``tokenizers``.

Words are split on spaces with SentencePiece's ``▁`` marker (``Metaspace``), so decoding
restores the text exactly: ``decode(encode(text)) == text`` for normalised task text. Every
word of the language ends up a whole token, but the vocabulary also keeps the characters
and sub-word pieces BPE built them from (``▁ca``, ``ts``), so a model *can* emit pieces
that glue into a word that does not exist ("invented words", which the gold labeler counts).

Special tokens: ``<pad>`` (id 0), ``<eos>`` (id 1), ``<unk>`` (id 2); pad differs from EOS.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
SPECIALS = [PAD, EOS, UNK]


def train_tokenizer(texts, vocab_size: int = 640) -> Tokenizer:
    """Train the BPE tokenizer on an iterable of texts."""
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, min_frequency=1, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    assert tok.token_to_id(PAD) == 0 and tok.token_to_id(EOS) == 1, "special ids moved"
    return tok


def to_transformers(tok: Tokenizer):
    """Wrap as a ``PreTrainedTokenizerFast`` with pad, EOS and unk set."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, padding_side="left", model_max_length=64
    )


def save_tokenizer(tok: Tokenizer, out_dir) -> Path:
    """Write ``tokenizer.json`` (+ the transformers config files) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    to_transformers(tok).save_pretrained(str(out))
    return out / "tokenizer.json"


def load_tokenizer(path):
    """Load as a ``PreTrainedTokenizerFast`` from a directory or a ``tokenizer.json`` file."""
    from transformers import PreTrainedTokenizerFast

    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.exists():
        raise ValueError(f"no tokenizer at {p}; build the task with `python -m textbandit.task.build --out DIR`")
    return PreTrainedTokenizerFast(
        tokenizer_file=str(p), pad_token=PAD, eos_token=EOS, unk_token=UNK, padding_side="left", model_max_length=64
    )
