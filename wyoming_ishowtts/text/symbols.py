"""Abbreviations, symbols and capital runs as words, and the last word on which characters reach the model.

F5-TTS reads characters: a symbol its vocabulary lacks becomes a pause-like space token, one it has
("&", "+", "=") is read by whatever the model learnt for it, usually nothing. So symbols are written out,
capital runs of two to four letters are spaced ("U S B": the model spells those; written together it
swallows them), and whatever is left that no rule speaks is dropped, and logged at debug level, instead of
being handed to the model.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from types import ModuleType

from . import english

_LOGGER = logging.getLogger(__name__)

_ABBREVIATION = re.compile(
    r"(?<!\w)(?:"
    + "|".join(re.escape(a) for a in sorted(english.ABBREVIATIONS, key=len, reverse=True))
    + r")"
    r"(?=\s|$|[,;:!?)\"'])"
)
_SAINT_OR_STREET = re.compile(r"(?<!\w)St\.(?=\s|$|[,;:!?])(?P<next>\s+(?=[A-Z]))?")
_SENTENCE_FINAL = re.compile(r"\s*$")


def _abbreviation(match: re.Match[str]) -> str:
    spoken = english.ABBREVIATIONS[match.group()]
    # "etc." at the end of a sentence also ends it
    at_end = _SENTENCE_FINAL.match(match.string, match.end()) is not None
    return spoken + ("." if at_end else "")


def abbreviations(text: str) -> str:
    """Mr. -> Mister, e.g. -> for example, St. Louis -> Saint Louis, Main St. -> Main Street."""
    text = _ABBREVIATION.sub(_abbreviation, text)
    return _SAINT_OR_STREET.sub(lambda m: (english.SAINT + m["next"]) if m["next"] else english.STREET, text)


# Symbols between words -> words (the reader's): & + = @ × ÷ ~ < > ² ³ / and what numbers leave behind.
_SYMBOL_WORDS = {
    "&": "and",
    "+": "plus",
    "=": "equals",
    "@": "at",
    "×": "times",
    "÷": "divided by",
    "≈": "about",
    "<": "less than",
    ">": "greater than",
    "≤": "less than",
    "≥": "greater than",
    "²": "squared",
    "³": "cubed",
    "°": "degrees",
    "%": "percent",
}
_SYMBOL = re.compile(r"[&+=@×÷≈<>≤≥²³°%]|(?<=\w)/(?=\w)|\s~(?=\s?\w)")


def symbols(text: str, reader: ModuleType | None) -> str:
    words = (reader or english).WORDS

    def say(match: re.Match[str]) -> str:
        symbol = match.group().strip()
        if symbol == "/":
            return f" {words['or']} "
        if symbol == "~":
            return f" {words['about']} "
        return f" {words[_SYMBOL_WORDS[symbol]]} "

    return _SYMBOL.sub(say, text)


_CAPITALS = re.compile(r"(?<![\w'])(?P<caps>[A-Z]{2,4})(?P<plural>s?)(?![\w'])")
_VOWELS = frozenset("AEIOU")
_KNOWN_INITIALISMS = frozenset(
    [
        "HVAC",
        "HDMI",
        "HTTP",
        "HTML",
        "HTTPS",
        "JSON",
        "XML",
        "YAML",
        "UART",
        "GPIO",
        "NFC",
        "RFID",
        "USB",
        "LED",
        "LCD",
        "AC",
        "DC",
        "UV",
        "TV",
        "PC",
        "CPU",
        "GPU",
        "RAM",
        "ROM",
        "SSD",
        "HDD",
        "WIFI",
        "ID",
        "PIN",
        "SMS",
        "GPS",
        "API",
        "URL",
        "DNS",
        "VPN",
        "IP",
        "MQTT",
        "PM",
        "AM",
        "EV",
        "HA",
        "ISO",
        "UTC",
        "GMT",
    ]
)


def _is_shouting(text: str) -> bool:
    """Three or more all-capital words of which some are not initialisms: someone is shouting."""
    words = re.findall(r"\b[A-Z]{2,}\b", text)
    return len(words) >= 3 and any(word not in _KNOWN_INITIALISMS for word in words)


def capitals(text: str) -> str:
    """USB -> 'U S B', TVs -> 'T Vs', OK -> 'okay'; capital words of five or more letters are words."""
    shouting = _is_shouting(text)

    def say(match: re.Match[str]) -> str:
        caps, plural = match["caps"], match["plural"]
        if caps in english.PRONOUNCED_CAPITALS:
            return english.PRONOUNCED_CAPITALS[caps] + plural
        spell = caps in _KNOWN_INITIALISMS or (not shouting and (len(caps) <= 3 or not (_VOWELS & set(caps))))
        if not spell:
            return caps.lower() + plural
        return " ".join(caps) + plural

    text = _CAPITALS.sub(say, text)
    if shouting:
        text = re.sub(r"\b[A-Z]{5,}\b", lambda m: m.group().lower(), text)
    return text


# -- the characters that reach the model -----------------------------------------------------------------

_KEEP_PUNCTUATION = frozenset(",.!?'\"-:;，。！？、…")
_AS_CHINESE_COMMA = frozenset("：；")  # F5-TTS's vocabulary has no full-width colon or semicolon
_AS_COMMA = frozenset("()[]{}（）【】|·•–—―")
_AS_QUOTE = frozenset("«»「」『』《》“”„‟‘’‚‛")


def _fold_latin(char: str) -> str:
    """é -> e, ß -> ss: F5-TTS's English vocabulary is mostly plain ASCII letters."""
    special = {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "ø": "o",
        "Ø": "O",
        "œ": "oe",
        "Œ": "OE",
        "ð": "d",
        "þ": "th",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ı": "i",
    }
    if char in special:
        return special[char]
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return base if base.isascii() and base.isalpha() else ""


