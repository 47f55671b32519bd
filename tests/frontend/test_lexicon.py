"""The compiled lexicon (data/lexicon.npz): fresh against its sources, equal to pypinyin's tables where it
stands in for them, and light: the frontend's first call in a fresh process stays far below the ~90 MB
that the dict-based tables cost."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

import pytest

from speedy.frontend import lexicon

#: RSS growth (MiB) of a fresh interpreter from `import numpy, onnxruntime` to the frontend's first utterance:
#: measured 33 MiB with the compiled arrays (16 of it the polyphone model's session; 16 without it), 102 MiB
#: with pypinyin's dicts and ours as Python dicts
FRONTEND_RSS_MIB = 45


def test_compiled_lexicon_is_fresh() -> None:
    """data/lexicon.npz was compiled from today's words.txt, phrases.tsv, overrides.tsv and pypinyin."""
    import numpy as np

    with np.load(lexicon.LEXICON) as z:
        stored = str(z["sources"])
    assert stored == lexicon.sources_digest(), (
        "data/lexicon.npz is stale: run python -m speedy.frontend.build_lexicon --compile-only")


@pytest.fixture(scope="module")
def lex() -> lexicon.Lexicon:
    return lexicon.load()


def test_tables_equal_pypinyin(lex: lexicon.Lexicon) -> None:
    """Phrase and character readings, and the max-match segmentation, as pypinyin gives them."""
    from pypinyin.constants import PHRASES_DICT, PINYIN_DICT
    from pypinyin.contrib.tone_convert import to_tone3
    from pypinyin.seg.mmseg import seg

    def tone3(marked: str) -> str:
        return to_tone3(marked, neutral_tone_with_five=True, v_to_u=False).replace("ü", "v")

    rng = random.Random(0)
    words = [w for w in PHRASES_DICT if len(w) <= lexicon.MAX_WORD]
    for w in rng.sample(words, 2000):
        assert lex.phrase_readings(w) == [tone3(p[0]) for p in PHRASES_DICT[w]], w
    for cp in rng.sample(sorted(PINYIN_DICT), 2000):
        assert lex.char_readings(chr(cp)) == tuple(tone3(r) for r in PINYIN_DICT[cp].split(",")), chr(cp)
    assert lex.char_readings("a") == () and lex.phrase_readings("不是词呀") is None
    # runs made of phrase pieces, so that the max-match meets prefixes, dead ends and long phrases
    long = [w for w in PHRASES_DICT if len(w) > lexicon.MAX_WORD]
    for _ in range(1500):
        pieces = [rng.choice(words)[: rng.randint(1, 4)] for _ in range(rng.randint(1, 3))]
        text = "".join(pieces)[: lexicon.MAX_WORD] if rng.random() < 0.8 else rng.choice(long)[:6]
        assert lex.mmseg(text) == list(seg.cut(text)), text


def test_segmentation_log_probabilities(lex: lexicon.Lexicon) -> None:
    """A counted word, a phrase the counts lack, and an unknown character, with the values segment.py uses."""
    import math

    counts = dict(line.split("\t") for line in (lexicon.DATA / "words.txt").read_text(encoding="utf-8").splitlines())
    total = sum(float(c) for c in counts.values())
    row = lex.word_logps("银行")
    assert row[0] == math.log(float(counts["银"]) / total)  # exactly: segment.py compares sums of these
    assert row[1] == math.log(float(counts["银行"]) / total)
    assert row[2:lexicon.MAX_WORD] == [float("-inf")] * (lexicon.MAX_WORD - 2)  # past the end
    assert lex.word_logps("\u9fa6")[0] == lex.unknown == math.log(1.0 / total)


def test_first_call_memory_and_no_pypinyin() -> None:
    """A fresh process with numpy and onnxruntime loaded (as in any synthesis process): the frontend's first
    call adds at most FRONTEND_RSS_MIB and imports no pypinyin."""
    code = textwrap.dedent("""
        import json, sys
        import numpy, onnxruntime
        def rss():
            return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")][0] / 1024
        before = rss()
        from speedy.frontend import text_to_utterances
        list(text_to_utterances("今天天气很好，我们去银行取了100元。行长说：还行！"))
        print(json.dumps({"mib": rss() - before, "pypinyin": any(m.startswith("pypinyin") for m in sys.modules)}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"frontend first call: +{got['mib']:.1f} MiB")
    assert not got["pypinyin"]
    assert got["mib"] <= FRONTEND_RSS_MIB
