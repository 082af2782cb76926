"""Where a sentence ends, decided the same way for a whole text and for the same text streamed in pieces.

Home Assistant streams an LLM's answer as deltas split anywhere ("21", ".", "5 °C"), and each sentence
should be spoken as soon as it is complete. `first_sentence_end` looks only at the text from a sentence's
start and says where that sentence ends, or that it cannot tell yet (the decision needs a character that
has not arrived). It never says one thing and then, with more text, another; so cutting the stream
as it comes gives the same sentences as cutting the whole text at once (tests/test_text.py checks that
over random texts and random splits). A sentence ends:

- at a line end (headings, list items and table rows are lines);
- after ``.``, ``!``, ``?`` or ``…`` (and closing quotes, brackets or emphasis marks) followed by a space,
  unless the ``.`` belongs to an abbreviation ("Dr. Smith", "e.g. this"), an initial ("J. Smith"), a list
  number at the start ("1. Milk") or the next word starts in lower case ("approx. five"); never inside a
  number, time or address ("21.5", "3:45", "example.com"), which have no space after the mark;
- after ``。``, ``！`` or ``？`` at once;
- when none of those comes within `max_chars` characters: at the last clause mark (``,;:`` before a space,
  or ``，、；：``), else the last space, else there, so that audio never waits for the end of a long run.
"""

from __future__ import annotations

import re

DEFAULT_MAX_SENTENCE_CHARS = 400

_LINE_ENDS = frozenset("\n\u2028\u2029")
_LATIN_ENDS = frozenset(".!?…")
_CJK_ENDS = frozenset("。！？")
_CLOSERS = frozenset("\"')]}*_»”’」』】》）")
_TITLES = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "vs",
        "no",
        "nr",
        "approx",
        "ca",
        "fig",
        "e.g",
        "i.e",
        "al",
        "gen",
        "col",
        "lt",
        "sgt",
        "capt",
        "rev",
        "hon",
        "ave",
        "rd",
        "blvd",
    ]
)
_CLAUSE_BREAK = re.compile(r"[,;:](?=\s)\s*|[，、；：]\s*")
_WORD_GAP = re.compile(r"\s+")


def _word_before(text: str, end: int) -> str:
    """The word (letters and inner dots) that ends at `end`."""
    start = end
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] == "."):
        start -= 1
    return text[start:end]


def _is_full_stop(text: str, index: int, following: str) -> bool:
    """Whether the '.' at `index`, followed (after closers and spaces) by `following`, ends the sentence."""
    word = _word_before(text, index)
    if word.lower().strip(".") in _TITLES:
        return False
    after_number = re.search(r"[\d°]\s?$", text[: index - len(word)]) is not None  # 21 °C. 5 V. (units)
    if (len(word) == 1 and word.isupper() and not after_number) or re.fullmatch(
        r"(?:[A-Za-z]\.)+[A-Za-z]", word
    ):
        return False  # an initial or letters with dots: J. Smith, U.S. Army
    if text[:index].strip().isdigit():
        return False  # a list number at the start of a line: 1. Milk
    return not following.islower()


def _ender_cut(text: str, index: int, final: bool, max_chars: int) -> int | bool | None:
    """For an end mark at `index`: the cut (end of the sentence), False (not an end), or None (undecided).

    The marks, closers and spaces after `index` are looked at for at most `max_chars` characters: a longer
    run ("!!!!..." streamed one character at a time) is cut there, so that a stream neither holds it nor
    scans it again on every delta."""
    stop = min(len(text), index + max_chars)
    end = index
    while end < stop and (text[end] in _LATIN_ENDS or text[end] in _CJK_ENDS):
        end += 1
    while end < stop and text[end] in _CLOSERS:
        end += 1
    if end == len(text):
        return end if final else None
    if end == stop:
        return end
    marks = text[index:end]
    if any(mark in _CJK_ENDS for mark in marks):
        return end
    if not text[end].isspace():
        return False  # 21.5, example.com, e.g.,
    after = end
    while after < stop and text[after].isspace() and text[after] not in _LINE_ENDS:
        after += 1
    if after == len(text):
        return end if final else None
    if after == stop:
        return end
    following = text[after]
    if following in _LINE_ENDS:
        return end
    if marks.rstrip("\"')]}*_»”’」』】》）") in (".", "…", "...") or marks.startswith("."):
        if marks[0] == "." and len(marks.rstrip("\"')]}*_»”’」』】》）")) == 1:
            return end if _is_full_stop(text, index, following) else False
        return end if not following.islower() else False  # an ellipsis mid-sentence
    return end


def first_sentence_end(text: str, final: bool, max_chars: int = DEFAULT_MAX_SENTENCE_CHARS) -> int | None:
    """Where the sentence that starts `text` ends (an index into `text`), or None if it cannot be told yet.

    With `final` the text is complete: the end of the text ends a sentence."""
    index = 0
    limit = min(len(text), max_chars)
    while index < limit:
        char = text[index]
        if char in _LINE_ENDS:
            return index + 1
        if char in _LATIN_ENDS or char in _CJK_ENDS:
            cut = _ender_cut(text, index, final, max_chars)
            if cut is None:
                return None
            if cut is not False:
                assert isinstance(cut, int)
                return cut
            while index < len(text) and (text[index] in _LATIN_ENDS or text[index] in _CJK_ENDS):
                index += 1
            continue
        index += 1
    if len(text) <= max_chars:
        return len(text) if final and text else None
    window = text[:max_chars]
    for pattern in (_CLAUSE_BREAK, _WORD_GAP):
        cut = None
        for match in pattern.finditer(window):
            if match.start() > 0:
                cut = match.end()
        if cut is not None:
            return cut
    return max_chars


def split_sentences(text: str, max_chars: int = DEFAULT_MAX_SENTENCE_CHARS) -> list[str]:
    """All sentences of a complete text, stripped, empty ones left out."""
    splitter = SentenceSplitter(max_chars)
    return splitter.add(text) + splitter.finish()


class SentenceSplitter:
    """Feed text deltas, get back each sentence once it is complete (stripped, never empty)."""

    def __init__(self, max_chars: int = DEFAULT_MAX_SENTENCE_CHARS) -> None:
        self._text = ""
        self._max = max_chars

    def add(self, delta: str) -> list[str]:
        self._text += delta
        return self._take(final=False)

    def finish(self) -> list[str]:
        sentences = self._take(final=True)
        self._text = ""
        return sentences

    def _take(self, final: bool) -> list[str]:
        sentences = []
        while self._text:
            cut = first_sentence_end(self._text, final, self._max)
            if cut is None:
                break
            sentence, self._text = self._text[:cut].strip(), self._text[cut:]
            if sentence:
                sentences.append(sentence)
        return sentences
