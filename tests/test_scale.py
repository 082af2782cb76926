"""Several servers behind a standard load balancer: Debian's HAProxy running docker/haproxy.cfg.

The replicas are the real server (tiny random model, CPU) started with the project's launcher; the
balancer is the real HAProxy; the clients speak Wyoming over loopback TCP.  What is checked:

- the health check (a Wyoming ``describe`` sent by HAProxy's ``tcp-check``) passes a text-to-speech
  server whose model is loaded and fails anything else, a real server still loading its model included;
  with no healthy replica a client gets a closed connection at once;
- under load from 4 clients, a replica killed with SIGKILL mid-answer: its requests in flight end
  with a closed connection (never a hang), every request sent after HAProxy marked it down is
  answered in full by the survivor, and the survivor's memory stays flat;
- when every replica is busy a client gets the server's ``busy`` error at once, then a closed connection;
- a frozen replica is marked down and its client's connection closed; a drained one finishes its answer;
- HAProxy's soft stop (the compose file's stop signal) lets an answer in flight finish;
- HAProxy's timeouts bound silence, not the length of an answer;
- docker/compose.scale.yaml and the Kubernetes example in docs/scaling.md, read without Docker or a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from balancer import CONFIG, SERVER_NAMES, Balancer, SessionLog, haproxy_binary
from conftest import ROOT, ServerProcess, free_port, load_tiny_engine
from inprocess import run_server
from test_docker import entrypoint_args, load_yaml, parse_server_args
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Attribution, Info, TtsProgram
from wyoming.tts import Synthesize

from wyoming_ishowtts.engine import Engine
from wyoming_ishowtts.healthcheck import build_parser as healthcheck_parser
from wyoming_ishowtts.healthcheck import check as health_check
from wyoming_ishowtts.readiness import program_description

# Three sentences: an answer in three pieces, so a replica killed after the first piece was sent
# dies in the middle of an answer.
TEXT = "The kitchen light is on. The front door is locked. It will rain later today."
CLIENTS = 4
REQUESTS = 40  # at least; more when the mark-down came late (a loaded machine), up to MAX_REQUESTS
AFTER_DOWN = REQUESTS // 4  # requests sent after the mark-down, at least: what shows the survivor alone
MAX_REQUESTS = 3 * REQUESTS
# Any single read (connect, next event) that takes longer than this is a hang and fails the test.
READ_TIMEOUT = 30.0
START_TIMEOUT = 120.0
# Requests both replicas must have finished before the kill, so that each has served some.
SERVED_BEFORE_KILL = 3
_RISE = re.search(r"^\s*default-server .*\brise (\d+)\b", CONFIG.read_text(encoding="utf-8"), re.MULTILINE)
assert _RISE is not None, "docker/haproxy.cfg's default-server line gives rise"
RISE = int(_RISE.group(1))
"""Checks passed in a row that bring a replica up (docker/haproxy.cfg)."""


def replica_args(model_dir: Path, voices: Path, cache: Path, extra: Sequence[str] = ()) -> list[str]:
    """Short answers, one engine thread each: two replicas and HAProxy share two cores. No audio cache: these
    tests load the replicas with the same text again and again, which must be syntheses, not cache hits."""
    return [
        *(
            "--model-dir",
            str(model_dir),
            "--device",
            "cpu",
            "--nfe",
            "2",
            "--threads",
            "1",
            "--audio-cache-mb",
            "0",
        ),
        *("--voices-dir", str(voices), "--voice", "tone", "--cache-dir", str(cache), "--no-builtin-voice"),
        *extra,
    ]


@contextlib.contextmanager
def replicas(
    model_dir: Path, voices: Path, work_dir: Path, extra: Sequence[str] = ()
) -> Iterator[list[ServerProcess]]:
    """Two servers sharing one voices folder and one prepared-voice cache, started together."""
    cache = work_dir / "cache"
    servers = [
        ServerProcess(
            replica_args(model_dir, voices, cache, extra),
            work_dir / f"replica{index}.log",
            cwd=ROOT,
            stop_timeout=30.0,
        )
        for index in range(2)
    ]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_for_log("Model ready", START_TIMEOUT)
        yield servers
    finally:
        for server in servers:
            server.stop()


def address(server: ServerProcess) -> str:
    return f"{server.host}:{server.port}"


def answers_done(server: ServerProcess) -> int:
    """Requests the replica's own log says it answered in full."""
    return len(re.findall(r": done, [\d.]+ s of audio", server.log()))


