"""What a client may send about a voice, read with limits and checked field by field.

The request body is read as a stream (multipart) or as JSON; every field has a size limit, unknown
fields are refused, and each value is cleaned or refused with a message fit for the page.  The
display name becomes a folder name only through ``slugify``.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import unicodedata
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, web

from ...errors import (
    BAD_LANGUAGE,
    BAD_NAME,
    BAD_REQUEST,
    BAD_SPEED,
    BAD_TEXT,
    FIELD_TOO_LONG,
    MISSING_NAME,
    MISSING_TRANSCRIPT,
    NOT_MULTIPART,
    UPLOAD_STALLED,
    UPLOAD_TOO_LARGE,
    StudioError,
)

MAX_NAME_CHARS = 64
MAX_SLUG_CHARS = 48
MAX_TRANSCRIPT_CHARS = 1000
MAX_DESCRIPTION_CHARS = 200
MAX_FIELD_BYTES = 16 * 1024
MIN_SPEED, MAX_SPEED = 0.5, 2.0
BODY_IDLE_SECONDS = 30.0
"""A body that sends nothing for this long is refused: a stalled client must not hold an upload slot."""
MIN_BODY_RATE = 4096
"""Bytes per second a body must average after its first `BODY_IDLE_SECONDS` (each byte buys 1/rate s,
as Apache's mod_reqtimeout counts): a client trickling a byte now and then must not hold a slot either."""
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")
FIELDS = frozenset(
    {"name", "transcript", "description", "languages", "speed", "text", "voice", "audio", "token"}
)


@dataclass(frozen=True)
class Form:
    """The fields of one request; ``audio`` holds the uploaded file's bytes, if one was sent."""

    fields: dict[str, str]
    audio: bytes | None = None

    def get(self, name: str) -> str | None:
        return self.fields.get(name)


async def read_form(request: web.Request, max_upload_bytes: int) -> Form:
    """Read a multipart/form-data, urlencoded or JSON body, never holding more than the limit.

    The limit holds whether or not the client says the body's length (``Content-Length``): a chunked
    upload is counted as it arrives and refused once it passes the limit. A body that stops arriving for
    `BODY_IDLE_SECONDS` is refused too.
    """
    length = request.content_length
    if length is not None and length > max_upload_bytes:
        raise too_large(max_upload_bytes)
    if request.content_type == "application/json":
        return _json_form(await read_body(request, max_upload_bytes))
    if request.content_type == "application/x-www-form-urlencoded":
        raw = await read_body(request, max_upload_bytes)
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise StudioError(BAD_REQUEST, "The form is not UTF-8 text.") from None
        fields: dict[str, str] = {}
        for key, value in pairs:
            _check_field_name(key)
            if key in fields or key == "audio":
                raise StudioError(BAD_REQUEST, f"Field '{key}' must be sent once, as text.")
            fields[key] = value
        return Form(fields)
    if request.content_type != "multipart/form-data":
        raise StudioError(
            NOT_MULTIPART, "Send the form as multipart/form-data (or JSON without an audio file)."
        )
    return await _multipart_form(request, max_upload_bytes)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it passes `limit` bytes, or (408) when it stops arriving
    or arrives too slowly (`_Arrival`)."""
    arrival = _Arrival()
    chunks: list[bytes] = []
    size = 0
    while chunk := await arrival.next(request.content.read(64 * 1024)):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _json_form(raw: bytes) -> Form:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise StudioError(BAD_REQUEST, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise StudioError(BAD_REQUEST, "The request body must be a JSON object.")
    fields: dict[str, str] = {}
    for key, value in data.items():
        _check_field_name(key)
        if key == "audio":
            raise StudioError(BAD_REQUEST, "Send audio as a multipart/form-data file upload.")
        if isinstance(value, list) and key == "languages":
            value = ",".join(str(v) for v in value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise StudioError(BAD_REQUEST, f"Field '{key}' must be text.")
        fields[key] = value
    return Form(fields)


async def _multipart_form(request: web.Request, max_upload_bytes: int) -> Form:
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError) as err:  # aiohttp asserts on a broken boundary
        raise StudioError(BAD_REQUEST, f"The form could not be read: {err}") from None
    fields: dict[str, str] = {}
    audio: bytes | None = None
    received = 0
    arrival = _Arrival()
    while True:
        try:
            part = await arrival.next(reader.next())
        except ValueError as err:  # a malformed part header or boundary
            raise StudioError(BAD_REQUEST, f"The form could not be read: {err}") from None
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise StudioError(BAD_REQUEST, "Nested multipart forms are not accepted.")
        name = part.name or ""
        _check_field_name(name)
        if name in fields or (name == "audio" and audio is not None):
            raise StudioError(BAD_REQUEST, f"Field '{name}' was sent twice.")
        limit = max_upload_bytes - received if name == "audio" else MAX_FIELD_BYTES
        chunks: list[bytes] = []
        size = 0
        while chunk := await arrival.next(part.read_chunk(64 * 1024)):
            size += len(chunk)
            if size > limit:
                if name == "audio":
                    raise too_large(max_upload_bytes)
                raise StudioError(FIELD_TOO_LONG, f"Field '{name}' is too long.")
            chunks.append(chunk)
        received += size
        data = b"".join(chunks)
        if name == "audio":
            audio = data
            continue
        try:
            fields[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise StudioError(BAD_REQUEST, f"Field '{name}' is not UTF-8 text.") from None
    return Form(fields, audio)


_T = TypeVar("_T")


class _Arrival:
    """The pace of one body: each read must come within `BODY_IDLE_SECONDS`, and the whole body by a
    deadline that starts `BODY_IDLE_SECONDS` out and moves 1 s later for every `MIN_BODY_RATE` bytes."""

    def __init__(self) -> None:
        self._deadline = asyncio.get_running_loop().time() + BODY_IDLE_SECONDS

    async def next(self, read: Awaitable[_T]) -> _T:
        """One read of the body (a chunk, a part header), refused (408) past either limit."""
        left = self._deadline - asyncio.get_running_loop().time()
        try:
            data = await asyncio.wait_for(read, max(0.0, min(BODY_IDLE_SECONDS, left)))
        except asyncio.TimeoutError:
            raise StudioError(
                UPLOAD_STALLED,
                f"The upload stopped arriving, or came slower than {MIN_BODY_RATE // 1024} KB/s; "
                "check the connection and try again.",
            ) from None
        if isinstance(data, bytes):
            self._deadline += len(data) / MIN_BODY_RATE
        return data


def _check_field_name(name: str) -> None:
    if name not in FIELDS:
        raise StudioError(BAD_REQUEST, f"Unknown field '{name[:40]}'.")


def too_large(limit: int) -> StudioError:
    return StudioError(
        UPLOAD_TOO_LARGE,
        f"The upload is larger than the limit of {limit / 1024 / 1024:g} MB; "
        "a voice needs only 5-10 seconds of audio.",
    )


# -- single fields ---------------------------------------------------------------------------------


def _plain_text(value: str, what: str, max_chars: int) -> str:
    text = " ".join(value.split())
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise StudioError(BAD_TEXT, f"The {what} contains control characters.")
    if len(text) > max_chars:
        raise StudioError(FIELD_TOO_LONG, f"The {what} has {len(text)} characters; the limit is {max_chars}.")
    return text


def transcript(value: str | None) -> str:
    """The words spoken in the clip; required, because the model aligns the clip with them."""
    text = _plain_text(value or "", "transcript", MAX_TRANSCRIPT_CHARS)
    if not text:
        raise StudioError(MISSING_TRANSCRIPT, "Write the transcript: exactly the words spoken in the clip.")
    return text


def description(value: str | None) -> str | None:
    text = _plain_text(value or "", "description", MAX_DESCRIPTION_CHARS)
    return text or None


def languages(value: str | None) -> tuple[str, ...] | None:
    """``"en, zh-CN"`` -> ``("en", "zh-cn")``; empty means the model's default languages."""
    items = [item.strip().replace("_", "-").lower() for item in re.split(r"[,\s]+", value or "")]
    items = [item for item in items if item]
    if not items:
        return None
    for item in items:
        if not LANGUAGE.match(item):
            raise StudioError(
                BAD_LANGUAGE,
                f"'{item[:20]}' is not a language code; use codes like en, de or zh-CN, separated by commas.",
            )
    return tuple(dict.fromkeys(items))


def speed(value: str | None) -> float | None:
    """Speaking speed relative to the clip (1 = as recorded); empty means 1."""
    if value is None or not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise StudioError(BAD_SPEED, "Speed must be a number such as 1 or 0.9.") from None
    if not math.isfinite(number) or not MIN_SPEED <= number <= MAX_SPEED:
        raise StudioError(BAD_SPEED, f"Speed must be between {MIN_SPEED:g} and {MAX_SPEED:g}.")
    return number


def display_name(value: str | None) -> str:
    name = _plain_text(value or "", "name", MAX_NAME_CHARS)
    if not name:
        raise StudioError(MISSING_NAME, "Give the voice a name.")
    return name


def slugify(name: str) -> str:
    """The folder name for a display name: lower-case letters and digits joined by '-'.

    Letters of any script are kept (a Chinese name stays Chinese); everything else, including
    '/', '\\', '.' and spaces, becomes a separator, so the result can never be a path, a hidden
    folder or '..'.
    """
    text = unicodedata.normalize("NFKC", name).casefold()
    slug = "".join(c if c.isalnum() else "-" for c in text)
    slug = re.sub(r"-+", "-", slug).strip("-")[:MAX_SLUG_CHARS].strip("-")
    if not slug:
        raise StudioError(BAD_NAME, "The name needs at least one letter or digit.")
    return slug
