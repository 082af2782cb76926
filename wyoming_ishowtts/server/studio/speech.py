"""Speech for the studio: one request to the engine worker, its audio as an async stream, measured.

The studio is one more client of the worker's fair scheduler (with its own client ids, which never meet a
Wyoming connection's), so a preview takes its turn beside Home Assistant's requests instead of in front of
them. The worker posts results to the request's asyncio queue; nothing here waits on a thread. Each preview
is measured into the server's request log like a Wyoming request (metrics.py).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import AsyncIterator

import numpy as np

from ...errors import BusyError, EngineFailure
from ...voices.folder import VoiceInfo
from ..metrics import RequestLog, RequestMeter
from ..worker import Abort, Close, EngineWorker, Piece, Request, SegmentDone, SegmentFailed
from .errors import StudioError

# Negative ids: Wyoming connections count up from 1.
_client_ids = itertools.count(-1, -1)

STREAM_SIZE = 0xFFFFFFFF  # "until the connection ends", as streaming WAV writers mark it


def wav_stream_header(rate: int, channels: int = 1, width: int = 2) -> bytes:
    """A 44-byte WAV header for 16-bit PCM of unknown length."""
    return (
        b"RIFF"
        + struct.pack("<I", STREAM_SIZE)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * width, channels * width, width * 8)
        + b"data"
        + struct.pack("<I", STREAM_SIZE)
    )


class SynthesisFailed(Exception):
    """The engine failed after audio had started: the stream must end without its last chunk."""


class Speech:
    """One synthesis request: `open` queues it, iterate `pieces` for its audio, `close` always."""

    def __init__(self, worker: EngineWorker, log: RequestLog, voice: VoiceInfo, text: str) -> None:
        self.worker = worker
        self.voice = voice
        self.text = text
        self._log = log
        self.client_id = next(_client_ids)
        self._request: Request | None = None
        self.meter: RequestMeter | None = None
        self._error: str | None = "the page stopped listening"

    def open(self) -> int:
        """Queue the request; its id in the request log (the page finds its speed by it)."""
        try:
            request = self.worker.open_request(self.client_id, self.voice, streaming=False)
        except BusyError as err:
            raise StudioError(503, "busy", f"The server is busy: {err}. Try again in a moment.") from None
        request.label = f"studio request {-self.client_id}"
        self._request = request
        self.meter = self._log.meter(request, "studio")
        self.worker.submit(request, self.text)
        request.results.put_nowait(Close())
        return self.meter.id

    async def pieces(self) -> AsyncIterator[np.ndarray]:
        """float32 audio at 24 kHz, piece by piece as the engine makes it.

        A failure before any audio raises `StudioError` (the page can still show it as a JSON error); after
        audio has started it raises `SynthesisFailed`.
        """
        request = self._request
        assert request is not None and self.meter is not None, "open() first"
        started = False
        done = 0
        closed = False
        while not (closed and done >= request.submitted):
            item = await request.results.get()
            if isinstance(item, Piece):
                self.worker.taken(request)
                self.meter.piece(item)
                started = True
                yield item.audio
            elif isinstance(item, SegmentDone):
                done += 1
            elif isinstance(item, (SegmentFailed, Abort)):
                self._error = f"{item.text} ({item.code})"
                if started:
                    raise SynthesisFailed(item.text)
                status = {EngineFailure.code: 500, BusyError.code: 503}.get(item.code, 422)
                raise StudioError(status, item.code, f"The voice could not speak: {item.text}")
            elif isinstance(item, Close):
                closed = True
        self._error = None if started else "no audio"

    def close(self) -> None:
        """Release the request's queue slot and record its speed (or why it failed)."""
        if self._request is not None:
            self.worker.finish_request(self._request)
            self._request = None
        if self.meter is not None:
            self.meter.finish(self._error)
