"""Soak run: hundreds of good and bad requests from several clients against the real server.

    python -m ishowtts_dev.soak [--requests 300] [--clients 4] [--out soak.json]   (or script/soak)

A voice server runs for months next to Home Assistant, so the promise that matters is that nothing
accumulates: every good request keeps getting its full audio while bad ones get the documented error,
and the server's memory stays flat once it is warm.  This starts ``python -m wyoming_ishowtts`` as a
subprocess on loopback (a tiny random model unless ``--model-dir`` is given; no download), sends a
fixed, seeded mix of requests from ``--clients`` concurrent clients, checks every answer, samples the
server's resident memory (``VmRSS`` from ``/proc/PID/status``) throughout, stops it with SIGTERM and
writes a JSON report.  The numbers are reported as measured; ``memory_flat`` is true when the final
RSS is within 10 % (or 32 MiB, whichever is larger) of the RSS after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wyoming_ishowtts.engine.options import SAMPLE_RATE

from .clips import expected_samples, make_voice
from .launcher import ServerProcess

VOICE = "tone"
MAX_TEXT_CHARS = 400
READ_TIMEOUT = 120.0

GOOD_TEXTS = (
    "Hello there.",
    "The kitchen lights are on.",
    "It is twenty past seven, and the weather is clear with a light breeze from the west.",
    "Your timer is done. The oven has reached two hundred degrees, so the bread can go in now.",
    "Good morning! Today you have a meeting at nine, lunch with Sam at noon, and the dentist at four.",
)
# kind -> weight in the mix.  Good requests are answered with audio; the rest with an error code
# (or, for a client that disconnects mid-stream, with nothing: the server must just cope).
MIX = {
    "one-shot": 35,
    "stream": 25,
    "unknown-voice": 7,
    "empty-text": 6,
    "text-too-long": 6,
    "malformed-json": 7,
    "chunk-without-start": 6,
    "disconnect-mid-stream": 8,
}
EXPECTED_CODE = {
    "unknown-voice": "unknown-voice",
    "empty-text": "empty-text",
    "text-too-long": "text-too-long",
    "malformed-json": "malformed-event",
    "chunk-without-start": "no-stream",
}
GOOD_KINDS = ("one-shot", "stream")


@dataclass
class Outcome:
    index: int
    kind: str
    ok: bool
    seconds: float
    audio_seconds: float = 0.0
    error_code: str | None = None
    problem: str | None = None


@dataclass
class Report:
    requests: int
    clients: int
    by_kind: dict[str, int]
    good_requests: int
    good_served_full_audio: int
    bad_requests: int
    bad_answered_as_expected: int
    errors_by_code: dict[str, int]
    problems: list[str]
    audio_seconds_served: float
    wall_seconds: float
    rss_mib_at_start: float
    rss_mib_after_warmup: float
    rss_mib_peak: float
    rss_mib_final: float
    rss_growth_after_warmup_mib: float
    memory_flat: bool
    rss_samples: list[tuple[float, float]]
    server_exit_code: int | None
    server_alive_until_stop: bool
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def all_good_served(self) -> bool:
        return self.good_served_full_audio == self.good_requests


# -- the server ------------------------------------------------------------------------------------


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class RssSampler:
    """Samples the server's RSS every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> float | None:
        value = rss_mib(self.pid)
        if value is not None:
            self.samples.append((round(time.monotonic() - self._start, 2), round(value, 1)))
        return value

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


def start_server(args: argparse.Namespace, work: Path, model_dir: Path) -> ServerProcess:
    voices = work / "voices"
    make_voice(voices, VOICE)
    server = ServerProcess(
        [
            "--model-dir",
            str(model_dir),
            "--device",
            args.device,
            "--nfe",
            str(args.nfe),
            "--voices-dir",
            str(voices),
            "--voice",
            VOICE,
            "--cache-dir",
            str(work / "cache"),
            "--audio-cache-mb",  # its few texts would be hits: the soak is of the engine's path
            "0",
            "--no-builtin-voice",
            "--max-text-chars",
            str(MAX_TEXT_CHARS),
            "--stream-idle-timeout",
            "10",
            *(["--threads", str(args.threads)] if args.threads else []),
        ],
        work / "server.log",
    ).start()
    server.wait_for_log("Model ready", 300)
    return server


# -- the clients -----------------------------------------------------------------------------------


def _frame(event_type: str, data: dict[str, Any] | None = None) -> bytes:
    header: dict[str, Any] = {"type": event_type}
    body = b""
    if data:
        body = json.dumps(data).encode("utf-8")
        header["data_length"] = len(body)
    return json.dumps(header).encode("utf-8") + b"\n" + body


