"""Written forms -> words: the passes that find money, dates, times, units, numbers and symbols in a sentence.

Each pass is a regular expression whose matches a reader (english.py, chinese.py: one module per language)
puts into words. The reader is chosen per match by the script of the nearest letter around it, so the
"3" of "下午3点" is read in Chinese inside an English answer, and the "5" of "5 minutes" in English inside a
Chinese one; with no letter around, the request's language decides. The passes run from the most specific
to the most general (a date before its numbers, a unit before a bare number), and each leaves only words
behind, so no later pass reads the same characters again. Every pattern is linear (no nested repetition),
so a 10,000-digit number or a long run of symbols costs time in proportion to its length.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import ModuleType

from . import chinese, english
from .units import CURRENCIES, STANDALONE_UNITS, UNITS, Currency

Reader = ModuleType
"""english or chinese: modules with the same functions (number, time, date, unit, money, ...)."""

READERS: dict[str, Reader] = {"en": english, "zh": chinese}
"""Languages with rules for numbers and symbols: one module each. Others get the markup cleanup only."""

_CJK = re.compile(r"[\u2e80-\u2fff\u3040-\u30ff\u3100-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_LOOK = 40  # characters to look for a letter around a match


def reader_at(text: str, start: int, end: int, default: Reader | None) -> Reader | None:
    """The reader for text[start:end]: by the nearest letter before it, else after it, else `default`.

    A Chinese character means Chinese; any other letter means English, unless the request's language has
    no reader (then the match is left as it is, for the model to read)."""
    before = (text[i] for i in range(start - 1, max(-1, start - _LOOK), -1))
    after = (text[i] for i in range(end, min(len(text), end + _LOOK)))
    for side in (before, after):
        for char in side:
            if char.isalpha():
                if _CJK.match(char):
                    return chinese
                return english if default is not None else None
    return default


Replace = Callable[[re.Match[str], Reader], str | None]
"""A pass's reading of one match, or None to leave the match as it is."""


def _apply(pattern: re.Pattern[str], read: Replace, text: str, default: Reader | None) -> str:
    def replace(match: re.Match[str]) -> str:
        reader = reader_at(match.string, match.start(), match.end(), default)
        if reader is None:
            return match.group()
        spoken = read(match, reader)
        return match.group() if spoken is None else spoken

    return pattern.sub(replace, text)


def _alternatives(names: list[str]) -> str:
    return "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))


# -- number syntax ------------------------------------------------------------------------------------

_INT = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"
_NUMBER = rf"(?:{_INT})(?:\.\d+)?"
_SIGN = r"(?:(?<![A-Za-z0-9.,])[-−])?"


def _parse(number: str) -> tuple[str, str | None, bool]:
    """'-1,234.5' -> ('1234', '5', True)."""
    negative = number[:1] in "-−"
    number = number.lstrip("-−").replace(",", "")
    integer, _, fraction = number.partition(".")
    return integer, fraction or None, negative


def _words(number: str, reader: Reader) -> str:
    integer, fraction, negative = _parse(number)
    if fraction is None and len(integer) > 1 and integer.startswith("0"):
        return str(reader.digits(integer))
    return str(reader.number(integer, fraction, negative))


def _is_one(number: str) -> bool:
    return number.replace(",", "") == "1"


# -- passes, most specific first ----------------------------------------------------------------------

_SCALES = {
    "k": "thousand",
    "K": "thousand",
    "thousand": "thousand",
    "M": "million",
    "million": "million",
    "bn": "billion",
    "B": "billion",
    "billion": "billion",
    "trillion": "trillion",
}
_SYMBOLS = [name for name in CURRENCIES if not name.isalpha()]
_CODES = [name for name in CURRENCIES if name.isalpha()]
_MONEY_BEFORE = re.compile(
    rf"(?P<neg>(?<![A-Za-z0-9_.,])[-−])?(?P<cur>{_alternatives(_SYMBOLS + _CODES)})\s?(?P<amount>{_NUMBER})"
    rf"(?:\s?(?P<scale>{_alternatives(list(_SCALES))})(?![A-Za-z]))?"
)
_MONEY_AFTER = re.compile(
    rf"(?<![\d,.])(?P<amount>{_SIGN}{_NUMBER})\s?(?:(?P<scale>{_alternatives(['thousand', 'million', 'billion'])})\s)?"
    rf"(?P<cur>{_alternatives(_SYMBOLS + _CODES)})(?![A-Za-z])"
)


