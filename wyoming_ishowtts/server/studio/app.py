"""The voice studio: one page and a small JSON API, served on the Wyoming server's own event loop.

`Service` (server/app.py) starts it with ``--http-port``. Everything slow (decoding a clip, checking it,
writing a voice folder, scanning the voices) runs in a thread, and speech goes through the engine worker
like any Wyoming request, so the page never delays ``describe``. Routes are relative to wherever the page is
mounted, which is what lets it work behind Home Assistant's ingress proxy (``/api/hassio_ingress/<token>/``).

API (errors are ``{"error": {"code", "message", ...}}`` with a 4xx/5xx status; guard.py checks who asks):

    GET    api/status               model, device, precision, warm or loading, queue, recent requests
    GET    api/voices               every voice folder: ready or why not, its settings
    GET    api/voices/{name}/audio  the voice's reference clip
    POST   api/check                multipart: audio [, transcript] -> the clip checker's findings
    POST   api/voices               multipart: name, audio, transcript [, description, languages, speed]
    PATCH  api/voices/{name}        transcript, description, languages, speed (JSON or form)
    DELETE api/voices/{name}
    POST   api/speak                text and voice, or text, audio, transcript [, speed]:
                                    16-bit WAV streamed as it is synthesized
    POST   api/session              token -> a cookie, when the server has --http-token
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from aiohttp import web

from ...engine.options import SAMPLE_RATE
from ...errors import (
    BAD_REQUEST,
    MISSING_AUDIO,
    MISSING_VOICE,
    NAME_TAKEN,
    NO_AUDIO,
    NOT_FOUND,
    STUDIO_BUSY,
    STUDIO_EMPTY_TEXT,
    STUDIO_TEXT_TOO_LONG,
    STUDIO_UNKNOWN_VOICE,
    UNUSABLE_CLIP,
    WRITE_FAILED,
    WRONG_TOKEN,
    StudioError,
    VoiceError,
)
from ...text import language_of, spoken
from ...voices.check import Finding
from ...voices.folder import REFERENCE_AUDIO, VoiceInfo
from ...voices.registry import VoiceRegistry
from ..metrics import RequestLog
from ..pcm import float_to_int16_bytes
from ..settings import StudioSettings
from ..worker import EngineWorker
from . import catalog, forms
from .folders import VoiceFolders
from .guard import COOKIE, SETTINGS, errors, guard, protect_response, same_secret
from .speech import Speech, SynthesisFailed, wav_stream_header
from .uploads import Clip, decode_clip

_LOGGER = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# The page's files, read once: requests name one of these keys, never a path.
STATIC_TYPES = {"studio.js": "text/javascript", "studio.css": "text/css"}
PREVIEW_VOICE = "new voice"
_NO_CACHE = {"Cache-Control": "no-cache"}
SHUTDOWN_TIMEOUT = 2.0
MAX_UPLOADS = 4
SPOKEN_HEADER_CHARS = 1000
"""Request bodies read and decoded at once: each may hold --http-max-upload-mb and its decoded clip, so this
bounds the studio's memory however many clients send at once (a person uses one or two)."""


@dataclass
class Studio:
    """What the studio's handlers share; built once by the server (`Service`)."""

    settings: StudioSettings
    registry: VoiceRegistry
    worker: EngineWorker
    requests: RequestLog
    voices_dirs: tuple[Path, ...]
    cache_dir: Path
    """The server's --cache-dir: the studio removes the prepared files of the voices it deletes."""
    max_text_chars: int
    model: str
    version: str
    normalize: bool = True
    """The server's --no-normalize, inverted: previews are put into words as Wyoming requests are."""

    def __post_init__(self) -> None:
        if not self.voices_dirs:
            raise ValueError("the studio needs a voices folder to save voices in")
        self.folders = VoiceFolders(self.voices_dirs[0])
        self.write_lock = asyncio.Lock()
        self.uploads = asyncio.Semaphore(MAX_UPLOADS)


STUDIO = web.AppKey("studio", Studio)


class StudioSite:
    """The studio listening on its host and port; `stop` ends it (previews still speaking after
    `SHUTDOWN_TIMEOUT` are cut off: their handlers are cancelled, which releases their requests)."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self._runner = web.AppRunner(
            create_app(studio), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
        )

    async def start(self) -> None:
        """Listen; raises OSError when the address cannot be used."""
        studio = self.studio
        await asyncio.to_thread(studio.folders.remove_leftovers)
        await self._runner.setup()
        site = web.TCPSite(self._runner, studio.settings.host, studio.settings.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        for address in self._runner.addresses:
            host, port = address[0], address[1]
            shown = f"[{host}]" if ":" in host else host
            _LOGGER.info(
                "Voice studio on http://%s:%d/%s",
                shown,
                port,
                "" if studio.settings.token is None else " (token required)",
            )

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose for ``--http-port 0``)."""
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        await self._runner.cleanup()


