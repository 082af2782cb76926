"""Numbers as English words: cardinals, ordinals, decimals, years, digit strings.

Written here rather than taken from num2words or inflect: these few rules are all the front end needs,
they run in microseconds, import in no time, and behave the same on every platform (tests/test_text.py
checks the cardinals and ordinals against num2words, a dev dependency). Words are American usage
without "and" ("one hundred five"), tens joined by a hyphen ("twenty-one").
"""

from __future__ import annotations

__all__ = ["MAX_CARDINAL_DIGITS", "cardinal", "decimal", "digits", "ordinal", "year"]

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ("", "thousand", "million", "billion", "trillion")

MAX_CARDINAL_DIGITS = 15
"""Longer integers are read digit by digit (they are codes, not amounts, and this bounds the words)."""

_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def cardinal(n: int) -> str:
    """123 -> 'one hundred twenty-three'; integers of more than MAX_CARDINAL_DIGITS digits digit by digit."""
    if n < 0:
        return "minus " + cardinal(-n)
    if len(str(n)) > MAX_CARDINAL_DIGITS:
        return digits(str(n))
    if n == 0:
        return "zero"
    groups: list[str] = []
    scale = 0
    while n:
        n, group = divmod(n, 1000)
        if group:
            words = _below_thousand(group)
            if _SCALES[scale]:
                words.append(_SCALES[scale])
            groups.insert(0, " ".join(words))
        scale += 1
    return " ".join(groups)


def ordinal(n: int) -> str:
    """21 -> 'twenty-first'."""
    words = cardinal(n)
    head, sep, last = words.rpartition(" ")
    stem, hyphen, unit = last.rpartition("-")
    if unit in _ORDINAL_WORDS:
        unit = _ORDINAL_WORDS[unit]
    elif unit.endswith("y"):
        unit = unit[:-1] + "ieth"
    else:
        unit += "th"
    return head + sep + stem + hyphen + unit


def digits(text: str) -> str:
    """'0123' -> 'zero one two three' (every character of `text` must be a digit)."""
    return " ".join(_ONES[int(char)] for char in text)


def decimal(integer: str, fraction: str | None, negative: bool = False) -> str:
    """('21', '5') -> 'twenty-one point five': the fraction is read digit by digit, as it is written."""
    words = cardinal(int(integer)) if integer else "zero"
    if fraction:
        words += " point " + digits(fraction)
    return ("minus " if negative else "") + words


def year(n: int) -> str:
    """2026 -> 'twenty twenty-six', 1905 -> 'nineteen oh five', 2005 -> 'two thousand five'."""
    if not 1000 <= n <= 9999 or n % 1000 < 10 or (2000 <= n < 2010):
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return cardinal(high) + " hundred"
    if low < 10:
        return cardinal(high) + " oh " + _ONES[low]
    return cardinal(high) + " " + cardinal(low)