# -- one client request, recorded ------------------------------------------------------------------


@dataclass
class Outcome:
    """What one request saw: ``full``, ``short`` (ended early or the wrong length), ``closed``,
    ``refused`` (no connection), ``error`` (an error event with its code, then a closed connection)
    or ``hang`` (a read timed out)."""

    index: int
    sent_at: float = 0.0
    ended_at: float = 0.0
    port: int = 0
    samples: int = 0
    kind: str = ""
    code: str = ""


async def request(port: int, text: str, outcome: Outcome, expected_samples: int | None) -> Outcome:
    """Send one ``synthesize`` through `port` and read the answer; every wait is bounded by
    READ_TIMEOUT, so a hang is recorded as one instead of stalling the test."""
    outcome.sent_at = time.monotonic()
    try:
        connecting = asyncio.open_connection("127.0.0.1", port)
        reader, writer = await asyncio.wait_for(connecting, READ_TIMEOUT)
    except ConnectionRefusedError:
        outcome.kind, outcome.ended_at = "refused", time.monotonic()
        return outcome
    outcome.port = int(writer.get_extra_info("sockname")[1])
    try:
        await async_write_event(Synthesize(text=text).event(), writer)
        outcome.kind = await _read_answer(reader, outcome, expected_samples)
    except (ConnectionError, asyncio.IncompleteReadError):
        outcome.kind = "closed"
    except asyncio.TimeoutError:
        outcome.kind = "hang"
    finally:
        outcome.ended_at = time.monotonic()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return outcome


async def _read_answer(reader: asyncio.StreamReader, outcome: Outcome, expected_samples: int | None) -> str:
    while True:
        event = await asyncio.wait_for(async_read_event(reader), READ_TIMEOUT)
        if event is None:
            return "closed"
        if event.type == "audio-chunk":
            outcome.samples += len(event.payload or b"") // 2
        elif Error.is_type(event.type):
            # A failed plain synthesize ends with a closed connection after its error (Home
            # Assistant ignores error events): anything but the end of the stream next is a hang.
            outcome.code = str(Error.from_event(event).code)
            while await asyncio.wait_for(async_read_event(reader), READ_TIMEOUT) is not None:
                pass
            return "error"
        elif event.type == "audio-stop":
            return "full" if expected_samples in (None, outcome.samples) else "short"


def one_request(port: int, text: str = TEXT, expected: int | None = None) -> Outcome:
    return asyncio.run(request(port, text, Outcome(0), expected))


# -- memory of a process over time -----------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class MemoryWatch:
    """Samples a process's resident memory every ``interval`` seconds in a thread."""

    pid: int
    interval: float = 0.1
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemoryWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic(), rss_bytes(self.pid)))

    def trough(self, start: float, end: float) -> int:
        return min(rss for t, rss in self.samples if start <= t <= end)


# -- stand-in replicas: the health check and the timeouts -------------------------------------------

SILENCE = "say nothing"  # a text the paced stand-in never answers


@dataclass
class StandIn:
    """A loopback TCP server speaking just enough Wyoming to test what HAProxy does with a replica:
    ``describe`` gets ``info`` (or no answer), ``synthesize`` gets ``chunks`` audio chunks ``pace``
    seconds apart, and the text SILENCE gets nothing at all."""

    info: Event | None
    pace: float = 0.0
    chunks: int = 0
    samples_per_chunk: int = 240
    server: asyncio.Server | None = None

    async def __aenter__(self) -> StandIn:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while (event := await async_read_event(reader)) is not None:
                if event.type == "describe" and self.info is not None:
                    await async_write_event(self.info, writer)
                elif Synthesize.is_type(event.type) and Synthesize.from_event(event).text != SILENCE:
                    await self._answer(writer)
        writer.close()

    async def _answer(self, writer: asyncio.StreamWriter) -> None:
        await async_write_event(AudioStart(rate=24000, width=2, channels=1).event(), writer)
        for _ in range(self.chunks):
            await asyncio.sleep(self.pace)
            audio = bytes(2 * self.samples_per_chunk)
            await async_write_event(AudioChunk(rate=24000, width=2, channels=1, audio=audio).event(), writer)
        await async_write_event(AudioStop().event(), writer)


def tts_info(programs: int = 1, ready: bool = True) -> Event:
    """What a server says to ``describe``: `programs` text-to-speech programs, their model loaded or not."""
    nobody = Attribution(name="", url="")
    program = TtsProgram(
        name="stand-in",
        attribution=nobody,
        installed=True,
        description=program_description(ready),
        version=None,
        voices=[],
    )
    return Info(tts=[program] * programs).event()