def _money(match: re.Match[str], reader: Reader) -> str | None:
    groups = match.groupdict()
    currency: Currency = CURRENCIES[groups["cur"]]
    if currency.chinese == "元" and groups["cur"] == "元" and reader is chinese:
        return None  # 5元 is already Chinese: the number pass reads it
    integer, fraction, negative = _parse(groups["amount"])
    negative = negative or bool(groups.get("neg"))
    scale = _SCALES.get(groups["scale"]) if groups.get("scale") else None
    return f" {reader.money(int(integer), fraction, currency, negative, scale)} "


_MONTHS = {name.lower(): index + 1 for index, name in enumerate(english.MONTHS)}
_MONTHS.update({name[:3].lower(): index + 1 for index, name in enumerate(english.MONTHS)})
_MONTHS["sept"] = 9
_MONTH = (
    r"(?P<month>(?:" + "|".join(sorted({m.capitalize() for m in _MONTHS}, key=len, reverse=True)) + r")\.?)"
)
_ORDINAL_SUFFIX = r"(?:st|nd|rd|th)?"

_ISO_DATE = re.compile(
    r"(?<!\d)(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?!\d)"
)
_MONTH_DAY = re.compile(
    rf"\b{_MONTH}\s+(?P<d>\d{{1,2}}){_ORDINAL_SUFFIX}(?!\d)(?:,?\s+(?P<y>\d{{4}})(?!\d))?"
)
_DAY_MONTH = re.compile(
    rf"(?<!\d)(?P<d>\d{{1,2}}){_ORDINAL_SUFFIX}\s+(?:of\s+)?{_MONTH}(?![a-z])(?:,?\s+(?P<y>\d{{4}})(?!\d))?"
)
_MONTH_YEAR = re.compile(rf"\b{_MONTH}\s+(?P<y>\d{{4}})(?!\d)")
_NUMERIC_DATE = re.compile(
    r"(?<![A-Za-z0-9_/.])(?:(?P<y1>\d{4})(?P<s1>[/.])(?P<a1>\d{1,2})(?P=s1)(?P<b1>\d{1,2})"
    r"|(?P<a2>\d{1,2})(?P<s2>[/.])(?P<b2>\d{1,2})(?P=s2)(?P<y2>\d{4}))(?![\d/]|\.\d)"
)


def _month_number(name: str) -> int:
    return _MONTHS[name.rstrip(".").lower()]


def _valid(year: int | None, month: int, day: int | None) -> bool:
    return 1 <= month <= 12 and (day is None or 1 <= day <= 31) and (year is None or 1000 <= year <= 2999)


def _iso_date(match: re.Match[str], reader: Reader) -> str | None:
    year, month, day = int(match["y"]), int(match["m"]), int(match["d"])
    if not _valid(year, month, day):
        return None
    words = str(reader.date(year, month, day))
    if match["H"] is not None:
        words += (" " if reader is english else "") + _time_words(
            reader, int(match["H"]), int(match["M"]), int(match["S"]) if match["S"] else None, None
        )
    return f" {words} "


def _named_date(match: re.Match[str], reader: Reader) -> str | None:
    groups = match.groupdict()
    month = _month_number(groups["month"])
    day = int(groups["d"]) if groups.get("d") else None
    year = int(groups["y"]) if groups.get("y") else None
    if not _valid(year, month, day):
        return None
    return f" {reader.date(year, month, day)} "


