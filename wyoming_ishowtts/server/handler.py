"""One Wyoming event handler per client connection: dispatch, the stream state machine, the queue of
answers.

The handler reads events (protocol.py: the hardened framing) and answers ``describe``/``ping``
itself, at once; synthesis is handed to the engine worker and its audio is written by a per-connection
responder task (responder.py writes each answer), so reading never waits for audio.  That is what lets the server notice a client that disconnects mid-answer (its work
is cancelled), answer ``describe`` on a connection that is also receiving audio, and enforce the
idle timeout of a stream.

Every problem a client can cause is answered with a Wyoming ``error`` event that carries a ``code``.
Home Assistant's readers ignore ``error`` events and have no read timeout, so each failed request
must also END in a way they notice:

- a stream still ends with ``synthesize-stopped`` (what HA's streaming reader waits for), and the
  connection stays usable;
- a plain ``synthesize`` ends with the ``error`` (after ``audio-stop`` if audio had started) and then
  the connection is closed, as wyoming-piper does.  HA's non-streaming reader waits for ``audio-stop``
  or a closed connection; an ``audio-stop`` with no audio would instead be taken as a successful,
  silent answer.  Requests a client queued on the same connection after the failed one are dropped
  with it (Home Assistant opens one connection per request).

Other mistakes (a malformed or unknown event, a chunk outside a stream) answer no request: they get
the ``error`` and the connection stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from ..errors import (
    BusyError,
    EmptyTextError,
    IShowTTSError,
    MalformedEventError,
    NoStreamError,
    StreamAlreadyStartedError,
    StreamIdleError,
    TextTooLongError,
    UnknownEventError,
    VoiceError,
)
from ..readiness import program_description
from ..text import SpokenStream, language_of, spoken
from ..voices.folder import VoiceInfo
from ..voices.registry import VoiceRegistry
from .metrics import RequestLog
from .protocol import BadEvent, FramingLost, is_synthesize, read_event, requested_voice
from .responder import ResponseWriter
from .settings import ServerSettings
from .worker import EngineWorker, Request

_LOGGER = logging.getLogger(__name__)
SHUTTING_DOWN = "the server is shutting down"

PROGRAM_NAME = "ishowtts"
F5_ATTRIBUTION = Attribution(name="F5-TTS (SWivid)", url="https://github.com/SWivid/F5-TTS")
USER_VOICE_ATTRIBUTION = Attribution(name="local voice", url="")

_client_ids = itertools.count(1)
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Refusal:
    """A plain ``synthesize`` refused while earlier answers on the connection were still being written:
    its error goes out in order, after them, and then the connection closes."""

    error: IShowTTSError


@dataclass
class ServerState:
    """What all handlers share; built once by app.py's `Service`."""

    settings: ServerSettings
    registry: VoiceRegistry
    worker: EngineWorker
    version: str
    requests: RequestLog = field(default_factory=RequestLog)  # recent requests' speed (metrics.py)
    connections: int = 0
    handlers: set[IShowTtsEventHandler] = field(default_factory=set)
    stopping: bool = False  # the server finishes the answers asked for and takes no new ones
    # The text front end's one thread: putting a text into words takes a few ms, off the event loop, and one
    # thread (started by the first text, kept) does it for every connection in turn, so the server's
    # threads and memory do not grow with how many clients speak at once.
    text_thread: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="text")
    )


@dataclass
class _Stream:
    """State of an open ``synthesize-start`` … ``synthesize-stop`` stream."""

    request: Request | None  # None: rejected at start; input is swallowed until stop
    speech: SpokenStream = field(default_factory=SpokenStream)  # deltas -> spoken sentences (text/)
    chars: int = 0
    failed: bool = False
    idle: asyncio.TimerHandle | None = None