@contextlib.asynccontextmanager
async def balancer_over(
    replicas: Sequence[str], work_dir: Path, idle_timeout: str | None = None
) -> AsyncIterator[Balancer]:
    """A Balancer started and stopped off the event loop, so stand-ins on the loop keep answering."""
    balancer = Balancer(replicas, work_dir, idle_timeout=idle_timeout)
    await asyncio.to_thread(balancer.start)
    try:
        yield balancer
    finally:
        await asyncio.to_thread(balancer.stop)


def test_health_check_passes_only_a_server_that_offers_text_to_speech(tmp_path: Path) -> None:
    async def go() -> None:
        async with StandIn(tts_info()) as tts, StandIn(tts_info(0)) as no_tts, StandIn(None) as silent:
            async with balancer_over([tts.address, no_tts.address], tmp_path / "a") as balancer:
                await asyncio.to_thread(balancer.wait_for_status, {"gpu0": "UP", "gpu1": "DOWN"}, 20)
                # It answered, but with no text-to-speech program: HAProxy waits for one until the
                # check's timeout (the server keeps the connection open), then marks it down.
                assert balancer.servers()["gpu1"]["check_status"] in ("L7RSP", "L7TOUT")

            nobody = f"127.0.0.1:{free_port()}"
            async with balancer_over([silent.address, nobody], tmp_path / "b") as balancer:
                await asyncio.to_thread(balancer.wait_for_status, {"gpu0": "DOWN", "gpu1": "DOWN"}, 30)
                rows = balancer.servers()
                assert rows["gpu0"]["check_status"] == "L7TOUT", rows["gpu0"]  # said nothing
                assert rows["gpu1"]["check_status"].startswith("L4"), rows["gpu1"]  # refused
                # No replica up: a client is not kept waiting, its connection is closed at once.
                outcome = await request(balancer.port, TEXT, Outcome(0), None)
                assert outcome.kind == "closed", outcome
                sessions = await asyncio.to_thread(balancer.session_log, 1)
                assert [s.server for s in sessions] == ["<NOSRV>"], balancer.log()

    asyncio.run(go())


def test_a_replica_loading_its_model_gets_no_request_until_it_is_ready(
    tiny_model_dir: Path, voices_dir: Path, tmp_path: Path
) -> None:
    """The real server answers ``describe`` while its model loads (Home Assistant allows a new server one
    second), so a restarted replica looks alive at once. Its answer says the model is still loading, and
    HAProxy's check keeps the replica down until the model is loaded; the health check tells alive from
    ready the same way."""
    release = threading.Event()

    def slow_load() -> Engine:  # a load that takes as long as the test wants (weights on a slow disk)
        assert release.wait(120), "the test never let the model load"
        return load_tiny_engine(tiny_model_dir)

    with contextlib.ExitStack() as stack:
        server = stack.enter_context(run_server(slow_load, voices_dir, tmp_path / "cache", wait_ready=False))
        stack.callback(
            release.set
        )  # first on the way out, on a failure too: else the stop waits for the load
        alive, ready = (
            asyncio.run(health_check(server.uri, 5)),
            asyncio.run(health_check(server.uri, 5, True)),
        )
        assert alive.healthy and not ready.healthy, (alive, ready)
        assert "not loaded" in ready.message
        with Balancer([f"127.0.0.1:{server.port}"], tmp_path / "lb") as balancer:
            balancer.wait_for_status({"gpu0": "DOWN"}, 30)
            # As many whole checks as `rise` needs to bring a replica up: each one is answered (describe
            # works) and fails for want of "(model ready)" (a layer-7 timeout), and the replica stays down.
            checks = balancer.finished_checks("gpu0", RISE, 60)
            for row in checks:
                assert row["status"].startswith("DOWN") and row["check_status"] == "L7TOUT", checks
            assert int(checks[-1]["lastchg"]) > int(checks[0]["lastchg"]), checks  # no state change between
            # Nothing is sent to it meanwhile: a client finds no server and is closed at once.
            outcome = asyncio.run(request(balancer.port, TEXT, Outcome(0), None))
            assert outcome.kind == "closed" and outcome.samples == 0, outcome
            release.set()
            balancer.wait_for_status({"gpu0": "UP"}, 60)
            assert asyncio.run(health_check(server.uri, 5, True)).healthy
            outcome = asyncio.run(request(balancer.port, TEXT, Outcome(1), None))
            assert outcome.kind == "full" and outcome.samples > 0, outcome