def _numeric_date(match: re.Match[str], reader: Reader) -> str | None:
    if match["y1"]:  # year first: 2026/12/07 or 2026.12.07
        if match["s1"] == "." and reader is english:
            return None  # "Home Assistant 2026.12.1" is a version (Chinese writes dates so: 2026.12.7)
        year, month, day = int(match["y1"]), int(match["a1"]), int(match["b1"])
    else:
        a, b, year = int(match["a2"]), int(match["b2"]), int(match["y2"])
        # 07.12.2026 is day first everywhere; 12/07/2026 is month first in English unless it cannot be
        month, day = (b, a) if match["s2"] == "." or a > 12 else (a, b)
    if not _valid(year, month, day):
        return None
    return f" {reader.date(year, month, day)} "


_MERIDIEM = r"(?:\s?(?P<mer>[AaPp])\.?\s?[Mm]\.?(?![A-Za-z]))"
_CLOCK = re.compile(rf"(?<![\d:.])(?P<h>\d{{1,2}}):(?P<m>\d{{2}})(?::(?P<s>\d{{2}}))?(?![\d:]){_MERIDIEM}?")
_HOUR_MERIDIEM = re.compile(rf"(?<![\d:.])(?P<h>\d{{1,2}}){_MERIDIEM}")


def _time_words(reader: Reader, hour: int, minute: int, second: int | None, meridiem: str | None) -> str:
    return str(reader.time(hour, minute, second, meridiem))


def _clock(match: re.Match[str], reader: Reader) -> str | None:
    groups = match.groupdict()
    hour, minute = int(groups["h"]), int(groups.get("m") or 0)
    second = int(groups["s"]) if groups.get("s") else None
    meridiem = groups.get("mer")
    if hour > 24 or minute > 59 or (second is not None and second > 59) or (meridiem and not 1 <= hour <= 12):
        return None
    end = (
        "." if match.group().endswith(".") and re.match(r"\s*$|\s+[A-Z]", match.string[match.end() :]) else ""
    )
    return f" {_time_words(reader, hour, minute, second, meridiem)}{end} "


_PHONE = re.compile(
    r"(?<![A-Za-z0-9_.,])(?:\+\d{1,3}[ -]?(?:\(\d{1,4}\)[ -]?)?\d{1,4}(?:[ -]\d{2,4}){1,4}"
    r"|\(\d{3}\)[ -]?\d{3}[ -]\d{4}|\d{3}-\d{3}-\d{4}|\d{3}-\d{4})(?![A-Za-z0-9_-])"
)


def _phone(match: re.Match[str], reader: Reader) -> str:
    groups = re.findall(r"\d+", match.group())
    glue = ", " if reader is english else "，"
    return (
        (" plus " if match.group().startswith("+") and reader is english else " ")
        + glue.join(str(reader.digits(group)) for group in groups)
        + " "
    )


_VERSION = re.compile(
    r"(?<![A-Za-z0-9_.])(?P<v>[vV](?=\d))?(?P<n>\d+(?:\.\d+){2,})(?![A-Za-z0-9_]|\.\d)|(?<![A-Za-z0-9_.])[vV](?P<n2>\d+(?:\.\d+)?)(?![A-Za-z0-9_]|\.\d)"
)


def _version(match: re.Match[str], reader: Reader) -> str:
    parts = (match["n"] or match["n2"]).split(".")
    is_address = len(parts) == 4 and not match["v"] and all(int(part) <= 255 for part in parts)
    word = reader.WORDS["dot"] if is_address else "point"
    before = match.string[: match.start()]
    said_before = re.search(r"(?i)\bversion\s*$", before) is not None or before.rstrip().endswith(
        reader.WORDS["version"]
    )
    prefix = reader.WORDS["version"] + " " if (match["v"] or match["n2"]) and not said_before else ""
    return f" {prefix}{reader.dotted(parts, word)} "


