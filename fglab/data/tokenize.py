"""Tokenizers: English words, or Chinese words cut by jieba; stop words removed."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from functools import lru_cache

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

_ENGLISH_WORD = re.compile(r"[a-z]{2,}")
_HAS_WORD_CHAR = re.compile(r"[\u4e00-\u9fffA-Za-z]")

# Function words that carry no topic in Chinese news and encyclopedia text.
CHINESE_STOP_WORDS = frozenset(
    ["的", "了", "和", "是", "在", "也", "有", "就", "都", "而", "及", "与", "着", "或", "一个", "没有", "我们", "你们", "他们", "她们", "它们", "这个", "那个", "这些", "那些", "这样", "那样", "之一", "以及", "并且", "但是", "因为", "所以", "如果", "虽然", "然而", "而且", "或者", "还是", "不是", "就是", "可以", "已经", "对于", "关于", "由于", "通过", "进行", "其中", "之后", "之前", "以后", "以前", "目前", "同时", "其他", "什么", "怎么", "为了", "一些", "一种", "自己", "这里", "那里", "记者", "表示", "今年", "去年", "日电", "新华社", "报道", "图为", "据悉", "据了解", "此外", "另外", "以上", "以下", "不会", "不能", "可能", "需要", "成为", "开始", "作为", "还有", "非常", "更加", "特别", "主要", "一直", "一定", "不过", "只是", "这种", "那种", "各种", "之间"]
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