def test_timeouts_bound_silence_not_the_length_of_an_answer(tmp_path: Path) -> None:
    """docker/haproxy.cfg's client/server/tunnel timeouts are one inactivity limit (10 minutes; here
    2 s): an answer that streams for 5 s through a 2 s limit arrives whole, while a replica that
    says nothing for longer than the limit has its client's connection closed, not left hanging."""

    async def go() -> None:
        paced = StandIn(tts_info(), pace=0.5, chunks=10)
        async with paced, balancer_over([paced.address], tmp_path, idle_timeout="2s") as balancer:
            await asyncio.to_thread(balancer.wait_for_status, {"gpu0": "UP"}, 20)
            long = await request(balancer.port, "a long answer", Outcome(0), 10 * paced.samples_per_chunk)
            assert long.kind == "full", long
            assert long.ended_at - long.sent_at > 2 * 2.0, long  # outlasted the limit twice over
            silent = await request(balancer.port, SILENCE, Outcome(1), None)
            assert silent.kind == "closed", silent
            assert silent.ended_at - silent.sent_at >= 2.0 - 0.1, silent
            sessions = await asyncio.to_thread(balancer.session_log, 2)
            terminations = [entry.termination for entry in sessions]
            assert terminations[0] == "--" and terminations[1][1] == "D", balancer.log()

    asyncio.run(go())


# -- a replica killed under load -------------------------------------------------------------------


@dataclass
class KillRun:
    outcomes: list[Outcome]
    killed_at: float  # SIGKILL sent
    dead_at: float  # the process reaped: its sockets are closed
    down_at: float  # HAProxy's admin socket first shows the replica DOWN
    cut: list[Outcome]  # requests that had audio from the victim, and not all of it, when it died


async def _direct(port: int, count: int) -> list[Outcome]:
    """`count` requests at once straight to one replica, not through the balancer."""
    return list(await asyncio.gather(*(request(port, TEXT, Outcome(i), None) for i in range(count))))


async def _kill_mid_answer(
    balancer: Balancer, victim: ServerProcess, outcomes: list[Outcome]
) -> list[Outcome]:
    """SIGKILL the victim while a client is in the middle of one of its answers; those clients.

    To be sure the answer is still unfinished when the process dies, the victim is first frozen
    (SIGSTOP) and, after a moment for the bytes it already wrote to arrive, the client checked again;
    an answer that completed meanwhile sends the search on (SIGCONT)."""
    while True:
        sessions = await asyncio.to_thread(balancer.sessions)
        mid = [o for o in outcomes if o.samples and not o.kind and sessions.get(o.port) == "gpu0"]
        if mid:
            os.kill(victim.pid, signal.SIGSTOP)
            await asyncio.sleep(0.2)
            cut = [o for o in mid if not o.kind]
            if cut:
                os.kill(victim.pid, signal.SIGKILL)
                return cut
            os.kill(victim.pid, signal.SIGCONT)
        await asyncio.sleep(0.01)


async def _load_with_kill(
    balancer: Balancer, victim: ServerProcess, survivor: ServerProcess, survivor_before: int, expected: int
) -> KillRun:
    outcomes: list[Outcome] = []
    times: dict[str, float] = {}
    cut: list[Outcome] = []

    def more_to_send() -> bool:
        """REQUESTS in all, and on until AFTER_DOWN of them went out after the mark-down (how late
        that comes depends on the machine's load), MAX_REQUESTS at most."""
        if len(outcomes) >= MAX_REQUESTS:
            return False
        if len(outcomes) < REQUESTS or "down" not in times:
            return True
        return sum(1 for o in outcomes if o.sent_at > times["down"]) < AFTER_DOWN

    async def client() -> None:
        while more_to_send():  # the clients share one count
            outcome = Outcome(len(outcomes))
            outcomes.append(outcome)
            await request(balancer.port, TEXT, outcome, expected)

    async def killer() -> None:
        # Both replicas have answered some requests through the balancer ...
        while min(answers_done(victim), answers_done(survivor) - survivor_before) < SERVED_BEFORE_KILL:
            await asyncio.sleep(0.05)
        # ... and the victim is in the middle of an answer.
        cut.extend(await _kill_mid_answer(balancer, victim, outcomes))
        times["killed"] = time.monotonic()
        await asyncio.to_thread(victim.proc.wait)  # type: ignore[union-attr]
        times["dead"] = time.monotonic()
        times["down"] = await asyncio.to_thread(balancer.wait_for_status, {"gpu0": "DOWN"}, 30)

    await asyncio.gather(killer(), *(client() for _ in range(CLIENTS)))
    return KillRun(outcomes, times["killed"], times["dead"], times["down"], cut)


