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


def test_long_run_without_punctuation_is_cut_at_a_clause_break() -> None:
    words = ("word, " * 30 + "and more words without any end ") * 2
    emitted, rest = feed(every(words, 5), max_pending=100)
    forced = [s for batch in emitted for s in batch]
    assert forced, "a long unpunctuated run must not wait for the end of the stream"
    assert all(len(s) <= 110 for s in forced)
    joined = " ".join([*forced, rest or ""])
    assert joined.split() == words.split()
