"""The frontend's public API: shapes, symbols, laziness, prosody and bad input."""

from __future__ import annotations

import itertools
import logging

import pytest

from speedy.frontend import Utterance, normalize, pinyin, split_sentences, text_to_utterances
from speedy.frontend.symbols import split_syllable, symbol_set, symbols


def _all(text: str) -> list[Utterance]:
    return list(text_to_utterances(text))


def test_symbols_are_the_baker_set() -> None:
    """219 symbols, pad first, eos last, #0-#3 and sil at the trained ids."""
    table = symbols()
    assert len(table) == 219 and table[0] == "pad" and table[-1] == "eos"
    assert table[1:6] == ("sil", "#0", "#1", "#2", "#3") and table.index("er5") == 77


def test_known_example_matches_baker_processor() -> None:
    """今天天气很好 keeps the trained layout: sil, initials/finals with #0 inside words, sil, eos."""
    (utt,) = _all("今天天气很好。")
    assert utt.phones[:6] == ("sil", "j", "in1", "#0", "t", "ian1")
    assert utt.phones[-2:] == ("sil", "eos") and utt.pause_after == 0.4
    assert "#1" in utt.phones


def test_every_phone_is_in_the_symbol_set() -> None:
    """Mixed text with numbers, English, erhua and punctuation only yields Baker symbols."""
    text = "2024年3月5日，GPS显示我们在哪儿？Hello！温度-3.5℃，涨了50%，一会儿见。"
    phones = [p for u in _all(text) for p in u.phones]
    assert phones and set(phones) <= symbol_set()


def test_pinyin_one_item_per_character() -> None:
    """pinyin returns exactly one item per input character; non-Han characters unchanged."""
    text = "我有3个apple，😀行长！"
    out = pinyin(text)
    assert len(out) == len(text)
    assert out[2] == "3" and out[4:9] == list("apple") and out[10] == "😀"
    assert out[11:13] == ["hang2", "zhang3"]


def test_pinyin_style() -> None:
    """TONE3 with neutral tone 5 and ü written v."""
    assert pinyin("绿的", sandhi=False) == ["lv4", "de5"]
    assert pinyin("女儿", sandhi=False) == ["nv3", "er2"]


def test_sandhi_flag_gives_dictionary_tones() -> None:
    """sandhi=False leaves 一/不/3-3 at their dictionary tones."""
    assert pinyin("一个不对你好", sandhi=False) == ["yi1", "ge4", "bu4", "dui4", "ni3", "hao3"]
    assert pinyin("一个不对你好") == ["yi2", "ge4", "bu2", "dui4", "ni2", "hao3"]


def test_erhua_merges_into_the_syllable() -> None:
    """哪儿 is one syllable plus er5 (no #0 between), 女儿 keeps a full 儿 syllable."""
    (utt,) = _all("哪儿")
    assert utt.phones == ("sil", "n", "a3", "er5", "sil", "eos")
    (utt,) = _all("女儿")
    assert "^" in utt.phones and "er2" in utt.phones


def test_split_syllable() -> None:
    """Syllables split into initial and final+tone as the Baker table says."""
    assert split_syllable("zhong1") == ("zh", "ong1")
    assert split_syllable("wen2") == ("^", "uen2")
    assert split_syllable("lv4") == ("l", "v4")
    assert split_syllable("n2") == ("^", "en2")
    assert split_syllable("huar1") == ("h", "ua1", "er5")
    assert split_syllable("xyz") == ()


@pytest.mark.parametrize("text", ["", "   ", "。。，！", "😀😀", "\x00\x01", "\ud800", "…—"])
def test_nothing_sayable_yields_nothing(text: str) -> None:
    """Empty, blank, punctuation-only, emoji-only, control-only and surrogate-only input yield nothing."""
    assert _all(text) == []


@pytest.mark.parametrize("text", ["12345678901234567890", "0000", "3.14.15.9", "%%%", "a\ud800b\x07c", "①②③",
                                  "ℵ∑∫", "🇨🇳中国", "１２：３０", "-", "10/0", "99999999999999999999999"])
def test_odd_input_never_raises(text: str) -> None:
    """Odd strings go through every public function without an exception."""
    normalize(text)
    pinyin(text)
    list(split_sentences(text))
    for utt in text_to_utterances(text):
        assert set(utt.phones) <= symbol_set()


def test_unreadable_characters_warn(caplog: pytest.LogCaptureFixture) -> None:
    """An emoji inside a sentence is dropped with a logging warning."""
    with caplog.at_level(logging.WARNING, logger="speedy.frontend"):
        (utt,) = _all("你好😀世界")
    assert "dropping" in caplog.text
    assert utt.phones.count("#0") + utt.phones.count("#1") + utt.phones.count("#2") == 3