def test_replica_killed_under_load(tiny_model_dir: Path, voices_dir: Path, tmp_path: Path) -> None:
    with replicas(tiny_model_dir, voices_dir, tmp_path) as (victim, survivor):
        # The expected answer, asked of the survivor directly, CLIENTS at once: this also warms up its
        # memory allocator for that many requests in flight, so the memory check below sees the
        # steady state and not a fresh process's first allocations.
        warm_up = asyncio.run(_direct(survivor.port, CLIENTS))
        expected = warm_up[0].samples
        assert expected > 0 and all(o.kind == "full" and o.samples == expected for o in warm_up), warm_up
        survivor_before = answers_done(survivor)

        with Balancer([address(victim), address(survivor)], tmp_path / "haproxy") as balancer:
            balancer.wait_for_status({"gpu0": "UP", "gpu1": "UP"}, 20)
            with MemoryWatch(survivor.pid) as memory:
                run = asyncio.run(_load_with_kill(balancer, victim, survivor, survivor_before, expected))
            sessions = balancer.session_log(at_least=len(run.outcomes))
        haproxy_log = balancer.log()

    outcomes = sorted(run.outcomes, key=lambda o: o.index)
    context = f"\nHAProxy log:\n{haproxy_log[-6000:]}\nsurvivor log tail:\n{survivor.log_tail(20)}"
    assert REQUESTS <= len(outcomes) <= MAX_REQUESTS
    assert run.killed_at <= run.dead_at < run.down_at

    # No request hangs; none is cut short or answered with the wrong length.
    kinds = {o.index: o.kind for o in outcomes}
    assert "hang" not in kinds.values(), kinds
    assert "short" not in kinds.values(), (kinds, [(o.index, o.samples) for o in outcomes], expected)

    # Which replica each request reached, from HAProxy's log (matched by the client's port).
    server_of = _servers_by_request(outcomes, sessions)

    # Both replicas served requests through the balancer, by their own logs and by HAProxy's.
    victim_done, survivor_done = answers_done(victim), answers_done(survivor) - survivor_before
    full_on = {name: sum(1 for o in outcomes if o.kind == "full" and server_of[o.index] == name)
               for name in ("gpu0", "gpu1")}  # fmt: skip
    assert victim_done >= SERVED_BEFORE_KILL and survivor_done >= SERVED_BEFORE_KILL
    assert (full_on["gpu0"], full_on["gpu1"]) == (victim_done, survivor_done), (full_on, context)

    # The requests that were on the killed replica ended with a closed connection (or an error): the
    # ones it was in the middle of answering, and any it had accepted but not begun.  Only requests
    # sent before it was dead failed, and only on it.
    failed = [o for o in outcomes if o.kind != "full"]
    assert run.cut and all(o in failed for o in run.cut), (run.cut, context)
    for outcome in failed:
        assert outcome.kind in ("closed", "error"), outcome
        assert outcome.sent_at < run.dead_at, (outcome, context)
        assert server_of[outcome.index] == "gpu0", (outcome, context)

    # Every request sent after HAProxy marked the replica down was answered in full by the survivor.
    after_down = [o for o in outcomes if o.sent_at > run.down_at]
    assert len(after_down) >= AFTER_DOWN, "too few requests after the mark-down to show anything"
    for outcome in after_down:
        assert outcome.kind == "full" and server_of[outcome.index] == "gpu1", (outcome, context)
    between = [o for o in outcomes if run.killed_at <= o.sent_at <= run.down_at]
    samples_cut = ", ".join(f"{o.samples}/{expected}" for o in run.cut)

    # The survivor's memory stays flat while it serves all four clients alone: the lowest resident
    # memory of the second half of that phase is at most MEMORY_MARGIN above the lowest of the first.
    # The lowest, not the highest: between answers the allocator hands big audio buffers back, so RSS
    # swings by ~15 MiB with the timing of the requests, while its troughs (what the server keeps
    # from one answer to the next) moved by less than 0.1 MiB per 12 requests when measured.
    end = max(o.ended_at for o in outcomes)
    middle = run.down_at + (end - run.down_at) / 2
    first_half, second_half = memory.trough(run.down_at, middle), memory.trough(middle, end)
    growth = second_half - first_half
    assert growth <= MEMORY_MARGIN, (
        f"survivor RSS troughs grew {growth / 2**20:.2f} MiB within {len(after_down)} answers "
        f"({first_half / 2**20:.2f} -> {second_half / 2**20:.2f} MiB)"
    )

    low, high = (f(r for _, r in memory.samples) / 2**20 for f in (min, max))
    print(
        f"\nscale: answered in full by gpu0 {victim_done}, by gpu1 {survivor_done}; "
        f"failed on the killed gpu0 {len(failed)} ({', '.join(sorted(o.kind for o in failed))}), "
        f"cut mid-answer at {samples_cut} samples; sent between kill and mark-down {len(between)} "
        f"({sum(o.kind == 'full' for o in between)} in full); sent after mark-down {len(after_down)}, "
        f"all in full; mark-down {run.down_at - run.killed_at:.2f} s after the kill; survivor RSS "
        f"troughs {first_half / 2**20:.2f} -> {second_half / 2**20:.2f} MiB (range {low:.1f}-{high:.1f})"
    )