def speakable(text: str) -> str:
    """Keep letters (Latin folded to ASCII), the punctuation F5-TTS knows, spaces; drop the rest, logged."""
    out: list[str] = []
    dropped: list[str] = []
    for char in text:
        if char.isascii():
            if char.isalnum() or char == " " or char in _KEEP_PUNCTUATION:
                out.append(char)
            elif char.isspace():
                out.append(" ")
            elif char in _AS_COMMA:
                out.append(", ")
            else:
                dropped.append(char)
                out.append(" ")
            continue
        category = unicodedata.category(char)
        if category.startswith("L"):
            if "LATIN" in unicodedata.name(char, "") or _fold_latin(char):  # also ª, º: a, o
                folded = _fold_latin(char)
                out.append(folded)
                if not folded:
                    dropped.append(char)
            else:
                out.append(char)
        elif char in _KEEP_PUNCTUATION:
            out.append(char)
        elif char in _AS_CHINESE_COMMA:
            out.append("，")
        elif char in _AS_COMMA:
            out.append("，" if _is_cjk_before(out) else ", ")
        elif char in _AS_QUOTE:
            out.append('"')
        elif category.startswith("Z") or char in "\u200b\u2060\ufeff":
            out.append(" ")
        else:  # emoji and other symbols, marks, controls, unassigned and private-use characters
            if category not in ("Mn", "Me", "Cf") and char not in "\ufe0f":
                dropped.append(char)
    if dropped:
        _LOGGER.debug("Not spoken (no word for them): %s", " ".join(sorted(set(dropped))))
    return "".join(out)


def _is_cjk_before(out: list[str]) -> bool:
    for piece in reversed(out):
        for char in reversed(piece):
            if not char.isspace():
                return "\u3000" <= char <= "\u9fff" or "\uff00" <= char <= "\uffef"
    return False


_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+(?=[,.!?;:，。！？、：；])")
_REPEATED_PUNCTUATION = re.compile(r"([,，、])(?:\s*[,，、])+")
_COMMA_BEFORE_END = re.compile(r"(?:[,，、]\s*)+(?=[.!?。！？:：;；]|$)")
_LEADING_PUNCTUATION = re.compile(r"^[\s,.;:!?，。！？、：；-]+")
_CJK_SPACE = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef])\s+(?=[\u3000-\u9fff\uff00-\uffef])")


def tidy(text: str) -> str:
    """One space between words, none before punctuation or between Chinese characters, no stray commas."""
    text = " ".join(text.split())
    text = _SPACE_BEFORE_PUNCTUATION.sub("", text)
    text = _REPEATED_PUNCTUATION.sub(r"\1", text)
    text = _COMMA_BEFORE_END.sub("", text)
    text = _LEADING_PUNCTUATION.sub("", text)
    text = _CJK_SPACE.sub("", text)
    text = re.sub(
        r"([,，、:：;；])(?=\w)", lambda m: m.group(1) + (" " if m.group(1).isascii() else ""), text
    )
    return text.strip()
