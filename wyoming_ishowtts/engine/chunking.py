"""Splitting text into model-sized chunks, duration estimates, and the cross-fade join.

Everything here mirrors F5-TTS 1.1.22 (``infer/utils_infer.py``) where upstream
has an equivalent, because the chunk boundaries and the frame count decide the
generated audio.  `shorten_first_chunk` is our own addition for lower latency.
"""

from __future__ import annotations

import re

import numpy as np

from .options import CROSS_FADE_SECONDS, SAMPLE_RATE

__all__ = [
    "CROSS_FADE_SAMPLES",
    "CrossFader",
    "chunk_text",
    "estimate_total_frames",
    "max_chars_for",
    "model_ref_text",
    "shorten_first_chunk",
]

CROSS_FADE_SAMPLES = int(CROSS_FADE_SECONDS * SAMPLE_RATE)
SHORT_TEXT_BYTES = 10  # below this many UTF-8 bytes upstream slows the duration estimate to speed 0.3
SHORT_TEXT_SPEED = 0.3

# Upstream splits after Latin clause/sentence punctuation followed by whitespace
# (the whitespace is dropped) and right after CJK punctuation.
_SENTENCE_SPLIT = re.compile(r"(?<=[;:,.!?])\s+|(?<=[；：，。！？])")


