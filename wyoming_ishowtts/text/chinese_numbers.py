"""Numbers as Mandarin words: 1234 -> 一千二百三十四, 21.5 -> 二十一点五, 2026年 -> 二零二六年.

Our own rules rather than cn2an's (which pulls in more than it gives here); tests/test_text.py checks the
cardinals against cn2an, a dev dependency. Groups of four digits (万, 亿: 36927亿, never 三万亿六千九百二十七亿), one 零 for each run of
zeros inside a number, and 十 rather than 一十 at the start (十五, but 一百一十五).
"""

from __future__ import annotations

__all__ = ["MAX_CARDINAL_DIGITS", "cardinal", "decimal", "digits"]

DIGITS = "零一二三四五六七八九"
_SMALL_UNITS = ("", "十", "百", "千")
_YI = 10**8

MAX_CARDINAL_DIGITS = 16
"""Longer integers are read digit by digit."""


def _group(n: int) -> str:
    """0 < n < 10000, without leading 零."""
    out: list[str] = []
    zero = False
    for position in range(3, -1, -1):
        digit = n // 10**position % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out.append("零")
            zero = False
        out.append(DIGITS[digit] + _SMALL_UNITS[position])
    return "".join(out)


def cardinal(n: int) -> str:
    """1234 -> 一千二百三十四, 10 -> 十, 100010 -> 十万零一十."""
    if n < 0:
        return "负" + cardinal(-n)
    if len(str(n)) > MAX_CARDINAL_DIGITS:
        return digits(str(n))
    if n == 0:
        return "零"
    words = _positive(n)
    if words.startswith("一十"):
        words = words[1:]
    return words


def _positive(n: int) -> str:
    """n > 0 with 一十 kept. From 亿 up the count of 亿 is itself a number: 36927亿 is 三万六千九百二十七亿
    (not 三万亿六千九百二十七亿), and 亿 is said even when the count of 万 below it is zero."""
    if n >= _YI:
        high, low = divmod(n, _YI)
        words = _positive(high) + "亿"
        return words + (("零" if low < _YI // 10 else "") + _positive(low) if low else "")
    high, low = divmod(n, 10000)
    if not high:
        return _group(low)
    return _group(high) + "万" + (("零" if low < 1000 else "") + _group(low) if low else "")


def digits(text: str) -> str:
    """'0123' -> 零一二三."""
    return "".join(DIGITS[int(char)] for char in text)


def decimal(integer: str, fraction: str | None, negative: bool = False) -> str:
    """('21', '5') -> 二十一点五."""
    words = cardinal(int(integer)) if integer else "零"
    if fraction:
        words += "点" + digits(fraction)
    return ("负" if negative else "") + words
