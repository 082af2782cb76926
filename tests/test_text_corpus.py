"""The text front end over a corpus of real Home Assistant answers and language-model answers (issue 20).

Every text in the corpus (``ha_responses``: the response templates of ``home-assistant-intents`` rendered
with realistic states; ``llm_answers``: markdown, emoji, reasoning, money, versions...) goes through
``wyoming_ishowtts.text.spoken``, and its spoken form must hold no ASCII digit, no unit or markup symbol and
no emoji (a voice model reads those letter by letter, or not at all), never a word of a reasoning block or of
code, and the words the case expects. The first tests check the corpus itself: that most templates render,
and that each value a case names is in its text and really needs normalizing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from corpus_case import Case
from ha_responses import PACKAGE_LANGUAGES, corpus
from llm_answers import ANSWERS

LANGUAGES = tuple(PACKAGE_LANGUAGES)
MIN_RENDERED = 0.8  # share of a language's templates that must render with a realistic state
MIN_VALUED = 150  # rendered texts per language that carry a value to normalize (a number, a unit...)
MIN_ANSWERS = 40  # language-model answers per language

DIGIT = re.compile(r"[0-9]")
SYMBOLS = "°%$€£¥µμ³²/*#`|<>[]_~=+&@"
EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\U00002b00-\U00002bff\ufe0f\u200d\u20e3]"
)

CASES: list[Case] = [case for language in LANGUAGES for case in corpus(language).cases] + ANSWERS


# -- the corpus itself --------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_most_home_assistant_templates_render_with_a_realistic_state(language: str) -> None:
    built = corpus(language)
    rendered = len(built.templates) - len(built.skipped)
    print(
        f"{language}: {rendered} of {len(built.templates)} templates rendered ({len(built.cases)} texts), "
        f"{len(built.skipped)} skipped: {built.skipped}"
    )
    assert rendered >= MIN_RENDERED * len(built.templates), built.skipped


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_value_is_in_its_text_and_needs_normalizing(language: str) -> None:
    """A case's raw value is what Home Assistant printed (so a scenario that missed its template's branch is
    caught here, not read as a front-end failure), and holds a digit or symbol the front end must replace."""
    valued = [case for case in corpus(language).cases if case.raw]
    for case in valued:
        for raw in case.raw:
            assert raw in case.text, f"{case.id}: {raw!r} not in {case.text!r}"
            assert DIGIT.search(raw) or any(s in raw for s in SYMBOLS), (
                f"{case.id}: nothing to normalize in {raw!r}"
            )
        assert case.expect, f"{case.id} expects nothing"
    assert len(valued) >= MIN_VALUED, f"only {len(valued)} {language} texts carry a value"


@pytest.mark.parametrize("language", LANGUAGES)
def test_language_model_answers_name_what_they_normalize(language: str) -> None:
    answers = [case for case in ANSWERS if case.language == language]
    assert len(answers) >= MIN_ANSWERS
    for case in answers:
        assert case.raw and case.expect, case.id
        for raw in case.raw:
            assert raw in case.text, f"{case.id}: {raw!r} not in {case.text!r}"


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


# -- the spoken form ----------------------------------------------------------------------------------------


def words(text: str, language: str) -> str:
    """The text reduced to what is heard: lower case, no punctuation, hyphens as spaces; in English padded
    with spaces so that a phrase matches whole words, in Chinese with no spaces at all."""
    text = text.lower()
    if language == "zh":
        return re.sub(r"[\W_]+", "", text)
    return " " + " ".join(re.sub(r"[^\w']+|_", " ", text.replace("-", " ")).split()) + " "


def says(spoken: str, phrase: str, language: str) -> bool:
    heard = words(spoken, language)
    return any(words(alternative, language) in heard for alternative in phrase.split("|"))


@pytest.fixture(scope="module")
def spoken() -> Callable[[str, str], str]:
    """The front end (imported here, so that the corpus tests above run without it)."""
    from wyoming_ishowtts.text import spoken as front_end

    return front_end


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_spoken_form(case: Case, spoken: Callable[[str, str], str]) -> None:
    said = spoken(case.text, case.language)
    context = f"{case.text!r} was spoken as {said!r}"
    assert said == " ".join(said.split()), f"not single-spaced: {context}"
    assert not DIGIT.search(said), f"a digit is left: {context}"
    left = sorted({s for s in SYMBOLS if s in said} | set(EMOJI.findall(said)))
    assert not left, f"{left} left: {context}"
    heard = [phrase for phrase in case.absent if says(said, phrase, case.language)]
    assert not heard, f"{heard} must not be spoken: {context}"
    missing = [phrase for phrase in case.expect if not says(said, phrase, case.language)]
    assert not missing, f"{missing} missing: {context}"
