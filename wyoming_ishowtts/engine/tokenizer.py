"""Text → model token ids, matching F5-TTS's pinyin tokenizer.

F5-TTS feeds the model one vocabulary entry per character for Latin text and one
tone-numbered pinyin syllable per Chinese character.  Two pieces decide the exact
token list and both are reproduced here:

* the word segmentation of ``rjieba`` (it decides where an extra space token is
  inserted in front of multi-character Latin words), and
* ``pypinyin``'s ``lazy_pinyin(..., Style.TONE3, tone_sandhi=True)`` for Chinese.

``rjieba`` and ``pypinyin`` belong to the optional ``zh`` extra.  For text with no
CJK character a built-in segmenter gives the same segments as rjieba (jieba-rs
0.11), so English-only installs need neither package.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wyoming_ishowtts.errors import MissingExtraError, ModelLoadError, TextError

__all__ = ["Vocab", "contains_cjk", "text_to_tokens"]

_LOGGER = logging.getLogger(__name__)
_ZH_EXTRA_MESSAGE = "Chinese text needs the zh extra: pip install 'wyoming-ishowtts[zh]'"

# Replacements applied before segmentation.  Upstream does this so that these
# characters, which are missing from the vocabulary, map to entries that exist.
_CHAR_FIXES = str.maketrans({";": ",", "\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})

# Characters for which upstream's output depends on rjieba's dictionary/HMM or
# on pypinyin's tables.  Outside these ranges pypinyin returns a character
# unchanged (checked against pypinyin 0.55 over the whole BMP and planes 1-2),
# and rjieba yields every such character as a segment of its own.
_CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x2E80, 0x2FFF),  # CJK radicals, Kangxi radicals
    (0x3007, 0x3007),  # 〇 (pypinyin knows it as "ling2")
    (0x3100, 0x9FFF),  # upstream's own "is Chinese" range, incl. CJK ext. A and unified ideographs
    (0xE815, 0xE864),  # private-use code points pypinyin maps to pinyin
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0x20000, 0x3FFFF),  # supplementary ideographic planes
)


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def contains_cjk(text: str) -> bool:
    """True when `text` needs the ``zh`` extra (rjieba and pypinyin) to be tokenized like upstream."""
    return any(_is_cjk(char) for char in text)


def _is_upstream_chinese(char: str) -> bool:
    """Upstream's narrower test that decides where a space token precedes a syllable."""
    return "\u3100" <= char <= "\u9fff"


# --------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Vocab:
    """The model's token table: the line number of an entry in ``vocab.txt`` is its id."""

    tokens: tuple[str, ...]
    ids: dict[str, int]

    @classmethod
    def from_file(cls, path: Path) -> Vocab:
        """Read ``vocab.txt`` the way upstream does.

        The copy on the Hugging Face hub has CRLF line endings while the packaged
        example has LF; upstream opens it in text mode, so both read the same.  We
        therefore treat ``\\r\\n``, ``\\r`` and ``\\n`` as line ends (Python's
        universal newlines) and strip only that terminator: the first entry is a
        single space and must survive.
        """
        try:
            raw = Path(path).read_bytes()
        except FileNotFoundError as exc:
            raise ModelLoadError(f"Vocabulary file not found: {path}") from exc
        except OSError as exc:
            raise ModelLoadError(f"Cannot read vocabulary file {path}: {exc}") from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelLoadError(f"Vocabulary file {path} is not UTF-8 text: {exc}") from exc
        if not text:
            raise ModelLoadError(f"Vocabulary file {path} is empty")

        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if lines[-1] == "":
            lines.pop()  # the terminator of the last line, not an entry
        return cls.from_tokens(lines, source=str(path))

    @classmethod
    def from_tokens(cls, tokens: list[str], source: str = "vocabulary") -> Vocab:
        """Build a table from entries in id order, checking what upstream relies on."""
        if not tokens:
            raise ModelLoadError(f"{source} has no entries")
        if tokens[0] != " ":
            raise ModelLoadError(
                f"{source} is not an F5-TTS vocabulary: its first entry must be a single space "
                f"(id 0, also used for unknown characters), found {tokens[0]!r}"
            )
        ids: dict[str, int] = {}
        for index, token in enumerate(tokens):
            if token in ids:
                # Upstream would silently keep the last id and shrink the table,
                # which no longer matches the checkpoint's embedding size.
                raise ModelLoadError(
                    f"{source} lists {token!r} twice (lines {ids[token] + 1} and {index + 1})"
                )
            ids[token] = index
        return cls(tokens=tuple(tokens), ids=ids)

    @property
    def size(self) -> int:
        """Number of entries (the model's text embedding has one more row, for padding)."""
        return len(self.tokens)

    def encode(self, tokens: list[str]) -> list[int]:
        """Map tokens to ids; unknown tokens become 0 (the space), exactly as upstream does (logged at debug
        level: the text front end should have left none)."""
        ids = self.ids
        encoded = [ids.get(token, 0) for token in tokens]
        if _LOGGER.isEnabledFor(logging.DEBUG):
            unknown = sorted({token for token in tokens if token not in ids})
            if unknown:
                _LOGGER.debug("Not in the vocabulary, read as a space: %s", " ".join(map(repr, unknown)))
        return encoded