async def _read_event(reader: asyncio.StreamReader) -> tuple[str, dict[str, Any], bytes] | None:
    line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
    if not line:
        return None
    header = json.loads(line)
    data = dict(header.get("data") or {})
    if header.get("data_length"):
        data.update(json.loads(await reader.readexactly(header["data_length"])))
    payload = await reader.readexactly(header["payload_length"]) if header.get("payload_length") else b""
    return header["type"], data, payload


async def _read_until(reader: asyncio.StreamReader, last: str) -> list[tuple[str, dict[str, Any], bytes]]:
    events: list[tuple[str, dict[str, Any], bytes]] = []
    while True:
        event = await _read_event(reader)
        if event is None:
            raise ConnectionError(f"connection closed before {last}; got {[e[0] for e in events]}")
        events.append(event)
        if event[0] == last or (event[0] == "error" and last == "audio-stop"):
            return events


def _check_audio(
    events: list[tuple[str, dict[str, Any], bytes]], text: str, streaming: bool
) -> tuple[float, str | None]:
    types = [e[0] for e in events]
    if "error" in types:
        return 0.0, f"error {[e[1] for e in events if e[0] == 'error']}"
    if types.count("audio-start") != 1 or types.count("audio-stop") != 1:
        return 0.0, f"bad event sequence {types}"
    if streaming and types[-1] != "synthesize-stopped":
        return 0.0, "stream did not end with synthesize-stopped"
    for kind, data, _ in events:
        if kind in ("audio-start", "audio-chunk") and (data["rate"], data["width"], data["channels"]) != (
            SAMPLE_RATE,
            2,
            1,
        ):
            return 0.0, f"bad audio format {data}"
    samples = sum(len(p) for kind, _, p in events if kind == "audio-chunk") // 2
    # A stream is spoken sentence by sentence (GOOD_TEXTS have no abbreviations to mislead the split).
    expected = expected_samples(*(re.split(r"(?<=[.!?])\s+", text) if streaming else [text]))
    if samples != expected:
        return samples / SAMPLE_RATE, f"{samples} samples of audio, expected {expected}"
    return samples / SAMPLE_RATE, None


