"""The one thread that owns the engine, and the fair scheduler in front of it.

Why one thread: the model is large and not safe to call from several threads at once, and the event
loop must never block (Home Assistant gives ``describe`` one second).  Why a scheduler instead of a
lock: with a lock, one long answer makes every other client wait for all of it.  Here each client
connection has a FIFO of text segments, and the worker takes one engine step (one text chunk, a
``ChunkJob``) from each client in turn.  With ``max_batch`` > 1 it takes the next job of up to that
many clients at once and samples those with the same step count in one batch (``Engine.run_batch``): the
same audio as one at a time, and more audio per second where one job leaves the hardware idle.  A
client whose audio is not being consumed (it stopped reading) is skipped until it catches up, so the
server never buffers more than ``max_buffered_pieces`` pieces per request.

Results travel to the event loop with ``call_soon_threadsafe`` into the request's asyncio queue;
nothing on the loop side ever waits on a thread primitive.  The worker owns a request from open to finish:
``open_request``, ``submit`` its segments, ``close_input`` when no more come (or ``abort`` it with an error),
and read its audio with ``async for piece in worker.pieces(request)``, which ends with a typed failure
(`RequestFailed`) if it failed and gives the request's queue slot back itself; ``drop_client`` gives back
the slots of a client that is gone.  Only this module writes a result queue or frees a slot
(tests/test_layering.py checks it), so the readers (responder.py, studio/speech.py) cannot get it wrong.

With an audio cache (audio_cache.py) a second thread, the cache thread, looks up each new segment before
the engine sees it: a hit is sent by that thread as soon as it is its request's turn (the segments of a
request keep their order), also while the engine is busy with someone else's chunk; only misses reach the
scheduler, and a miss's audio is stored by the cache thread once its segment is complete. Two segments with
one key cost one synthesis: the second waits for the first's entry. Warm-up phrases (``--warm-phrases``)
are a request of the worker's own that runs only when no client has anything for the engine, and gives way
at its next sampler step when one does.  (Request, segment, synthesis, chunk, job and
piece each mean one thing; README.md defines them.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..engine.hardware import sticky_cuda_error
from ..errors import BusyError, EngineFailure, IShowTTSError, SynthesisCancelled
from ..text import language_of, spoken
from ..voices.cache import PreparedVoices, VoiceEngine
from ..voices.folder import VoiceInfo, synthesis_options
from ..voices.registry import VoiceRegistry
from .audio_cache import AudioCache, VoiceDigests, segment_key

if TYPE_CHECKING:
    from ..engine import SynthesisOptions, Voice

_LOGGER = logging.getLogger(__name__)

ENGINE_THREAD = "engine-worker"
"""The engine worker thread's name: how the command line finds it still running at exit."""
CACHE_THREAD = "audio-cache"
WARM_CLIENT = -(2**63)
"""The client id of the warm-up phrases: no client's (Wyoming connections count up from 1, the studio down
from -1)."""
STALLED_READER_SECONDS = 1.0
"""A request whose backlog has been full this long waits for its client: a segment with its key does not
wait for it (a backlog full for a moment is only a client a piece behind)."""
VOICE_CHECK_SECONDS = 2.0
"""How often an idle cache thread looks whether the voices changed (to drop the entries of deleted ones)."""


# What the worker needs from the engine (engine/core.py's Engine, Synthesis and ChunkJob have it) ----------


class ScheduledJob(Protocol):
    """One engine step of one request (`ChunkJob`): jobs with equal `batch_key` may share a batch."""

    @property
    def batch_key(self) -> tuple[int, float, float]: ...

    @property
    def nfe(self) -> int: ...


class ScheduledSynthesis(Protocol):
    """One request's way through its text (`Synthesis`): jobs out, waves back in, pieces to play."""

    @property
    def finished(self) -> bool: ...

    def next_job(self) -> ScheduledJob | None: ...

    def deliver(self, job: Any, waves: list[np.ndarray], spent: float) -> list[np.ndarray]:
        """`job` is one this synthesis made; `waves` what `run_batch` returned for it."""
        ...


