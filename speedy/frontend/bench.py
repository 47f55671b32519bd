"""``speedy bench-frontend`` (`make bench-frontend`): accuracy on the frontend's own tables and public polyphone sets, speed.

Reports TN exact match, polyphone accuracy and sandhi accuracy on tests/frontend/data; polyphone
accuracy on the public corpora in data/polyphones (CPP dev part B, CPP test, g2pL test; test splits
are marked) with the trained model and without it (dictionary and rules only) and for plain pypinyin;
the first-call load time (import + dictionaries + first sentence, measured in a fresh interpreter) and
the time per 100 characters after warm-up on one thread (median of repeated runs over a mixed paragraph).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from speedy.errors import InputError

PARAGRAPH = (
    "2024年3月5日下午3:30，行长在银行的会议上说：今年的存款增长了12.5%，达到1.2万亿元。"
    "我们还要继续努力，把服务做得更好！你觉得这个计划行不行？他长得很高，头发也长了。"
    "请拨打客服电话400-123-4567，或者发邮件咨询GPS和WiFi的问题。"
)

_FIRST_CALL = """
import pathlib, sys, time, warnings
warnings.simplefilter("ignore")
t = time.perf_counter()
from speedy.frontend import text_to_utterances
list(text_to_utterances("今天天气很好，我们去银行取了100元。"))
pathlib.Path(sys.argv[1]).write_text(repr(time.perf_counter() - t))
"""


def first_call_seconds() -> float:
    """Seconds from a fresh interpreter's import to the first utterance (dictionary load included)."""
    import tempfile

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "seconds"
        subprocess.run([sys.executable, "-c", _FIRST_CALL, str(result)], capture_output=True, env=env, check=True)
        return float(result.read_text())


def ms_per_100_chars(repeats: int = 30) -> float:
    """Median milliseconds per 100 input characters for text_to_utterances after warm-up."""
    from speedy.frontend import text_to_utterances

    list(text_to_utterances(PARAGRAPH))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        list(text_to_utterances(PARAGRAPH))
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000.0 * 100.0 / len(PARAGRAPH)


def pypinyin_baseline(name: str) -> float:
    """Plain pypinyin (TONE3, its own phrase table, no context) on a polyphone table, in percent."""
    from pypinyin import Style, lazy_pinyin

    from speedy.frontend.suite import polyphone_case, rows

    table = rows(name)
    good = 0
    for marked, expected in table:
        text, i = polyphone_case(marked)
        good += lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)[i] == expected
    return 100.0 * good / len(table)


#: (split, label printed); "test" splits are reported, never trained or tuned on
PUBLIC = (
    ("cpp_dev_b", "CPP dev (part B)"),
    ("cpp_test", "CPP test  [TEST]"),
    ("g2pl_dev", "g2pL dev"),
    ("g2pl_test", "g2pL test [TEST]"),
)


def _pypinyin_reading(text: str, i: int) -> str:
    from pypinyin import Style, lazy_pinyin

    # pypinyin's stubs type `errors` as returning str; its converter also takes a list (one item per char)
    out = lazy_pinyin(
        text,
        style=Style.TONE3,
        neutral_tone_with_five=True,
        errors=lambda s: list(s),  # type: ignore[arg-type,return-value]
    )
    return out[i].replace("ü", "v")


def public_scores(limit: int | None = None) -> dict[str, dict[str, float]]:
    """Percent correct per public split: ``model`` (the frontend as shipped), ``rules`` (the model off),
    ``pypinyin`` (plain, no context); ``limit`` examples per split for a quick look."""
    from speedy.frontend import polyphone_model
    from speedy.frontend.polyphone_corpus import CORPUS, split
    from speedy.frontend.suite import score_examples

    out: dict[str, dict[str, float]] = {}
    if not CORPUS.is_dir():
        return out
    for name, _ in PUBLIC:
        examples = split(name)[:limit]
        row = {"sentences": len(examples), "model": score_examples(examples).percent}
        os.environ[polyphone_model.ENV_OFF] = "0"
        try:
            row["rules"] = score_examples(examples).percent
        finally:
            del os.environ[polyphone_model.ENV_OFF]
        row["pypinyin"] = 100.0 * sum(_pypinyin_reading(e.text, e.index) == e.label for e in examples) / len(examples)
        out[name] = {k: round(v, 2) for k, v in row.items()}
    return out


def sandhi_accuracy() -> tuple[int, int]:
    """(correct, total) on sandhi.tsv."""
    from speedy.frontend import pinyin
    from speedy.frontend.suite import rows

    table = rows("sandhi.tsv")
    return sum(" ".join(pinyin(t)) == e for t, e in table), len(table)


def frontend_report(limit: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """The report (accuracies in %, sentence counts, first-call seconds, ms per 100 characters) and the
    failing table rows; `limit`: examples per public split (None = all). InputError outside a checkout."""
    import warnings

    warnings.simplefilter("ignore")
    from speedy.frontend.suite import DATA, score_polyphones, score_tn

    if not DATA.is_dir():
        raise InputError(f"bench-frontend: the test tables are not here ({DATA}); run it from a source checkout")
    load = first_call_seconds()

    tn, poly = score_tn(), score_polyphones()
    news = score_polyphones(name="polyphones_news.tsv")
    more = score_polyphones(name="polyphones_more.tsv")
    base, base_news = pypinyin_baseline("polyphones.tsv"), pypinyin_baseline("polyphones_news.tsv")
    base_more = pypinyin_baseline("polyphones_more.tsv")
    total = poly.correct + news.correct + more.correct
    count = poly.total + news.total + more.total
    sandhi_ok, sandhi_n = sandhi_accuracy()
    public = public_scores(limit)
    speed = ms_per_100_chars()
    report = {
        "tn_exact_match_percent": round(tn.percent, 2),
        "tn_cases": tn.total,
        "polyphone_percent": round(poly.percent, 2),
        "polyphone_sentences": poly.total,
        "polyphone_news_percent": round(news.percent, 2),
        "polyphone_news_sentences": news.total,
        "polyphone_more_percent": round(more.percent, 2),
        "polyphone_more_sentences": more.total,
        "polyphone_all_percent": round(100.0 * total / count, 2),
        "polyphone_all_sentences": count,
        "pypinyin_baseline_percent": round(base, 2),
        "pypinyin_baseline_news_percent": round(base_news, 2),
        "pypinyin_baseline_more_percent": round(base_more, 2),
        "sandhi_percent": round(100.0 * sandhi_ok / sandhi_n, 2),
        "sandhi_cases": sandhi_n,
        "public_polyphones": public,
        "first_call_s": round(load, 3),
        "ms_per_100_chars": round(speed, 3),
        "threads": 1,
    }
    return dict(report), [*tn.failures, *poly.failures, *news.failures, *more.failures]
