"""The real server (``__main__.serve``) in a background thread of the test process, on loopback.

Tests that inject faults into the engine (an exception, CUDA out-of-memory, NaN) or watch its
internals (pieces synthesized for a client that stopped reading, the worker's queue slots) need the
engine in their own process.  Rather than adding test hooks to production code, this runs the
unmodified ``serve()`` coroutine with two test-side substitutions: ``Engine.load`` returns an engine
the test already loaded (so it can be patched), and the ``EngineWorker`` and wyoming ``AsyncServer``
instances that ``serve()`` creates are recorded, so the test can read the worker's counters and stop
the server exactly as SIGTERM does (wyoming's own stop-signal callback).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from wyoming.server import AsyncServer

from wyoming_ishowtts.engine import Engine, EngineSettings
from wyoming_ishowtts.server import worker as worker_module
from wyoming_ishowtts.server.cli import serve
from wyoming_ishowtts.server.settings import ServerSettings
from wyoming_ishowtts.server.worker import EngineWorker


@dataclass
class InProcessServer:
    uri: str
    port: int
    settings: ServerSettings
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    worker: EngineWorker
    server: AsyncServer
    status: list[int] = field(default_factory=list)

    def stop(self, timeout: float = 30.0) -> int:
        """Stop as SIGTERM would: wyoming's stop-signal callback on the server's loop."""
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.server._handle_stop_signal, self.loop)
            self.thread.join(timeout)
        assert not self.thread.is_alive(), "the server did not stop"
        return self.status[0]


async def _probe(port: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await writer.wait_closed()


@contextmanager
def run_server(engine: Engine, voices_dir: Path, cache_dir: Path, **limits: Any) -> Iterator[InProcessServer]:
    """Serve ``engine`` on a free loopback port until the block ends; ``limits`` are ServerSettings fields."""
    port = free_port()
    uri = f"tcp://127.0.0.1:{port}"
    settings = ServerSettings(
        uri=uri,
        voices_dirs=(voices_dir,),
        default_voice="tone",
        builtin_voice=False,
        cache_dir=cache_dir,
        **limits,
    )
    engine_settings = EngineSettings(device="cpu", warmup=False)
    workers: list[EngineWorker] = []
    servers: list[AsyncServer] = []
    original_from_uri = AsyncServer.from_uri

    class RecordedWorker(EngineWorker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            workers.append(self)

    def recorded_from_uri(uri: str) -> AsyncServer:
        server = original_from_uri(uri)
        servers.append(server)
        return server

    status: list[int] = []
    loops: list[asyncio.AbstractEventLoop] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Engine, "load", lambda settings: engine)
        patch.setattr(worker_module, "EngineWorker", RecordedWorker)
        patch.setattr(AsyncServer, "from_uri", staticmethod(recorded_from_uri))

        async def main() -> int:
            loops.append(asyncio.get_running_loop())
            return await serve(settings, engine_settings)

        thread = threading.Thread(
            target=lambda: status.append(asyncio.run(main())), name="server", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 60
        while not (workers and servers and workers[0].ready.is_set()):
            assert thread.is_alive() and time.monotonic() < deadline, "the in-process server did not start"
            time.sleep(0.02)
        # serve() creates the listening socket in a task; wait until it accepts.
        while True:
            try:
                asyncio.run(asyncio.wait_for(_probe(port), 1))
                break
            except OSError:
                assert time.monotonic() < deadline, "the in-process server does not listen"
                time.sleep(0.02)
    # The substitutions end once the server is up: later code (and tests) get the real classes.
    running = InProcessServer(uri, port, settings, loops[0], thread, workers[0], servers[0], status)
    try:
        yield running
    finally:
        running.stop()