class SynthesisEngine(VoiceEngine, Protocol):
    """The engine as the worker drives it (`Engine`): prepare voices, begin requests, run their jobs in
    batches, warm up. Only the worker thread calls it."""

    def begin(
        self,
        voice: Voice,
        text: str,
        options: SynthesisOptions,
        cancelled: Callable[[], bool] | None = None,
    ) -> ScheduledSynthesis: ...

    def run_batch(self, jobs: Sequence[Any]) -> list[list[np.ndarray]]:
        """Sample the `jobs` (equal `batch_key`, each from its request's synthesis) in one batch."""
        ...

    @property
    def audio_identity(self) -> str:
        """What besides the voice, the text and its options decides the audio (part of the cache key)."""
        ...

    @property
    def warm_up_needs_voices(self) -> bool:
        """Whether `warm_up` records per-voice layouts (CUDA graphs, compiled steps): then every voice is
        prepared before it, so that their lengths and options are covered."""
        ...

    def warm_up(
        self,
        voice: Voice | None = None,
        *,
        options: SynthesisOptions | None = None,
        others: Sequence[tuple[Voice, SynthesisOptions]] = (),
        max_requests: int = 1,
    ) -> None: ...


# Items a request's result queue carries ---------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """Audio for one engine text chunk (float32, 24 kHz mono)."""

    segment: int
    audio: np.ndarray
    compute: float = 0.0
    """Seconds the engine spent sampling and vocoding for this piece (a batch's time counts for each
    request in it); what a request's real-time factor is measured from (metrics.py)."""
    cached: bool = False
    """The whole segment's audio, from the audio cache (no engine step)."""


@dataclass(frozen=True)
class SegmentDone:
    segment: int


@dataclass(frozen=True)
class SegmentFailed:
    segment: int
    code: str
    text: str


@dataclass(frozen=True)
class Abort:
    """Posted by `EngineWorker.abort`: stop the request with this error."""

    code: str
    text: str


@dataclass(frozen=True)
class Close:
    """Posted by `EngineWorker.close_input`: all segments of the request have been submitted."""


ResultItem = Piece | SegmentDone | SegmentFailed | Abort | Close


