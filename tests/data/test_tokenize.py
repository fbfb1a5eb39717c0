from __future__ import annotations

import pytest

from fglab.data.tokenize import (
    CHINESE_STOP_WORDS,
    make_tokenizer,
    tokenize_chinese,
    tokenize_english,
)


def test_jieba_cuts_chinese_words():
    words = tokenize_chinese("中国女排在世界杯比赛中获得冠军。")
    assert "中国女排" in words or {"中国", "女排"} <= set(words)
    assert {"世界杯", "比赛", "冠军"} <= set(words)


def test_chinese_drops_stop_words_punctuation_digits_and_single_characters():
    words = tokenize_chinese("新华社记者报道：我们在2019年的比赛中，获得了3枚金牌！")
    assert "金牌" in words and "比赛" in words
    assert not {"的", "了", "我们", "记者", "新华社", "2019", "，", "！"} & set(words)
    assert all(len(w) >= 2 for w in words)
    assert "的" in CHINESE_STOP_WORDS


def test_chinese_keeps_latin_words_lower_cased_and_extra_stop_words():
    words = tokenize_chinese("华为发布5G手机和AI芯片", stopwords={"发布"})
    assert "ai" in words and "发布" not in words and "芯片" in words


def test_empty_and_whitespace_texts():
    assert tokenize_chinese("") == [] and tokenize_chinese("  \n\t ") == []


def test_tokenizer_follows_the_language():
    assert make_tokenizer("zh")("经济增长") == tokenize_chinese("经济增长")
    assert make_tokenizer("en", {"art"})("The art of War") == tokenize_english("war")
    with pytest.raises(ValueError, match="'en' or 'zh'"):
        make_tokenizer("fr")