_UNIT_NAMES = list(UNITS)
_UNIT = re.compile(
    rf"(?<![\d,.])(?P<value>{_SIGN}(?:\d+,\d{{1,2}}(?![\d,])|{_NUMBER}))"
    rf"(?:\s?(?:[-–—]|to|\.\.)\s?(?P<high>{_SIGN}{_NUMBER}))?"
    rf"\s?(?P<unit>{_alternatives(_UNIT_NAMES)})(?![A-Za-z0-9_/²³]|\.[A-Za-z0-9])"
)
# Units that are also ordinary words are taken after a number only where no word follows ("5 in" ends
# a phrase; "5 in the morning" is no length).
_WORDLIKE_UNITS = frozenset({"in", "A", "B", "K", "d", "l", "st", "var", "bar", "g", "m", "s", "h"})


def _unit(match: re.Match[str], reader: Reader) -> str | None:
    symbol = match["unit"]
    rest = match.string[match.end() :]
    if symbol in _WORDLIKE_UNITS and re.match(r"\s+[a-z]", rest) and symbol not in ("m", "h", "s", "g"):
        return None
    if symbol == "st" and match.start("unit") == match.end("value"):
        return None  # 1st is first (the ordinal pass), not one stone
    value = (
        match["value"].replace(",", ".") if re.fullmatch(r"-?\d+,\d{1,2}", match["value"]) else match["value"]
    )
    negative = value.lstrip()[:1] in "-−"
    if negative and reader is chinese and match.string[: match.start()].rstrip().endswith("零下"):
        value, negative = value.lstrip("-−"), True  # 零下-2°C: 零下 is said already
        return f"{reader.number(*_parse(value)[:2], False)}{UNITS[symbol].chinese}"
    low = _words(value, reader)
    if match["high"]:
        spoken_value = str(reader.value_range(low, _words(match["high"], reader)))
        singular = False
    else:
        spoken_value = low
        singular = _is_one(value)
    return f" {reader.unit(spoken_value, UNITS[symbol], singular, negative)} "


_PERIODS = {"day": "天", "week": "周", "month": "月", "year": "年", "night": "晚", "person": "人"}
_PER_UNIT = re.compile(
    rf"(?<=[^\W\d_])\s?/\s?(?:(?P<period>{_alternatives(list(_PERIODS))})(?![A-Za-z])"
    rf"|(?P<unit>{_alternatives(_UNIT_NAMES)})(?![A-Za-z0-9_/²³]|\.[A-Za-z0-9]))"
)


def _per_unit(match: re.Match[str], reader: Reader) -> str:
    """What is left of "$0.27/kWh" or "3 €/month" once the money is words: "... per kilowatt hour"."""
    if match["period"]:
        period = match["period"]
        return f"每{_PERIODS[period]}" if reader is chinese else f" {english.WORDS['per']} {period} "
    name = UNITS[match["unit"]]
    if reader is chinese:
        return f"每{name.chinese}"
    return f" {english.WORDS['per']} {name.singular} "


_STANDALONE = re.compile(
    rf"(?<![A-Za-z0-9_])(?P<unit>{_alternatives(list(STANDALONE_UNITS))})(?![A-Za-z0-9_²³])"
)


def _standalone_unit(match: re.Match[str], reader: Reader) -> str:
    return f" {reader.unit_alone(UNITS[match['unit']])} "


_RANGE = re.compile(rf"(?<![A-Za-z0-9_.,])(?P<a>{_NUMBER})\s?[-–—]\s?(?P<b>{_NUMBER})(?![A-Za-z0-9_]|[.,]\d)")


def _range(match: re.Match[str], reader: Reader) -> str:
    return f" {reader.value_range(_words(match['a'], reader), _words(match['b'], reader))} "


_FRACTION = re.compile(r"(?<![A-Za-z0-9_/.,])(?P<n>\d{1,3})/(?P<d>\d{1,3})(?![A-Za-z0-9_/]|[.,]\d)")


