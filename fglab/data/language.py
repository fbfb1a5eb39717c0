"""Telling a data set's language from its texts, so no user has to say it."""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u4e00-\u9fff]")
_LETTER = re.compile(r"[^\W\d_]")


def detect_language(texts: list[str]) -> str:
    """``"zh"`` when CJK ideographs are at least a fifth of the letters, else ``"en"``."""
    sample = "".join(texts)
    letters = len(_LETTER.findall(sample))
    if letters == 0:
        return "en"
    return "zh" if len(_CJK.findall(sample)) / letters >= 0.2 else "en"
