"""The real server (``server.app.Service``) in a background thread of the test process, on loopback.

Tests that inject faults into the engine (an exception, CUDA out-of-memory, NaN) or watch its
internals (pieces synthesized for a client that stopped reading, the worker's queue slots) need the
engine in their own process.  The unmodified service runs with the engine the test already loaded
(its ``engine_factory``), so the test can patch it; the test reads the worker's counters and stops the
server exactly as SIGTERM does (``Service.request_stop``). With ``studio=StudioSettings(...)`` the service also
serves the voice studio page, as ``--http-port`` makes it do.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import free_port

from wyoming_ishowtts.engine import Engine, EngineSettings
from wyoming_ishowtts.server.app import Service
from wyoming_ishowtts.server.settings import ServerSettings
from wyoming_ishowtts.server.worker import EngineWorker
from wyoming_ishowtts.voices.registry import VoiceRegistry


@dataclass
class InProcessServer:
    uri: str
    port: int
    settings: ServerSettings
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    service: Service
    status: list[int] = field(default_factory=list)

    @property
    def worker(self) -> EngineWorker:
        return self.service.worker

    @property
    def registry(self) -> VoiceRegistry:
        return self.service.registry

    @property
    def studio_url(self) -> str:
        """The voice studio page (the service was started with ``studio=``)."""
        site = self.service.studio
        assert site is not None, "this server has no studio"
        return f"http://127.0.0.1:{site.port}/"

    def stop(self, timeout: float = 30.0) -> int:
        """Stop as SIGTERM would."""
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.service.request_stop)
            self.thread.join(timeout)
        assert not self.thread.is_alive(), "the server did not stop"
        return self.status[0]


async def _probe(port: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await writer.wait_closed()


@contextmanager
def run_server(
    engine: Engine | Callable[[], Engine],
    voices_dir: Path | tuple[Path, ...],
    cache_dir: Path,
    *,
    wait_ready: bool = True,
    **limits: Any,
) -> Iterator[InProcessServer]:
    """Serve ``engine`` on a free loopback port until the block ends; ``limits`` are ServerSettings fields.

    ``engine`` may be the factory the service calls on its worker thread (a load that takes as long as the
    test wants); with ``wait_ready=False`` the block starts once the server listens, model loaded or not."""
    port = free_port()
    uri = f"tcp://127.0.0.1:{port}"
    settings = ServerSettings(
        uri=uri,
        voices_dirs=voices_dir if isinstance(voices_dir, tuple) else (voices_dir,),
        default_voice="tone",
        builtin_voice=False,
        cache_dir=cache_dir,
        **limits,
    )
    services: list[Service] = []
    loops: list[asyncio.AbstractEventLoop] = []
    status: list[int] = []

    async def main() -> int:
        loops.append(asyncio.get_running_loop())
        factory = engine if callable(engine) and not isinstance(engine, Engine) else lambda: engine
        service = Service(settings, EngineSettings(device="cpu", warmup=False), engine_factory=factory)
        services.append(service)
        return await service.run()

    thread = threading.Thread(target=lambda: status.append(asyncio.run(main())), name="server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (services and (services[0].worker.ready.is_set() or not wait_ready)):
        assert thread.is_alive() and time.monotonic() < deadline, "the in-process server did not start"
        time.sleep(0.02)
    # The listener starts in the service's task; wait until it accepts.
    while True:
        try:
            asyncio.run(asyncio.wait_for(_probe(port), 1))
            break
        except OSError:
            assert time.monotonic() < deadline, "the in-process server does not listen"
            time.sleep(0.02)
    running = InProcessServer(uri, port, settings, loops[0], thread, services[0], status)
    try:
        yield running
    finally:
        running.stop()
