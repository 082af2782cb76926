"""How fast recent requests were: each finished request's time to first audio and real-time factor.

Every request the engine worker answers is measured the same way, a Wyoming request (responder.py) or a
preview in the voice studio (studio/speech.py), and kept in one `RequestLog` that the studio's page charts.
Definitions, measured on the server:

- time to first audio (TTFA): from the moment the request's first text reached the engine worker until its
  first audio was ready to send (queueing behind other requests and preparing the voice count);
- real-time factor (RTF): the engine's time spent on the request's chunks divided by the seconds of audio
  they make (below 1: faster than it plays). Engine time, not wall time, so a stream whose text arrives
  slowly (Home Assistant streaming a language model's answer) is not counted as slow; a batch's time
  counts for each request in it (``--batch-requests``).
- from the cache: how many of its segments (a plain request's text, a stream's sentences) the audio cache
  answered, of how many; a request answered wholly from it took no engine time.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..engine.options import SAMPLE_RATE
from .worker import Piece, Request

RECENT_REQUESTS = 40

Source = Literal["wyoming", "studio"]


@dataclass(frozen=True)
class RequestRecord:
    id: int
    source: Source
    voice: str
    chars: int
    at: float
    """Wall-clock time it finished (seconds since the epoch)."""
    ttfa: float | None
    """None when no audio was made."""
    compute: float
    audio_seconds: float
    error: str | None = None
    segments: int = 0
    cached: int = 0
    """Of its `segments`, those whose audio came from the audio cache."""

    @property
    def rtf(self) -> float | None:
        return self.compute / self.audio_seconds if self.audio_seconds > 0 else None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "rtf": self.rtf}


class RequestLog:
    """The last `size` finished requests. Used on the event loop only."""

    def __init__(self, size: int = RECENT_REQUESTS) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=size)
        self._ids = itertools.count(1)

    def meter(self, request: Request, source: Source) -> RequestMeter:
        """Start measuring `request`; its record is added when the meter finishes."""
        return RequestMeter(self, next(self._ids), request, source)

    def add(self, record: RequestRecord) -> None:
        self._records.append(record)

    def recent(self) -> list[RequestRecord]:
        return list(self._records)


class RequestMeter:
    """Measures one request from the pieces its answer takes; `finish` records it once."""

    def __init__(self, log: RequestLog, request_id: int, request: Request, source: Source) -> None:
        self.id = request_id
        self._log = log
        self._request = request
        self._source = source
        self._first: float | None = None
        self._compute = 0.0
        self._samples = 0
        self._cached = 0
        self._done = False

    def piece(self, piece: Piece) -> None:
        """A piece was taken from the worker to be sent."""
        if self._first is None:
            self._first = time.monotonic()
        self._compute += piece.compute
        self._samples += len(piece.audio)
        self._cached += piece.cached  # a hit is its segment's one piece

    def finish(self, error: str | None = None) -> RequestRecord | None:
        """Record the request (the first call only); `error` says why it failed, if it did."""
        if self._done:
            return None
        self._done = True
        request = self._request
        started = request.started
        record = RequestRecord(
            id=self.id,
            source=self._source,
            voice=request.voice.name,
            chars=request.chars,
            at=time.time(),
            ttfa=None if self._first is None or started is None else self._first - started,
            compute=self._compute,
            audio_seconds=self._samples / SAMPLE_RATE,
            error=error,
            segments=request.submitted,
            cached=self._cached,
        )
        self._log.add(record)
        return record
