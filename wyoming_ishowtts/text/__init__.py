"""The text front end: what a client sends -> what F5-TTS is given to say.

F5-TTS reads characters, and gives each chunk a duration from its text's length, so "21.5 °C" is both
misread and rushed (half the time of "twenty-one point five degrees Celsius"). Home Assistant's answers
are full of numbers, units, times and dates, and its LLM agents send Markdown, emoji and reasoning blocks.
Every path to the engine (a plain ``synthesize``, a stream's deltas, the command line, the studio's
preview) goes through here, so the duration estimate and the tokenizer see the spoken form.

    spoken("The living room is 21.5 °C.", "en")  -> "The living room is twenty-one point five degrees Celsius."
    stream = SpokenStream("en"); stream.add("It is 21"); stream.add(".5 °C. Bye"); stream.finish()

A streamed text gives the same sentences as the same text sent at once: the block filter and the sentence
splitter decide nothing they might have to take back (blocks.py, sentences.py), and each sentence is then
put into words on its own (spoken.py). English and Chinese have rules (english.py, chinese.py: one module
a language, listed in rules.READERS); in any other language only markup, emoji and reasoning are removed.
Torch-free and quick to import: the server's start-up and the health check load it.
"""

from __future__ import annotations

from .blocks import BlockFilter
from .rules import READERS, Reader
from .sentences import DEFAULT_MAX_SENTENCE_CHARS, SentenceSplitter
from .spoken import spoken_sentence

__all__ = ["SpokenStream", "join_sentences", "language_of", "spoken", "spoken_sentences"]


def language_of(requested: str | None, voice_languages: tuple[str, ...] = ()) -> str:
    """The request's language if it names one ("en_US", "zh-CN"), else the voice's first; its primary tag."""
    for language in (requested, *voice_languages):
        if language and language.strip():
            primary = language.strip().replace("_", "-").split("-")[0].lower()
            return "zh" if primary in ("cmn", "yue", "wuu") else primary
    return "en"


def _reader(language: str) -> Reader | None:
    return READERS.get(language_of(language))


def join_sentences(sentences: list[str]) -> str:
    """Spoken sentences as one text: a space between them, none after a Chinese sentence end."""
    out = ""
    for sentence in sentences:
        if out and not (out[-1] in "。！？" and "\u3000" <= sentence[0] <= "\u9fff"):
            out += " "
        out += sentence
    return out


class SpokenStream:
    """Text deltas in, spoken sentences out, each as soon as it is complete.

    With `normalize` False the text is only cut into sentences (for clients that send clean text)."""

    def __init__(
        self,
        language: str = "en",
        normalize: bool = True,
        max_sentence_chars: int = DEFAULT_MAX_SENTENCE_CHARS,
    ) -> None:
        self.normalize = normalize
        self._reader = _reader(language)
        self._blocks = BlockFilter() if normalize else None
        self._splitter = SentenceSplitter(max_sentence_chars)

    def add(self, delta: str) -> list[str]:
        text = self._blocks.add(delta) if self._blocks is not None else delta
        return self._spoken(self._splitter.add(text))

    def finish(self) -> list[str]:
        sentences = []
        if self._blocks is not None:
            sentences = self._splitter.add(self._blocks.finish())
        return self._spoken(sentences + self._splitter.finish())

    def _spoken(self, sentences: list[str]) -> list[str]:
        if not self.normalize:
            return sentences
        spoken = (spoken_sentence(sentence, self._reader) for sentence in sentences)
        return [sentence for sentence in spoken if sentence]


def spoken_sentences(text: str, language: str = "en", normalize: bool = True) -> list[str]:
    """The spoken sentences of a complete text (what a stream of it gives)."""
    stream = SpokenStream(language, normalize)
    return stream.add(text) + stream.finish()


def spoken(text: str, language: str = "en", normalize: bool = True) -> str:
    """A complete text as it is to be said ("" when nothing in it can be spoken)."""
    return join_sentences(spoken_sentences(text, language, normalize))