def _n_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def _with_trailing_space(piece: str) -> str:
    """Upstream re-joins pieces with a space only after a 1-byte (Latin) last character."""
    return piece + " " if _n_bytes(piece[-1]) == 1 else piece


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Pack sentences greedily into chunks of at most `max_chars` UTF-8 bytes, as upstream does.

    A sentence longer than the limit is never split; it becomes a chunk of its own.
    The budget check counts the pending chunk with its trailing space, which is
    why chunks can come out one byte shorter than the limit would allow.
    """
    chunks: list[str] = []
    current = ""
    for sentence in _SENTENCE_SPLIT.split(text):
        if not sentence:
            continue
        if _n_bytes(current) + _n_bytes(sentence) <= max_chars:
            current += _with_trailing_space(sentence)
        else:
            if current:
                chunks.append(current.strip())
            current = _with_trailing_space(sentence)
    if current:
        chunks.append(current.strip())
    return chunks


def max_chars_for(ref_text: str, ref_seconds: float, speed: float) -> int:
    """Upstream's chunk budget: as many bytes as fit, at the reference's pace, in 22 s minus the reference.

    `ref_text` is the normalized transcript (ending in ". " or "。") and
    `ref_seconds` the trimmed reference's length as loaded (samples / rate).
    """
    return int(_n_bytes(ref_text) / ref_seconds * (22 - ref_seconds) * speed)


def model_ref_text(ref_text: str) -> str:
    """The reference transcript as the model sees it: upstream adds a space after a 1-byte last character.

    A normalized transcript already ends in ". ", so it gets a second space.
    """
    if ref_text and _n_bytes(ref_text[-1]) == 1:
        return ref_text + " "
    return ref_text


def estimate_total_frames(ref_frames: int, ref_text: str, gen_text: str, speed: float) -> int:
    """Total mel frames (reference + generated) upstream asks the model for.

    `ref_frames` is ``ref_samples // 256`` at 24 kHz and `ref_text` the output of
    `model_ref_text`.  Text under 10 bytes is given the pace of speed 0.3 (upstream
    does this so that very short inputs are not rushed).
    """
    gen_bytes = _n_bytes(gen_text)
    local_speed = SHORT_TEXT_SPEED if gen_bytes < SHORT_TEXT_BYTES else speed
    return ref_frames + int(ref_frames / _n_bytes(ref_text) * gen_bytes / local_speed)


# --------------------------------------------------------------------------- first chunk

# A clause or sentence ends at this punctuation when a space or a CJK character follows.
_CLAUSE_END = re.compile(r"[,;:.!?，；：。！？](?=\s|[\u3000-\u9fff\uf900-\ufaff])")
_MIN_FIRST_BYTES = SHORT_TEXT_BYTES  # shorter text would fall under upstream's slow short-text rule
_MIN_FIRST_WORDS = 2
# The rest of a cut sentence must not be a scrap either: "locked." alone would be spoken at upstream's slow
# short-text rate, and a scrap costs a whole extra pass over the reference for little audio.
_MIN_REST_BYTES = 20
_MIN_REST_WORDS = 3


def _word_count(text: str) -> int:
    words = text.split()
    if len(words) == 1 and any("\u3000" <= c <= "\u9fff" for c in words[0]):
        # Chinese has no spaces: count characters as words.
        return len(words[0])
    return len(words)


def _acceptable_first(piece: str, limit: int) -> bool:
    return _MIN_FIRST_BYTES <= _n_bytes(piece) <= limit and _word_count(piece) >= _MIN_FIRST_WORDS


def _acceptable_rest(piece: str) -> bool:
    return _n_bytes(piece) >= _MIN_REST_BYTES and _word_count(piece) >= _MIN_REST_WORDS


def _best_split(text: str, limit: int) -> int | None:
    """Where to cut: after the last clause end, else at the last word gap, that leaves an acceptable head
    and an acceptable rest."""

    def acceptable(at: int) -> bool:
        return _acceptable_first(text[:at].strip(), limit) and _acceptable_rest(text[at:].strip())

    def acceptable_long(at: int) -> bool:  # a whole first clause up to twice the limit beats a cut phrase
        return _acceptable_first(text[:at].strip(), 2 * limit) and _acceptable_rest(text[at:].strip())

    clause_ends = [m.end() for m in _CLAUSE_END.finditer(text) if m.end() < len(text)]
    for end in reversed(clause_ends):
        if acceptable(end):
            return end
    for end in clause_ends:
        if acceptable_long(end):
            return end
    # Only text longer than twice the limit is cut between words: a phrase cut mid-way is spoken as if
    # it ended there, so it is the last resort.
    if _n_bytes(text) <= 2 * limit:
        return None
    word_gaps = [m.start() for m in re.finditer(r"\s+", text)]
    for gap in reversed(word_gaps):
        if acceptable(gap):
            return gap
    return None


def shorten_first_chunk(chunks: list[str], first_max_chars: int, max_chars: int | None = None) -> list[str]:
    """Make the first chunk short so the first audio is ready early.

    Synthesis cost grows with chunk length, so a short first chunk lets playback
    start sooner while later chunks are computed.  When the first chunk is longer
    than `first_max_chars` UTF-8 bytes it is cut at the last clause or sentence end
    (punctuation followed by a space or a CJK character) that keeps the first piece
    within the limit with at least two words and 10 bytes (shorter text would hit
    upstream's slow short-text duration rule) and leaves at least three words and
    20 bytes after it; failing that at the first clause end within twice the limit;
    failing that at the last word gap within the limit; never inside a word.  The remainder follows as one chunk, or re-packed with
    `chunk_text` when `max_chars` is given.  If no cut point qualifies, the chunks
    are returned unchanged.
    """
    if not chunks or _n_bytes(chunks[0]) <= first_max_chars:
        return list(chunks)
    first = chunks[0]
    split_at = _best_split(first, first_max_chars)
    if split_at is None:
        return list(chunks)
    head = first[:split_at].strip()
    tail = first[split_at:].strip()
    rest = chunk_text(tail, max_chars) if max_chars is not None else [tail]
    return [head, *rest, *chunks[1:]]


# --------------------------------------------------------------------------- cross-fade


class CrossFader:
    """Streaming form of upstream's linear cross-fade between consecutive chunks' audio.

    Upstream joins the whole list at the end: for each next piece the overlap is
    ``min(3600, len(joined), len(next))`` samples, faded with ``linspace(1, 0)``
    and ``linspace(0, 1)``.  Here each piece is emitted as soon as it arrives,
    except its last `fade` samples, which wait for the next piece (or `flush`).
    Because the joined waveform's tail always equals the last piece's tail, the
    overlap only ever needs the held-back samples plus, for pieces shorter than
    the fade, what was held before; so we hold back ``min(fade, len(joined))``.
    Fades are computed in float64 like upstream; output is float32.
    """

    def __init__(self, fade_samples: int = CROSS_FADE_SAMPLES) -> None:
        if fade_samples < 0:
            raise ValueError("fade_samples must be >= 0")
        self._fade = fade_samples
        self._held = np.zeros(0, dtype=np.float64)
        self._started = False

    def push(self, piece: np.ndarray) -> np.ndarray:
        """Add the next chunk's audio; return the samples that are final now."""
        new = np.asarray(piece, dtype=np.float64).reshape(-1)
        if not self._started:
            self._started = True
            joined = new
        else:
            n = min(self._fade, len(self._held), len(new))
            if n > 0:
                fade_out = np.linspace(1, 0, n)
                fade_in = np.linspace(0, 1, n)
                blended = self._held[-n:] * fade_out + new[:n] * fade_in
                joined = np.concatenate([self._held[:-n], blended, new[n:]])
            else:
                joined = np.concatenate([self._held, new])
        keep = min(self._fade, len(joined))
        cut = len(joined) - keep
        self._held = joined[cut:]
        return joined[:cut].astype(np.float32)

    def flush(self) -> np.ndarray:
        """Return the held-back tail; the fader is then ready for a new utterance."""
        tail = self._held.astype(np.float32)
        self._held = np.zeros(0, dtype=np.float64)
        self._started = False
        return tail
