"""The sentence splitter that feeds streamed text to the engine (wyoming_ishowtts/text/sentences.py)."""

from __future__ import annotations

import pytest

from wyoming_ishowtts.text.sentences import SentenceSplitter, split_sentences


def feed(deltas: list[str], max_chars: int = 400) -> tuple[list[list[str]], list[str]]:
    splitter = SentenceSplitter(max_chars)
    emitted = [splitter.add(delta) for delta in deltas]
    return emitted, splitter.finish()


def every(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def sentences_of(deltas: list[str], max_chars: int = 400) -> list[str]:
    emitted, rest = feed(deltas, max_chars)
    return [s for batch in emitted for s in batch] + rest


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_abbreviation_is_not_a_sentence_end(size: int) -> None:
    assert sentences_of(every("Dr. Smith arrived. He sat down.", size)) == [
        "Dr. Smith arrived.",
        "He sat down.",
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 1000])
def test_cjk_punctuation(size: int) -> None:
    assert sentences_of(every("你好。今天天气很好！", size)) == ["你好。", "今天天气很好！"]


@pytest.mark.parametrize(
    "text",
    [
        "It is 21.5 degrees. Bye.",
        "Open example.com now. Bye.",
        "Meet at 3:45 today. Bye.",
        "Say e.g. this and i.e. that. Bye.",
        "J. Smith and the U.S. Army came. Bye.",
        "It costs approx. five euros. Bye.",
    ],
)
@pytest.mark.parametrize("size", [1, 2, 5, 1000])
def test_no_cut_inside_numbers_addresses_abbreviations_or_initials(text: str, size: int) -> None:
    assert sentences_of(every(text, size)) == [text[: -len(" Bye.")], "Bye."]


def test_line_ends_and_list_numbers() -> None:
    text = "# Weather\n1. Milk\n2. Eggs\n**Sure!** Done."
    assert split_sentences(text) == ["# Weather", "1. Milk", "2. Eggs", "**Sure!**", "Done."]


def test_sentence_is_released_while_text_still_arrives() -> None:
    emitted, rest = feed(["The first", " sentence ends here.", " The sec", "ond is still coming"])
    assert emitted[:2] == [[], []], "the end of a sentence is known only once the next word begins"
    assert emitted[2] == ["The first sentence ends here."]
    assert rest == ["The second is still coming"]


def test_whitespace_only_stream_gives_nothing() -> None:
    emitted, rest = feed([" ", "\n", "  "])
    assert emitted == [[], [], []] and rest == []


def forced_cuts(text: str, max_chars: int, size: int = 5) -> list[str]:
    return sentences_of(every(text, size), max_chars)


def test_long_run_without_sentence_end_is_cut_at_a_clause_break() -> None:
    """Commas between words, never a sentence end: every forced cut lands just after a comma, not at the
    last word gap (which, in this text, is never next to a comma)."""
    text = "a clause of several words, " * 20
    pieces = forced_cuts(text, max_chars=100)
    assert len(pieces) > 1, "a long unpunctuated run must not wait for the end of the stream"
    assert all(s.endswith("words,") for s in pieces), pieces
    assert all(len(s) <= 100 for s in pieces), pieces
    assert " ".join(pieces).split() == text.split()


def test_forced_cut_takes_the_last_clause_break_not_the_first() -> None:
    text = "one, two; three: " + "four five six seven eight nine " * 4
    pieces = forced_cuts(text, max_chars=60, size=len(text))
    assert pieces[0] == "one, two; three:", pieces
    assert " ".join(pieces).split() == text.split()


@pytest.mark.parametrize("mark", ["，", "、", "；", "："])
def test_cjk_clause_marks_are_clause_breaks(mark: str) -> None:
    text = f"今天我们去公园散步{mark}然后去商店买东西" * 12
    pieces = forced_cuts(text, max_chars=100, size=3)
    assert len(pieces) > 1 and all(s.endswith(mark) for s in pieces[:-1]), pieces
    assert "".join(pieces) == text


def test_without_a_clause_break_the_cut_is_at_the_last_word_gap() -> None:
    text = "and more words without any end " * 6
    pieces = forced_cuts(text, max_chars=100)
    assert len(pieces) > 1, "a long run without clause breaks must still be cut"
    for piece in pieces[:-1]:  # whole words only, and as long as the limit allowed
        assert piece.split() == piece.split(" ")
        assert 90 <= len(piece) <= 100, pieces
    assert " ".join(pieces).split() == text.split()


@pytest.mark.parametrize("number", ["1,000", "12:30"])
def test_mark_inside_a_number_is_not_a_clause_break(number: str) -> None:
    """A Latin mark counts only before a space: "1,000" is one word, even when the limit falls inside it and
    a delta ends right after its comma."""
    before_mark = number[: number.index(number.strip("0123456789")) + 1]
    head = f"we counted the birds in the quiet morning light at {before_mark}"
    text = f"{head}{number[len(before_mark) :]} and then went home"
    pieces = sentences_of([head, text[len(head) :]], max_chars=len(head) + 2)
    assert pieces[0] == "we counted the birds in the quiet morning light at", pieces
    assert " ".join(pieces[1:]) == f"{number} and then went home"
