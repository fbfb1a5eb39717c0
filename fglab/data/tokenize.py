"""Tokenizers: English words, or Chinese words cut by jieba; stop words removed."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

_ENGLISH_WORD = re.compile(r"[a-z]{2,}")
_HAS_WORD_CHAR = re.compile(r"[\u4e00-\u9fffA-Za-z]")

# Function words that carry no topic in Chinese news and encyclopedia text.
CHINESE_STOP_WORDS = frozenset(
    (Path(__file__).parent / "stopwords_zh.txt").read_text(encoding="utf-8").split()
)


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize_english(text: str, stopwords: Iterable[str] = ()) -> list[str]:
    """Lower-cased words of two letters or more, stop words removed."""
    stop = ENGLISH_STOP_WORDS.union(stopwords)
    return [w for w in _ENGLISH_WORD.findall(text.lower()) if w not in stop]


def tokenize_chinese(text: str, stopwords: Iterable[str] = ()) -> list[str]:
    """Words cut by jieba (precise mode); single characters, digits, punctuation and stop
    words removed; Latin words lower-cased."""
    stop = CHINESE_STOP_WORDS.union(stopwords)
    words = (w.strip().lower() for w in _jieba().lcut(text))
    return [w for w in words if len(w) >= 2 and _HAS_WORD_CHAR.search(w) and w not in stop]


def make_tokenizer(language: str, stopwords: Iterable[str] = ()) -> Callable[[str], list[str]]:
    """The tokenizer for a data set's language (``"en"`` or ``"zh"``)."""
    stop = frozenset(stopwords)
    if language == "en":
        return lambda text: tokenize_english(text, stop)
    if language == "zh":
        return lambda text: tokenize_chinese(text, stop)
    raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
