"""One sentence, as written -> as spoken: the order of the front end's steps.

line structure -> markup (Markdown, HTML, addresses) -> numbers, dates, times, units, money (rules.py,
per language) -> abbreviations -> symbols -> capital runs -> the characters the model can read -> spacing.
Each step leaves only what later steps read as plain words, which is also why the whole is idempotent:
spoken text run through it again comes out the same (tests/test_text.py checks it).
"""

from __future__ import annotations

from types import ModuleType

from . import english, markup, symbols
from .rules import read_numbers


def spoken_sentence(sentence: str, reader: ModuleType | None) -> str:
    """`sentence` as it is to be said; `reader` is the request's language module (None: markup only)."""
    words = (reader or english).WORDS  # "at" and "dot" for addresses
    line, structural = markup.line_structure(sentence)
    text = markup.plain(line, words["at"], words["dot"])
    text = read_numbers(text, reader)
    if reader is not None:
        text = symbols.abbreviations(text)
        text = symbols.symbols(text, reader)
        text = symbols.capitals(text)
    text = symbols.tidy(symbols.speakable(text))
    written = line.lstrip()
    if text[:1].islower() and text[:1].isascii() and written[:1] and not written[0].isalpha():
        text = text[0].upper() + text[1:]  # "21 °C today." starts a sentence: "Twenty-one degrees ..."
    if structural and text and text[-1] not in ".!?:;。！？：；…":  # a heading or list item is a sentence
        text += "。" if "\u3000" <= text[-1] <= "\u9fff" else "."
    return text