# Keeping one answer's audio per request (TEXT is 7.68 s: 369 KB as 16-bit PCM) would raise the
# troughs by ~3.6 MiB over the ~10 answers between the two halves; without a leak they moved by less
# than 0.3 MiB in every run measured (docs/scaling.md).
MEMORY_MARGIN = 1 * 2**20


def _servers_by_request(outcomes: Sequence[Outcome], sessions: Sequence[SessionLog]) -> dict[int, str]:
    """Request index -> the replica HAProxy connected it to.  A client port used twice in the run is
    matched in order of the requests' end times (HAProxy logs a session when it ends)."""
    by_port: dict[int, list[SessionLog]] = {}
    for entry in sessions:
        by_port.setdefault(entry.client_port, []).append(entry)
    found: dict[int, str] = {}
    for outcome in sorted(outcomes, key=lambda o: o.ended_at):
        entries = by_port.get(outcome.port)
        assert entries, f"request {outcome.index} (port {outcome.port}) is not in HAProxy's log"
        found[outcome.index] = entries.pop(0).server
    return found


# -- a running pair: busy, soft stop, a frozen replica ---------------------------------------------

# Two queued requests per replica: four clients at once fill both.
PAIR_LIMITS = ("--max-queued-total", "2")


@pytest.fixture(scope="module")
def pair(
    tiny_model_dir: Path, voices_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[ServerProcess], int]]:
    """Two replicas for the tests that keep both alive, and the length of TEXT's answer."""
    with replicas(tiny_model_dir, voices_dir, tmp_path_factory.mktemp("pair"), PAIR_LIMITS) as servers:
        reference = one_request(servers[1].port)
        assert reference.kind == "full" and reference.samples > 0, reference
        yield servers, reference.samples
        for server in servers:
            assert server.alive(), f"a replica died:\n{server.log_tail()}"


def test_when_every_replica_is_busy_clients_get_the_busy_error_at_once(
    pair: tuple[list[ServerProcess], int], tmp_path: Path
) -> None:
    servers, expected = pair
    with Balancer([address(s) for s in servers], tmp_path) as balancer:
        balancer.wait_for_status({"gpu0": "UP", "gpu1": "UP"}, 20)

        async def burst() -> list[Outcome]:
            requests = (request(balancer.port, TEXT, Outcome(i), expected) for i in range(8))
            return list(await asyncio.gather(*requests))

        outcomes = asyncio.run(burst())
    kinds = sorted(o.kind for o in outcomes)
    busy = [o for o in outcomes if o.kind == "error"]
    full = [o for o in outcomes if o.kind == "full"]
    # Four queue slots for eight requests: the rest are refused by the replicas themselves, with the
    # Wyoming error a client can show, and before any accepted request has finished.
    assert len(busy) + len(full) == len(outcomes), kinds
    assert busy and all(o.code == "busy" for o in busy), outcomes
    assert len(full) >= 4, kinds
    assert max(o.ended_at for o in busy) < min(o.ended_at for o in full), outcomes
    assert {entry.server for entry in balancer.session_log(len(outcomes))} == {"gpu0", "gpu1"}, balancer.log()


