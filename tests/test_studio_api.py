"""The voice studio's HTTP API against the real worker and tiny model: every endpoint, every refusal.

Each refusal must come back as a 4xx/5xx status with a JSON ``error`` body that says what to do,
and must leave the voices folder exactly as it was (no half-saved voice, no stray folder).
"""

from __future__ import annotations

import asyncio
import io
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile
from conftest import ROOT, TONE_TRANSCRIPT, describe, free_port, make_voice, read_until, start_server
from studio_support import Reply, StudioServer, http, studio_server
from wyoming.tts import Synthesize, SynthesizeVoice

from ishowtts_dev.wyoming_client import WyomingConnection
from wyoming_ishowtts.text import spoken
from wyoming_ishowtts.voices.check import check_clip, check_voice_dir

MAX_UPLOAD = 1024 * 1024
MAX_CLIP_SECONDS = 20.0
TOKEN = "s3cret-token"


def form(**fields: str | bytes) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for key, value in fields.items():
        if isinstance(value, bytes):
            data.add_field(key, value, filename="clip", content_type="application/octet-stream")
        else:
            data.add_field(key, value)
    return data


def speechlike(seconds: float = 3.0, rate: int = 24000, gain: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) + 0.15 * np.sin(2 * np.pi * 360 * t)) * gain
    return (audio * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def encode(audio: np.ndarray, rate: int = 24000, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, audio, rate, format=fmt, subtype=subtype)
    return out.getvalue()


GOOD = encode(speechlike())


def folder_state(root: Path) -> list[str]:
    """Every entry under the voices folder, hidden ones included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    base = tmp_path_factory.mktemp("studio-api")
    managed, shared = base / "voices", base / "shared"
    make_voice(managed, "tone", toml='description = "Test tone"\nlanguages = ["en"]\nnfe = 4\nseed = 7\n')
    make_voice(managed, "other")
    broken = managed / "broken"
    broken.mkdir()
    (broken / "reference.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 10)
    (broken / "reference.txt").write_text("Broken clip.\n", encoding="utf-8")
    (managed / "untranscribed").mkdir()
    (managed / "untranscribed" / "reference.wav").write_bytes(GOOD)
    make_voice(shared, "readonly")
    with studio_server(
        tiny_model_dir,
        (managed, shared),
        base / "cache",
        max_upload_bytes=MAX_UPLOAD,
        max_clip_seconds=MAX_CLIP_SECONDS,
    ) as running:
        yield running


def url(server: StudioServer, path: str) -> str:
    return server.url + path


def described_voices(server: StudioServer) -> set[str]:
    event = asyncio.run(describe(server.uri))
    assert event is not None and event.type == "info"
    return {voice["name"] for voice in event.data["tts"][0]["voices"]}


# -- reading ---------------------------------------------------------------------------------------


def test_page_and_its_files_use_relative_urls_only(server: StudioServer) -> None:
    page = http("GET", url(server, ""))
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    text = page.body.decode()
    for label in ("Name", "Transcript", "Audio file", "Text", "Voice"):
        assert f">{label}</label>" in text
    for button in ("Record", "Save voice", "Speak"):
        assert f">{button}</button>" in text
    script = http("GET", url(server, "static/studio.js"))
    assert script.status == 200 and "javascript" in script.headers["Content-Type"]
    assert http("GET", url(server, "static/studio.css")).status == 200
    # Under Home Assistant's ingress the page lives at /api/hassio_ingress/<token>/: a URL that
    # starts with '/' would leave that prefix.
    combined = text + script.body.decode()
    for pattern in ('src="/', 'href="/', 'fetch("/', 'api("/', "api(`/", "`/api"):
        assert pattern not in combined, pattern
    missing = http("GET", url(server, "static/..%2F..%2Fapp.py"))
    assert missing.status == 404 and missing.code == "not-found"


def test_status_reports_model_device_state_and_limits(server: StudioServer) -> None:
    status = http("GET", url(server, "api/status")).json()
    assert status["state"] == "ready"
    assert status["device"] == "cpu" and status["precision"] in ("fp32", "bf16")
    assert status["model"] and status["queue"] == {"requests": 0, "segments": 0}
    assert status["limits"] == {
        "max_upload_bytes": MAX_UPLOAD,
        "max_clip_seconds": MAX_CLIP_SECONDS,
        "max_text_chars": 2000,
    }


def test_voice_list_says_which_voices_are_ready_and_why_not(server: StudioServer) -> None:
    voices = {v["name"]: v for v in http("GET", url(server, "api/voices")).json()["voices"]}
    tone = voices["tone"]
    assert tone["ready"] and tone["editable"] and tone["findings"] == []
    assert tone["description"] == "Test tone" and tone["languages"] == ["en"]
    assert tone["transcript"] == TONE_TRANSCRIPT and tone["clip_seconds"] == pytest.approx(3.0)
    assert not voices["broken"]["ready"]
    assert _codes(voices["broken"]["findings"], "error") == ["audio-unreadable"]
    assert not voices["untranscribed"]["ready"]
    assert _codes(voices["untranscribed"]["findings"], "error") == ["transcript-missing"]
    # The checker's own findings, as the command line shows them: one checker, one wording.
    assert voices["broken"]["findings"] == [
        {"level": f.level, "code": f.code, "message": f.message}
        for f in check_voice_dir(server.voices_dir / "broken")
        if f.level != "ok"
    ]
    assert voices["readonly"]["ready"] and not voices["readonly"]["editable"]


def test_reference_clip_is_served_by_name_only(server: StudioServer) -> None:
    clip = http("GET", url(server, "api/voices/tone/audio"))
    assert clip.status == 200
    assert clip.body == (server.voices_dir / "tone" / "reference.wav").read_bytes()
    for name in ("nobody", "..%2Ftone", "%2E%2E", "tone%2F..%2F..%2Fcache"):
        reply = http("GET", url(server, f"api/voices/{name}/audio"))
        # The client may normalize '..' away (then no route matches): a 404 either way.
        assert reply.status == 404 and reply.code in ("unknown-voice", "http-404"), name


# -- the clip checker ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_check_reads_every_format_libsndfile_reads(server: StudioServer, fmt: str) -> None:
    data = encode(speechlike(), fmt=fmt)
    reply = http("POST", url(server, "api/check"), data=form(audio=data, transcript=TONE_TRANSCRIPT))
    assert reply.status == 200, reply.body
    report = reply.json()
    assert report["usable"] and report["clip"]["rate"] == 24000
    assert report["clip"]["seconds"] == pytest.approx(3.0, abs=0.1)


def _codes(findings: list[dict[str, str]], level: str) -> list[str]:
    return [f["code"] for f in findings if f["level"] == level]


def _messages(reply: Reply) -> str:
    return " | ".join(f"{f['level']}: {f['message']}" for f in reply.json()["findings"])


@pytest.mark.parametrize(
    ("audio", "transcript", "level", "code"),
    [
        (encode(speechlike(0.5)), "Hi.", "error", "too-short"),
        (encode(np.zeros(24000 * 3, dtype=np.float32)), TONE_TRANSCRIPT, "error", "silent"),
        (encode(speechlike(13.0)), "word " * 30, "warning", "too-long"),
        (
            encode(np.concatenate([np.zeros(36000, np.float32), speechlike(), np.zeros(36000, np.float32)])),
            TONE_TRANSCRIPT,
            "warning",
            "edge-silence",
        ),
        (encode(speechlike(gain=6.0)), TONE_TRANSCRIPT, "warning", "clipping"),
        (
            encode(speechlike(rate=11025), rate=11025),
            TONE_TRANSCRIPT,
            "warning",
            "rate-low",
        ),
        (encode(speechlike(), 24000), "word " * 40, "warning", "transcript-too-long"),
    ],
    ids=["too-short", "silent", "long", "edge-silence", "clipping", "low-rate", "implausible-transcript"],
)
def test_check_explains_what_is_wrong_with_a_clip(
    server: StudioServer, audio: bytes, transcript: str, level: str, code: str
) -> None:
    reply = http("POST", url(server, "api/check"), data=form(audio=audio, transcript=transcript))
    assert reply.status == 200
    findings = reply.json()["findings"]
    assert code in _codes(findings, level), _messages(reply)
    # Exactly the checker's findings for these samples: the page shows the checker's own words.
    samples, rate = soundfile.read(io.BytesIO(audio), dtype="float32", always_2d=True)
    assert findings == [
        {"level": f.level, "code": f.code, "message": f.message}
        for f in check_clip(samples, rate, transcript)
    ]
    assert reply.json()["usable"] is (level != "error")


def test_clip_longer_than_the_limit_is_refused(server: StudioServer) -> None:
    reply = http("POST", url(server, "api/check"), data=form(audio=encode(speechlike(MAX_CLIP_SECONDS + 1))))
    assert reply.status == 400 and reply.code == "clip-too-long"
    assert "the limit is 20 s" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("audio", "code"),
    [
        (b"", "empty-audio"),
        (b"this is not audio at all " * 40, "unreadable-audio"),
        # A WebM header (what a browser's recorder makes): libsndfile cannot read it.
        (bytes.fromhex("1a45dfa3") + b"\x00" * 500, "unreadable-audio"),
        (encode(np.zeros((0, 1), dtype=np.float32)), "empty-audio"),
    ],
    ids=["empty-file", "text", "webm", "no-samples"],
)
def test_unreadable_or_empty_audio_is_refused(server: StudioServer, audio: bytes, code: str) -> None:
    reply = http("POST", url(server, "api/check"), data=form(audio=audio))
    assert reply.status == 400 and reply.code == code
    assert reply.json()["error"]["message"]


def _silence(seconds: float, rate: int, channels: int, fmt: str) -> bytes:
    """Silence compresses to almost nothing: a small file that decodes to a great many samples."""
    out = io.BytesIO()
    with soundfile.SoundFile(out, "w", rate, channels, format=fmt) as sound:
        for _ in range(int(seconds)):
            sound.write(np.zeros((rate, channels), dtype=np.float32))
    return out.getvalue()


@pytest.mark.parametrize(
    ("audio", "code"),
    [
        # 5 s at 655 kHz in 8 channels: 30 KB that would decode to 105 MB of float32.
        (_silence(5, 655_350, 8, "FLAC"), "rate-too-high"),
        (_silence(1, 8000, 16, "WAV"), "too-many-channels"),
    ],
    ids=["rate", "channels"],
)
def test_a_small_file_claiming_huge_audio_is_refused_before_it_is_decoded(
    server: StudioServer, audio: bytes, code: str
) -> None:
    assert len(audio) < MAX_UPLOAD
    for path in ("api/check", "api/voices", "api/speak"):
        before = folder_state(server.voices_dir)
        reply = http("POST", url(server, path), data=form(name="bomb", audio=audio, transcript="x", text="x"))
        assert reply.status == 400 and reply.code == code, (path, reply.body[:300])
        assert "the limit is" in reply.json()["error"]["message"]
        assert folder_state(server.voices_dir) == before


def test_decoding_a_clip_costs_no_more_memory_than_its_mono_samples() -> None:
    """Samples are mixed down block by block: 8 channels at 192 kHz cost what one channel costs."""
    import tracemalloc

    from wyoming_ishowtts.server.studio.uploads import decode_clip

    seconds, rate, channels = 10, 192_000, 8
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((seconds * rate, channels))).astype(np.float32)
    data = encode(audio, rate=rate, fmt="FLAC")
    mono_bytes = seconds * rate * 4
    tracemalloc.start()
    try:
        clip = decode_clip(data, max_seconds=30.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert clip.samples.shape == (seconds * rate, 1) and clip.channels == channels
    # The mono result, the list of blocks it is joined from, and a few blocks in flight.
    assert peak < 2 * mono_bytes + 8 * 1024 * 1024, (peak, mono_bytes)
    # The mix-down is the checker's own: the same findings as the checker gives the file's samples.
    samples, _ = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    assert clip.check("Some words.") == check_clip(samples, rate, "Some words.")


def test_oversized_upload_is_refused_before_it_is_read(server: StudioServer) -> None:
    big = encode(speechlike(7.9, rate=48000).repeat(2).reshape(-1, 2), rate=48000, subtype="FLOAT")
    assert len(big) > MAX_UPLOAD
    for path in ("api/check", "api/voices", "api/speak"):
        before = folder_state(server.voices_dir)
        reply = http("POST", url(server, path), data=form(name="big", audio=big, transcript="x", text="x"))
        assert reply.status == 413 and reply.code == "upload-too-large", path
        assert folder_state(server.voices_dir) == before


def _chunked(body: bytes) -> Any:
    """The body as an async generator: aiohttp sends it chunked, with no Content-Length."""

    async def pieces() -> Any:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    return pieces()


def _multipart(boundary: str, audio: bytes, **fields: str) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="clip.wav"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + audio
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def test_a_chunked_upload_is_refused_once_it_passes_the_limit(server: StudioServer) -> None:
    """No Content-Length to refuse up front: the body is counted as it arrives."""
    big = encode(speechlike(7.9, rate=48000).repeat(2).reshape(-1, 2), rate=48000, subtype="FLOAT")
    assert len(big) > MAX_UPLOAD
    boundary = "studio-test-boundary"
    multipart = _multipart(boundary, big, name="Chunked", transcript=TONE_TRANSCRIPT, text="Hello.")
    bodies = [
        (f"multipart/form-data; boundary={boundary}", multipart),
        ("application/json", b'{"transcript": "' + b"x" * (MAX_UPLOAD + 10) + b'"}'),
        ("application/x-www-form-urlencoded", b"transcript=" + b"x" * (MAX_UPLOAD + 10)),
    ]
    for path in ("api/check", "api/voices", "api/speak"):
        for content_type, body in bodies:
            before = folder_state(server.voices_dir)
            reply = http(
                "POST", url(server, path), data=_chunked(body), headers={"Content-Type": content_type}
            )
            assert reply.status == 413 and reply.code == "upload-too-large", (
                path,
                content_type,
                reply.body[:200],
            )
            assert folder_state(server.voices_dir) == before
    # The same form under the limit is read whole, chunked or not.
    small = _multipart(boundary, GOOD, transcript=TONE_TRANSCRIPT)
    reply = http(
        "POST",
        url(server, "api/check"),
        data=_chunked(small),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert reply.status == 200 and reply.json()["usable"], reply.body


def test_uploads_past_the_slots_are_refused_and_a_stalled_one_gives_its_slot_up(
    server: StudioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many clients send at once, at most MAX_UPLOADS bodies are held and decoded; the next is
    refused at once (503 busy), and a client that stops sending loses its slot (408)."""
    from wyoming_ishowtts.server.studio import forms
    from wyoming_ishowtts.server.studio.app import MAX_UPLOADS

    monkeypatch.setattr(forms, "BODY_IDLE_SECONDS", 5.0)  # the held uploads are released well before
    site = server.server.service.studio
    assert site is not None
    slots = site.studio.uploads
    boundary = "studio-slot-boundary"
    body = _multipart(boundary, GOOD, transcript=TONE_TRANSCRIPT)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    check = url(server, "api/check")

    async def go() -> tuple[list[int], Reply, list[tuple[int, str]], Reply]:
        release = asyncio.Event()

        async def held(wait: bool) -> Any:
            yield body[:1000]
            if wait:
                await release.wait()
            else:
                await asyncio.sleep(60)  # stalls: the server gives up first
            yield body[1000:]

        async def post(session: aiohttp.ClientSession, data: Any) -> Reply:
            async with session.post(check, data=data, headers=headers) as response:
                return Reply(response.status, response.headers, await response.read())

        async def all_slots_taken() -> None:
            for _ in range(300):
                if slots.locked():
                    return
                await asyncio.sleep(0.1)
            raise AssertionError("the uploads never took every slot")

        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            slow = [asyncio.create_task(post(session, held(wait=True))) for _ in range(MAX_UPLOADS)]
            await all_slots_taken()
            refused = await post(session, body)
            release.set()
            finished = [reply.status for reply in await asyncio.gather(*slow)]
            stalled = [asyncio.create_task(post(session, held(wait=False))) for _ in range(MAX_UPLOADS)]
            await all_slots_taken()
            gave_up = [(reply.status, reply.code) for reply in await asyncio.gather(*stalled)]
            after = await post(session, body)
        return finished, refused, gave_up, after

    finished, refused, gave_up, after = asyncio.run(go())
    assert refused.status == 503 and refused.code == "busy", refused.body[:300]
    assert f"already reading {MAX_UPLOADS} uploads" in refused.json()["error"]["message"]
    assert finished == [200] * MAX_UPLOADS
    assert gave_up == [(408, "upload-stalled")] * MAX_UPLOADS
    assert after.status == 200 and after.json()["usable"], after.body[:300]


# -- saving, editing, deleting ---------------------------------------------------------------------


def test_an_upload_trickling_in_gives_its_slot_up(
    server: StudioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends a little now and then, never idle for BODY_IDLE_SECONDS, still loses its upload
    slot once the body falls behind MIN_BODY_RATE on average: a slot is not held for hours. (Each piece
    is longer than the form's boundary: aiohttp's multipart reader waits for that much before a read
    returns, so single bytes would only test the idle limit.)"""
    from wyoming_ishowtts.server.studio import forms

    monkeypatch.setattr(forms, "BODY_IDLE_SECONDS", 2.0)
    boundary = "studio-trickle-boundary"
    body = _multipart(boundary, GOOD, transcript=TONE_TRANSCRIPT)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}

    async def go() -> tuple[Reply, float, int]:
        sent = [0]

        async def trickle() -> Any:
            yield body[:1000]
            piece = 64  # every 0.25 s: 256 B/s, never idle for 2 s, for 15 s
            for index in range(1000, 1000 + 60 * piece, piece):
                await asyncio.sleep(0.25)
                sent[0] += 1
                yield body[index : index + piece]
            yield body[1000 + 60 * piece :]

        start = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=60)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url(server, "api/check"), data=trickle(), headers=headers) as response,
        ):
            reply = Reply(response.status, response.headers, await response.read())
        return reply, time.monotonic() - start, sent[0]

    reply, seconds, trickled = asyncio.run(go())
    assert reply.status == 408 and reply.code == "upload-stalled", reply.body[:300]
    assert "slower than 4 KB/s" in reply.json()["error"]["message"]
    assert trickled < 60 and seconds < 12, (trickled, seconds)  # refused about 2.25 s in, not at the end


def test_saved_voice_is_an_ordinary_folder_that_describe_lists(server: StudioServer) -> None:
    assert "ada-lovelace" not in described_voices(server)
    fields = {"name": "Ada Lovelace", "transcript": TONE_TRANSCRIPT, "languages": "en, de", "speed": "0.9"}
    reply = http(
        "POST", url(server, "api/voices"), data=form(audio=encode(speechlike(), fmt="FLAC"), **fields)
    )
    assert reply.status == 201, reply.body
    voice = reply.json()["voice"]
    assert voice["name"] == "ada-lovelace" and voice["ready"] and voice["editable"]
    folder = server.voices_dir / "ada-lovelace"
    assert sorted(p.name for p in folder.iterdir()) == ["reference.txt", "reference.wav", "voice.toml"]
    assert soundfile.info(str(folder / "reference.wav")).format == "WAV"
    assert (folder / "reference.txt").read_text() == TONE_TRANSCRIPT + "\n"
    assert "ada-lovelace" in described_voices(server)  # a separate Wyoming client, no restart
    event = asyncio.run(describe(server.uri))
    assert event is not None
    info = next(v for v in event.data["tts"][0]["voices"] if v["name"] == "ada-lovelace")
    assert info["description"] == "Ada Lovelace" and info["languages"] == ["en", "de"]
    assert not [p for p in server.voices_dir.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("../../outside", "outside"),
        ("/etc/passwd", "etc-passwd"),
        ("a/../b\\c", "a-b-c"),
        ("Ünïcode 名字", "ünïcode-名字"),
    ],
)
def test_names_never_become_paths(server: StudioServer, name: str, slug: str) -> None:
    parent = server.voices_dir.parent
    outside_before = sorted(p.name for p in parent.iterdir())
    reply = http(
        "POST", url(server, "api/voices"), data=form(name=name, audio=GOOD, transcript=TONE_TRANSCRIPT)
    )
    assert reply.status == 201, reply.body
    assert reply.json()["voice"]["name"] == slug
    assert (server.voices_dir / slug / "reference.wav").is_file()
    assert sorted(p.name for p in parent.iterdir()) == outside_before
    assert http("DELETE", url(server, f"api/voices/{slug}")).status == 200


@pytest.mark.parametrize("name", ["..", ".", "///", "", "   ", "-- --"])
def test_names_without_letters_are_refused(server: StudioServer, name: str) -> None:
    before = folder_state(server.voices_dir)
    reply = http(
        "POST", url(server, "api/voices"), data=form(name=name, audio=GOOD, transcript=TONE_TRANSCRIPT)
    )
    assert reply.status == 400 and reply.code in ("bad-name", "missing-name")
    assert folder_state(server.voices_dir) == before


@pytest.mark.parametrize("name", ["tone", "Tone", "TONE!", "readonly"])
def test_a_name_that_collides_is_refused_with_a_clear_message(server: StudioServer, name: str) -> None:
    before = folder_state(server.voices_dir)
    reply = http(
        "POST", url(server, "api/voices"), data=form(name=name, audio=GOOD, transcript=TONE_TRANSCRIPT)
    )
    assert reply.status == 409 and reply.code == "name-taken"
    assert "already exists" in reply.json()["error"]["message"]
    assert folder_state(server.voices_dir) == before
    assert (server.voices_dir / "tone" / "reference.txt").read_text() == TONE_TRANSCRIPT + "\n"


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"name": "Nobody", "audio": GOOD}, 400, "missing-transcript"),
        ({"name": "Nobody", "audio": GOOD, "transcript": "   "}, 400, "missing-transcript"),
        ({"name": "Nobody", "transcript": TONE_TRANSCRIPT}, 400, "missing-audio"),
        ({"audio": GOOD, "transcript": TONE_TRANSCRIPT}, 400, "missing-name"),
        ({"name": "Nobody", "audio": b"garbage" * 50, "transcript": "x"}, 400, "unreadable-audio"),
        (
            {"name": "Nobody", "audio": encode(np.zeros(72000, np.float32)), "transcript": "x"},
            422,
            "unusable-clip",
        ),
        ({"name": "Nobody", "audio": GOOD, "transcript": "x", "speed": "fast"}, 400, "bad-speed"),
        ({"name": "Nobody", "audio": GOOD, "transcript": "x", "speed": "9"}, 400, "bad-speed"),
        ({"name": "Nobody", "audio": GOOD, "transcript": "x", "languages": "english!"}, 400, "bad-language"),
        ({"name": "Nobody", "audio": GOOD, "transcript": "x", "path": "/tmp"}, 400, "bad-request"),
        ({"name": "Nobody", "audio": GOOD, "transcript": "a\x00b"}, 400, "bad-text"),
    ],
    ids=[
        "no-transcript",
        "blank-transcript",
        "no-audio",
        "no-name",
        "unreadable",
        "silent",
        "speed-text",
        "speed-range",
        "language",
        "unknown-field",
        "control-chars",
    ],
)
def test_a_refused_voice_leaves_nothing_behind(
    server: StudioServer, fields: dict[str, Any], status: int, code: str
) -> None:
    before = folder_state(server.voices_dir)
    reply = http("POST", url(server, "api/voices"), data=form(**fields))
    assert reply.status == status and reply.code == code, reply.body
    assert reply.json()["error"]["message"]
    assert folder_state(server.voices_dir) == before
    assert "nobody" not in described_voices(server)


def test_a_write_that_fails_half_way_leaves_no_voice(
    server: StudioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up after the clip is written: no folder, visible or hidden, may remain."""
    from wyoming_ishowtts.server.studio import folders

    real_write = folders._write

    def full_disk(path: Path, data: bytes) -> None:
        if path.name == "reference.txt":
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(folders, "_write", full_disk)
    before = folder_state(server.voices_dir)
    reply = http(
        "POST", url(server, "api/voices"), data=form(name="Half", audio=GOOD, transcript=TONE_TRANSCRIPT)
    )
    assert reply.status == 507 and reply.code == "write-failed"
    assert "No space left on device" in reply.json()["error"]["message"]
    assert folder_state(server.voices_dir) == before
    assert "half" not in described_voices(server)


def test_a_half_written_voice_is_never_visible(server: StudioServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The save is held after each file it writes; meanwhile the voices folder, the server's registry and a
    Wyoming ``describe`` must not show the voice. It appears whole, or not at all."""
    from wyoming_ishowtts.server.studio import folders

    real_write = folders._write
    written = threading.Event()
    go_on = threading.Event()

    def held_write(path: Path, data: bytes) -> None:
        real_write(path, data)
        written.set()
        assert go_on.wait(30), "the test did not let the save go on"
        go_on.clear()

    monkeypatch.setattr(folders, "_write", held_write)
    fields = {"name": "Slow Writer", "transcript": TONE_TRANSCRIPT, "description": "Slow", "languages": "en"}
    holds = 0
    with ThreadPoolExecutor(1) as pool:
        saving = pool.submit(http, "POST", url(server, "api/voices"), data=form(audio=GOOD, **fields))
        while not saving.done():
            if not written.wait(0.05):
                continue
            written.clear()
            holds += 1
            visible = [p.name for p in server.voices_dir.iterdir() if not p.name.startswith(".")]
            assert "slow-writer" not in visible, holds
            assert "slow-writer" not in server.server.registry.scan(), holds
            assert "slow-writer" not in described_voices(server), holds
            go_on.set()
        reply = saving.result()
    assert reply.status == 201, reply.body
    assert holds == 3  # reference.wav, reference.txt, voice.toml
    assert "slow-writer" in described_voices(server)
    event = asyncio.run(describe(server.uri))
    assert event is not None
    info = next(v for v in event.data["tts"][0]["voices"] if v["name"] == "slow-writer")
    assert info["description"] == "Slow" and info["languages"] == ["en"]
    assert http("DELETE", url(server, "api/voices/slow-writer")).status == 200


def test_unusable_clip_comes_back_with_the_checker_findings(server: StudioServer) -> None:
    reply = http(
        "POST",
        url(server, "api/voices"),
        data=form(name="Quiet", audio=encode(np.zeros(72000, np.float32)), transcript=TONE_TRANSCRIPT),
    )
    assert reply.status == 422
    error = reply.json()["error"]
    assert "silent" in error["message"] and _codes(error["findings"], "error") == ["silent"]


def test_edit_changes_transcript_and_settings_and_keeps_the_rest(server: StudioServer) -> None:
    changes = {"transcript": "A new transcript.", "description": "Edited", "languages": "fr", "speed": "1.1"}
    reply = http("PATCH", url(server, "api/voices/tone"), json=changes)
    assert reply.status == 200, reply.body
    voice = reply.json()["voice"]
    assert voice["transcript"] == "A new transcript." and voice["speed"] == 1.1
    assert voice["description"] == "Edited" and voice["languages"] == ["fr"]
    folder = server.voices_dir / "tone"
    assert (folder / "reference.txt").read_text() == "A new transcript.\n"
    toml = (folder / "voice.toml").read_text()
    assert "nfe = 4" in toml and "seed = 7" in toml  # settings the page does not show are kept
    event = asyncio.run(describe(server.uri))
    assert event is not None
    info = next(v for v in event.data["tts"][0]["voices"] if v["name"] == "tone")
    assert info["description"] == "Edited" and info["languages"] == ["fr"]
    # Clearing a field goes back to the default.
    reply = http("PATCH", url(server, "api/voices/tone"), json={"speed": "", "languages": ""})
    assert reply.status == 200 and reply.json()["voice"]["speed"] is None
    restore = {"transcript": TONE_TRANSCRIPT, "description": "Test tone", "languages": "en"}
    assert http("PATCH", url(server, "api/voices/tone"), json=restore).status == 200
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("name", "body", "status", "code"),
    [
        ("nobody", {"description": "x"}, 404, "unknown-voice"),
        ("..%2Ftone", {"description": "x"}, 404, "unknown-voice"),
        ("readonly", {"description": "x"}, 403, "read-only-voice"),
        ("tone", {"transcript": ""}, 400, "missing-transcript"),
        ("tone", {"speed": "0"}, 400, "bad-speed"),
        ("tone", {"name": "renamed"}, 400, "bad-request"),
        ("tone", {"voice_dir": "/"}, 400, "bad-request"),
    ],
)
def test_bad_edits_are_refused(
    server: StudioServer, name: str, body: dict[str, str], status: int, code: str
) -> None:
    before = {p.name: p.read_bytes() for p in (server.voices_dir / "tone").iterdir()}
    reply = http("PATCH", url(server, f"api/voices/{name}"), json=body)
    assert reply.status == status and reply.code == code
    assert {p.name: p.read_bytes() for p in (server.voices_dir / "tone").iterdir()} == before


def test_delete_removes_the_folder_and_the_voice(server: StudioServer) -> None:
    reply = http(
        "POST",
        url(server, "api/voices"),
        data=form(name="Short Lived", audio=GOOD, transcript=TONE_TRANSCRIPT),
    )
    assert reply.status == 201
    assert "short-lived" in described_voices(server)
    reply = http("DELETE", url(server, "api/voices/short-lived"))
    assert reply.status == 200 and reply.json() == {"deleted": "short-lived"}
    assert not (server.voices_dir / "short-lived").exists()
    assert "short-lived" not in described_voices(server)
    assert not [p for p in server.voices_dir.iterdir() if p.name.startswith(".")]
    assert http("DELETE", url(server, "api/voices/short-lived")).code == "unknown-voice"
    reply = http("DELETE", url(server, "api/voices/readonly"))
    assert reply.status == 403 and reply.code == "read-only-voice"
    assert (server.voices_dir.parent / "shared" / "readonly").is_dir()


def test_deleting_or_retranscribing_a_voice_removes_its_prepared_file(server: StudioServer) -> None:
    """The prepared-voice cache is keyed by content: the studio removes what a deleted voice, or an edited
    transcript, leaves behind (and nothing else)."""
    cached = server.cache_dir / "voices"

    def cache_files() -> set[str]:
        return {p.name for p in cached.iterdir()} if cached.is_dir() else set()

    def speak(voice: str) -> None:
        _check_wav_stream(http("POST", url(server, "api/speak"), data=form(text="Cached.", voice=voice)))

    speak("tone")
    before = cache_files()
    clip = encode(speechlike(gain=0.45))
    reply = http(
        "POST", url(server, "api/voices"), data=form(name="Cached", audio=clip, transcript=TONE_TRANSCRIPT)
    )
    assert reply.status == 201
    speak("cached")
    first = cache_files() - before
    assert len(first) == 1
    reply = http("PATCH", url(server, "api/voices/cached"), json={"transcript": "A different transcript."})
    assert reply.status == 200
    assert cache_files() == before  # the old transcript's file is gone ...
    speak("cached")
    second = cache_files() - before
    assert len(second) == 1 and second != first  # ... and the new one is prepared when it speaks
    reply = http("PATCH", url(server, "api/voices/cached"), json={"description": "Same clip and words."})
    assert reply.status == 200 and cache_files() - before == second  # not a change of content
    assert http("DELETE", url(server, "api/voices/cached")).status == 200
    assert cache_files() == before  # every other voice keeps its file


# -- speaking --------------------------------------------------------------------------------------


def _check_wav_stream(reply: Reply) -> np.ndarray:
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"] == "audio/wav"
    assert reply.headers.get("Transfer-Encoding") == "chunked"
    header = reply.body[:44]
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt " and header[36:40] == b"data"
    channels, rate = struct.unpack("<HI", header[22:28])
    assert (channels, rate) == (1, 24000)
    samples = np.frombuffer(reply.body[44:], dtype="<i2")
    assert len(samples) > 2400 and np.abs(samples).max() > 0
    return samples


def test_speak_streams_a_saved_voice_and_records_its_speed(server: StudioServer) -> None:
    reply = http("POST", url(server, "api/speak"), data=form(text="Hello from the studio.", voice="tone"))
    _check_wav_stream(reply)
    request_id = int(reply.headers["X-Request-Id"])
    recent = http("GET", url(server, "api/status")).json()["recent"]
    record = next(r for r in recent if r["id"] == request_id)
    assert record["voice"] == "tone" and record["source"] == "studio" and record["error"] is None
    assert record["chars"] == len("Hello from the studio.") and 0 < record["ttfa"] < 60
    assert record["audio_seconds"] == pytest.approx((len(reply.body) - 44) / 2 / 24000)
    assert record["compute"] > 0 and record["rtf"] == pytest.approx(
        record["compute"] / record["audio_seconds"]
    )


def test_speak_says_what_the_text_front_end_makes_of_the_text(server: StudioServer) -> None:
    """The preview is put into words as a Wyoming request is, and the page is told what was said."""
    text = "It is 21.5 °C and 45 % (**really**)."
    reply = http("POST", url(server, "api/speak"), data=form(text=text, voice="tone"))
    _check_wav_stream(reply)
    said = urllib.parse.unquote(reply.headers["X-Spoken-Text"])
    assert (
        said
        == spoken(text, "en")
        == "It is twenty-one point five degrees Celsius and forty-five percent, really."
    )
    request_id = int(reply.headers["X-Request-Id"])
    record = next(r for r in http("GET", url(server, "api/status")).json()["recent"] if r["id"] == request_id)
    assert record["chars"] == len(said), "the engine was given the spoken form"


def test_speak_tries_an_unsaved_clip_without_saving_it(server: StudioServer) -> None:
    before = folder_state(server.voices_dir)
    reply = http(
        "POST",
        url(server, "api/speak"),
        data=form(
            text="Before I am saved.",
            audio=encode(speechlike(), fmt="OGG"),
            transcript=TONE_TRANSCRIPT,
            speed="1.2",
        ),
    )
    _check_wav_stream(reply)
    assert folder_state(server.voices_dir) == before


def test_wyoming_requests_are_in_the_chart_too(server: StudioServer) -> None:
    """A request from a Wyoming client (Home Assistant) is measured like a preview from the page."""

    async def synthesize() -> list[Any]:
        async with WyomingConnection(server.uri, read_timeout=60) as client:
            await client.write_event(
                Synthesize(text="Measured from Wyoming.", voice=SynthesizeVoice("tone")).event()
            )
            return await read_until(client, "audio-stop")

    events = asyncio.run(synthesize())
    received = sum(len(e.payload or b"") for e in events if e.type == "audio-chunk") / 2 / 24000
    recent = http("GET", url(server, "api/status")).json()["recent"]
    record = [r for r in recent if r["source"] == "wyoming"][-1]
    assert record["voice"] == "tone" and record["chars"] == len("Measured from Wyoming.")
    assert record["error"] is None and 0 < record["ttfa"] < 60
    assert record["audio_seconds"] == pytest.approx(received, abs=1 / 24000)
    assert record["compute"] > 0 and record["rtf"] == pytest.approx(record["compute"] / received, rel=1e-3)


def test_previews_of_unsaved_clips_leave_no_prepared_voice_files(server: StudioServer) -> None:
    """Trying clips before saving them prepares them in memory only; a saved voice is cached on disk."""
    cached = server.cache_dir / "voices"

    def cache_files() -> list[str]:
        return sorted(p.name for p in cached.iterdir()) if cached.is_dir() else []

    before = cache_files()
    for gain in (0.5, 0.7, 0.9):  # three different clips: three different cache keys
        reply = http(
            "POST",
            url(server, "api/speak"),
            data=form(text="Only a try.", audio=encode(speechlike(gain=gain)), transcript=TONE_TRANSCRIPT),
        )
        _check_wav_stream(reply)
    assert cache_files() == before
    # The same kind of clip saved and spoken is prepared once and kept, as every saved voice is.
    clip = encode(speechlike(gain=0.4))
    reply = http(
        "POST", url(server, "api/voices"), data=form(name="Kept", audio=clip, transcript=TONE_TRANSCRIPT)
    )
    assert reply.status == 201
    _check_wav_stream(http("POST", url(server, "api/speak"), data=form(text="Saved.", voice="kept")))
    assert len(cache_files()) == len(before) + 1
    assert http("DELETE", url(server, "api/voices/kept")).status == 200


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"text": "Hello.", "voice": "nobody"}, 404, "unknown-voice"),
        ({"text": "Hello.", "voice": "../tone"}, 404, "unknown-voice"),
        ({"text": "Hello."}, 400, "missing-voice"),
        ({"text": "   ", "voice": "tone"}, 400, "empty-text"),
        ({"text": "x" * 2001, "voice": "tone"}, 400, "text-too-long"),
        ({"text": "Hello.", "audio": GOOD}, 400, "missing-transcript"),
        ({"text": "Hello.", "audio": b"not audio" * 30, "transcript": "x"}, 400, "unreadable-audio"),
        ({"text": "Hello.", "audio": encode(speechlike(0.4)), "transcript": "x"}, 422, "unusable-clip"),
        # Its folder loads but its clip does not: the engine's error, before any audio, as JSON.
        ({"text": "Hello.", "voice": "broken"}, 422, "voice-invalid"),
    ],
    ids=[
        "unknown",
        "path-like",
        "no-voice",
        "empty",
        "too-long",
        "no-transcript",
        "unreadable",
        "too-short",
        "broken",
    ],
)
def test_bad_speak_requests_get_a_json_error(
    server: StudioServer, fields: dict[str, Any], status: int, code: str
) -> None:
    reply = http("POST", url(server, "api/speak"), data=form(**fields))
    assert reply.status == status and reply.code == code, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")


def test_bad_method_and_unknown_route_are_json_errors(server: StudioServer) -> None:
    reply = http("PUT", url(server, "api/voices"))
    assert reply.status == 405 and reply.code == "http-405"
    reply = http("GET", url(server, "api/nothing"))
    assert reply.status == 404 and reply.code == "http-404"
    reply = http("POST", url(server, "api/voices"), data=b"{", headers={"Content-Type": "application/json"})
    assert reply.status == 400 and reply.code == "bad-request"


# -- cross-site requests ---------------------------------------------------------------------------

CROSS_SITE = [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
    {"Sec-Fetch-Site": "same-site"},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_cross_site_posts_are_refused(server: StudioServer, headers: dict[str, str]) -> None:
    before = folder_state(server.voices_dir)
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "api/voices", {"data": form(name="Forged", audio=GOOD, transcript=TONE_TRANSCRIPT)}),
        ("DELETE", "api/voices/other", {}),
        ("PATCH", "api/voices/other", {"json": {"description": "forged"}}),
        ("POST", "api/speak", {"data": form(text="Forged.", voice="tone")}),
    ]
    for method, path, kwargs in attempts:
        reply = http(method, url(server, path), headers=headers, **kwargs)
        assert reply.status == 403 and reply.code == "cross-site-request", (method, path)
    assert folder_state(server.voices_dir) == before


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_another_sites_page_cannot_read_the_api(server: StudioServer, site: str) -> None:
    """Another site's page may not play a voice's clip in its own <audio>, nor fetch the voice list (the
    browser marks both with Sec-Fetch-Site); the page itself may still be opened from a link."""
    for path in ("api/voices", "api/status", "api/voices/tone/audio"):
        reply = http("GET", url(server, path), headers={"Sec-Fetch-Site": site})
        assert reply.status == 403 and reply.code == "cross-site-request", path
        for own in ({"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
            assert http("GET", url(server, path), headers=own).status == 200, (path, own)
    assert http("GET", url(server, ""), headers={"Sec-Fetch-Site": site}).status == 200


def test_no_other_site_may_frame_the_page(server: StudioServer) -> None:
    """Framed by another site, the page would be its own origin and pass every check while the other site
    steers the clicks; every answer forbids that (Home Assistant's ingress frames it from its own origin)."""
    for method, path in (("GET", ""), ("GET", "static/studio.js"), ("GET", "api/voices"), ("GET", "nowhere")):
        reply = http(method, url(server, path))
        assert reply.headers.get("Content-Security-Policy") == "frame-ancestors 'self'", path
        assert reply.headers.get("X-Frame-Options") == "SAMEORIGIN", path
        assert reply.headers.get("X-Content-Type-Options") == "nosniff", path


def test_same_origin_posts_are_accepted(server: StudioServer) -> None:
    host = server.url.split("/")[2]
    own = [
        {"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"},
        {"Origin": f"http://{host}"},
        # Behind a proxy (Home Assistant's ingress): the browser's Origin is the proxy's host.
        {"Origin": "https://ha.example:8123", "X-Forwarded-Host": "ha.example:8123"},
    ]
    for headers in own:
        reply = http("PATCH", url(server, "api/voices/other"), headers=headers, json={"description": "mine"})
        assert reply.status == 200, (headers, reply.body)


# -- the token -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    base = tmp_path_factory.mktemp("studio-token")
    make_voice(base / "voices", "tone")
    with studio_server(tiny_model_dir, (base / "voices",), base / "cache", token=TOKEN) as running:
        yield running


def test_token_guards_the_api_but_not_the_page(token_server: StudioServer) -> None:
    server = token_server
    assert http("GET", url(server, "")).status == 200
    for method, path in (("GET", "api/voices"), ("GET", "api/status"), ("GET", "api/voices/tone/audio")):
        reply = http(method, url(server, path))
        assert reply.status == 401 and reply.code == "token-required", path
        wrong = http(method, url(server, path), headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        assert http(method, url(server, path), headers={"Authorization": f"Bearer {TOKEN}"}).status == 200
    reply = http(
        "POST", url(server, "api/voices"), data=form(name="X", audio=GOOD, transcript=TONE_TRANSCRIPT)
    )
    assert reply.status == 401


def test_token_lets_a_script_post_from_anywhere(token_server: StudioServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Origin": "http://elsewhere.example"}
    reply = http(
        "POST", url(token_server, "api/speak"), headers=headers, data=form(text="Hi there.", voice="tone")
    )
    _check_wav_stream(reply)
    reply = http(
        "POST",
        url(token_server, "api/speak"),
        headers={"Origin": "http://elsewhere.example"},
        data=form(text="Hi.", voice="tone"),
    )
    assert reply.status == 403


def test_session_cookie_unlocks_the_page(token_server: StudioServer) -> None:
    async def go() -> tuple[int, int, int]:
        # aiohttp keeps cookies of IP-address hosts only when told to; browsers always do.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.post(url(token_server, "api/session"), json={"token": "wrong"}) as r:
                wrong = r.status
            async with session.post(url(token_server, "api/session"), json={"token": TOKEN}) as r:
                assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
                right = r.status
            async with session.get(url(token_server, "api/voices")) as r:
                return wrong, right, r.status

    assert asyncio.run(go()) == (401, 200, 200)


# -- DNS rebinding and the ingress proxy -----------------------------------------------------------


def test_requests_for_another_host_name_are_refused_without_a_token(server: StudioServer) -> None:
    """A page of another site that points its name at this machine (DNS rebinding) is same-origin to the
    browser, so only the Host header gives it away: without a token, only IP addresses and localhost."""
    port = server.url.split(":")[2].rstrip("/")
    before = folder_state(server.voices_dir)
    rebound = {
        "Host": f"evil.example:{port}",
        "Origin": f"http://evil.example:{port}",
        "Sec-Fetch-Site": "same-origin",
    }
    for method, path, kwargs in [
        ("GET", "", {}),
        ("GET", "api/voices", {}),
        ("GET", "api/voices/tone/audio", {}),
        ("POST", "api/voices", {"data": form(name="Rebound", audio=GOOD, transcript=TONE_TRANSCRIPT)}),
        ("DELETE", "api/voices/other", {}),
    ]:
        reply = http(method, url(server, path), headers=rebound, **kwargs)
        assert reply.status == 403 and reply.code == "host-not-allowed", (method, path, reply.status)
    assert folder_state(server.voices_dir) == before
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", "127.0.0.1"):
        assert http("GET", url(server, "api/voices"), headers={"Host": host}).status == 200, host
    assert http("GET", url(server, "api/voices"), headers={"Host": "[::1]"}).status == 200


def test_with_a_token_any_host_name_may_be_used(token_server: StudioServer) -> None:
    headers = {"Host": "studio.lan:8080", "Authorization": f"Bearer {TOKEN}"}
    assert http("GET", url(token_server, "api/voices"), headers=headers).status == 200
    reply = http("GET", url(token_server, "api/voices"), headers={"Host": "studio.lan:8080"})
    assert reply.status == 401 and reply.code == "token-required"


PROXY = "127.0.0.2"  # stands for Home Assistant's ingress proxy (172.30.32.2) on loopback


@pytest.fixture(scope="module")
def proxy_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    base = tmp_path_factory.mktemp("studio-proxy")
    make_voice(base / "voices", "tone")
    with studio_server(tiny_model_dir, (base / "voices",), base / "cache", proxy=PROXY) as running:
        yield running


def from_address(address: str, method: str, target: str, **kwargs: Any) -> Reply:
    """A request whose connection comes from `address` (any 127.x address is this machine)."""

    async def go() -> Reply:
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(method, target, **kwargs) as response,
        ):
            return Reply(response.status, response.headers, await response.read())

    return asyncio.run(go())


def test_behind_the_ingress_proxy_only_the_proxy_is_answered(proxy_server: StudioServer) -> None:
    """The add-on's studio listens on the container's network; Home Assistant's ingress proxy authenticates
    the user and forwards the browser's own Host and Origin (Home Assistant's name, not an address)."""
    ingress = {
        "Host": "homeassistant.local:8123",
        "Origin": "http://homeassistant.local:8123",
        "Sec-Fetch-Site": "same-origin",
    }
    assert from_address(PROXY, "GET", url(proxy_server, "api/voices"), headers=ingress).status == 200
    reply = from_address(
        PROXY,
        "PATCH",
        url(proxy_server, "api/voices/tone"),
        headers=ingress,
        json={"description": "via ingress"},
    )
    assert reply.status == 200, reply.body
    # Anyone else on that network: refused, whatever they send.
    for path in ("", "api/voices"):
        reply = from_address("127.0.0.1", "GET", url(proxy_server, path), headers=ingress)
        assert reply.status == 403 and reply.code == "not-from-proxy", path
    # A page of another site, even through the proxy: still a cross-site request.
    forged = {**ingress, "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    reply = from_address(PROXY, "DELETE", url(proxy_server, "api/voices/tone"), headers=forged)
    assert reply.status == 403 and reply.code == "cross-site-request"


# -- the Wyoming side stays responsive -------------------------------------------------------------

# Home Assistant waits one second for a describe answer; half of it leaves the rest for the network
# and Home Assistant itself.  Measured here: median 0.01 s, max under 0.1 s; with the clip decoding
# and checking moved onto the event loop (the mistake this test is for) the max passed 0.6 s.
DESCRIBE_LIMIT = 0.5


def test_describe_stays_instant_while_the_studio_is_busy(server: StudioServer) -> None:
    """Uploads, checks, saves, previews and voice listings run while a separate Wyoming client asks
    ``describe`` again and again; every answer must come well within Home Assistant's one second."""
    long_clip = encode(speechlike(19.0, rate=48000).repeat(2).reshape(-1, 2), rate=48000, fmt="FLAC")
    assert len(long_clip) < MAX_UPLOAD

    async def studio_load(stop: asyncio.Event) -> int:
        done = 0
        async with aiohttp.ClientSession() as session:

            async def one(i: int) -> None:
                nonlocal done
                calls = [
                    ("POST", "api/check", form(audio=long_clip, transcript=TONE_TRANSCRIPT)),
                    ("POST", "api/speak", form(text="A preview while describe is asked. " * 3, voice="tone")),
                    (
                        "POST",
                        "api/speak",
                        form(text="An unsaved clip speaks.", audio=GOOD, transcript=TONE_TRANSCRIPT),
                    ),
                    (
                        "POST",
                        "api/voices",
                        form(name=f"Busy {i}", audio=long_clip, transcript=TONE_TRANSCRIPT),
                    ),
                    ("GET", "api/voices", None),
                    ("DELETE", f"api/voices/busy-{i}", None),
                ]
                for method, path, data in calls:
                    async with session.request(method, url(server, path), data=data) as reply:
                        await reply.read()
                        assert reply.status < 300, (path, reply.status)
                    done += 1

            i = 0
            while not stop.is_set():
                await asyncio.gather(one(i), one(i + 1))
                i += 2
        return done

    async def run() -> tuple[list[float], int]:
        stop = asyncio.Event()
        load = asyncio.create_task(studio_load(stop))
        latencies: list[float] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 12.0
        while loop.time() < deadline:
            started = loop.time()
            event = await describe(server.uri, timeout=5.0)
            latencies.append(loop.time() - started)
            assert event is not None and event.type == "info"
            await asyncio.sleep(0.05)
        stop.set()
        return latencies, await load

    latencies, requests = asyncio.run(run())
    latencies.sort()
    print(
        f"describe x{len(latencies)} during {requests} studio requests: median {latencies[len(latencies) // 2]:.3f} s, "
        f"max {latencies[-1]:.3f} s"
    )
    assert requests >= 6, "the studio load did not run"
    assert latencies[-1] < DESCRIBE_LIMIT, latencies[-5:]


# -- the command line ------------------------------------------------------------------------------


def test_the_command_line_serves_the_studio(tiny_model_dir: Path, tmp_path: Path) -> None:
    """``--http-port`` through the real entry point: the page answers, a voice saved there is in ``describe``;
    a port that is taken stops the server with exit status 1 and says why."""
    voices = tmp_path / "voices"
    make_voice(voices, "tone")
    port = free_port()
    server = start_server(tiny_model_dir, voices, tmp_path / "run", ["--http-port", str(port)])
    try:
        studio = f"http://127.0.0.1:{port}/"
        assert http("GET", studio).status == 200
        assert http("GET", studio + "api/status").json()["state"] == "ready"
        reply = http(
            "POST",
            studio + "api/voices",
            data=form(name="From The CLI", audio=GOOD, transcript=TONE_TRANSCRIPT),
        )
        assert reply.status == 201, reply.body
        event = asyncio.run(describe(server.uri))
        assert event is not None
        assert "from-the-cli" in {v["name"] for v in event.data["tts"][0]["voices"]}
        assert (voices / "from-the-cli" / "reference.wav").is_file()

        # A second server asking for the same studio port.
        args = [
            "--model-dir", str(tiny_model_dir), "--device", "cpu", "--uri", f"tcp://127.0.0.1:{free_port()}",
            "--voices-dir", str(voices), "--no-builtin-voice", "--cache-dir", str(tmp_path / "cache2"),
            "--http-port", str(port),
        ]  # fmt: skip
        second = subprocess.run(
            [sys.executable, "-m", "wyoming_ishowtts", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert second.returncode == 1, second.stderr
        assert f"The voice studio cannot listen on 127.0.0.1:{port}" in second.stderr
    finally:
        assert server.stop() == 0, server.log()
    assert "Voice studio on http://127.0.0.1:" in server.log()


def test_the_studio_is_off_by_default_and_on_loopback_when_asked_for() -> None:
    from wyoming_ishowtts.server.cli import build_parser, server_settings_from_args

    assert server_settings_from_args(build_parser().parse_args([])).studio is None
    studio = server_settings_from_args(build_parser().parse_args(["--http-port", "8080"])).studio
    assert studio is not None and (studio.port, studio.host, studio.token, studio.proxy) == (
        8080,
        "127.0.0.1",
        None,
        None,
    )
    args = ["--http-port", "1", "--http-proxy", "172.30.32.2", "--http-max-upload-mb", "2"]
    studio = server_settings_from_args(build_parser().parse_args(args)).studio
    assert studio is not None and studio.proxy == "172.30.32.2" and studio.max_upload_bytes == 2 * 1024 * 1024
    for bad in (
        ["--http-port", "70000"],
        ["--http-port", "1", "--http-proxy", "ha.local"],
        ["--http-token", ""],
    ):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)
