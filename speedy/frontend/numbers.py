"""Reading numbers aloud in Mandarin: cardinals (with 两), decimals, digit strings, fractions.

Written here rather than taken from cn2an because spoken Mandarin needs 两 before 千/万/亿 and measure
words, 十 (not 一十) at the start, and 幺 in phone numbers, which cn2an does not give.
"""

from __future__ import annotations

DIGITS = "零一二三四五六七八九"
_SMALL_UNITS = ("", "十", "百", "千")
_BIG_UNITS = ("", "万", "亿", "万亿")


def _four(n: int, lead: bool) -> str:
    """0 < n < 10000 -> reading with inner zeros (1002 -> 一千零二); a leading 2 before 百/千 is 两."""
    out: list[str] = []
    zero = False
    for pos in (3, 2, 1, 0):
        d = n // 10**pos % 10
        if d == 0:
            zero = bool(out)
            continue
        if zero:
            out.append("零")
            zero = False
        digit = "两" if d == 2 and pos >= 2 and lead and not out else DIGITS[d]
        out.append(digit + _SMALL_UNITS[pos])
    return "".join(out)


def cardinal(n: int, liang: bool = False) -> str:
    """Integer -> Chinese (12 -> 十二, 2000 -> 两千, 10086 -> 一万零八十六, -5 -> 负五).

    ``liang`` reads a bare 2 as 两 (before a measure word: 2个 -> 两个).
    """
    if n < 0:
        return "负" + cardinal(-n)
    if n == 0:
        return "零"
    if n >= 10**16:
        return digits(str(n))
    groups: list[int] = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    out: list[str] = []
    need_zero = False
    for idx in range(len(groups) - 1, -1, -1):
        g = groups[idx]
        if g == 0:
            need_zero = bool(out)
            continue
        if out and (need_zero or g < 1000):
            out.append("零")
        need_zero = False
        text = _four(g, lead=not out)
        if idx > 0 and text == "二":
            text = "两"
        out.append(text + _BIG_UNITS[idx])
    text = "".join(out)
    if text.startswith("一十"):
        text = text[1:]
    if text == "二" and liang:
        text = "两"
    return text


def digits(s: str, yao: bool = False) -> str:
    """Digit string read digit by digit (110 -> 一一零, or 幺幺零 with ``yao``)."""
    table = "零幺二三四五六七八九" if yao else DIGITS
    return "".join(table[int(c)] if c.isdigit() else c for c in s)


def number(s: str, liang: bool = False) -> str:
    """A numeral as written: ``"3.14"`` -> 三点一四, ``"007"`` -> 零零七, ``"1,000"`` -> 一千."""
    s = s.replace(",", "")
    neg = s.startswith(("-", "−"))
    if neg:
        s = s[1:]
    if "." in s:
        whole, frac = s.split(".", 1)
        text = (cardinal(int(whole)) if whole else "零") + "点" + digits(frac)
    elif len(s) > 1 and s.startswith("0"):
        text = digits(s)
    elif s:
        text = cardinal(int(s), liang=liang)
    else:
        text = ""
    return ("负" if neg else "") + text


def fraction(num: str, den: str) -> str:
    """3/4 -> 四分之三."""
    return number(den) + "分之" + number(num)
