"""One text of the front end's test corpus, with what its spoken form must and must not say.

The corpus has two sources, Home Assistant's own response templates (``ha_responses``) and written answers in
the style of a language model (``llm_answers``); both hand ``test_text_corpus`` the same record, so one set of
checks covers every text and a failure names the case.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """A text to speak and the words expected in its spoken form.

    ``expect`` and ``absent`` are phrases, matched case-insensitively and ignoring punctuation and hyphens
    (so "twenty-one" matches "twenty one"); a phrase written ``"a|b"`` is met by either alternative, for the
    few readings where two are equally right. In English a phrase matches whole words only ("one hour" is
    not found in "one hours"); in Chinese, which has no spaces, it matches as a substring.
    """

    id: str  # unique, stable: the pytest id
    language: str  # "en" or "zh": the language argument of wyoming_ishowtts.text.spoken
    text: str  # what the front end is given
    raw: tuple[str, ...] = ()  # the parts of ``text`` that need normalizing (a digit or symbol in each)
    expect: tuple[str, ...] = ()  # phrases the spoken form must contain
    absent: tuple[str, ...] = ()  # phrases it must not contain (reasoning, code)
