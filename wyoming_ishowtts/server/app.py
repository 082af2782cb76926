"""The server's life: voices, the engine worker, the listener, zeroconf, and a shutdown it owns.

`Service.run` listens at once and loads the model in the worker thread, so ``describe`` is answered while
it loads (Home Assistant allows one second). It returns the process's exit status:

- SIGTERM or SIGINT (`request_stop`), or the end of input on ``stdio://``: take no new connection or
  request (they are answered ``busy``), let the answers already asked for finish, then stop reading, cancel
  what is still running and stop the engine thread; exit 0. All of it within ``--shutdown-timeout`` of the
  signal (the engine gets at least a second after the cancel, to end its sampler step);
- a model that cannot be loaded, a GPU that a CUDA error left unusable (the worker's ``on_fatal``), or a
  voice studio (``--http-port``) that cannot listen: exit 1.

With ``--http-port`` the voice studio page (studio/) is served on the same loop, beside the Wyoming listener,
and stops with it (previews still speaking are cut off).

Only the public API of the `wyoming` library is used: the TCP and Unix listeners' ``start``/``stop``, and
for ``stdio://`` its stdin/stdout streams with this server's own event handler, so a stdio client gets the
same hardened reading and the same answers as a socket client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from wyoming.event import async_get_stdin, async_get_stdout
from wyoming.server import AsyncServer

from .. import __version__
from ..engine.core import Engine
from ..engine.options import EngineSettings
from ..voices.builtin import BUILTIN_VOICE
from ..voices.cache import PreparedVoices
from ..voices.registry import VoiceRegistry
from .audio_cache import AudioCache, cache_folder
from .handler import IShowTtsEventHandler, ServerState
from .settings import ServerSettings, StudioSettings
from .worker import EngineWorker, SynthesisEngine

if TYPE_CHECKING:
    from .studio.app import StudioSite

_LOGGER = logging.getLogger(__name__)

EngineFactory = Callable[[], SynthesisEngine]
"""Makes the engine; called once, in the worker thread (loading takes seconds to minutes)."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
MIN_ENGINE_STOP = 1.0
"""Seconds the engine thread gets after the cancel even when the answers used up --shutdown-timeout: a
sampler step ends first, and exiting under a running torch call can abort the process."""