def create_app(studio: Studio) -> web.Application:
    # Bodies are read as streams with their own limits (forms.read_form); this bounds the rest.
    app = web.Application(
        middlewares=[errors, guard], client_max_size=studio.settings.max_upload_bytes + 64 * 1024
    )
    app[STUDIO] = studio
    app[SETTINGS] = studio.settings
    app.on_response_prepare.append(protect_response)
    page = (STATIC_DIR / "index.html").read_bytes()
    static = {name: (STATIC_DIR / name).read_bytes() for name in STATIC_TYPES}

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers=_NO_CACHE)

    async def static_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in static:
            raise StudioError(NOT_FOUND, "No such file.")
        return web.Response(
            body=static[name], content_type=STATIC_TYPES[name], charset="utf-8", headers=_NO_CACHE
        )

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/voices", list_voices)
    app.router.add_get("/api/voices/{name}/audio", voice_audio)
    app.router.add_post("/api/check", check)
    app.router.add_post("/api/voices", create_voice)
    app.router.add_patch("/api/voices/{name}", update_voice)
    app.router.add_delete("/api/voices/{name}", delete_voice)
    app.router.add_post("/api/speak", speak)
    app.router.add_post("/api/session", session)
    return app


# -- handlers --------------------------------------------------------------------------------------


