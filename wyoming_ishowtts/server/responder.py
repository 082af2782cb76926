"""One response on the wire: a request's audio pieces, as they come from the worker, written as Wyoming
events. Resampled to ``--output-rate`` with one stateful resampler per response (no seams between
pieces), clipped to 16-bit PCM, split into ``--samples-per-chunk`` chunks: one ``audio-start``, the
``audio-chunk``s, one ``audio-stop``, and ``synthesize-stopped`` to end a stream. A failure is one
``error`` event, after the audio already sent (see handler.py for how each kind of request must end).
Each answer is measured (time to first audio, real-time factor) into the server's request log.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import SynthesizeStopped

from ..engine.options import SAMPLE_RATE
from .metrics import RequestLog
from .pcm import CHANNELS, SAMPLE_WIDTH, StreamResampler, float_to_int16_bytes, split_pcm
from .settings import ServerSettings
from .worker import EngineWorker, Request, RequestFailed

_LOGGER = logging.getLogger(__name__)

Send = Callable[[Event], Awaitable[None]]


class ResponseWriter:
    """Writes one request's answer with `send` (the connection's serialized writer)."""

    def __init__(
        self, request: Request, worker: EngineWorker, settings: ServerSettings, send: Send, log: RequestLog
    ) -> None:
        self.request = request
        self._worker = worker
        self._meter = log.meter(request, "wyoming")
        self._send = send
        self._rate = settings.output_rate
        self._samples_per_chunk = settings.samples_per_chunk
        self._resampler = StreamResampler(SAMPLE_RATE, self._rate)
        self._started = False
        self._sent_samples = 0
        self._failure: str | None = None

    async def write(self) -> bool:
        """Write the response: audio as each piece arrives, one audio-start, one audio-stop.

        True when the response failed and was a plain one: then the connection must close."""
        error: str | None = "the client went away"
        try:
            failed = await self._write()
            error = self._failure
            return failed
        finally:
            self._meter.finish(error)

    async def _write(self) -> bool:
        request, worker = self.request, self._worker
        failed = False
        try:
            async with contextlib.aclosing(worker.pieces(request)) as pieces:
                async for piece in pieces:
                    self._meter.piece(piece)
                    await self._send_audio(self._resampler.process(piece.audio))
        except RequestFailed as failure:
            failed = True
            self._failure = str(failure)
            _LOGGER.info("%s: error %s: %s", request.label, failure.code, failure.text)
            await self._send(Error(text=failure.text, code=failure.code).event())
            await worker.end_of_input(request)  # a stream still ends when its client (or its timeout) says
        # The slot is free (the worker freed it) before the client can see the end.
        if self._started:
            if not failed:
                await self._send_audio(self._resampler.flush())
            await self._send(AudioStop().event())
        if request.streaming:
            await self._send(SynthesizeStopped().event())
        _LOGGER.info(
            "%s: %s, %.2f s of audio",
            request.label,
            "failed" if failed else "done",
            self._sent_samples / self._rate,
        )
        return failed and not request.streaming

    async def _send_audio(self, audio: np.ndarray) -> None:
        pcm = float_to_int16_bytes(audio)
        if not pcm:
            return
        rate = self._rate
        if not self._started:
            self._started = True
            _LOGGER.debug("%s: audio-start", self.request.label)
            await self._send(AudioStart(rate=rate, width=SAMPLE_WIDTH, channels=CHANNELS).event())
        for payload in split_pcm(pcm, self._samples_per_chunk):
            chunk = AudioChunk(
                rate=rate,
                width=SAMPLE_WIDTH,
                channels=CHANNELS,
                audio=payload,
                timestamp=self._sent_samples * 1000 // rate,
            )
            await self._send(chunk.event())
            self._sent_samples += len(payload) // SAMPLE_WIDTH