# --------------------------------------------------------------------------- segmentation

# jieba treats maximal runs of these characters (plus CJK ideographs) as blocks
# to segment; every other character is a segment of its own ("\r\n" stays whole).
_BLOCK_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+#&._%-")

# The only entries of jieba's dictionary made of block characters alone.  Where
# one starts, the dictionary path has no other edge, so it is always taken.
_DICT_WORDS = ("AT&T", "C++", "C#", "c++", "c#")

# Inside the rest of a block jieba-rs 0.11 keeps alphanumeric runs, joined by
# single '.', '_' or '-' and optionally ending in '%', together; whatever lies
# between two such runs is one segment.
_WORD_RUN = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*%?")


def _split_runs(text: str) -> Iterator[str]:
    position = 0
    for match in _WORD_RUN.finditer(text):
        if match.start() > position:
            yield text[position : match.start()]
        yield match.group()
        position = match.end()
    if position < len(text):
        yield text[position:]


def _segment_block(block: str) -> Iterator[str]:
    pending_start = 0
    index = 0
    while index < len(block):
        word = next((w for w in _DICT_WORDS if block.startswith(w, index)), None)
        if word is None:
            index += 1
            continue
        yield from _split_runs(block[pending_start:index])
        yield word
        index += len(word)
        pending_start = index
    yield from _split_runs(block[pending_start:])


def segment_non_cjk(text: str) -> list[str]:
    """Cut text without CJK characters into the same segments as ``rjieba.cut``.

    Verified against rjieba 0.2.2 (jieba-rs 0.11) by random differential testing;
    see tests/test_tokenizer.py.
    """
    segments: list[str] = []
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char in _BLOCK_CHARS:
            end = index + 1
            while end < length and text[end] in _BLOCK_CHARS:
                end += 1
            segments.extend(_segment_block(text[index:end]))
            index = end
        elif char == "\r" and text.startswith("\r\n", index):
            segments.append("\r\n")
            index += 2
        else:
            segments.append(char)
            index += 1
    return segments


# --------------------------------------------------------------------------- optional extra

_Pinyin = Callable[[str], list[str]]


def _load_zh_extra() -> tuple[Callable[[str], list[str]], _Pinyin]:
    """Import rjieba and pypinyin on first need; they are only required for CJK text."""
    try:
        import rjieba
        from pypinyin import Style, lazy_pinyin
    except ImportError as exc:
        raise MissingExtraError(_ZH_EXTRA_MESSAGE) from exc

    def to_pinyin(text: str) -> list[str]:
        result: Any = lazy_pinyin(text, style=Style.TONE3, tone_sandhi=True)
        return list(result)

    return rjieba.cut, to_pinyin


def _segmenter() -> Callable[[str], list[str]]:
    """rjieba when it is installed (upstream's own segmenter), else the built-in one."""
    try:
        import rjieba
    except ImportError:
        return segment_non_cjk
    cut: Callable[[str], list[str]] = rjieba.cut
    return cut


def _identity_pinyin(text: str) -> list[str]:
    # Without CJK characters every segment handed to pypinyin is one non-CJK
    # character, which lazy_pinyin returns unchanged.
    return [text]


# --------------------------------------------------------------------------- tokens


def text_to_tokens(text: str) -> list[str]:
    """Turn text into vocabulary entries exactly like upstream ``convert_char_to_pinyin([text])[0]``.

    Rules, per segment:

    * pure ASCII: its characters, preceded by a space token when the segment has
      more than one character and the previous token is not one of `` :'"``;
    * only 3-byte characters: pinyin of the whole segment (so tone sandhi sees
      the word), each Chinese character preceded by a space token;
    * anything else: ASCII/Latin-1 characters as they are, Chinese characters as
      a space plus their own pinyin, other characters as they are.

    Raises MissingExtraError when the text has CJK characters and the ``zh``
    extra is missing, TextError when pypinyin's result cannot be aligned to the
    characters (upstream crashes with IndexError there).
    """
    text = text.translate(_CHAR_FIXES)
    if contains_cjk(text):
        cut, to_pinyin = _load_zh_extra()
    else:
        cut, to_pinyin = _segmenter(), _identity_pinyin

    tokens: list[str] = []
    for segment in cut(text):
        n_bytes = len(segment.encode("utf-8"))
        if n_bytes == len(segment):
            if tokens and n_bytes > 1 and tokens[-1] not in " :'\"":
                tokens.append(" ")
            tokens.extend(segment)
        elif n_bytes == 3 * len(segment):
            syllables = to_pinyin(segment)
            if len(syllables) < len(segment):
                # pypinyin merged characters it has no reading for; upstream
                # indexes past the end of its list here and fails.
                raise TextError(f"Cannot convert {segment!r} to pinyin")
            for index, char in enumerate(segment):
                if _is_upstream_chinese(char):
                    tokens.append(" ")
                tokens.append(syllables[index])
        else:
            for char in segment:
                if ord(char) < 256:
                    tokens.append(char)
                elif _is_upstream_chinese(char):
                    tokens.append(" ")
                    tokens.extend(to_pinyin(char))
                else:
                    tokens.append(char)
    return tokens
