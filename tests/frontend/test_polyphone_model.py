"""The trained polyphone disambiguator: shipped files, combination with the dictionary, bad input."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import pytest

from speedy.frontend import pinyin, polyphone_model
from speedy.frontend.polyphone_corpus import CORPUS, split

DATA = resources.files("speedy.frontend").joinpath("data")


@pytest.fixture
def model_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(polyphone_model.ENV_OFF, "0")


def test_shipped_model_matches_its_checksum_and_size() -> None:
    """The ONNX file is the one the side-car describes (sha256) and stays small (< 10 MB with the JSON)."""
    meta = json.loads(DATA.joinpath("polyphone_model.json").read_text(encoding="utf-8"))
    blob = DATA.joinpath("polyphone_model.onnx").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == meta["onnx_sha256"]
    assert len(blob) + len(DATA.joinpath("polyphone_model.json").read_bytes()) < 10_000_000
    assert "cpp_test" not in meta["train_splits"] + meta["select_splits"]
    assert "g2pl_test" not in meta["train_splits"] + meta["select_splits"]


def test_predictions_are_among_the_characters_candidates() -> None:
    """Every prediction is one of the character's listed readings, with a probability in (0, 1]."""
    text = "银行行长说他还要重新调查这种长得很高的植物"
    got = polyphone_model.predict(text, list(range(len(text))))
    assert got, "the model predicts nothing"
    meta = json.loads(DATA.joinpath("polyphone_model.json").read_text(encoding="utf-8"))
    for i, (reading, p) in got.items():
        assert reading in [meta["classes"][k] for k in meta["candidates"][text[i]]]
        assert 0.0 < p <= 1.0


def test_out_of_vocabulary_characters_keep_the_dictionary_reading(model_off: None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Characters the model has no candidates for (rare Han, emoji, Latin, digits) read as without it."""
    text = "𠀀䶵好的OK🙂123行不行"
    rules = pinyin(text, sandhi=False)
    monkeypatch.delenv(polyphone_model.ENV_OFF)
    with_model = pinyin(text, sandhi=False)
    assert len(with_model) == len(text)
    for k, ch in enumerate(text):
        if not polyphone_model.has_candidates(ch):
            assert with_model[k] == rules[k], (ch, with_model[k], rules[k])


def test_very_long_run_is_read_in_windows() -> None:
    """A Han run far longer than the model's window gives a reading for every character, no exception."""
    text = "他在银行工作了很多年，" * 3 + "长" * 10 + "我们一起去重庆还是去长沙" * 20
    run = text.replace("，", "")
    assert len(run) > 3 * polyphone_model.WINDOW
    got = polyphone_model.predict(run, list(range(len(run))))
    assert set(got) == {i for i, ch in enumerate(run) if polyphone_model.has_candidates(ch)}
    meta = json.loads(DATA.joinpath("polyphone_model.json").read_text(encoding="utf-8"))
    assert all(r in [meta["classes"][k] for k in meta["candidates"][run[i]]] for i, (r, _) in got.items())
    short = "我们一起去重庆还是去长沙"
    assert pinyin(text, sandhi=False)[-len(short):] == pinyin(short, sandhi=False)


def test_missing_model_falls_back_to_the_dictionary(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the files cannot be loaded the frontend still reads, by dictionary and rules."""
    monkeypatch.setattr(polyphone_model, "_load", lambda: None)
    assert not polyphone_model.enabled()
    assert polyphone_model.predict("银行", [1]) == {}
    assert pinyin("银行", sandhi=False) == ["yin2", "hang2"]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="needs the source checkout's data/polyphones")
def test_model_beats_rules_on_held_out_cpp_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    """On every tenth held-out CPP dev sentence (part B, ~390) the combination scores clearly above dictionary + rules."""
    from speedy.frontend.suite import score_examples

    examples = split("cpp_dev_b")[::10]
    combined = score_examples(examples).percent
    monkeypatch.setenv(polyphone_model.ENV_OFF, "0")
    rules = score_examples(examples).percent
    assert combined >= rules + 2.0, (combined, rules)


@pytest.mark.parametrize(("text", "i", "expected", "rules"), [
    ("入杏干、葡萄干等干果，待闷软后和抓饭一起食用", 12, "men1", "men4"),
    ("勃艮第王朝有一个支系", 1, "gen4", "gen3"),
    ("结合四角攒尖顶", 4, "cuan2", "zan3"),
    ("如今卧薪尝胆二十余载，总算略有小成", 9, "zai3", "zai4"),
])
def test_model_fixes_dev_sentences_the_rules_misread(text: str, i: int, expected: str, rules: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Sentences from the dev splits (not test) that the dictionary and rules misread and the model fixes."""
    assert pinyin(text, sandhi=False)[i] == expected
    monkeypatch.setenv(polyphone_model.ENV_OFF, "0")
    assert pinyin(text, sandhi=False)[i] == rules


def test_refine_leaves_characters_outside_the_override_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    """With empty override sets the model changes nothing and is not even run."""
    calls = []
    monkeypatch.setattr(polyphone_model, "predict", lambda *a, **k: calls.append(a) or {})
    readings = ["yin2", "hang2", "hang2", "zhang3"]
    polyphone_model.refine("银行行长", readings, {2}, set(), polyphone_model.Combination())
    assert readings == ["yin2", "hang2", "hang2", "zhang3"] and not calls


def test_session_is_lazy_and_run_time_has_no_torch() -> None:
    """Importing the frontend loads no ONNX Runtime; reading text then does, and never imports torch."""
    import subprocess
    import sys

    code = ("import sys; import speedy.frontend as f; a = 'onnxruntime' in sys.modules; "
            "f.pinyin('他闷着头干了一下午'); print(a, 'onnxruntime' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "False"]
