"""A measuring Wyoming client: what Home Assistant would experience, timed per event.

Every request opens its own TCP connection (as Home Assistant does), sends one ``synthesize`` event with
the whole text, and reads until ``audio-stop``. The clock starts just before the event is written, so the
connect time is not counted (Home Assistant keeps no pool either, but loopback connects take microseconds).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

from ..wyoming_client import WyomingConnection


class BenchClientError(RuntimeError):
    """The server answered with an error event or closed the connection early."""


@dataclass
class Timeline:
    """Arrival time (seconds after the request was written) and audio seconds of each audio chunk."""

    times: list[float] = field(default_factory=list)
    audio: list[float] = field(default_factory=list)

    def pieces(self, gap: float = 0.05) -> list[tuple[float, float]]:
        """Group chunks that arrived together (the server sends one engine piece as a burst of chunks):
        (arrival of the burst's first chunk, audio seconds in the burst)."""
        out: list[tuple[float, float]] = []
        last = -1.0
        for t, a in zip(self.times, self.audio, strict=True):
            if out and t - last <= gap:
                out[-1] = (out[-1][0], out[-1][1] + a)
            else:
                out.append((t, a))
            last = t
        return out


@dataclass
class SynthesisTiming:
    ttfa_s: float
    """Time to the first audio-chunk event."""
    total_s: float
    """Time to audio-stop."""
    audio_s: float
    rate: int
    timeline: Timeline

    @property
    def rtf(self) -> float:
        return self.total_s / self.audio_s if self.audio_s > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "ttfa_s": self.ttfa_s,
            "total_s": self.total_s,
            "audio_s": self.audio_s,
            "rtf": self.rtf,
            "pieces": len(self.timeline.pieces()),
        }


def _client(host: str, port: int, timeout: float) -> WyomingConnection:
    return WyomingConnection(f"tcp://{host}:{port}", connect_timeout=timeout, read_timeout=timeout)


async def synthesize(
    host: str,
    port: int,
    text: str,
    voice: str | None = None,
    timeout: float = 1800.0,
    start_event: asyncio.Event | None = None,
) -> SynthesisTiming:
    """One request; `start_event` (if given) is awaited after connecting, so concurrent clients can be
    released at the same instant."""
    async with _client(host, port, timeout) as client:
        if start_event is not None:
            await start_event.wait()
        event = Synthesize(text=text, voice=SynthesizeVoice(name=voice) if voice else None).event()
        start = time.perf_counter()
        await client.write_event(event)
        timeline = Timeline()
        rate = 0
        samples = 0
        while True:
            received = await client.read_event()
            now = time.perf_counter() - start
            if received is None:
                raise BenchClientError("server closed the connection before audio-stop")
            if AudioChunk.is_type(received.type):
                chunk = AudioChunk.from_event(received)
                rate = chunk.rate
                n = len(chunk.audio) // (chunk.width * chunk.channels)
                samples += n
                timeline.times.append(now)
                timeline.audio.append(n / chunk.rate)
            elif AudioStart.is_type(received.type):
                rate = AudioStart.from_event(received).rate
            elif AudioStop.is_type(received.type):
                break
            elif Error.is_type(received.type):
                err = Error.from_event(received)
                raise BenchClientError(f"server error {err.code}: {err.text}")
        if not timeline.times:
            raise BenchClientError("no audio received")
        return SynthesisTiming(timeline.times[0], now, samples / rate, rate, timeline)


async def describe(host: str, port: int, timeout: float = 30.0) -> float:
    """Seconds from writing `describe` to reading `info`, on a fresh connection (as Home Assistant does)."""
    async with _client(host, port, timeout) as client:
        start = time.perf_counter()
        await client.write_event(Describe().event())
        while True:
            received = await client.read_event()
            if received is None:
                raise BenchClientError("server closed the connection before info")
            if Info.is_type(received.type):
                return time.perf_counter() - start


async def wait_until_listening(host: str, port: int, deadline_s: float, alive: Any = None) -> float:
    """Poll `describe` until it is answered; returns the seconds waited. `alive()` False aborts early."""
    start = time.perf_counter()
    while True:
        try:
            await describe(host, port, timeout=5.0)
            return time.perf_counter() - start
        except (OSError, asyncio.TimeoutError, BenchClientError):
            if alive is not None and not alive():
                raise BenchClientError("server process exited while starting") from None
            if time.perf_counter() - start > deadline_s:
                raise
            await asyncio.sleep(0.2)
