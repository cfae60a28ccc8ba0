"""A word-level tokenizer that ships inside a policy package (``tokenizer.json``), so the
language input needs no hub download.

Text is lower-cased and split into runs of letters/digits; each word maps to its id in the
vocabulary (``<pad>`` = 0, ``<unk>`` = 1, then words in a fixed order). Sequences are cut or padded
to ``max_length``. Standard library only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

PAD = "<pad>"
UNK = "<unk>"
_WORD = re.compile(r"[a-z0-9]+")
_FIELDS = {"type", "lowercase", "vocab", "max_length"}


class TokenizerError(ValueError):
    """A tokenizer file that cannot be used."""


def split_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class WordTokenizer:
    """Vocabulary (index = id) and a fixed output length."""

    vocab: tuple[str, ...]
    max_length: int = 16

    def __post_init__(self) -> None:
        if len(self.vocab) < 2 or self.vocab[0] != PAD or self.vocab[1] != UNK:
            raise TokenizerError(f"vocab must start with {PAD!r}, {UNK!r}; got {list(self.vocab[:2])}")
        if len(set(self.vocab)) != len(self.vocab):
            raise TokenizerError("vocab has duplicate words")
        if self.max_length < 1:
            raise TokenizerError(f"max_length must be >= 1, got {self.max_length}")
        object.__setattr__(self, "_ids", {w: i for i, w in enumerate(self.vocab)})

    @classmethod
    def build(cls, texts: Iterable[str], max_length: int = 16) -> "WordTokenizer":
        """Vocabulary of every word in ``texts``, sorted (so the same texts give the same ids)."""
        words = sorted({w for t in texts for w in split_words(t)})
        return cls((PAD, UNK, *words), max_length)

    @property
    def size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``, padded with 0 / cut to ``max_length``."""
        ids: dict[str, int] = self._ids  # type: ignore[attr-defined]
        out = [ids.get(w, 1) for w in split_words(text)][: self.max_length]
        return out + [0] * (self.max_length - len(out))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def unknown_words(self, text: str) -> list[str]:
        ids: dict[str, int] = self._ids  # type: ignore[attr-defined]
        return [w for w in split_words(text) if w not in ids]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "word", "lowercase": True, "vocab": list(self.vocab), "max_length": self.max_length}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "tokenizer") -> "WordTokenizer":
        unknown = sorted(set(d) - _FIELDS)
        if unknown:
            raise TokenizerError(f"{where}: unknown field(s) {unknown} (allowed: {sorted(_FIELDS)})")
        if d.get("type") != "word":
            raise TokenizerError(f"{where}.type: only 'word' tokenizers are supported, got {d.get('type')!r}")
        if d.get("lowercase", True) is not True:
            raise TokenizerError(f"{where}.lowercase: must be true")
        vocab = d.get("vocab")
        if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab):
            raise TokenizerError(f"{where}.vocab: expected a list of strings")
        max_length = d.get("max_length")
        if not isinstance(max_length, int):
            raise TokenizerError(f"{where}.max_length: expected an integer, got {max_length!r}")
        return cls(tuple(vocab), max_length)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "WordTokenizer":
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise TokenizerError(f"{p}: tokenizer file missing") from None
        except json.JSONDecodeError as exc:
            raise TokenizerError(f"{p}: not valid JSON ({exc})") from None
        return cls.from_dict(d, where=str(p))
