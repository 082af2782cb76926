"""Leave out what is never spoken: reasoning blocks (``<think>…</think>``) and fenced code (```` ``` ````).

Streamed deltas may split a tag anywhere ("<thi", "nk>"), so the filter holds back a tail that could still
become a tag and decides once it knows. What it lets through is the same whatever the split, which is what
makes a streamed answer speak exactly like the same text sent at once (tests/test_text.py checks it over
random splits). A block that is never closed hides everything after its opening: an unfinished thought is
not an answer. A removed block becomes a line break, so the text on either side is not run together.
"""

from __future__ import annotations

import re

REASONING_TAGS = ("think", "thinking", "thought", "reasoning", "reflection", "analysis")
_OPEN = re.compile(r"<(?P<tag>" + "|".join(REASONING_TAGS) + r")>|(?P<fence>```|~~~)", re.IGNORECASE)
_OPENERS = (*(f"<{tag}>" for tag in REASONING_TAGS), "```", "~~~")
BREAK = "\n"


def _held_tail(text: str, candidates: tuple[str, ...]) -> int:
    """The start of the longest tail of `text` that is a proper prefix of a candidate (len(text) if none)."""
    longest = max(len(c) for c in candidates)
    lowered = text[-longest:].lower()
    offset = len(text) - len(lowered)
    for start in range(len(lowered)):
        tail = lowered[start:]
        if any(c.startswith(tail) and c != tail for c in candidates):
            return offset + start
    return len(text)


class BlockFilter:
    """Feed text, get back the text with reasoning blocks and fenced code left out."""

    def __init__(self) -> None:
        self._held = ""
        self._closer: str | None = None  # inside a block: what ends it

    def add(self, delta: str) -> str:
        text = self._held + delta
        out: list[str] = []
        while text:
            if self._closer is None:
                match = _OPEN.search(text)
                if match is None:
                    cut = _held_tail(text, _OPENERS)
                    out.append(text[:cut])
                    text = text[cut:]
                    break
                out.append(text[: match.start()] + BREAK)
                self._closer = f"</{match['tag'].lower()}>" if match["tag"] else match["fence"]
                text = text[match.end() :]
            else:
                end = text.lower().find(self._closer)
                if end < 0:
                    text = text[_held_tail(text, (self._closer,)) :]
                    break
                out.append(BREAK)
                text = text[end + len(self._closer) :]
                self._closer = None
        self._held = text
        return "".join(out)

    def finish(self) -> str:
        """The end of the text: a held tail that never became a tag is text; an open block stays hidden."""
        rest = self._held if self._closer is None else ""
        self._held, self._closer = "", None
        return rest


def without_blocks(text: str) -> str:
    """`text` with its reasoning blocks and fenced code left out (the one-shot form of BlockFilter)."""
    blocks = BlockFilter()
    return blocks.add(text) + blocks.finish()