def _fraction(match: re.Match[str], reader: Reader) -> str | None:
    numerator, denominator = int(match["n"]), int(match["d"])
    if match.group() == "24/7":
        return f" {reader.integer(24)} {reader.integer(7)} "
    if not 2 <= denominator <= 100 or numerator == 0:
        return None
    return f" {reader.fraction(numerator, denominator)} "


_ORDINAL = re.compile(r"(?<![A-Za-z0-9_.,])(?P<n>\d{1,6})(?:st|nd|rd|th|ST|ND|RD|TH)(?![A-Za-z])")


def _ordinal(match: re.Match[str], reader: Reader) -> str:
    return f" {reader.ordinal(int(match['n']))} "


_YEAR_WORDS = r"in|In|IN|since|Since|from|From|until|Until|till|by|By|before|Before|after|After|of|year|Year|circa|around"
_YEAR = re.compile(rf"\b(?P<prep>{_YEAR_WORDS})\s+(?P<y>1[1-9]\d\d|20\d\d)(?![A-Za-z0-9_]|[.,:]\d)")
_DECADE = re.compile(r"(?<![A-Za-z0-9_.,])(?P<y>1[1-9]\d0|20\d0)s\b")
_CHINESE_YEAR = re.compile(r"(?<!\d)(?P<y>\d{4})(?=\s?年)")


def _year(match: re.Match[str], reader: Reader) -> str:
    return f"{match['prep']} {english.year(int(match['y']))} " if reader is english else match.group()


def _decade(match: re.Match[str], reader: Reader) -> str:
    return f" {reader.decade(int(match['y']))} "


def _chinese_year(match: re.Match[str], reader: Reader) -> str | None:
    return str(reader.digits(match["y"])) if reader is chinese else None


_HASH_NUMBER = re.compile(r"(?:#|\bNo\.|\bno\.|\bNr\.)\s?(?=\d)")


def _hash_number(match: re.Match[str], reader: Reader) -> str:
    return f" {reader.WORDS['number']} " if reader is english else "第"


_NUMBER_RE = re.compile(rf"(?P<num>{_SIGN}{_NUMBER})")


def _number(match: re.Match[str], reader: Reader) -> str:
    spoken = _words(match["num"], reader)
    if reader is english:
        return f" {spoken} "
    following = match.string[match.end() :].lstrip()
    if spoken.startswith("负") and following.startswith("度"):
        return "零下" + spoken[1:]  # -2度: 零下二度
    return chinese.counted(spoken, following)


# The whole sequence, in order. (pattern, reading)
PASSES: tuple[tuple[re.Pattern[str], Replace], ...] = (
    (_ISO_DATE, _iso_date),
    (_MONEY_BEFORE, _money),
    (_MONEY_AFTER, _money),
    (_MONTH_DAY, _named_date),
    (_DAY_MONTH, _named_date),
    (_MONTH_YEAR, _named_date),
    (_NUMERIC_DATE, _numeric_date),
    (_CLOCK, _clock),
    (_HOUR_MERIDIEM, _clock),
    (_PHONE, _phone),
    (_VERSION, _version),
    (_CHINESE_YEAR, _chinese_year),
    (_DECADE, _decade),
    (_UNIT, _unit),
    (_PER_UNIT, _per_unit),
    (_STANDALONE, _standalone_unit),
    (_RANGE, _range),
    (_FRACTION, _fraction),
    (_ORDINAL, _ordinal),
    (_YEAR, _year),
    (_HASH_NUMBER, _hash_number),
    (_NUMBER_RE, _number),
)


def read_numbers(text: str, default: Reader | None) -> str:
    """Every number-like thing in `text` as words of the reader its context calls for."""
    if not any(char.isdigit() for char in text) and not _STANDALONE.search(text):
        return text
    for pattern, read in PASSES:
        text = _apply(pattern, read, text, default)
    return text
