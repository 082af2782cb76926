"""How English says what rules.py finds: numbers, times, dates, units, money, symbols.

Conventions (docs/server.md has the table): American words without "and", times as they are read
("three forty-five P M", "fourteen oh five"), dates as "December seventh, twenty twenty-six", a unit in
the singular only after exactly one ("one degree Celsius", "one point zero degrees"), letters of an
initialism apart ("P M", "U S B") because F5-TTS spells those and swallows a capital run.
"""

from __future__ import annotations

from . import english_numbers as num
from .units import Currency, Unit

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

WORDS = {
    "and": "and",
    "plus": "plus",
    "equals": "equals",
    "at": "at",
    "dot": "dot",
    "times": "times",
    "divided by": "divided by",
    "or": "or",
    "number": "number",
    "less than": "less than",
    "greater than": "greater than",
    "about": "about",
    "squared": "squared",
    "cubed": "cubed",
    "degrees": "degrees",
    "percent": "percent",
    "version": "version",
    "to": "to",
    "per": "per",
}

ABBREVIATIONS = {
    "Mr.": "Mister",
    "Mrs.": "Missus",
    "Ms.": "Miz",
    "Dr.": "Doctor",
    "Prof.": "Professor",
    "Jr.": "Junior",
    "Sr.": "Senior",
    "vs.": "versus",
    "approx.": "approximately",
    "Approx.": "Approximately",
    "e.g.": "for example",
    "E.g.": "For example",
    "i.e.": "that is",
    "I.e.": "That is",
    "etc.": "et cetera",
    "Mt.": "Mount",
    "Ave.": "Avenue",
    "Rd.": "Road",
    "Blvd.": "Boulevard",
    "Fig.": "Figure",
    "a.m.": "A M",
    "p.m.": "P M",
    "A.M.": "A M",
    "P.M.": "P M",
}
"""Written form -> spoken form; "St." and "No." depend on what follows (rules.py)."""

SAINT, STREET, NUMBER = "Saint", "Street", "number"

PRONOUNCED_CAPITALS = {"OK": "okay", "NASA": "nasa", "ASAP": "A S A P", "FAQ": "F A Q"}
"""Capital runs that are read as words (or spelled, for those of four letters that have vowels)."""


def number(integer: str, fraction: str | None, negative: bool) -> str:
    return num.decimal(integer, fraction, negative)


def integer(value: int) -> str:
    return num.cardinal(value)


def digits(text: str) -> str:
    return num.digits(text)


def ordinal(value: int) -> str:
    return num.ordinal(value)


def year(value: int) -> str:
    return num.year(value)


def decade(value: int) -> str:
    """1990 -> 'nineteen nineties'."""
    words = num.year(value)
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def time(hour: int, minute: int, second: int | None, meridiem: str | None) -> str:
    """(15, 45, None, 'P') -> ... ; 24-hour times keep their hour: (14, 5) -> 'fourteen oh five'."""
    words = num.cardinal(hour)
    if minute == 0:
        if meridiem is None:
            words += " o'clock" if hour <= 12 else " hundred"
    elif minute < 10:
        words += " oh " + num.cardinal(minute)
    else:
        words += " " + num.cardinal(minute)
    if meridiem:
        words += f" {meridiem.upper()} M"
    if second:
        words += " and " + num.cardinal(second) + (" second" if second == 1 else " seconds")
    return words


def date(year_value: int | None, month: int | None, day: int | None) -> str:
    """December seventh, twenty twenty-six; a missing part is left out."""
    parts = []
    if month is not None:
        parts.append(MONTHS[month - 1])
    if day is not None:
        parts.append(num.ordinal(day) if month is not None else "the " + num.ordinal(day))
    words = " ".join(parts)
    if year_value is not None:
        words = (words + ", " if words else "") + num.year(year_value)
    return words


def unit(value: str, name: Unit, singular: bool, negative_temperature: bool) -> str:
    del negative_temperature  # "minus two degrees Celsius": the sign is already in `value`
    return f"{value} {name.singular if singular else name.plural}"


def unit_alone(name: Unit) -> str:
    return name.plural


def value_range(low: str, high: str) -> str:
    return f"{low} to {high}"


def money(whole: int, fraction: str | None, currency: Currency, negative: bool, scale: str | None) -> str:
    """$5.50 -> 'five dollars and fifty cents'; $1.5 million -> 'one point five million dollars'."""
    sign = "minus " if negative else ""
    has_cents = currency.cent_singular is not None and fraction is not None and len(fraction) <= 2
    if scale or (fraction and not has_cents):
        amount = num.decimal(str(whole), fraction)
        return f"{sign}{amount} {scale + ' ' if scale else ''}{currency.plural}"
    words = f"{num.cardinal(whole)} {currency.singular if whole == 1 else currency.plural}"
    if fraction and has_cents and int(fraction):
        cents = int(fraction.ljust(2, "0"))
        cent_name = currency.cent_singular if cents == 1 else currency.cent_plural
        cent_words = f"{num.cardinal(cents)} {cent_name}"
        words = cent_words if whole == 0 else f"{words} and {cent_words}"
    return sign + words


def fraction(numerator: int, denominator: int) -> str:
    """3/4 -> 'three quarters', 1/2 -> 'one half', 5/8 -> 'five eighths'."""
    if denominator == 2:
        name = "half" if numerator == 1 else "halves"
    elif denominator == 4:
        name = "quarter" if numerator == 1 else "quarters"
    else:
        name = num.ordinal(denominator) + ("" if numerator == 1 else "s")
    return f"{num.cardinal(numerator)} {name}"


def dotted(parts: list[str], word: str) -> str:
    """A version or an address: each part a number, joined by `word` ('point', 'dot')."""
    return f" {word} ".join(
        num.cardinal(int(part)) if not part.startswith("0") or part == "0" else num.digits(part)
        for part in parts
    )


def percent(value: str) -> str:
    return f"{value} percent"


def sentence_end() -> str:
    return "."
