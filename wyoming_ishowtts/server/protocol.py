"""Reading Wyoming events from a client that may be broken or hostile: the framing, with limits.

A Wyoming event is a JSON header line, then ``data_length`` bytes of JSON data and ``payload_length``
bytes of payload. Clients only send small JSON events to a text-to-speech server, so anything bigger is a
broken or hostile client. A problem within one event (`BadEvent`) leaves the stream readable; a problem
with the framing itself (`FramingLost`) means the next event cannot be found, and the connection must
end. Both are ``malformed-event`` errors. The checks are pure functions of the bytes (`parse_header`,
`parse_event`), so they can be tested without a socket; `read_event` only adds the reading.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeVoice

from ..errors import MalformedEventError

MAX_EVENT_LINE = 64 * 1024
"""The header line: asyncio's default stream limit, which wyoming's listeners and stdin reader use."""
MAX_EVENT_DATA = 1024 * 1024
MAX_EVENT_PAYLOAD = 1024 * 1024


class FramingLost(MalformedEventError):
    """The byte stream can no longer be split into events; the connection must end."""


class BadEvent(MalformedEventError):
    """One event was malformed but the next one can still be read."""

    def __init__(self, message: str, event_type: object = None) -> None:
        super().__init__(message)
        self.event_type = event_type  # when the header was readable: a bad `synthesize` fails a request


@dataclass(frozen=True)
class Header:
    """A header line that parsed: its fields, and how many data and payload bytes follow it."""

    fields: dict[str, Any]
    data_length: int
    payload_length: int


def parse_json(raw: bytes, what: str) -> Any:
    """Decode one JSON document from a client, turning every way it can be bad into ``BadEvent``.

    ``json.loads`` raises more than ``JSONDecodeError`` on hostile input: ``RecursionError`` for
    deeply nested arrays (a 64 KiB header of ``[`` is enough) and a plain ``ValueError`` for an
    integer longer than Python's 4300-digit limit.  Those used to escape the read loop and end the
    connection without an ``error`` event.  JSON's ``\\ud800`` escapes also let a client send lone
    surrogates, which are not Unicode text: they cannot be encoded as UTF-8, so they would fail
    later deep inside the engine (``synthesis-failed``) or when the server writes its answer.
    """
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise BadEvent(f"{what} is not valid JSON: {type(err).__name__}: {str(err)[:200]}") from None


def check_unicode(value: Any, what: str) -> None:
    """Refuse lone surrogates (see ``parse_json``); called once the whole event has been read."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadEvent(f"{what} contains text that is not valid Unicode (a lone surrogate)") from None


def is_synthesize(event_type: object) -> bool:
    return isinstance(event_type, str) and Synthesize.is_type(event_type)


def parse_header(line: bytes) -> Header:
    """The header line of an event; `BadEvent` or `FramingLost` when it is unusable."""
    header = parse_json(line, "event header")
    if not isinstance(header, dict):
        raise BadEvent("event header must be a JSON object")
    data_length = header.get("data_length") or 0
    payload_length = header.get("payload_length") or 0
    for name, value, limit in (
        ("data_length", data_length, MAX_EVENT_DATA),
        ("payload_length", payload_length, MAX_EVENT_PAYLOAD),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FramingLost(f"{name} must be a non-negative integer")
        if value > limit:
            raise FramingLost(f"{name} {value} exceeds the limit of {limit} bytes")
    return Header(header, data_length, payload_length)


def parse_event(header: Header, extra: bytes, payload: bytes | None) -> Event:
    """The event from its header and the data and payload bytes read after it; `BadEvent` when it is
    unusable (naming the event's type where the header had one: a bad ``synthesize`` fails a request)."""
    fields = header.fields
    data = fields.get("data") or {}
    event_type = fields.get("type")
    if not isinstance(event_type, str) or not isinstance(data, dict):
        raise BadEvent("event needs a string 'type' and an object 'data'", event_type)
    try:
        if extra:
            more = parse_json(extra, "event data")
            if not isinstance(more, dict):
                raise BadEvent("event data must be a JSON object")
            data.update(more)
        check_unicode(fields, "event header")
        check_unicode(data, "event data")
    except BadEvent as err:
        raise BadEvent(str(err), event_type) from None
    return Event(type=event_type, data=data, payload=payload)


def requested_voice(event: Event) -> SynthesizeVoice | None:
    """The voice a ``synthesize`` or ``synthesize-start`` event asks for: a name (with its speaker), else a
    language, else none. wyoming 1.10 reads it so; before 1.10.0 its ``from_event`` read a voice given only
    by a language as a voice *named* after it ("zh-CN": an unknown voice), so the server reads it here."""
    voice = event.data.get("voice", {})
    if not isinstance(voice, dict):
        raise TypeError("'voice' must be an object")
    if "name" in voice:
        return SynthesizeVoice(name=voice["name"], speaker=voice.get("speaker"))
    if "language" in voice:
        return SynthesizeVoice(language=voice["language"])
    return None


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event; None at the end of input between events."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as err:
        if err.partial.strip():
            raise FramingLost("connection ended inside an event") from None
        return None
    except asyncio.LimitOverrunError:
        raise FramingLost(f"event header longer than {MAX_EVENT_LINE} bytes") from None
    except ValueError as err:  # older Pythons report an overrun as ValueError
        raise FramingLost(str(err)) from None
    header = parse_header(line)
    extra = await reader.readexactly(header.data_length) if header.data_length else b""
    payload = await reader.readexactly(header.payload_length) if header.payload_length else None
    return parse_event(header, extra, payload)