def test_latin_is_read_not_dropped() -> None:
    """GPS is spelt with Mandarin letter names (吉 披 艾斯), not dropped."""
    (utt,) = _all("GPS")
    assert utt.phones == ("sil", "j", "i4", "#0", "p", "i4", "#0", "^", "ai4", "#0", "s", "ii1", "sil", "eos")
    (utt,) = _all("hello")
    assert len(utt.phones) > 3


def test_pauses_follow_punctuation() -> None:
    """Sentence ends pause longer than commas (the consumer drops the last one's); commas inside are #3."""
    utts = _all("今天天气很好。我们去公园吧，")
    assert [u.pause_after for u in utts] == [0.4, 0.2]
    (utt,) = _all("今天天气很好，我们去公园吧。")
    assert "#3" in utt.phones


def test_long_sentence_is_split_at_natural_points() -> None:
    """A 200-character sentence with commas becomes pieces of at most 60 characters, cut at commas."""
    clause = "我们在学校里学习了很多有用的知识"
    text = "，".join([clause] * 12) + "。"
    pieces = list(split_sentences(text, max_chars=60))
    assert "".join(pieces) == text
    assert all(len(p) <= 60 for p in pieces)
    assert all(p.endswith(("，", "。")) for p in pieces)


def test_long_clause_without_punctuation_is_cut_at_words() -> None:
    """A clause with no punctuation is still cut below the limit, at a word boundary."""
    text = "中华人民共和国" * 30
    pieces = list(split_sentences(text, max_chars=50))
    assert "".join(pieces) == text and all(len(p) <= 50 for p in pieces)


def test_utterances_stay_under_the_model_limit() -> None:
    """Every utterance of a long text stays far below 2048 ids."""
    text = "他说：“今年的产量比去年增长了百分之二十三，这是一个了不起的成绩。”" * 40
    utts = _all(text)
    assert len(utts) >= 40 and max(len(u.phones) for u in utts) < 600


def test_text_to_utterances_is_lazy() -> None:
    """The first utterance of a 20,000-character text arrives without processing the rest."""
    gen = text_to_utterances("今天天气很好。" * 3000)
    first = list(itertools.islice(gen, 2))
    assert first[0].text == "今天天气很好。" and len(first) == 2


def test_first_utterance_comes_before_the_next_piece_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """No look-ahead: the first utterance is yielded after its own G2P only (streaming's first audio)."""
    import speedy.frontend as fe

    calls: list[str] = []
    real = fe.sentence_phones
    monkeypatch.setattr(fe, "sentence_phones", lambda piece, dropped=None: calls.append(piece) or real(piece, dropped))
    gen = text_to_utterances("我的家乡是南方的一座小镇，镇子不大。一条小河从中间穿过。", first_chars=6)
    assert next(gen).text == "我的家乡" and calls == ["我的家乡"]
    assert [u.text for u in gen] == ["是南方的一座小镇，镇子不大。", "一条小河从中间穿过。"] and len(calls) == 3


def test_ten_thousand_characters() -> None:
    """A 10,000-character mixed input completes and every phone is valid."""
    unit = "2024年的GDP增长了5.2%，约126万亿元！你知道吗？😀\x00行长说：“不错。”\n"
    text = (unit * (10000 // len(unit) + 1))[:10000]
    phones = {p for u in text_to_utterances(text) for p in u.phones}
    assert phones <= symbol_set()


def test_prosodic_breaks() -> None:
    """Long clauses get #2 phrase breaks; words are joined by #1 and characters by #0."""
    (utt,) = _all("中国人民解放军在抗洪抢险中发挥了重要的作用。")
    assert "#2" in utt.phones and "#1" in utt.phones and "#0" in utt.phones


def test_clause_split_keeps_times_and_thousands_whole() -> None:
    """Splitting a long sentence never cuts 12:30 or 1,000 apart."""
    text = "会议在12:30开始，共有1,000人参加，" * 5 + "结束。"
    pieces = list(split_sentences(text, max_chars=40))
    assert "".join(pieces) == text
    assert all(not p.startswith(("30", "000")) for p in pieces)


@pytest.mark.parametrize("word", ["hello", "WiFi", "ChatGPT", "Tesla", "Beijing", "strength", "McDonald", "don't"])
def test_english_words_are_read(word: str) -> None:
    """Lexicon, camelCase, pinyin and letter-to-sound readings all give valid, non-empty syllables."""
    from speedy.frontend.english import read_latin

    groups = read_latin(word)
    assert groups and all(groups) and {p for g in groups for p in g} <= symbol_set()


def test_english_lexicon_is_sayable() -> None:
    """Every syllable of the English lexicon splits into Baker phones."""
    from speedy.frontend.english import WORDS

    for reading in WORDS.values():
        assert all(split_syllable(s) for s in reading.split())
