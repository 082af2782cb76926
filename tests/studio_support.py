"""The Wyoming server and the voice studio on one event loop in a thread of the test process.

Until the server's ``serve()`` starts the studio itself (``--http-port``), this puts together the
same parts ``serve()`` uses: the voice registry, the engine worker (loading the tiny random model on
the CPU), the Wyoming handler on a loopback port and the studio's aiohttp app on another.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web
from conftest import free_port
from wyoming.server import AsyncServer

from wyoming_ishowtts.engine import EngineSettings
from wyoming_ishowtts.handler import IShowTtsEventHandler, ServerState
from wyoming_ishowtts.settings import ServerSettings
from wyoming_ishowtts.studio import app as studio_app
from wyoming_ishowtts.studio.settings import StudioSettings
from wyoming_ishowtts.voices import PreparedVoices, VoiceRegistry
from wyoming_ishowtts.worker import EngineWorker


@dataclass
class StudioServer:
    uri: str
    url: str
    loop: asyncio.AbstractEventLoop
    studio: studio_app.Studio
    worker: EngineWorker
    voices_dir: Path


@contextmanager
def studio_server(
    model_dir: Path,
    voices_dirs: tuple[Path, ...],
    cache_dir: Path,
    *,
    max_text_chars: int = 2000,
    **studio: Any,
) -> Iterator[StudioServer]:
    wyoming_port, http_port = free_port(), free_port()
    settings = ServerSettings(
        uri=f"tcp://127.0.0.1:{wyoming_port}",
        voices_dirs=voices_dirs,
        builtin_voice=False,
        cache_dir=cache_dir,
        max_text_chars=max_text_chars,
    )
    studio_settings = StudioSettings(port=http_port, **studio)
    engine_settings = EngineSettings(model_dir=model_dir, device="cpu", nfe=4, warmup=False, threads=1)
    started = threading.Event()
    parts: dict[str, Any] = {}
    stop: list[asyncio.Event] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        registry = VoiceRegistry(settings.voices_dirs, builtin=None, cache_dir=cache_dir)
        await asyncio.to_thread(registry.scan)
        worker = EngineWorker(
            engine_settings,
            registry,
            PreparedVoices(cache_dir),
            loop,
            max_queued_per_client=settings.max_queued_per_client,
            max_queued_total=settings.max_queued_total,
            max_buffered_pieces=settings.max_buffered_pieces,
        )
        state = ServerState(settings=settings, registry=registry, worker=worker, version="test")
        server = AsyncServer.from_uri(settings.uri)
        worker.start()
        studio_state = studio_app.Studio(
            settings=studio_settings,
            registry=registry,
            worker=worker,
            voices_dirs=settings.voices_dirs,
            max_text_chars=settings.max_text_chars,
            model=str(model_dir.name),
            version="test",
        )
        runner: web.AppRunner = await studio_app.start(studio_state)
        server_task = asyncio.create_task(server.run(partial(IShowTtsEventHandler, state=state)))
        done = asyncio.Event()
        stop.append(done)
        parts.update(loop=loop, worker=worker, studio=studio_state)
        started.set()
        await done.wait()
        await runner.cleanup()
        await server.stop()
        server_task.cancel()
        for handler in list(state.handlers):
            await handler.disconnect()
        worker.stop(cancel=True)
        await asyncio.to_thread(worker.join, 30)

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="studio-server", daemon=True)
    thread.start()
    assert started.wait(60), "the studio server did not start"
    worker: EngineWorker = parts["worker"]
    deadline = time.monotonic() + 120
    while not worker.ready.is_set():
        assert time.monotonic() < deadline, "the model did not load"
        time.sleep(0.05)
    running = StudioServer(
        uri=settings.uri,
        url=f"http://127.0.0.1:{http_port}/",
        loop=parts["loop"],
        studio=parts["studio"],
        worker=worker,
        voices_dir=voices_dirs[0],
    )
    try:
        yield running
    finally:
        running.loop.call_soon_threadsafe(stop[0].set)
        thread.join(60)
        assert not thread.is_alive(), "the studio server did not stop"