def test_haproxy_soft_stop_lets_the_answer_in_flight_finish(
    pair: tuple[list[ServerProcess], int], tmp_path: Path
) -> None:
    """SIGUSR1 (the compose file's stop_signal): HAProxy stops accepting at once, finishes the answer
    in flight, then exits 0."""
    servers, expected = pair
    long_text = " ".join([TEXT] * 4)
    reference = one_request(servers[0].port, long_text)
    assert reference.kind == "full", reference
    with Balancer([address(s) for s in servers], tmp_path) as balancer:
        balancer.wait_for_status({"gpu0": "UP", "gpu1": "UP"}, 20)

        async def go() -> tuple[Outcome, Outcome]:
            answer = Outcome(0)
            in_flight = asyncio.ensure_future(request(balancer.port, long_text, answer, reference.samples))
            while not answer.samples and not in_flight.done():
                await asyncio.sleep(0.01)
            balancer.soft_stop()
            await asyncio.sleep(0.3)
            late = await request(balancer.port, TEXT, Outcome(1), expected)
            return await in_flight, late

        answer, late = asyncio.run(go())
        assert answer.kind == "full" and answer.samples == reference.samples, answer
        assert late.kind == "refused", late
        assert balancer.proc is not None and balancer.proc.wait(10) == 0, balancer.log()