async def status(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    worker = studio.worker
    engine = worker.engine
    stats = worker.stats()
    dtype = getattr(engine, "dtype", None)
    device = getattr(engine, "device", None)
    body = {
        "version": studio.version,
        "model": studio.model,
        "device": None if device is None else str(device),
        "precision": None if dtype is None else _precision(dtype),
        "state": "ready" if worker.ready.is_set() else "loading",
        "queue": {
            "requests": sum(stats["open_requests"].values()),
            "segments": sum(stats["queued_segments"].values()),
        },
        "voices_dir": str(studio.folders.root),
        "token": studio.settings.token is not None,
        "limits": {
            "max_upload_bytes": studio.settings.max_upload_bytes,
            "max_clip_seconds": studio.settings.max_clip_seconds,
            "max_text_chars": studio.max_text_chars,
        },
        "recent": [record.as_json() for record in studio.requests.recent()],
        "audio_cache": worker.cache_stats(),
    }
    return web.json_response(body)


def _precision(dtype: object) -> str:
    name = str(dtype).removeprefix("torch.")
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(name, name)


async def list_voices(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    voices = await asyncio.to_thread(catalog.voice_list, studio.registry, studio.folders, studio.voices_dirs)
    return web.json_response({"voices": voices, "voices_dir": str(studio.folders.root)})


async def voice_audio(request: web.Request) -> web.StreamResponse:
    studio = request.app[STUDIO]
    name = request.match_info["name"]
    path = await asyncio.to_thread(catalog.reference_clip, name, studio.registry, studio.voices_dirs)
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", **_NO_CACHE})


async def check(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    async with _upload_slot(studio):
        form = await forms.read_form(request, studio.settings.max_upload_bytes)
        clip = await _clip(studio, form)
        text = form.get("transcript")
        transcript = forms.transcript(text) if text and text.strip() else None
        findings = await asyncio.to_thread(clip.check, transcript)
        report = _clip_report(clip, findings)
    return web.json_response(report)


async def create_voice(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    async with _upload_slot(studio):
        form = await forms.read_form(request, studio.settings.max_upload_bytes)
        name = forms.display_name(form.get("name"))
        slug = forms.slugify(name)
        transcript = forms.transcript(form.get("transcript"))
        description = forms.description(form.get("description")) or (name if name != slug else None)
        languages = forms.languages(form.get("languages"))
        speed = forms.speed(form.get("speed"))
        clip = await _clip(studio, form)
        findings = await asyncio.to_thread(clip.check, transcript)
        _refuse_unusable(clip, findings)
        wav = await asyncio.to_thread(clip.wav_bytes)
        report = _clip_report(clip, findings)
        del form, clip  # only the WAV is kept while the voice is written
    async with studio.write_lock:
        taken = await asyncio.to_thread(catalog.names_in_use, studio.registry, studio.voices_dirs)
        if slug.casefold() in taken:
            raise StudioError(
                NAME_TAKEN,
                f"A voice named '{slug}' already exists. Choose another name, or delete that voice first.",
            )
        options = {} if speed is None else {"speed": speed}
        try:
            folder = await asyncio.to_thread(
                studio.folders.create, slug, wav, transcript, description, languages, options
            )
        except OSError as err:
            _LOGGER.error("Studio: could not write voice %s: %s", slug, err)
            raise StudioError(
                WRITE_FAILED, f"The voice could not be saved on the server: {err.strerror or err}."
            ) from None
        await asyncio.to_thread(studio.registry.scan)
    _LOGGER.info("Studio: saved voice %s in %s", slug, folder)
    voice = await asyncio.to_thread(catalog.describe_folder, folder, studio.folders)
    return web.json_response({"voice": voice, **report}, status=201)


async def update_voice(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    name = request.match_info["name"]
    async with _upload_slot(studio):
        form = await forms.read_form(request, studio.settings.max_upload_bytes)
    if form.audio is not None or form.get("name") is not None:
        raise StudioError(
            BAD_REQUEST, "A saved voice keeps its name and clip; to change them, add a new voice."
        )
    fields = form.fields
    transcript = forms.transcript(fields["transcript"]) if "transcript" in fields else None
    changes: dict[str, Any] = {}
    if "description" in fields:
        changes["description"] = forms.description(fields["description"])
    if "languages" in fields:
        languages = forms.languages(fields["languages"])
        changes["languages"] = None if languages is None else list(languages)
    if "speed" in fields:
        changes["speed"] = forms.speed(fields["speed"])
    async with studio.write_lock:
        folder = await asyncio.to_thread(
            catalog.managed_folder, name, studio.registry, studio.folders, studio.voices_dirs
        )
        before = await _prepared_file(studio, folder) if transcript is not None else None
        await asyncio.to_thread(studio.folders.update, folder, transcript, changes)
        if before is not None and before != await _prepared_file(studio, folder):
            await asyncio.to_thread(before.unlink, missing_ok=True)
        await asyncio.to_thread(studio.registry.scan)
    _LOGGER.info("Studio: changed voice %s", folder.name)
    voice = await asyncio.to_thread(catalog.describe_folder, folder, studio.folders)
    return web.json_response({"voice": voice})


async def delete_voice(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    name = request.match_info["name"]
    async with studio.write_lock:
        folder = await asyncio.to_thread(
            catalog.managed_folder, name, studio.registry, studio.folders, studio.voices_dirs
        )
        prepared = await _prepared_file(studio, folder)
        await asyncio.to_thread(studio.folders.delete, folder)
        if prepared is not None:
            await asyncio.to_thread(prepared.unlink, missing_ok=True)
        await asyncio.to_thread(studio.registry.scan)
    _LOGGER.info("Studio: deleted voice %s", folder.name)
    return web.json_response({"deleted": folder.name})


async def speak(request: web.Request) -> web.StreamResponse:
    """Stream the voice saying ``text`` as 16-bit WAV while it is being synthesized.

    Nothing is sent until the first audio exists, so every failure before that is a JSON error; a failure
    after it ends the response without its final chunk, which every HTTP client notices.
    """
    studio = request.app[STUDIO]
    scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="ishowtts-preview-"))
    try:
        async with _upload_slot(studio):
            form = await forms.read_form(request, studio.settings.max_upload_bytes)
            text = " ".join((form.get("text") or "").split())
            if not text:
                raise StudioError(STUDIO_EMPTY_TEXT, "Type something for the voice to say.")
            if len(text) > studio.max_text_chars:
                raise StudioError(
                    STUDIO_TEXT_TOO_LONG,
                    f"The text has {len(text)} characters; the limit is {studio.max_text_chars}.",
                )
            voice = await _speaking_voice(studio, form, scratch)
            del form  # an unsaved clip is in the scratch folder now
        if studio.normalize and voice.normalize:
            text = await asyncio.to_thread(spoken, text, language_of(None, voice.languages))
            if not text:
                raise StudioError(STUDIO_EMPTY_TEXT, "The text has no words to speak.")
        speech = Speech(studio.worker, studio.requests, voice, text)
        response: web.StreamResponse | None = None
        try:
            request_id = speech.open()
            async for audio in speech.pieces():
                if response is None:
                    response = web.StreamResponse(
                        headers={
                            "Content-Type": "audio/wav",
                            "X-Request-Id": str(request_id),
                            # What the voice says, for the page's "Spoken as" (percent-encoded: a header
                            # is Latin-1; cut to keep it well inside every client's header limit).
                            "X-Spoken-Text": urllib.parse.quote(text[:SPOKEN_HEADER_CHARS]),
                            "Cache-Control": "no-store",
                            "X-Accel-Buffering": "no",
                        }
                    )
                    response.enable_chunked_encoding()
                    await response.prepare(request)
                    await response.write(wav_stream_header(SAMPLE_RATE))
                await response.write(float_to_int16_bytes(audio))
        except SynthesisFailed as err:
            _LOGGER.warning("Studio speech failed after audio had started: %s", err)
            raise  # aiohttp drops the connection: the stream ends without its last chunk
        finally:
            speech.close()
        if response is None:  # the engine made no audio at all
            raise StudioError(NO_AUDIO, "The voice produced no audio for this text.")
        await response.write_eof()
        return response
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)


async def session(request: web.Request) -> web.Response:
    """Trade the token for a cookie, so the page's audio players (which cannot send headers) work."""
    studio = request.app[STUDIO]
    token = studio.settings.token
    form = await forms.read_form(request, 4096)
    given = form.get("token") or ""
    if token is None:
        return web.json_response({"ok": True, "token": False})
    if not same_secret(given, token):
        raise StudioError(WRONG_TOKEN, "That is not this server's access token.")
    response = web.json_response({"ok": True, "token": True})
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
    return response


# -- helpers (the blocking ones run in threads) ----------------------------------------------------


@asynccontextmanager
async def _upload_slot(studio: Studio) -> AsyncIterator[None]:
    """One of the `MAX_UPLOADS` slots for reading and decoding a body; refused at once when none is free
    (a stalled client gives its slot up after forms.BODY_IDLE_SECONDS)."""
    if studio.uploads.locked():
        raise StudioError(
            STUDIO_BUSY,
            f"The server is already reading {MAX_UPLOADS} uploads; try again in a moment.",
        )
    async with studio.uploads:
        yield


async def _clip(studio: Studio, form: forms.Form) -> Clip:
    if form.audio is None:
        raise StudioError(MISSING_AUDIO, "Choose an audio file or record a clip first.")
    return await asyncio.to_thread(decode_clip, form.audio, studio.settings.max_clip_seconds)


async def _speaking_voice(studio: Studio, form: forms.Form, scratch: Path) -> VoiceInfo:
    """The saved voice named in the form, or the unsaved one whose clip the form carries (prepared in memory
    only: trying clips leaves no files in the prepared-voice cache)."""
    if form.audio is None:
        name = form.get("voice") or ""
        if not name:
            raise StudioError(MISSING_VOICE, "Choose a voice, or add a clip for a new one.")
        registry = studio.registry
        try:
            return registry.resolve(name)
        except VoiceError:
            await asyncio.to_thread(registry.scan)
        try:
            return registry.resolve(name)
        except VoiceError:
            raise StudioError(STUDIO_UNKNOWN_VOICE, f"There is no voice named '{name[:64]}'.") from None
    transcript = forms.transcript(form.get("transcript"))
    speed = forms.speed(form.get("speed"))
    clip = await _clip(studio, form)
    findings = await asyncio.to_thread(clip.check, transcript)
    _refuse_unusable(clip, findings)
    audio = scratch / REFERENCE_AUDIO
    await asyncio.to_thread(audio.write_bytes, clip.wav_bytes())
    return VoiceInfo(
        name=PREVIEW_VOICE,
        reference_audio=audio,
        transcript=transcript,
        options=MappingProxyType({} if speed is None else {"speed": speed}),
        transient=True,
    )


async def _prepared_file(studio: Studio, folder: Path) -> Path | None:
    """The prepared-voice cache file of the voice in `folder`; None before the model is loaded (its
    identity is part of the key), or when the voice cannot be loaded."""
    engine = studio.worker.engine
    if engine is None:
        return None
    return await asyncio.to_thread(catalog.prepared_file, folder, studio.cache_dir, engine.identity)


def _clip_report(clip: Clip, findings: list[Finding]) -> dict[str, Any]:
    return {
        "clip": {
            "seconds": round(clip.seconds, 3),
            "rate": clip.rate,
            "channels": clip.channels,
        },
        "findings": [catalog.finding_json(f) for f in findings],
        "usable": not any(f.level == "error" for f in findings),
    }


def _refuse_unusable(clip: Clip, findings: list[Finding]) -> None:
    problems = [f.message for f in findings if f.level == "error"]
    if problems:
        raise StudioError(
            UNUSABLE_CLIP,
            "This clip cannot be used: " + " ".join(problems),
            **_clip_report(clip, findings),
        )
