"""The incremental sentence detector that feeds streamed text to the engine."""

from __future__ import annotations

import pytest

from wyoming_ishowtts.server.sentences import SentenceSplitter


def feed(deltas: list[str], max_pending: int = 400) -> tuple[list[list[str]], str | None]:
    splitter = SentenceSplitter(max_pending_chars=max_pending)
    emitted = [splitter.add(delta) for delta in deltas]
    return emitted, splitter.finish()


def every(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_abbreviation_is_not_a_sentence_end(size: int) -> None:
    emitted, rest = feed(every("Dr. Smith arrived. He sat down.", size))
    sentences = [s for batch in emitted for s in batch] + ([rest] if rest else [])
    assert sentences == ["Dr. Smith arrived.", "He sat down."]


@pytest.mark.parametrize("size", [1, 2, 3, 1000])
def test_cjk_punctuation(size: int) -> None:
    emitted, rest = feed(every("你好。今天天气很好！", size))
    sentences = [s for batch in emitted for s in batch] + ([rest] if rest else [])
    assert sentences == ["你好。", "今天天气很好！"]


def test_sentence_is_released_while_text_still_arrives() -> None:
    emitted, rest = feed(["The first", " sentence ends here.", " The sec", "ond is still coming"])
    assert emitted[:2] == [[], []]
    assert emitted[2] == ["The first sentence ends here."]
    assert rest == "The second is still coming"


def test_whitespace_only_stream_gives_nothing() -> None:
    emitted, rest = feed([" ", "\n", "  "])
    assert emitted == [[], [], []] and rest is None


def forced_cuts(text: str, max_pending: int, size: int = 5) -> tuple[list[str], str | None]:
    emitted, rest = feed(every(text, size), max_pending)
    return [s for batch in emitted for s in batch], rest


def test_long_run_without_sentence_end_is_cut_at_a_clause_break() -> None:
    """Commas between words, never a sentence end: every forced cut lands just after a comma, not at the
    last word gap (which, in this text, is never next to a comma)."""
    text = "a clause of several words, " * 20
    forced, rest = forced_cuts(text, max_pending=100)
    assert forced, "a long unpunctuated run must not wait for the end of the stream"
    assert all(s.endswith("words,") for s in forced), forced
    assert all(len(s) <= 110 for s in forced), forced
    assert " ".join([*forced, rest or ""]).split() == text.split()


def test_forced_cut_takes_the_last_clause_break_not_the_first() -> None:
    text = "one, two; three: " + "four five six seven eight nine " * 4
    forced, rest = forced_cuts(text, max_pending=60, size=len(text))
    assert forced == ["one, two; three:"], forced
    assert rest == text[len("one, two; three: ") :].strip()


@pytest.mark.parametrize("mark", ["，", "、", "；", "："])
def test_cjk_clause_marks_are_clause_breaks(mark: str) -> None:
    text = f"今天我们去公园散步{mark}然后去商店买东西" * 12
    forced, rest = forced_cuts(text, max_pending=100, size=3)
    assert forced and all(s.endswith(mark) for s in forced), forced
    assert "".join([*forced, rest or ""]) == text


def test_without_a_clause_break_the_cut_is_at_the_last_word_gap() -> None:
    text = "and more words without any end " * 6
    forced, rest = forced_cuts(text, max_pending=100)
    assert forced, "a long run without clause breaks must still be cut"
    for piece in forced:  # whole words only, and as long as the limit allowed
        assert piece.split() == piece.split(" ")
        assert 90 <= len(piece) <= 110, forced
    assert " ".join([*forced, rest or ""]).split() == text.split()


@pytest.mark.parametrize("number", ["1,000", "12:30"])
def test_mark_inside_a_number_is_not_a_clause_break(number: str) -> None:
    """A Latin mark counts only before a space: "1,000" is one word, even when the limit is crossed by a
    delta that ends right after its comma."""
    before_mark = number[: number.index(number.strip("0123456789")) + 1]
    head = f"we counted the birds in the quiet morning light at {before_mark}"
    text = f"{head}{number[len(before_mark) :]} and then went home"
    emitted, rest = feed([head, text[len(head) :]], max_pending=len(head) - 1)
    assert emitted[0] == ["we counted the birds in the quiet morning light at"], emitted
    assert rest == f"{number} and then went home"
