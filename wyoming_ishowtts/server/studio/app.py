"""The voice studio: one page and a small JSON API, served on the Wyoming server's own event loop.

Everything slow (decoding a clip, checking it, writing a voice folder, scanning the voices) runs in
a thread, and speech goes through the engine worker like any Wyoming request, so the page never
delays ``describe``.  Routes are relative to wherever the page is mounted, which is what lets it
work behind Home Assistant's ingress proxy (``/api/hassio_ingress/<token>/``).

API (JSON errors are ``{"error": {"code", "message", ...}}`` with a 4xx/5xx status):

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
import hmac
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import soundfile
from aiohttp import web

from ..pcm import float_to_int16_bytes
from ..settings import NATIVE_SAMPLE_RATE
from ..voices import (
    REFERENCE_AUDIO,
    REFERENCE_TEXT,
    VoiceError,
    VoiceInfo,
    VoiceRegistry,
    check_voice_dir,
    load_voice_dir,
)
from ..worker import EngineWorker
from . import forms
from .clips import Clip, decode_clip
from .errors import StudioError
from .folders import VoiceFolders
from .metrics import RequestLog
from .settings import StudioSettings
from .speech import Speech, SynthesisFailed, wav_stream_header

_LOGGER = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# The page's files, read once: requests name one of these keys, never a path.
STATIC_TYPES = {"studio.js": "text/javascript", "studio.css": "text/css"}
COOKIE = "ishowtts_studio"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PREVIEW_VOICE = "new voice"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Studio:
    """What the studio's handlers share; built once by the server."""

    settings: StudioSettings
    registry: VoiceRegistry
    worker: EngineWorker
    voices_dirs: tuple[Path, ...]
    max_text_chars: int
    model: str
    version: str
    log: RequestLog = field(default_factory=RequestLog)

    def __post_init__(self) -> None:
        if not self.voices_dirs:
            raise ValueError("the studio needs a voices folder to save voices in")
        self.folders = VoiceFolders(self.voices_dirs[0])
        self.write_lock = asyncio.Lock()


STUDIO = web.AppKey("studio", Studio)


# -- the application -------------------------------------------------------------------------------


def create_app(studio: Studio) -> web.Application:
    # Bodies are read as streams with their own limits (forms.read_form); this bounds the rest.
    app = web.Application(
        middlewares=[_errors, _guard], client_max_size=studio.settings.max_upload_bytes + 64 * 1024
    )
    app[STUDIO] = studio
    page = (STATIC_DIR / "index.html").read_bytes()
    static = {name: (STATIC_DIR / name).read_bytes() for name in STATIC_TYPES}

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers=_NO_CACHE)

    async def static_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in static:
            raise StudioError(404, "not-found", "No such file.")
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


async def start(studio: Studio) -> web.AppRunner:
    """Listen on the studio's host and port; the caller owns the runner (``await runner.cleanup()``)."""
    await asyncio.to_thread(studio.folders.remove_leftovers)
    runner = web.AppRunner(create_app(studio), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, studio.settings.host, studio.settings.port)
    await site.start()
    for address in runner.addresses:
        host, port = address[0], address[1]
        shown = f"[{host}]" if ":" in host else host
        _LOGGER.info(
            "Voice studio on http://%s:%d/%s",
            shown,
            port,
            "" if studio.settings.token is None else " (token required)",
        )
    return runner


_NO_CACHE = {"Cache-Control": "no-cache"}


# -- middlewares -----------------------------------------------------------------------------------


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal becomes a JSON body the page can show."""
    try:
        return await handler(request)
    except StudioError as err:
        return web.json_response(err.body(), status=err.status)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        body = {"error": {"code": f"http-{err.status}", "message": err.reason}}
        return web.json_response(
            body,
            status=err.status,
            headers={"Allow": err.headers.get("Allow", "")} if err.status == 405 else None,
        )
    except (ConnectionError, SynthesisFailed):
        raise  # the response has started: only dropping the connection can tell the client
    except Exception:
        _LOGGER.exception("Studio request %s %s failed", request.method, request.path)
        body = {"error": {"code": "internal-error", "message": "The server failed; see its log."}}
        return web.json_response(body, status=500)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The token (when set) for the API, and no state change from another site's page."""
    token = request.app[STUDIO].settings.token
    bearer = token is not None and _bearer_matches(request, token)
    if request.method in UNSAFE_METHODS and not bearer and _cross_site(request):
        raise StudioError(
            403,
            "cross-site-request",
            "Refused: this request came from another site's page. Use the studio page itself "
            "(or send the token in an Authorization header).",
        )
    if token is not None and request.path.startswith("/api/") and request.path != "/api/session":
        cookie = request.cookies.get(COOKIE)
        if not (bearer or (cookie is not None and _same_secret(cookie, token))):
            raise StudioError(
                401, "token-required", "This server needs its access token; enter it on the page."
            )
    return await handler(request)


