"""Incremental sentence detection for streamed text.

Home Assistant sends LLM output as arbitrary deltas (split anywhere, even inside words).  Waiting
for ``synthesize-stop`` would make the user wait for the whole answer, so every sentence is handed
to the engine as soon as it is known to be complete.

The ``sentence-stream`` package (also used by wyoming-piper) does the detection: it handles
abbreviations such as "Dr. Smith arrived." and CJK enders such as "你好。今天天气很好！"
(see tests/test_sentences.py).  This wrapper adds a length guard: an LLM that writes a very long
run without punctuation would otherwise delay all audio until the end of the stream.
"""

from __future__ import annotations

import re

from sentence_stream import SentenceBoundaryDetector
from sentence_stream.util import remove_asterisks

DEFAULT_MAX_PENDING_CHARS = 400

# Where a forced cut sounds least unnatural: after a clause mark.  A Latin one counts only before a space
# ("1,000" and "12:30" stay whole, even when a delta ends right after the mark); a CJK one counts anywhere.
_CLAUSE_BREAK_RE = re.compile(r"[,;:]\s+|[，、；：]\s*")
# Failing a clause mark, between words (never inside one).
_WORD_GAP_RE = re.compile(r"\s+")


def _last_cut(held: str, pattern: re.Pattern[str]) -> re.Match[str] | None:
    """The last match of `pattern` in `held` that leaves text before it."""
    cut = None
    for match in pattern.finditer(held):
        if match.start() > 0:
            cut = match
    return cut


class SentenceSplitter:
    """Feed text deltas, get back complete sentences."""

    def __init__(self, max_pending_chars: int = DEFAULT_MAX_PENDING_CHARS) -> None:
        self._detector = SentenceBoundaryDetector()
        self._max_pending = max_pending_chars
        self._pending = 0  # characters fed since the last sentence was emitted (approximate)

    def add(self, delta: str) -> list[str]:
        sentences = [s for s in self._detector.add_chunk(delta) if s.strip()]
        if sentences:
            self._pending = len(self._detector.current_sentence) + len(self._detector.remaining_text)
        else:
            self._pending += len(delta)
        if self._pending > self._max_pending:
            forced = self._force_cut()
            if forced:
                sentences.append(forced)
        return sentences

    def finish(self) -> str | None:
        rest = self._detector.finish().strip()
        self._pending = 0
        return rest or None

    def _force_cut(self) -> str | None:
        """Cut the pending text at its last clause break (else its last word gap) and restart the detector
        on the rest."""
        held = self._detector.current_sentence + self._detector.remaining_text
        cut = _last_cut(held, _CLAUSE_BREAK_RE) or _last_cut(held, _WORD_GAP_RE)
        if cut is None:
            return None
        head, tail = remove_asterisks(held[: cut.end()]).strip(), held[cut.end() :]
        self._detector = SentenceBoundaryDetector()
        self._pending = 0
        leftover = [s for s in self._detector.add_chunk(tail) if s.strip()]
        # The tail holds no complete sentence (otherwise the detector would already have cut it),
        # but stay correct if it does.
        if leftover:
            head = " ".join([head, *leftover])
        self._pending = len(tail)
        return head or None
