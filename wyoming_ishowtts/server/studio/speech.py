"""Speech for the studio: one request to the engine worker, its audio as an async stream, measured.

The studio is one more client of the worker's fair scheduler (with its own client ids, which never meet a
Wyoming connection's), so a preview takes its turn beside Home Assistant's requests instead of in front of
them. The worker owns the request (its queue slot, its results); this reads its pieces and says what a
failure means to the page. Each preview is measured into the server's request log like a Wyoming request
(metrics.py).
"""

from __future__ import annotations

import contextlib
import itertools
import struct
from collections.abc import AsyncIterator

import numpy as np

from ...errors import STUDIO_BUSY, BusyError, EngineFailure, StudioCode, StudioError
from ...voices.folder import VoiceInfo
from ..metrics import RequestLog, RequestMeter
from ..worker import EngineWorker, Request, RequestFailed

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
            raise StudioError(STUDIO_BUSY, f"The server is busy: {err}. Try again in a moment.") from None
        request.label = f"studio request {-self.client_id}"
        self._request = request
        self.meter = self._log.meter(request, "studio")
        self.worker.submit(request, self.text)
        self.worker.close_input(request)
        return self.meter.id

    async def pieces(self) -> AsyncIterator[np.ndarray]:
        """float32 audio at 24 kHz, piece by piece as the engine makes it.

        A failure before any audio raises `StudioError` (the page can still show it as a JSON error); after
        audio has started it raises `SynthesisFailed`.
        """
        request, meter = self._request, self.meter
        assert request is not None and meter is not None, "open() first"
        started = False
        try:
            async with contextlib.aclosing(self.worker.pieces(request)) as pieces:
                async for piece in pieces:
                    meter.piece(piece)
                    started = True
                    yield piece.audio
        except RequestFailed as failure:
            self._error = str(failure)
            if started:
                raise SynthesisFailed(failure.text) from None
            status = {EngineFailure.code: 500, BusyError.code: STUDIO_BUSY.status}.get(failure.code, 422)
            what = StudioCode(failure.code, status)  # the engine's or the voice's own code (errors.py)
            raise StudioError(what, f"The voice could not speak: {failure.text}") from None
        self._error = None if started else "no audio"

    def close(self) -> None:
        """Give the request's queue slot back (also when its pieces were never read) and record its speed (or
        why it failed)."""
        if self._request is not None:
            self.worker.drop_client(self.client_id)
            self._request = None
        if self.meter is not None:
            self.meter.finish(self._error)