def test_a_frozen_replica_is_marked_down_and_its_client_is_not_left_hanging(
    pair: tuple[list[ServerProcess], int], tmp_path: Path
) -> None:
    """A replica that stops responding but keeps its connections open (SIGSTOP: a wedged driver, a
    stuck host): the describe check times out, HAProxy marks it down and closes its clients'
    connections (on-marked-down shutdown-sessions) instead of leaving them waiting for the idle
    timeout; new requests go to the other replica, and the frozen one rejoins once it answers again."""
    servers, expected = pair
    long_text = " ".join([TEXT] * 4)
    with Balancer([address(s) for s in servers], tmp_path) as balancer:
        balancer.wait_for_status({"gpu0": "UP", "gpu1": "UP"}, 20)

        async def go() -> tuple[Outcome, str, float, list[Outcome]]:
            stuck = Outcome(0)
            in_flight = asyncio.ensure_future(request(balancer.port, long_text, stuck, None))
            while not stuck.samples and not in_flight.done():
                await asyncio.sleep(0.01)
            name = (await asyncio.to_thread(balancer.sessions))[stuck.port]
            frozen = servers[int(name[-1])]
            os.kill(frozen.pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            try:
                down_at = await asyncio.to_thread(balancer.wait_for_status, {name: "DOWN"}, 60)
                print(f"\nscale: frozen {name} marked down {down_at - frozen_at:.1f} s after it froze")
                await in_flight
                after = [await request(balancer.port, TEXT, Outcome(i), expected) for i in (1, 2)]
            finally:
                os.kill(frozen.pid, signal.SIGCONT)
            return stuck, name, down_at, after

        stuck, name, down_at, after = asyncio.run(go())
        assert stuck.kind == "closed" and stuck.samples > 0, stuck
        assert stuck.ended_at >= down_at - 0.5, (stuck, down_at)  # closed by the mark-down
        assert [o.kind for o in after] == ["full", "full"], after
        other = "gpu1" if name == "gpu0" else "gpu0"
        assert [e.server for e in balancer.session_log(3)[-2:]] == [other, other], balancer.log()
        balancer.wait_for_status({name: "UP"}, 30)


def test_a_drained_replica_finishes_its_answer_and_gets_no_new_ones(
    pair: tuple[list[ServerProcess], int], tmp_path: Path
) -> None:
    """The documented way to take one replica out without cutting answers (docs/scaling.md): set it
    to drain on the admin socket, wait until it has no connection, then stop it."""
    servers, expected = pair
    long_text = " ".join([TEXT] * 4)
    with Balancer([address(s) for s in servers], tmp_path) as balancer:
        balancer.wait_for_status({"gpu0": "UP", "gpu1": "UP"}, 20)

        async def go() -> tuple[str, Outcome, list[Outcome]]:
            answer = Outcome(0)
            in_flight = asyncio.ensure_future(request(balancer.port, long_text, answer, None))
            while not answer.samples and not in_flight.done():
                await asyncio.sleep(0.01)
            name = (await asyncio.to_thread(balancer.sessions))[answer.port]
            assert await asyncio.to_thread(balancer.command, f"set server wyoming/{name} state drain") == "\n"
            others = [await request(balancer.port, TEXT, Outcome(i), expected) for i in (1, 2)]
            return name, await in_flight, others

        name, answer, others = asyncio.run(go())
        assert answer.kind == "full", answer
        assert [o.kind for o in others] == ["full", "full"], others
        entries = {entry.client_port: entry.server for entry in balancer.session_log(3)}
        assert entries[answer.port] == name and {entries[o.port] for o in others} == {"gpu0", "gpu1"} - {name}
        row = balancer.servers()[name]
        assert row["status"] == "DRAIN" and row["scur"] == "0", row


# -- the compose file and the Kubernetes example, checked without Docker or a cluster --------------

COMPOSE = ROOT / "docker" / "compose.scale.yaml"
SCALING_DOC = ROOT / "docs" / "scaling.md"


def _seconds(text: str) -> float:
    """A duration as HAProxy or Compose writes it: 500ms, 10s, 5m, 1h (bare numbers: seconds)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    assert match, f"not a duration: {text!r}"
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * scale


def _config_default(variable: str) -> str:
    """The default docker/haproxy.cfg gives ``"${VARIABLE-default}"``."""
    found = re.findall(rf'"\$\{{{variable}-([^}}]*)\}}"', CONFIG.read_text(encoding="utf-8"))
    assert len(found) >= 1 and len(set(found)) == 1, (variable, found)
    return found[0]


def test_compose_file_runs_one_replica_per_gpu_behind_haproxy() -> None:
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    replicas = {name: service for name, service in services.items() if name.startswith("ishowtts-")}
    assert len(replicas) == len(SERVER_NAMES)
    gpus = []
    for name, service in replicas.items():
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"], name
        gpus.extend(device["device_ids"])
        assert "ports" not in service, f"{name}: replicas are reached through HAProxy only"
        volumes = [str(v) for v in service["volumes"]]
        assert "ishowtts-data:/data" in volumes, name  # model and prepared-voice cache, shared
        assert any(v.endswith(":/data/voices:ro") for v in volumes), name  # voices, read-only
        assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert parse_server_args([*entrypoint_args(), *service["command"]]).device == "cuda"
    assert len(gpus) == len(set(gpus)) == len(replicas), f"one GPU per replica: {gpus}"
    assert "ishowtts-data" in compose["volumes"]

    # HAProxy's defaults name exactly these services, in order.
    assert [_config_default(f"ISHOWTTS_REPLICA_{i}") for i in range(len(SERVER_NAMES))] == [
        f"{name}:10200" for name in sorted(replicas)
    ]
    haproxy = services["haproxy"]
    assert "10200:10200" in haproxy["ports"] and _config_default("ISHOWTTS_BIND") == ":10200"
    mount = "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
    assert mount in haproxy["volumes"] and (COMPOSE.parent / "haproxy.cfg").resolve() == CONFIG
    assert set(haproxy["depends_on"]) == set(replicas), "stopped before the replicas"
    assert haproxy["stop_signal"] == "SIGUSR1"  # soft stop: answers in flight finish
    assert _seconds(haproxy["stop_grace_period"]) > _seconds(_config_default("ISHOWTTS_HARD_STOP_AFTER"))
    assert haproxy["environment"]["ISHOWTTS_HAPROXY_SOCKET"].startswith("ipv4@127.0.0.1:")

    # HAProxy accepts the file as the compose file runs it (the replica names resolve later: a
    # warning here, not an error).
    env = {**os.environ, "ISHOWTTS_HAPROXY_SOCKET": haproxy["environment"]["ISHOWTTS_HAPROXY_SOCKET"]}
    for variable in list(env):
        if variable.startswith("ISHOWTTS_") and variable != "ISHOWTTS_HAPROXY_SOCKET":
            del env[variable]
    check = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(CONFIG)], env=env, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_kubernetes_example_probes_with_the_health_check() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", SCALING_DOC.read_text(encoding="utf-8"), re.DOTALL)
    documents = [doc for block in blocks for doc in yaml.safe_load_all(block) if doc]
    kinds = {doc["kind"]: doc for doc in documents}
    deployment, service = kinds["Deployment"], kinds["Service"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert parse_server_args([*entrypoint_args(), *container["args"]]).device == "cuda"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[:3] == ["/opt/venv/bin/python", "-m", "wyoming_ishowtts.healthcheck"], probe
        args = healthcheck_parser().parse_args(command[3:])
        assert args.uri == "tcp://127.0.0.1:10200", probe
        # Kubernetes' default probe timeout is 1 s: it must not kill the check before it can answer.
        assert container[probe].get("timeoutSeconds", 1) > args.timeout, probe
        # Traffic waits for a loaded model; a pod still loading (or downloading) it is not restarted.
        assert args.ready == (probe == "readinessProbe"), probe
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/data/voices"]["readOnly"] is True and "/data" in mounts
    assert pod["terminationGracePeriodSeconds"] > int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 10200
