"""How fast recent requests were: time to first audio and real-time factor, for the studio's chart.

Both the studio's previews and (once wired) Wyoming requests add a record.  Definitions, measured on
the server from the moment the request was handed to the engine worker:

- time to first audio (TTFA): until the first synthesized audio was ready to send;
- real-time factor (RTF): time until the last audio was ready, divided by the seconds of audio
  produced (below 1: faster than it plays).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

RECENT_REQUESTS = 40


@dataclass(frozen=True)
class RequestRecord:
    id: int
    source: str  # "studio" or "wyoming"
    voice: str
    chars: int
    at: float  # wall-clock start, seconds since the epoch
    ttfa: float | None
    seconds: float
    audio_seconds: float
    error: str | None = None

    @property
    def rtf(self) -> float | None:
        return self.seconds / self.audio_seconds if self.audio_seconds > 0 else None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "rtf": self.rtf}


class RequestTimer:
    """Times one request; ``finish`` turns it into a record in the log."""

    def __init__(self, log: RequestLog, source: str, voice: str, chars: int) -> None:
        self.log = log
        self.id = log.next_id()
        self.source = source
        self.voice = voice
        self.chars = chars
        self.at = time.time()
        self._start = time.monotonic()
        self._first: float | None = None
        self._last: float | None = None
        self.audio_seconds = 0.0
        self._done = False

    def audio(self, seconds: float) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = now
        self._last = now
        self.audio_seconds += seconds

    @property
    def ttfa(self) -> float | None:
        return None if self._first is None else self._first - self._start

    def finish(self, error: str | None = None) -> RequestRecord | None:
        if self._done:
            return None
        self._done = True
        end = self._last if self._last is not None else time.monotonic()
        record = RequestRecord(
            id=self.id,
            source=self.source,
            voice=self.voice,
            chars=self.chars,
            at=self.at,
            ttfa=self.ttfa,
            seconds=end - self._start,
            audio_seconds=self.audio_seconds,
            error=error,
        )
        self.log.add(record)
        return record


class RequestLog:
    """The last ``size`` finished requests; used on the event loop only."""

    def __init__(self, size: int = RECENT_REQUESTS) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=size)
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, record: RequestRecord) -> None:
        self._records.append(record)

    def recent(self) -> list[RequestRecord]:
        return list(self._records)

    def timer(self, source: str, voice: str, chars: int) -> RequestTimer:
        return RequestTimer(self, source, voice, chars)