def _same_secret(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def _bearer_matches(request: web.Request, token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and _same_secret(value.strip(), token)


def _cross_site(request: web.Request) -> bool:
    """True for a browser request sent by a page of another origin.

    A browser marks every request with ``Sec-Fetch-Site`` (page scripts cannot change it); older
    browsers send ``Origin``, compared with the host the request was sent to (``Host``, or the
    original host a reverse proxy such as Home Assistant's ingress reports in ``X-Forwarded-Host``;
    another site's page cannot add that header without a CORS preflight, which the studio never
    allows).  A request with neither header is not from a browser page, so not a forgery.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    parts = urlsplit(origin)
    if origin == "null" or not parts.netloc:
        return True
    allowed = {_netloc(request.headers.get("Host", ""), parts.scheme)}
    for value in request.headers.getall("X-Forwarded-Host", []):
        allowed.update(_netloc(host.strip(), parts.scheme) for host in value.split(","))
    return _netloc(parts.netloc, parts.scheme) not in allowed


def _netloc(host: str, scheme: str) -> str:
    host = host.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and host.endswith(default):
        host = host[: -len(default)]
    return host


# -- handlers --------------------------------------------------------------------------------------


async def status(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    worker = studio.worker
    engine = worker.engine
    stats = worker.stats()
    state = "ready" if worker.ready.is_set() else "loading"
    body = {
        "version": studio.version,
        "model": studio.model,
        "device": str(engine.device) if engine is not None else None,
        "precision": _precision(engine.dtype) if engine is not None else None,
        "state": state,
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
        "recent": [record.as_json() for record in studio.log.recent()],
    }
    return web.json_response(body)


def _precision(dtype: object) -> str:
    name = str(dtype).removeprefix("torch.")
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(name, name)


async def list_voices(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    voices = await asyncio.to_thread(_voice_list, studio)
    return web.json_response({"voices": voices, "voices_dir": str(studio.folders.root)})


async def voice_audio(request: web.Request) -> web.StreamResponse:
    studio = request.app[STUDIO]
    path = await asyncio.to_thread(_reference_clip, studio, request.match_info["name"])
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", **_NO_CACHE})


async def check(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    form = await forms.read_form(request, studio.settings.max_upload_bytes)
    clip = await _clip(studio, form)
    text = form.get("transcript")
    transcript = forms.transcript(text) if text and text.strip() else None
    findings = await asyncio.to_thread(_check_clip, clip, transcript)
    return web.json_response(_clip_report(clip, findings))


async def create_voice(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    form = await forms.read_form(request, studio.settings.max_upload_bytes)
    name = forms.display_name(form.get("name"))
    slug = forms.slugify(name)
    transcript = forms.transcript(form.get("transcript"))
    description = forms.description(form.get("description")) or (name if name != slug else None)
    languages = forms.languages(form.get("languages"))
    speed = forms.speed(form.get("speed"))
    clip = await _clip(studio, form)
    findings = await asyncio.to_thread(_check_clip, clip, transcript)
    _refuse_unusable(clip, findings)
    wav = clip.wav_bytes()
    async with studio.write_lock:
        taken = await asyncio.to_thread(_names_in_use, studio)
        if slug.casefold() in taken:
            raise StudioError(
                409,
                "name-taken",
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
                507, "write-failed", f"The voice could not be saved on the server: {err.strerror or err}."
            ) from None
        await asyncio.to_thread(studio.registry.scan)
    _LOGGER.info("Studio: saved voice %s in %s", slug, folder)
    voice = await asyncio.to_thread(_describe_folder, studio, folder)
    return web.json_response({"voice": voice, **_clip_report(clip, findings)}, status=201)


async def update_voice(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    name = request.match_info["name"]
    form = await forms.read_form(request, studio.settings.max_upload_bytes)
    if form.audio is not None or form.get("name") is not None:
        raise StudioError(
            400, "bad-request", "A saved voice keeps its name and clip; to change them, add a new voice."
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
        folder = await asyncio.to_thread(_managed_folder, studio, name)
        await asyncio.to_thread(studio.folders.update, folder, transcript, changes)
        await asyncio.to_thread(studio.registry.scan)
    _LOGGER.info("Studio: changed voice %s", folder.name)
    voice = await asyncio.to_thread(_describe_folder, studio, folder)
    return web.json_response({"voice": voice})


async def delete_voice(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    name = request.match_info["name"]
    async with studio.write_lock:
        folder = await asyncio.to_thread(_managed_folder, studio, name)
        await asyncio.to_thread(studio.folders.delete, folder)
        await asyncio.to_thread(studio.registry.scan)
    _LOGGER.info("Studio: deleted voice %s", folder.name)
    return web.json_response({"deleted": folder.name})


async def speak(request: web.Request) -> web.StreamResponse:
    """Stream the voice saying ``text`` as 16-bit WAV while it is being synthesized.

    Nothing is sent until the first audio exists, so every failure before that is a JSON error; a
    failure after it ends the response without its final chunk, which every HTTP client notices.
    """
    studio = request.app[STUDIO]
    form = await forms.read_form(request, studio.settings.max_upload_bytes)
    text = " ".join((form.get("text") or "").split())
    if not text:
        raise StudioError(400, "empty-text", "Type something for the voice to say.")
    if len(text) > studio.max_text_chars:
        raise StudioError(
            400,
            "text-too-long",
            f"The text has {len(text)} characters; the limit is {studio.max_text_chars}.",
        )
    scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="ishowtts-preview-"))
    try:
        voice = await _speaking_voice(studio, form, scratch)
        speech = Speech(studio.worker, voice, text)
        timer = studio.log.timer("studio", voice.name, len(text))
        response: web.StreamResponse | None = None
        error: str | None = None
        try:
            speech.open()
            async for audio in speech.pieces():
                if response is None:
                    response = web.StreamResponse(
                        headers={
                            "Content-Type": "audio/wav",
                            "X-Request-Id": str(timer.id),
                            "Cache-Control": "no-store",
                            "X-Accel-Buffering": "no",
                        }
                    )
                    response.enable_chunked_encoding()
                    await response.prepare(request)
                    await response.write(wav_stream_header(NATIVE_SAMPLE_RATE))
                timer.audio(len(audio) / NATIVE_SAMPLE_RATE)
                await response.write(float_to_int16_bytes(audio))
        except StudioError as err:
            error = err.message
            raise
        except SynthesisFailed as err:
            error = str(err)
            _LOGGER.warning("Studio speech failed after audio had started: %s", err)
            raise  # aiohttp drops the connection: the stream ends without its last chunk
        except (ConnectionError, asyncio.CancelledError):
            error = "the page stopped listening"
            raise
        finally:
            speech.close()
            timer.finish(error)
        if response is None:  # the engine made no audio at all
            raise StudioError(500, "no-audio", "The voice produced no audio for this text.")
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
    if not _same_secret(given, token):
        raise StudioError(401, "wrong-token", "That is not this server's access token.")
    response = web.json_response({"ok": True, "token": True})
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
    return response


# -- helpers (the blocking ones run in threads) ----------------------------------------------------


async def _clip(studio: Studio, form: forms.Form) -> Clip:
    if form.audio is None:
        raise StudioError(400, "missing-audio", "Choose an audio file or record a clip first.")
    return await asyncio.to_thread(decode_clip, form.audio, studio.settings.max_clip_seconds)


async def _speaking_voice(studio: Studio, form: forms.Form, scratch: Path) -> VoiceInfo:
    """The saved voice named in the form, or the unsaved one whose clip the form carries."""
    if form.audio is None:
        name = form.get("voice") or ""
        if not name:
            raise StudioError(400, "missing-voice", "Choose a voice, or add a clip for a new one.")
        registry = studio.registry
        try:
            return registry.resolve(name)
        except VoiceError:
            await asyncio.to_thread(registry.scan)
        try:
            return registry.resolve(name)
        except VoiceError:
            raise StudioError(404, "unknown-voice", f"There is no voice named '{name[:64]}'.") from None
    transcript = forms.transcript(form.get("transcript"))
    speed = forms.speed(form.get("speed"))
    clip = await _clip(studio, form)
    findings = await asyncio.to_thread(_check_clip, clip, transcript)
    _refuse_unusable(clip, findings)
    audio = scratch / REFERENCE_AUDIO
    await asyncio.to_thread(audio.write_bytes, clip.wav_bytes())
    return VoiceInfo(
        name=PREVIEW_VOICE,
        reference_audio=audio,
        transcript=transcript,
        options=MappingProxyType({} if speed is None else {"speed": speed}),
    )


def _check_clip(clip: Clip, transcript: str | None) -> list[dict[str, str]]:
    """The server's clip checker on this clip, exactly as it would judge a saved voice folder."""
    with tempfile.TemporaryDirectory(prefix="ishowtts-check-") as scratch:
        folder = Path(scratch)
        (folder / REFERENCE_AUDIO).write_bytes(clip.wav_bytes())
        if transcript:
            (folder / REFERENCE_TEXT).write_text(transcript + "\n", encoding="utf-8")
        findings = check_voice_dir(folder)
    if transcript is None:  # the page asks for the transcript in its own words
        findings = [f for f in findings if not f.message.startswith(f"{REFERENCE_TEXT} is missing")]
    return [{"level": f.level, "message": f.message} for f in findings]


def _clip_report(clip: Clip, findings: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "clip": {
            "seconds": round(clip.seconds, 3),
            "rate": clip.rate,
            "channels": int(clip.samples.shape[1]),
        },
        "findings": findings,
        "usable": not any(f["level"] == "error" for f in findings),
    }


def _refuse_unusable(clip: Clip, findings: list[dict[str, str]]) -> None:
    errors = [f["message"] for f in findings if f["level"] == "error"]
    if errors:
        raise StudioError(
            422,
            "unusable-clip",
            "This clip cannot be used: " + "; ".join(errors) + ".",
            **_clip_report(clip, findings),
        )


def _names_in_use(studio: Studio) -> set[str]:
    names = set(studio.registry.scan())
    for root in studio.voices_dirs:
        if root.is_dir():
            names.update(entry.name for entry in root.iterdir())
    return {name.casefold() for name in names}


def _managed_folder(studio: Studio, name: str) -> Path:
    folder = studio.folders.find(name)
    if folder is not None:
        return folder
    if name in studio.registry.scan() or any(_folder_in(root, name) for root in studio.voices_dirs[1:]):
        raise StudioError(
            403,
            "read-only-voice",
            f"'{name[:64]}' is not in the studio's voices folder ({studio.folders.root}); change it there by hand.",
        )
    raise StudioError(404, "unknown-voice", f"There is no voice named '{name[:64]}'.")


def _folder_in(root: Path, name: str) -> Path | None:
    if not root.is_dir():
        return None
    for entry in root.iterdir():
        if entry.name == name and not entry.name.startswith(".") and entry.is_dir():
            return entry
    return None


def _reference_clip(studio: Studio, name: str) -> Path:
    for root in studio.voices_dirs:
        folder = _folder_in(root, name)
        if folder is not None:
            audio = folder / REFERENCE_AUDIO
            if audio.is_file():
                return audio
            break
    info = studio.registry.voices.get(name)
    if info is not None and info.builtin is not None and info.reference_audio.is_file():
        return info.reference_audio
    raise StudioError(404, "unknown-voice", f"There is no clip for a voice named '{name[:64]}'.")


def _voice_list(studio: Studio) -> list[dict[str, Any]]:
    voices = studio.registry.scan()
    listed: list[dict[str, Any]] = []
    seen: set[str] = set()
    for root in studio.voices_dirs:
        if not root.is_dir():
            continue
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir() or entry.name in seen:
                continue
            seen.add(entry.name)
            listed.append(_describe_folder(studio, entry, voices.get(entry.name)))
    for info in voices.values():
        if info.builtin is not None and info.name not in seen:
            downloaded = info.reference_audio.is_file()
            listed.append(
                {
                    "name": info.name,
                    "description": info.description,
                    "languages": list(info.languages),
                    "transcript": info.transcript,
                    "speed": None,
                    "clip_seconds": _seconds(info.reference_audio) if downloaded else None,
                    "ready": True,
                    "problems": [],
                    "notes": []
                    if downloaded
                    else ["built in: its clip is downloaded the first time it speaks"],
                    "editable": False,
                    "builtin": True,
                }
            )
    return listed


def _describe_folder(studio: Studio, folder: Path, info: VoiceInfo | None = None) -> dict[str, Any]:
    if info is None:
        try:
            info = load_voice_dir(folder)
        except (OSError, ValueError):
            info = None
    findings = check_voice_dir(folder)
    problems = [f.message for f in findings if f.level == "error"]
    if info is None and not problems:
        problems = ["the server cannot load this voice; see its log"]
    transcript = info.transcript if info is not None else None
    return {
        "name": folder.name,
        "description": info.description if info is not None else None,
        "languages": list(info.languages) if info is not None else [],
        "transcript": transcript,
        "speed": info.options.get("speed") if info is not None else None,
        "clip_seconds": _seconds(folder / REFERENCE_AUDIO),
        "ready": info is not None and not problems,
        "problems": problems,
        "notes": [f.message for f in findings if f.level == "warning"],
        "editable": folder.parent == studio.folders.root,
        "builtin": False,
    }


def _seconds(path: Path) -> float | None:
    try:
        return round(float(soundfile.info(str(path)).duration), 2)
    except Exception:  # unreadable or missing: the findings say why
        return None