async def run_request(port: int, index: int, kind: str, rng: random.Random) -> Outcome:
    started = time.monotonic()
    text = rng.choice(GOOD_TEXTS)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    outcome = Outcome(index, kind, ok=False, seconds=0.0)
    try:
        voice = {"name": VOICE}
        if kind == "one-shot":
            writer.write(_frame("synthesize", {"text": text, "voice": voice}))
            events = await _read_until(reader, "audio-stop")
            outcome.audio_seconds, outcome.problem = _check_audio(events, text, streaming=False)
        elif kind == "stream":
            writer.write(_frame("synthesize-start", {"voice": voice}))
            words = text.split(" ")
            cut = max(1, len(words) // 3)
            for part in (
                " ".join(words[:cut]) + " ",
                " ".join(words[cut : 2 * cut]) + " ",
                " ".join(words[2 * cut :]),
            ):
                writer.write(_frame("synthesize-chunk", {"text": part}))
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.write(_frame("synthesize", {"text": text, "voice": voice}))  # HA's compatibility copy
            writer.write(_frame("synthesize-stop"))
            events = await _read_until(reader, "synthesize-stopped")
            outcome.audio_seconds, outcome.problem = _check_audio(events, text, streaming=True)
        elif kind == "disconnect-mid-stream":
            writer.write(_frame("synthesize-start", {"voice": voice}))
            writer.write(_frame("synthesize-chunk", {"text": GOOD_TEXTS[-1] + " " + GOOD_TEXTS[-2]}))
            await writer.drain()
            await asyncio.sleep(rng.uniform(0.0, 0.5))
        else:
            if kind == "unknown-voice":
                writer.write(_frame("synthesize", {"text": text, "voice": {"name": "nobody"}}))
            elif kind == "empty-text":
                writer.write(_frame("synthesize", {"text": "  ", "voice": voice}))
            elif kind == "text-too-long":
                writer.write(_frame("synthesize", {"text": "word " * (MAX_TEXT_CHARS // 4), "voice": voice}))
            elif kind == "malformed-json":
                writer.write(b'{"type": "synthesize", "data": {"text": "unterminated\n')
            elif kind == "chunk-without-start":
                writer.write(_frame("synthesize-chunk", {"text": text}))
            events = await _read_until(reader, "error")
            outcome.error_code = events[-1][1].get("code")
            if outcome.error_code != EXPECTED_CODE[kind]:
                outcome.problem = f"expected error {EXPECTED_CODE[kind]}, got {outcome.error_code}"
        await writer.drain()
        if kind in GOOD_KINDS:
            outcome.error_code = next((e[1].get("code") for e in events if e[0] == "error"), None)
        outcome.ok = outcome.problem is None
    except (OSError, asyncio.TimeoutError, ValueError, KeyError) as err:
        outcome.problem = f"{type(err).__name__}: {err}"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    outcome.seconds = round(time.monotonic() - started, 3)
    return outcome


async def run_clients(
    port: int, plan: list[str], clients: int, seed: int, warmup: int, on_warm: Any
) -> list[Outcome]:
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in enumerate(plan):
        queue.put_nowait(item)
    outcomes: list[Outcome] = []
    warm = asyncio.Event()

    async def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        while not queue.empty():
            index, kind = queue.get_nowait()
            outcomes.append(await run_request(port, index, kind, rng))
            if len(outcomes) >= warmup and not warm.is_set():
                warm.set()
                on_warm()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return sorted(outcomes, key=lambda o: o.index)


# -- main ------------------------------------------------------------------------------------------


def soak(args: argparse.Namespace) -> Report:
    rng = random.Random(args.seed)
    kinds = list(MIX)
    plan = rng.choices(kinds, weights=[MIX[k] for k in kinds], k=args.requests)
    with tempfile.TemporaryDirectory(prefix="ishowtts-soak-") as tmp:
        work = Path(tmp)
        model_dir = args.model_dir
        if model_dir is None:
            from .tools.random_model import write_random_model

            model_dir = write_random_model(work / "model", "tiny", seed=0)
        server = start_server(args, work, model_dir)
        port = server.port
        sampler = RssSampler(server.pid)
        start_rss = sampler.sample() or 0.0
        sampler.start()
        warm_mark: list[float] = []

        def on_warm() -> None:
            warm_mark.append(time.monotonic())

        began = time.monotonic()
        try:
            outcomes = asyncio.run(
                run_clients(port, plan, args.clients, args.seed, args.warmup_requests, on_warm)
            )
            wall = time.monotonic() - began
            time.sleep(2.0)  # let cancelled work and closed connections settle
            final_rss = sampler.sample() or 0.0
            alive = server.alive()
        finally:
            sampler.stop()
            exit_code = server.stop(60)
        if args.keep_log:
            Path(args.keep_log).write_bytes((work / "server.log").read_bytes())

    samples = sampler.samples
    warm_at = (warm_mark[0] - sampler._start) if warm_mark else 0.0
    after_warmup = [v for t, v in samples if t >= warm_at]
    warm_rss = after_warmup[0] if after_warmup else start_rss
    peak = max(v for _, v in samples) if samples else start_rss
    growth = final_rss - warm_rss
    good = [o for o in outcomes if o.kind in GOOD_KINDS]
    bad = [o for o in outcomes if o.kind in EXPECTED_CODE]
    codes = Counter(o.error_code for o in outcomes if o.error_code)
    problems = [f"#{o.index} {o.kind}: {o.problem}" for o in outcomes if o.problem]
    return Report(
        requests=len(outcomes),
        clients=args.clients,
        by_kind=dict(Counter(o.kind for o in outcomes)),
        good_requests=len(good),
        good_served_full_audio=sum(o.ok for o in good),
        bad_requests=len(bad),
        bad_answered_as_expected=sum(o.ok for o in bad),
        errors_by_code=dict(sorted(codes.items())),
        problems=problems,
        audio_seconds_served=round(sum(o.audio_seconds for o in good), 1),
        wall_seconds=round(wall, 1),
        rss_mib_at_start=round(start_rss, 1),
        rss_mib_after_warmup=round(warm_rss, 1),
        rss_mib_peak=round(peak, 1),
        rss_mib_final=round(final_rss, 1),
        rss_growth_after_warmup_mib=round(growth, 1) + 0.0,
        memory_flat=growth <= max(32.0, 0.10 * warm_rss),
        rss_samples=samples,
        server_exit_code=exit_code,
        server_alive_until_stop=alive,
        settings={
            "requests": args.requests,
            "clients": args.clients,
            "nfe": args.nfe,
            "seed": args.seed,
            "warmup_requests": args.warmup_requests,
            "model": str(args.model_dir or "tiny (random)"),
            "mix": MIX,
        },
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="script/soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests in total (default 300)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument(
        "--warmup-requests", type=int, default=30, help="requests before the warm RSS is taken"
    )
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="model folder (default: a tiny random model)"
    )
    parser.add_argument("--nfe", type=int, default=2, help="sampler steps (default 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="engine CPU threads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--keep-log", type=Path, default=None, help="copy the server log here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = soak(args)
    data = {**asdict(report), "all_good_served": report.all_good_served}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    summary = {k: v for k, v in data.items() if k not in ("rss_samples", "settings")}
    print(json.dumps(summary, indent=2))
    ok = report.all_good_served and not report.problems and report.server_exit_code == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