class Service:
    """One server: build it on the event loop that will run it, then `run` it."""

    def __init__(
        self,
        settings: ServerSettings,
        engine_settings: EngineSettings,
        engine_factory: EngineFactory | None = None,
    ) -> None:
        self.settings = settings
        self._engine_settings = engine_settings
        self._engine_factory = engine_factory or partial(Engine.load, engine_settings)
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._deadline: float | None = None  # loop time by which the process should have stopped
        self.registry = VoiceRegistry(
            settings.voices_dirs,
            default_voice=settings.default_voice,
            builtin=BUILTIN_VOICE if settings.builtin_voice else None,
            cache_dir=settings.cache_dir,
        )
        self._fatal: asyncio.Future[BaseException] = self._loop.create_future()
        self.worker = EngineWorker(
            self._engine_factory,
            self.registry,
            PreparedVoices(settings.cache_dir),
            self._loop,
            warm_up=engine_settings.warmup,
            max_queued_per_client=settings.max_queued_per_client,
            max_queued_total=settings.max_queued_total,
            max_buffered_pieces=settings.max_buffered_pieces,
            max_batch=settings.batch_requests,
            on_fatal=self._on_fatal,
            audio_cache=(
                AudioCache(cache_folder(settings.cache_dir), settings.audio_cache_bytes)
                if settings.audio_cache_bytes
                else None
            ),
            warm_phrases=settings.warm_phrases,
            normalize=settings.normalize,
        )
        self.state = ServerState(
            settings=settings, registry=self.registry, worker=self.worker, version=__version__
        )
        self.studio: StudioSite | None = None  # the voice studio page, once it listens (--http-port)

    def request_stop(self) -> None:
        """What SIGTERM and SIGINT do. Call it on the service's loop (``call_soon_threadsafe`` from elsewhere)."""
        self._stop.set()

    def _on_fatal(self, err: BaseException) -> None:
        if not self._fatal.done():
            self._fatal.set_result(err)

    async def run(self) -> int:
        """Serve until stopped; the exit status (0, or 1 when the engine could not load or serve)."""
        voices = await asyncio.to_thread(self.registry.scan)
        _LOGGER.info("Voices: %s", ", ".join(voices) or "none")
        self._install_stop_signals()
        _LOGGER.info("Loading model %s", self._engine_settings.model)
        self.worker.start()
        try:
            if self.settings.studio is not None:
                try:
                    await self._start_studio(self.settings.studio)
                except OSError as err:
                    studio = self.settings.studio
                    _LOGGER.error(
                        "The voice studio cannot listen on %s:%d: %s", studio.host, studio.port, err
                    )
                    return 1
            await self._advertise()
            if urlparse(self.settings.uri).scheme == "stdio":
                await self._serve_stdio()
            else:
                await self._serve_socket()
        finally:
            self._remove_stop_signals()
            if self.studio is not None:
                await self.studio.stop()
            for handler in list(self.state.handlers):
                await handler.disconnect()
            self.state.text_thread.shutdown(wait=False)
            self.worker.stop(cancel=True)
            timeout = max(self._time_left(), MIN_ENGINE_STOP)
            if not await asyncio.to_thread(self.worker.join, timeout):
                _LOGGER.warning("Engine did not stop within %.1f s; exiting anyway", timeout)
        _LOGGER.info("Stopped")
        return 1 if self._fatal.done() else 0

    async def _start_studio(self, settings: StudioSettings) -> None:
        """Serve the voice studio page on this loop; raises OSError when its address cannot be used."""
        from .studio.app import Studio, StudioSite  # aiohttp is imported only when the studio is asked for

        engine = self._engine_settings
        studio = Studio(
            settings=settings,
            registry=self.registry,
            worker=self.worker,
            requests=self.state.requests,
            voices_dirs=self.settings.voices_dirs,
            cache_dir=self.settings.cache_dir,
            max_text_chars=self.settings.max_text_chars,
            normalize=self.settings.normalize,
            model=engine.model_dir.name if engine.model_dir is not None else engine.model,
            version=__version__,
        )
        site = StudioSite(studio)
        await site.start()
        self.studio = site

    async def _until_stop_or(self, *others: asyncio.Future[Any]) -> None:
        """Wait for a stop signal, a model that cannot load, or any of `others` to finish."""
        stop = asyncio.ensure_future(self._stop.wait())
        waiting: list[asyncio.Future[Any]] = [stop, self._fatal, *others]
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if self._fatal.done():
            _LOGGER.error(
                "Stopping: the model could not be loaded, or its GPU failed (%s)", self._fatal.result()
            )

    async def _serve_socket(self) -> None:
        server = AsyncServer.from_uri(self.settings.uri)
        await server.start(partial(IShowTtsEventHandler, state=self.state))
        _LOGGER.info("Listening on %s (Wyoming has no authentication)", self.settings.uri)
        try:
            await self._until_stop_or()
            await self._finish_answers()
        finally:
            await server.stop()  # closes the listener and every connection's reader

    async def _serve_stdio(self) -> None:
        """One client on stdin/stdout, which ends at the end of input or at a stop signal."""
        handler = IShowTtsEventHandler(await async_get_stdin(), await async_get_stdout(), state=self.state)
        _LOGGER.info("Serving on stdio://")
        reading = asyncio.ensure_future(handler.read_events())
        await self._until_stop_or(reading)
        if reading.done() and not self._stop.is_set():
            _LOGGER.info("End of input")
        await self._finish_answers()
        await handler.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await reading

    async def _finish_answers(self) -> None:
        """Stopping: no new connection or request; the answers asked for get until the deadline."""
        self._deadline = self._loop.time() + self.settings.shutdown_timeout
        if self._fatal.done():
            return
        self.state.stopping = True
        busy = [handler for handler in self.state.handlers if handler.answering]
        if busy:
            _LOGGER.info(
                "Stopping: finishing %d connection(s)' answers (at most %.1f s)", len(busy), self._time_left()
            )
            await asyncio.gather(*(handler.drain(self._time_left()) for handler in busy))

    def _time_left(self) -> float:
        return (
            max(0.0, self._deadline - self._loop.time())
            if self._deadline is not None
            else self.settings.shutdown_timeout
        )

    async def _advertise(self) -> None:
        settings = self.settings
        if settings.zeroconf_name is None:
            return
        parsed = urlparse(settings.uri)
        if parsed.scheme != "tcp" or parsed.port is None:
            _LOGGER.error("--zeroconf needs a tcp:// URI; not advertising")
            return
        from wyoming.zeroconf import HomeAssistantZeroconf  # the optional `zeroconf` extra

        zeroconf = HomeAssistantZeroconf(
            port=parsed.port, name=settings.zeroconf_name, host=settings.zeroconf_host
        )
        await zeroconf.register_server()
        _LOGGER.info("Advertised as %s over zeroconf", settings.zeroconf_name)

    def _install_stop_signals(self) -> None:
        for sig in STOP_SIGNALS:
            # Not where signals cannot be handled: another thread (the in-process tests), some platforms.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(sig, self.request_stop)

    def _remove_stop_signals(self) -> None:
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.remove_signal_handler(sig)


async def serve(
    settings: ServerSettings, engine_settings: EngineSettings, engine_factory: EngineFactory | None = None
) -> int:
    """Run a server until SIGTERM, SIGINT or the end of stdio input (exit status 0), or until the model
    cannot be loaded (1). `engine_factory` makes the engine (default: `Engine.load(engine_settings)`)."""
    return await Service(settings, engine_settings, engine_factory).run()