class RequestFailed(Exception):
    """How `EngineWorker.pieces` ends for a request that failed: the error's stable code (errors.py) and its
    words, for the client."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{text} ({code})")
        self.code = code
        self.text = text


@dataclass(eq=False)
class Request:
    """One response (one audio-start … audio-stop).  Created and read on the event loop."""

    client_id: int
    voice: VoiceInfo
    streaming: bool
    results: asyncio.Queue[ResultItem] = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    input_closed: asyncio.Event = field(default_factory=asyncio.Event)  # no more segments come
    submitted: int = 0
    chars: int = 0  # of the text submitted
    started: float | None = None  # time.monotonic() when its first text reached the worker
    # Pieces posted but not yet taken by the responder; guarded by the worker's lock.
    backlog: int = 0
    full_since: float | None = None  # time.monotonic() since when the backlog has been full; same lock
    finished: bool = False
    label: str = ""
    warm: bool = False  # the worker's own warm-up phrases: nothing is posted, no client waits


# A segment's way past the audio cache (guarded by the worker's lock).
_PENDING = "pending"  # not looked up yet (the cache thread's)
_HIT = "hit"  # its audio is in `cached`: the cache thread sends it on its request's turn
_MISS = "miss"  # the engine's
_WAITING = "waiting"  # its key is being synthesized for another segment: looked up again when stored


@dataclass(eq=False)
class _Segment:
    request: Request
    index: int
    text: str
    synthesis: ScheduledSynthesis | None = None
    pieces: int = 0
    unreported: float = 0.0  # engine seconds not yet carried by a piece
    state: str = _MISS
    key: str | None = None  # its audio cache key; None: not cached (no cache, a transient voice)
    voice_digest: str = ""
    cached: np.ndarray | None = None  # a hit's audio
    heard: list[np.ndarray] | None = None  # a miss's pieces so far, to store when complete
    heard_samples: int = 0
    begun: bool = False  # chosen for the engine (under the lock): no longer the cache thread's to look up


class EngineWorker:
    """Owns the engine thread.  Public methods are called from the event loop and never block."""

    def __init__(
        self,
        load_engine: Callable[[], SynthesisEngine],
        registry: VoiceRegistry,
        prepared: PreparedVoices,
        loop: asyncio.AbstractEventLoop,
        *,
        warm_up: bool = True,
        max_queued_per_client: int,
        max_queued_total: int,
        max_buffered_pieces: int,
        max_batch: int = 1,
        on_fatal: Callable[[BaseException], None] | None = None,
        audio_cache: AudioCache | None = None,
        warm_phrases: Sequence[str] = (),
        normalize: bool = True,
    ) -> None:
        self._load_engine = load_engine
        self._warm_up = warm_up
        self._registry = registry
        self._prepared = prepared
        self._loop = loop
        self._max_per_client = max_queued_per_client
        self._max_total = max_queued_total
        self._max_backlog = max_buffered_pieces
        self._max_batch = max(1, max_batch)
        self._on_fatal = on_fatal

        self._cond = threading.Condition()
        # client id -> its segments in order; OrderedDict order is the round-robin order.
        self._queues: OrderedDict[int, deque[_Segment]] = OrderedDict()
        self._open: dict[int, set[Request]] = {}  # client id -> its requests not yet finished
        self._stopping = False
        self._abort_all = threading.Event()
        self.ready = threading.Event()
        self.engine: SynthesisEngine | None = None
        self._thread = threading.Thread(target=self._run, name=ENGINE_THREAD, daemon=True)

        self._cache = audio_cache
        self._warm_phrases = tuple(warm_phrases) if audio_cache is not None else ()
        self._normalize = normalize
        self._digests = VoiceDigests()
        # Guarded by _cond: segments to look up, complete misses to store, key -> the segment synthesizing
        # it, key -> the segments waiting for its entry.
        self._lookups: deque[_Segment] = deque()
        self._writes: deque[tuple[_Segment, np.ndarray]] = deque()
        self._inflight: dict[str, _Segment] = {}
        self._waiters: dict[str, list[_Segment]] = {}
        self._cache_thread: threading.Thread | None = None
        if audio_cache is not None:
            self._cache_thread = threading.Thread(target=self._cache_run, name=CACHE_THREAD, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if self._cache_thread is not None:
            self._cache_thread.start()

    def stop(self, cancel: bool = True) -> None:
        """Ask the thread to end; with ``cancel`` running syntheses stop at their next sampler step."""
        with self._cond:
            self._stopping = True
            self._queues.pop(WARM_CLIENT, None)  # warm-up phrases are not worth a later exit
            if cancel:
                self._abort_all.set()
            self._cond.notify_all()

    def join(self, timeout: float | None) -> bool:
        """Wait for the thread; if it is still busy (e.g. writing a voice cache file on a slow disk),
        remove what it was half-way through writing, since the process is about to exit under it."""
        started = time.monotonic()
        self._thread.join(timeout)
        if self._cache_thread is not None and self._cache_thread.is_alive():
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            self._cache_thread.join(left)  # its entries are written atomically: never a half one
        if self._thread.is_alive():
            self._prepared.discard_partial()
            return False
        return True

    # -- requests (event-loop side) ----------------------------------------------------------------

    def open_request(self, client_id: int, voice: VoiceInfo, streaming: bool) -> Request:
        with self._cond:
            if self._stopping:
                raise BusyError("the server is shutting down")
            if len(self._open.get(client_id, ())) >= self._max_per_client:
                raise BusyError(f"too many requests queued on this connection (limit {self._max_per_client})")
            if sum(len(requests) for requests in self._open.values()) >= self._max_total:
                raise BusyError(f"server busy: {self._max_total} requests already queued")
            request = Request(client_id=client_id, voice=voice, streaming=streaming)
            self._open.setdefault(client_id, set()).add(request)
        return request

    def submit(self, request: Request, text: str) -> None:
        with self._cond:
            if request.finished or request.cancelled.is_set():
                return
            segment = _Segment(request=request, index=request.submitted, text=text)
            if self._cache is not None:
                segment.state = _PENDING
                self._lookups.append(segment)
            request.submitted += 1
            request.chars += len(text)
            if request.started is None:
                request.started = time.monotonic()
            self._queues.setdefault(request.client_id, deque()).append(segment)
            self._cond.notify_all()

    def close_input(self, request: Request) -> None:
        """No more segments come for the request: its answer ends once those submitted are done."""
        if not request.input_closed.is_set():
            request.input_closed.set()
            request.results.put_nowait(Close())

    def abort(self, request: Request, error: IShowTTSError) -> None:
        """End the request with `error` (its reader sees `RequestFailed` at once); its queued work is
        cancelled. Input may still come (a stream is read to its end): `close_input` says when it ends."""
        self.cancel_request(request)
        request.results.put_nowait(Abort(error.code, str(error)))

    async def pieces(self, request: Request) -> AsyncGenerator[Piece, None]:
        """The request's audio, piece by piece as the engine makes it, until the segments submitted are done
        and its input is closed; a failure (a segment's, or an `abort`) raises `RequestFailed` at once.

        However it ends (done, failed, or its reader gone: use ``contextlib.aclosing``), the request's queue
        slot is free before the reader sees the end, so a client that asks again as soon as it reads the end
        of an answer is not refused as over its limit.
        """
        done = 0
        try:
            while not (request.input_closed.is_set() and done >= request.submitted):
                item = await request.results.get()
                if isinstance(item, Piece):
                    self.taken(request)
                    yield item
                elif isinstance(item, SegmentDone):
                    done += 1
                elif isinstance(item, (SegmentFailed, Abort)):
                    raise RequestFailed(item.code, item.text)
        finally:
            self._finish_request(request)

    @staticmethod
    async def end_of_input(request: Request) -> None:
        """Wait until no more input comes for the request (`close_input`): a stream that failed still ends
        only when its client says so, or its idle timeout does."""
        await request.input_closed.wait()

    def taken(self, request: Request) -> None:
        """The reader has consumed one piece: the request may be scheduled again."""
        with self._cond:
            request.backlog = max(0, request.backlog - 1)
            if request.backlog < self._max_backlog:
                request.full_since = None
            self._cond.notify_all()

    def cancel_request(self, request: Request) -> None:
        with self._cond:
            request.cancelled.set()
            self._cond.notify_all()

    def _finish_request(self, request: Request) -> None:
        """Release the request's queue slot (idempotent); unfinished work is cancelled."""
        with self._cond:
            request.cancelled.set()
            if request.finished:
                return
            request.finished = True
            requests = self._open.get(request.client_id)
            if requests is not None:
                requests.discard(request)
                if not requests:
                    del self._open[request.client_id]
            self._cond.notify_all()

    def cancel_client(self, client_id: int) -> None:
        """Cancel the queued and running work of every request of the client (their slots stay taken)."""
        with self._cond:
            for segment in self._queues.get(client_id, ()):
                segment.request.cancelled.set()
            self._cond.notify_all()

    def drop_client(self, client_id: int) -> None:
        """The client is gone: everything it asked for is cancelled and every slot it held is free, also of
        requests whose answer was never read."""
        self.cancel_client(client_id)
        with self._cond:
            requests = list(self._open.get(client_id, ()))
        for request in requests:
            self._finish_request(request)

    # -- worker thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            engine = self._load_engine()
            self.engine = engine
            self._prepare_and_warm_up(engine)
        except BaseException as err:
            if isinstance(err, IShowTTSError):  # a message for the user, not a bug: no traceback
                _LOGGER.error("Model could not be loaded: %s", err)
            else:
                _LOGGER.exception("Model could not be loaded")
            if self._on_fatal is not None:
                self._loop.call_soon_threadsafe(self._on_fatal, err)
            return
        self.ready.set()
        _LOGGER.info("Model ready")
        self._queue_warm_phrases()

        while True:
            segments = self._next_segments()
            if segments is None:
                break
            self._round(engine, segments)
        _LOGGER.debug("Engine worker stopped")

    def _queue_warm_phrases(self) -> None:
        """Queue the warm-up phrases for the default voice, as the worker's own request (`WARM_CLIENT`):
        each one already cached is a hit and costs nothing, the others run while the engine is idle."""
        if not self._warm_phrases:
            return
        try:
            voice = self._registry.default()
        except Exception as err:
            _LOGGER.warning("Warm-up phrases not said: %s", err)
            return
        request = Request(client_id=WARM_CLIENT, voice=voice, streaming=False, warm=True)
        request.label = "warm-up phrases"
        for phrase in self._warm_phrases:
            # Put into words as a client's plain synthesize of it would be, so that the client's hits.
            if self._normalize and voice.normalize:
                phrase = spoken(phrase, language_of(None, voice.languages))
            if phrase.strip():
                self.submit(request, phrase.strip())
        _LOGGER.info("%d warm-up phrases queued for voice %s", len(self._warm_phrases), voice.name)

    def _prepare_and_warm_up(self, engine: SynthesisEngine) -> None:
        """Prepare the default voice and warm up with it, so that the first request is not the slow one.

        When the engine records per-voice layouts (CUDA graphs, compiled steps), every other installed voice
        is prepared first too, so the warm-up covers their lengths, speeds and guidance, and every batch
        size `max_batch` allows. A voice that cannot be prepared is skipped (its requests fail with their
        own error). The engine itself turns a failed recording into an eager engine; a warm-up that still
        fails means the engine cannot synthesize, and stops the server rather than have it report ready
        and fail every request.
        """
        voice, options, default = None, None, None
        try:
            self._registry.scan()
            default = self._registry.default()
            voice = self._prepared.get(engine, default)
            options = synthesis_options(default)
        except Exception as err:
            _LOGGER.warning("Default voice not prepared at start-up: %s", err)
        if not self._warm_up:
            return
        others = []
        if engine.warm_up_needs_voices:
            for info in self._registry.voices.values():
                if info is default or (info.builtin is not None and not info.reference_audio.is_file()):
                    continue  # the built-in clip is downloaded on first use, not for a warm-up
                try:
                    others.append((self._prepared.get(engine, info), synthesis_options(info)))
                except Exception as err:
                    _LOGGER.warning("Voice %s not prepared at start-up: %s", info.name, err)
        engine.warm_up(voice, options=options, others=others, max_requests=self._max_batch)

    def _next_segments(self) -> list[_Segment] | None:
        """The head segments of up to ``max_batch`` clients, round-robin; wait while nothing is runnable.
        None when the worker should stop."""
        to_close: list[_Segment] = []
        with self._cond:
            while True:
                if self._stopping and (self._abort_all.is_set() or not self._queues):
                    chosen: list[_Segment] | None = None
                    break
                chosen = []
                for client_id in list(self._queues):
                    queue = self._queues[client_id]
                    while queue and queue[0].request.cancelled.is_set():
                        to_close.append(queue.popleft())
                    if not queue:
                        del self._queues[client_id]
                        continue
                    head = queue[0]
                    if head.state == _WAITING and self._owner_stalled(head):
                        self._stop_waiting(head)  # synthesized for it instead: never wait on a stalled reader
                    if head.state != _MISS or head.request.warm:
                        continue  # the cache thread's, or (warm-up phrases) only when nobody else waits
                    if head.request.backlog >= self._max_backlog:
                        continue  # its client is not reading; do not run ahead of it
                    if not self._claim(head):
                        continue  # another segment is synthesizing the same audio: it waits for that
                    head.begun = True
                    chosen.append(head)
                    if len(chosen) >= self._max_batch:
                        break
                if not chosen and not to_close:
                    warm = self._queues.get(WARM_CLIENT)
                    if warm and warm[0].state == _MISS and self._claim(warm[0]):
                        warm[0].begun = True
                        chosen.append(warm[0])
                if chosen or to_close:
                    break
                # Waiting segments are looked at again when their key's owner may have stalled.
                self._cond.wait(STALLED_READER_SECONDS if self._waiters else None)
        for segment in to_close:
            self._close(segment)
        if not chosen and to_close and not self._stopping:
            return self._next_segments()
        return chosen

    def _close(self, segment: _Segment) -> None:
        if segment.synthesis is not None:
            _LOGGER.info("Cancelled %s segment %d", segment.request.label, segment.index)
            segment.synthesis = None
        self._release(segment, stored=False)

    def _claim(self, segment: _Segment) -> bool:
        """Under the lock: whether `segment` may be synthesized now. False (and it waits) while another
        segment synthesizes the same key: two clients asking for one new text cost one synthesis."""
        key = segment.key
        if key is None or segment.begun:  # not cached, or under way already
            return True
        owner = self._inflight.get(key)
        if owner is None or owner is segment:
            self._inflight[key] = segment
            return True
        if self._owner_stalled(segment):
            return True  # synthesized alongside, unowned: its entry is stored too, whichever ends first
        segment.state = _WAITING
        self._waiters.setdefault(key, []).append(segment)
        return False

    def _owner_stalled(self, segment: _Segment) -> bool:
        """Under the lock: whether the segment synthesizing `segment`'s key waits for a client that does not
        read (its backlog is full): then `segment` is not made to wait for that client."""
        owner = self._inflight.get(segment.key) if segment.key is not None else None
        if owner is None or owner is segment or owner.request.full_since is None:
            return False
        return time.monotonic() - owner.request.full_since >= STALLED_READER_SECONDS

    def _stop_waiting(self, segment: _Segment) -> None:
        """Under the lock: `segment` waits no more for its key's entry; the engine's now."""
        segment.state = _MISS
        waiting = self._waiters.get(segment.key or "", [])
        if segment in waiting:
            waiting.remove(segment)

    def _release(self, segment: _Segment, stored: bool) -> None:
        """`segment` no longer synthesizes its key: the segments waiting for it are looked up again when
        its entry was `stored`, else one of them synthesizes it."""
        key = segment.key
        if key is None:
            return
        with self._cond:
            if self._inflight.get(key) is not segment:
                return
            del self._inflight[key]
            for waiter in self._waiters.pop(key, ()):
                if waiter.state != _WAITING:
                    continue
                waiter.state = _PENDING if stored else _MISS
                if stored:
                    self._lookups.append(waiter)
            if stored:  # and those that missed before it was stored, not yet begun, look again
                for queue in self._queues.values():
                    for other in queue:
                        if other.key == key and other.state == _MISS and not other.begun:
                            other.state = _PENDING
                            self._lookups.append(other)
            self._cond.notify_all()

    def _remove(self, segment: _Segment) -> None:
        with self._cond:
            queue = self._queues.get(segment.request.client_id)
            if queue and queue[0] is segment:
                queue.popleft()
                if not queue:
                    del self._queues[segment.request.client_id]
                self._cond.notify_all()  # the request's next segment may be a hit for the cache thread

    def _post(self, request: Request, item: ResultItem) -> None:
        if request.warm:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed during shutdown
            self._loop.call_soon_threadsafe(request.results.put_nowait, item)

    def _cancelled(self, request: Request) -> bool:
        return request.cancelled.is_set() or self._abort_all.is_set()

    def _device_check(self, err: BaseException) -> None:
        """A CUDA error that leaves the GPU unusable for this process (an illegal address, a device-side
        assert: `sticky_cuda_error`) would fail every later request the same way while the server kept
        saying "ready". It is fatal instead: logged, readiness drops, the worker stops taking work, and the
        server exits non-zero (`on_fatal`), so that a supervisor starts a fresh process."""
        reason = sticky_cuda_error(err)
        if reason is None or not self.ready.is_set():
            return
        self.ready.clear()
        _LOGGER.critical(
            "The GPU is unusable for this process (%s): stopping, so that a supervisor restarts the server",
            reason,
        )
        self.stop(cancel=True)
        if self._on_fatal is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed during shutdown
                self._loop.call_soon_threadsafe(self._on_fatal, err)

    def _fail(self, segment: _Segment, err: Exception) -> None:
        request = segment.request
        self._remove(segment)
        segment.synthesis = None
        self._release(segment, stored=False)
        code = getattr(err, "code", None)
        if not isinstance(code, str):
            code = EngineFailure.code
            _LOGGER.error("Synthesis failed for %s", request.label, exc_info=err)
        else:
            _LOGGER.warning("Synthesis failed for %s: %s", request.label, err)
        self._post(request, SegmentFailed(segment.index, code, str(err) or type(err).__name__))
        self._device_check(err)  # after the post: the request hears its error before the server stops

    def _job(self, engine: SynthesisEngine, segment: _Segment) -> ScheduledJob | None:
        """The segment's next chunk job, starting its synthesis first if needed; None if it failed."""
        request = segment.request
        try:
            if segment.synthesis is None:
                voice = self._prepared.get(engine, request.voice)
                options = synthesis_options(request.voice)
                _LOGGER.debug("%s segment %d: start %r", request.label, segment.index, segment.text[:80])
                cancelled = self._warm_gives_way if request.warm else lambda: self._cancelled(request)
                segment.synthesis = engine.begin(voice, segment.text, options, cancelled=cancelled)
                segment.heard = [] if segment.key is not None else None
                segment.heard_samples = 0
            job = segment.synthesis.next_job()
        except Exception as err:
            self._fail(segment, err)
            return None
        if job is None:  # nothing left to sample (not reached: finished segments leave in _deliver)
            self._finish(segment)
        return job

    def _finish(self, segment: _Segment) -> None:
        self._remove(segment)
        segment.synthesis = None
        _LOGGER.debug(
            "%s segment %d: done after %d pieces", segment.request.label, segment.index, segment.pieces
        )
        self._post(segment.request, SegmentDone(segment.index))
        heard, segment.heard = segment.heard, None
        if heard:  # the cache thread stores it, then lets the segments waiting for it look it up
            with self._cond:
                self._writes.append((segment, np.concatenate(heard)))
                self._cond.notify_all()
        else:
            self._release(segment, stored=False)

    def _add_to_backlog(self, request: Request) -> None:
        """Under the lock: one more piece posted and not yet taken."""
        request.backlog += 1
        if request.backlog >= self._max_backlog and request.full_since is None:
            request.full_since = time.monotonic()

    def _warm_gives_way(self) -> bool:
        """A warm-up phrase's cancel check, at each sampler step: it stops (to run again later) as soon as a
        client has a segment for the engine, or the server stops."""
        if self._abort_all.is_set() or self._stopping:
            return True
        with self._cond:
            for client_id, queue in self._queues.items():
                head = queue[0] if queue else None
                if (
                    client_id != WARM_CLIENT
                    and head is not None
                    and head.state in (_MISS, _PENDING)  # a lookup may be a miss: do not wait to know
                    and head.request.backlog < self._max_backlog
                    and not head.request.cancelled.is_set()
                ):
                    return True
        return False

    def _round(self, engine: SynthesisEngine, segments: list[_Segment]) -> None:
        """One chunk job for each chosen segment; jobs with the same step count and guidance share a batch."""
        groups: dict[tuple[int, float, float], list[tuple[_Segment, ScheduledJob]]] = {}
        for segment in segments:
            job = self._job(engine, segment)
            if job is not None:
                groups.setdefault(job.batch_key, []).append((segment, job))
        for group in groups.values():
            self._run_group(engine, group)
        # Everyone else goes first next time, including clients that arrived while this round ran: moving
        # the served clients to the back only now keeps a newcomer from queueing behind them.
        with self._cond:
            for segment in segments:
                if segment.request.client_id in self._queues:
                    self._queues.move_to_end(segment.request.client_id)

    def _run_group(self, engine: SynthesisEngine, group: list[tuple[_Segment, ScheduledJob]]) -> None:
        started = time.monotonic()
        failure: Exception | None = None
        try:
            results = engine.run_batch([job for _, job in group])
        except SynthesisCancelled:
            for segment, _ in group:
                segment.synthesis = None
                self._release(segment, stored=False)
                if segment.request.warm and not self._stopping:
                    with self._cond:
                        segment.begun = False
                    _LOGGER.debug("Warm-up phrase %d gives way to a client", segment.index)
                    continue  # stays first in its queue: it starts again when the engine is idle
                self._remove(segment)
                _LOGGER.info("Cancelled %s segment %d", segment.request.label, segment.index)
            return
        except Exception as err:
            failure = err
        if failure is not None:
            if len(group) > 1 and sticky_cuda_error(failure) is None:
                # One request's trouble (a text too long for the GPU's memory, say) must not fail the
                # others: each runs alone, with the noise it already has, so its audio is unchanged. The
                # retries run after the handler, with the exception dropped: its traceback would keep the
                # failed batch's tensors (on a GPU, its memory) alive through them.
                reason = str(failure) or type(failure).__name__  # a string: log records keep their args
                failure = None
                _LOGGER.warning(
                    "A batch of %d failed (%s); running its requests one by one", len(group), reason
                )
                for item in group:
                    self._run_group(engine, [item])
                return
            for segment, _ in group:  # one, or a batch the GPU failed for good
                self._fail(segment, failure)
            return
        spent = time.monotonic() - started
        if len(group) > 1:
            _LOGGER.debug("Batch of %d requests (%d steps) in %.2fs", len(group), group[0][1].nfe, spent)
        for (segment, job), waves in zip(group, results, strict=True):
            self._deliver(segment, job, waves, spent)

    def _deliver(self, segment: _Segment, job: ScheduledJob, waves: list[np.ndarray], spent: float) -> None:
        request = segment.request
        if self._cancelled(request) or segment.synthesis is None:
            return  # picked up and closed on the next scheduling pass
        segment.unreported += spent
        for audio in segment.synthesis.deliver(job, waves, spent):
            segment.pieces += 1
            if segment.heard is not None:
                segment.heard_samples += len(audio)
                if self._cache is not None and self._cache.fits(segment.heard_samples):
                    segment.heard.append(np.asarray(audio, dtype=np.float32))
                else:
                    segment.heard = None  # too long to keep
            if request.warm:
                continue
            with self._cond:
                self._add_to_backlog(request)
            _LOGGER.debug(
                "%s segment %d: piece %d synthesized (%d samples)",
                request.label,
                segment.index,
                segment.pieces,
                len(audio),
            )
            compute, segment.unreported = segment.unreported, 0.0
            self._post(request, Piece(segment.index, np.asarray(audio, dtype=np.float32), compute))
        if segment.synthesis.finished:
            self._finish(segment)

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {
                "open_requests": {client: len(requests) for client, requests in self._open.items()},
                "queued_segments": {k: len(v) for k, v in self._queues.items() if k != WARM_CLIENT},
            }

    def cache_stats(self) -> dict[str, Any] | None:
        """The audio cache's hits, misses, entries, bytes and bound; None when it is off."""
        return None if self._cache is None else dict(self._cache.stats())

    # -- cache thread ------------------------------------------------------------------------------

    def _cache_run(self) -> None:
        """Look segments up, send hits, store misses, drop the entries of voices gone; until the worker
        stops (with everything it still had to store written)."""
        cache = self._cache
        assert cache is not None
        try:
            cache.load()
        except OSError as err:
            _LOGGER.error("Audio cache %s cannot be read: %s", cache.folder, err)
        voices_seen: object = None
        while True:
            with self._cond:
                while True:
                    ready = self.ready.is_set()
                    writes = list(self._writes)
                    self._writes.clear()
                    lookups: list[_Segment] = []
                    if ready:
                        lookups = list(self._lookups)
                        self._lookups.clear()
                    served = self._send_hits()
                    stop = self._stopping and (
                        self._abort_all.is_set() or not (self._queues or self._writes or self._lookups)
                    )
                    if writes or lookups or served or stop:
                        break
                    if ready and self._registry.voices is not voices_seen:
                        break
                    self._cond.wait(VOICE_CHECK_SECONDS)
            for segment, audio in writes:
                stored = cache.put(segment.key or "", segment.voice_digest, audio)
                if stored:
                    _LOGGER.debug("Audio cache: stored %s (%d samples)", (segment.key or "")[:12], len(audio))
                self._release(segment, stored)
            engine = self.engine
            if lookups and engine is not None:
                for segment in lookups:
                    self._look_up(cache, engine, segment)
            if stop and not writes:
                break
            voices = self._registry.voices
            if ready and voices is not voices_seen:
                voices_seen = voices
                self._retain(cache, voices.values())
        _LOGGER.debug("Audio cache thread stopped")

    def _send_hits(self) -> int:
        """Under the lock: send the hits whose turn it is (first in their queue, their client reading), each
        as the one piece of its segment; how many. Posted before the lock is let go, so that the engine
        cannot post the request's next segment first."""
        served = 0
        for client_id in list(self._queues):
            queue = self._queues[client_id]
            while queue and queue[0].state == _HIT:
                head = queue[0]
                if head.request.cancelled.is_set():
                    break  # the worker closes it
                if head.request.backlog >= self._max_backlog and not head.request.warm:
                    break
                queue.popleft()
                served += 1
                audio, head.cached = head.cached, None
                if not head.request.warm:
                    self._add_to_backlog(head.request)
                    assert audio is not None
                    self._post(head.request, Piece(head.index, audio, 0.0, cached=True))
                    self._post(head.request, SegmentDone(head.index))
            if not queue:
                del self._queues[client_id]
        if served:
            self._cond.notify_all()
        return served

    def _look_up(self, cache: AudioCache, engine: SynthesisEngine, segment: _Segment) -> None:
        request = segment.request
        info = request.voice
        digest = None if info.transient or request.cancelled.is_set() else self._digests.get(info)
        key = audio = None
        if digest is not None:
            key = segment_key(engine.audio_identity, digest, segment.text)
            audio = cache.get(key)
            _LOGGER.debug(
                "%s segment %d: audio cache %s (%s) %r",
                request.label,
                segment.index,
                "hit" if audio is not None else "miss",
                key[:12],
                segment.text[:80],
            )
        with self._cond:
            segment.key, segment.voice_digest = key, digest or ""
            if audio is not None:
                segment.state, segment.cached = _HIT, audio
            else:
                segment.state = _MISS
            self._cond.notify_all()

    def _retain(self, cache: AudioCache, voices: Any) -> None:
        """Drop the entries of voices no longer installed as they were (deleted, or edited)."""
        digests = {d for info in voices if not info.transient and (d := self._digests.get(info)) is not None}
        if digests:  # no voice at all is more likely a folder not mounted yet than every voice deleted
            cache.retain(digests)