class IShowTtsEventHandler(AsyncEventHandler):
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: ServerState
    ) -> None:
        super().__init__(reader, writer)
        self.state = state
        self.settings = state.settings
        self.client_id = next(_client_ids)
        self._write_lock = asyncio.Lock()
        self._pending: asyncio.Queue[Request | _Refusal] = asyncio.Queue()
        self._open: list[Request] = []
        self._responder: asyncio.Task[None] | None = None
        self._stream: _Stream | None = None
        self._closed = False
        self._reading = False
        self._ending = False  # a plain synthesize failed: the connection closes after its error
        self._request_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        state.handlers.add(self)

    # -- connection --------------------------------------------------------------------------------

    async def run(self) -> None:
        """A socket connection's life (wyoming's listeners call this): the connection limit, the events,
        and at the end of input (the client is gone) everything it asked for cancelled."""
        state = self.state
        refusal = None
        if state.stopping:
            refusal = BusyError(SHUTTING_DOWN)
        elif state.connections >= self.settings.max_connections:
            refusal = BusyError(f"too many connections (limit {self.settings.max_connections})")
        if refusal is not None:
            _LOGGER.warning("Refusing connection %d: %s", self.client_id, refusal)
            await self._error(refusal)
            state.handlers.discard(self)
            self.writer.close()
            return
        state.connections += 1
        try:
            await self.read_events()
        finally:
            state.connections -= 1
            await self.disconnect()
            self.writer.close()

    async def read_events(self) -> None:
        """Like the base class's loop, but survives malformed events; returns at the end of input, when the
        framing is lost, or when `stop` is called."""
        _LOGGER.debug("Client %d connected", self.client_id)
        self._reading = True
        try:
            while self._reading:
                try:
                    event = await read_event(self.reader)
                except BadEvent as err:
                    await self._refuse(err, asked_for_audio=is_synthesize(err.event_type))
                    continue
                except FramingLost as err:
                    await self._error(MalformedEventError(f"{err}; closing the connection"))
                    break
                if event is None:
                    break
                if self._ending:
                    continue  # a refused request closes the connection once earlier answers are out
                if not await self.handle_event(event):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    async def stop(self) -> None:
        """The server is stopping: read no further (what was asked for is cancelled by `disconnect`)."""
        self._reading = False
        await super().stop()

    async def disconnect(self) -> None:
        """Cancel everything this client asked for; other clients are not affected."""
        if self._closed:
            return
        self._closed = True
        self.state.handlers.discard(self)
        self._clear_stream()
        self.state.worker.drop_client(self.client_id)
        self._open.clear()
        if self._responder is not None:
            self._responder.cancel()
        _LOGGER.debug("Client %d disconnected", self.client_id)

    @property
    def answering(self) -> bool:
        """Answers asked for on this connection are not all written yet."""
        return bool(self._open)

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) until the answers asked for are written; the server is stopping."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._open and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    # -- events ------------------------------------------------------------------------------------

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._dispatch(event)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            await self._refuse(
                MalformedEventError(f"malformed {event.type!r} event: {err!r}"),
                asked_for_audio=is_synthesize(event.type),
            )
        return True

    async def _refuse(self, error: IShowTTSError, asked_for_audio: bool) -> None:
        """Answer a bad event with ``error``; for a plain ``synthesize``, then close (module docstring).

        A plain ``synthesize`` outside a stream asked for audio, so its failure must end in a way every
        reader notices.  The responder writes its error in turn, after any earlier answers on this
        connection (none is cut short, and the error is not read as part of another answer), then
        closes the connection; events that arrive meanwhile are not acted on.
        """
        if not asked_for_audio or self._stream is not None:
            await self._error(error)
            return
        self._ending = True
        self._pending.put_nowait(_Refusal(error))
        self._ensure_responder()

    def _ensure_responder(self) -> None:
        if self._responder is None or self._responder.done():
            self._responder = asyncio.create_task(self._respond_all(), name=f"responder-{self.client_id}")

    async def _dispatch(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self._send((await self._info()).event())
            _LOGGER.debug("Client %d: describe answered", self.client_id)
        elif Ping.is_type(event.type):
            await self._send(Pong(text=Ping.from_event(event).text).event())
        elif Synthesize.is_type(event.type):
            voice = requested_voice(event)
            await self._on_synthesize(replace(Synthesize.from_event(event), voice=voice))
        elif SynthesizeStart.is_type(event.type):
            voice = requested_voice(event)
            await self._on_stream_start(replace(SynthesizeStart.from_event(event), voice=voice))
        elif SynthesizeChunk.is_type(event.type):
            await self._on_stream_chunk(SynthesizeChunk.from_event(event))
        elif SynthesizeStop.is_type(event.type):
            await self._on_stream_stop()
        else:
            await self._error(UnknownEventError(f"unexpected event type {event.type!r}"))

    async def _info(self) -> Info:
        voices = await asyncio.to_thread(self.state.registry.scan)
        tts_voices = [
            TtsVoice(
                name=info.name,
                attribution=(
                    Attribution(name=info.builtin.attribution_name, url=info.builtin.attribution_url)
                    if info.builtin is not None
                    else USER_VOICE_ATTRIBUTION
                ),
                installed=True,
                description=info.description or info.name,
                version=None,
                languages=list(info.languages),
            )
            for info in voices.values()
        ]
        program = TtsProgram(
            name=PROGRAM_NAME,
            attribution=F5_ATTRIBUTION,
            installed=True,
            description=program_description(self.state.worker.ready.is_set()),
            version=self.state.version,
            voices=tts_voices,
            supports_synthesize_streaming=self.settings.streaming,
        )
        return Info(tts=[program])

    async def _resolve_voice(self, voice: SynthesizeVoice | None) -> VoiceInfo:
        registry = self.state.registry
        name = voice.name if voice is not None else None
        language = voice.language if voice is not None else None
        if name is not None and not isinstance(name, str):
            raise ValueError("voice name must be a string")
        if language is not None and not isinstance(language, str):
            raise ValueError("voice language must be a string")
        try:
            return registry.resolve(name, language)
        except VoiceError:
            await asyncio.to_thread(registry.scan)  # maybe added since the last describe
            return registry.resolve(name, language)

    async def _in_text_thread(self, call: Callable[..., _T], *args: str) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self.state.text_thread, call, *args)

    def _normalizes(self, voice: VoiceInfo) -> bool:
        return self.settings.normalize and voice.normalize

    def _open_request(self, voice: VoiceInfo, streaming: bool) -> Request:
        """Raises BusyError past the worker's limits (per connection and in total) or once the server stops."""
        if self.state.stopping:
            raise BusyError(SHUTTING_DOWN)
        request = self.state.worker.open_request(self.client_id, voice, streaming)
        request.label = f"client {self.client_id} request {next(self._request_ids)}"
        self._open.append(request)
        self._pending.put_nowait(request)
        self._ensure_responder()
        return request

    async def _on_synthesize(self, synthesize: Synthesize) -> None:
        if self._stream is not None:
            # The backward-compatibility copy of a streamed text: already being spoken.
            self._touch_stream()
            return
        text = synthesize.text
        if not isinstance(text, str):
            raise ValueError("'text' must be a string")
        if not text.strip():
            await self._refuse(
                EmptyTextError("nothing to synthesize: the text is empty"), asked_for_audio=True
            )
            return
        if len(text) > self.settings.max_text_chars:
            await self._refuse(
                TextTooLongError(
                    f"text has {len(text)} characters; the limit is {self.settings.max_text_chars}"
                ),
                asked_for_audio=True,
            )
            return
        try:
            voice = await self._resolve_voice(synthesize.voice)
        except VoiceError as err:
            await self._refuse(err, asked_for_audio=True)
            return
        said = text.strip()
        if self._normalizes(voice):
            language = language_of(synthesize.voice.language if synthesize.voice else None, voice.languages)
            said = await self._in_text_thread(spoken, text, language)
            if not said:
                await self._refuse(
                    EmptyTextError("nothing to synthesize: the text has no words to speak"),
                    asked_for_audio=True,
                )
                return
        try:
            request = self._open_request(voice, streaming=False)
        except BusyError as err:
            await self._refuse(err, asked_for_audio=True)
            return
        _LOGGER.info("%s: synthesize %d characters with voice %s", request.label, len(text), voice.name)
        _LOGGER.debug("%s: spoken as %r", request.label, said[:200])
        self.state.worker.submit(request, said)
        self.state.worker.close_input(request)

    async def _on_stream_start(self, start: SynthesizeStart) -> None:
        if self._stream is not None:
            self._touch_stream()
            await self._error(StreamAlreadyStartedError("synthesize-start received while a stream is open"))
            return
        try:
            voice = await self._resolve_voice(start.voice)
            request: Request | None = self._open_request(voice, streaming=True)
        except (VoiceError, BusyError) as err:
            self._stream = _Stream(request=None, failed=True)
            self._touch_stream()
            await self._error(err)
            return
        assert request is not None
        _LOGGER.info("%s: stream started with voice %s", request.label, voice.name)
        language = language_of(start.voice.language if start.voice else None, voice.languages)
        self._stream = _Stream(request=request, speech=SpokenStream(language, self._normalizes(voice)))
        self._touch_stream()

    async def _on_stream_chunk(self, chunk: SynthesizeChunk) -> None:
        stream = self._stream
        if stream is None:
            await self._error(NoStreamError("synthesize-chunk received without synthesize-start"))
            return
        if not isinstance(chunk.text, str):
            raise ValueError("'text' must be a string")
        self._touch_stream()
        if stream.failed or stream.request is None:
            return
        stream.chars += len(chunk.text)
        if stream.chars > self.settings.max_text_chars:
            stream.failed = True
            too_long = TextTooLongError(
                f"streamed text exceeds the limit of {self.settings.max_text_chars} characters"
            )
            self.state.worker.abort(stream.request, too_long)
            return
        for sentence in await self._in_text_thread(stream.speech.add, chunk.text):
            _LOGGER.debug("%s: sentence %r", stream.request.label, sentence[:80])
            self.state.worker.submit(stream.request, sentence)

    async def _on_stream_stop(self) -> None:
        stream = self._stream
        if stream is None:
            await self._error(NoStreamError("synthesize-stop received without synthesize-start"))
            return
        self._clear_stream()
        request = stream.request
        if request is None:
            await self._send(SynthesizeStopped().event())
            return
        worker = self.state.worker
        if not stream.failed:
            for sentence in await self._in_text_thread(stream.speech.finish):
                worker.submit(request, sentence)
            if request.submitted == 0:
                worker.abort(request, EmptyTextError("nothing to synthesize: the text is empty"))
        worker.close_input(request)

    def _touch_stream(self) -> None:
        """(Re)arm the idle timer so an abandoned stream cannot hold a queue slot forever."""
        stream = self._stream
        if stream is None:
            return
        if stream.idle is not None:
            stream.idle.cancel()
        stream.idle = asyncio.get_running_loop().call_later(
            self.settings.stream_idle_timeout, self._stream_timed_out, stream
        )

    def _stream_timed_out(self, stream: _Stream) -> None:
        if self._stream is not stream:
            return
        self._stream = None
        idle = StreamIdleError(
            f"stream idle for {self.settings.stream_idle_timeout:g} s without synthesize-stop"
        )
        _LOGGER.warning("Client %d: %s", self.client_id, idle)
        if stream.request is None:
            task = asyncio.create_task(self._error(idle))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self.state.worker.abort(stream.request, idle)
        self.state.worker.close_input(stream.request)

    def _clear_stream(self) -> None:
        if self._stream is not None and self._stream.idle is not None:
            self._stream.idle.cancel()
        self._stream = None

    # -- responses ---------------------------------------------------------------------------------

    async def _respond_all(self) -> None:
        while self._open or not self._pending.empty():
            request = await self._pending.get()
            if isinstance(request, _Refusal):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self._error(request.error)
                self._end_connection()
                return
            try:
                ended = await ResponseWriter(
                    request, self.state.worker, self.settings, self._send, self.state.requests
                ).write()
            except (ConnectionError, RuntimeError) as err:
                _LOGGER.debug("%s: client went away (%s)", request.label, err)
                self.state.worker.cancel_client(self.client_id)
                return
            finally:
                if request in self._open:
                    self._open.remove(request)
            if ended:
                self._end_connection()
                return

    def _end_connection(self) -> None:
        """Close after a failed plain request: drop what else this client queued; the reader sees the end."""
        self._ending = True
        self.state.worker.cancel_client(self.client_id)
        for request in self._open:
            self.state.worker.cancel_request(request)
        self.writer.close()

    async def _error(self, error: IShowTTSError) -> None:
        await self._send_error(error.code, str(error))

    async def _send_error(self, code: str, text: str) -> None:
        _LOGGER.info("client %d: error %s: %s", self.client_id, code, text)
        await self._send(Error(text=text, code=code).event())

    async def _send(self, event: Event) -> None:
        """Serialize writes (responder and reader both write) and wait for the socket to drain."""
        if self._closed:
            return
        async with self._write_lock:
            await async_write_event(event, self.writer)
