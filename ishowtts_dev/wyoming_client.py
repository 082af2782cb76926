"""A Wyoming client with timeouts, for the tests, the benchmark and the soak run.

It uses only what every wyoming version the package allows (1.7 and newer) makes public: asyncio streams
and ``wyoming.event``'s ``async_read_event``/``async_write_event`` (``AsyncClient.from_uri`` took
``connect_timeout`` and ``read_timeout`` only from wyoming 1.10.2). It can also send raw bytes, which is
how the tests send malformed events.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import urlparse

from wyoming.event import Event, async_read_event, async_write_event


class WyomingConnection:
    """One connection to ``tcp://HOST:PORT`` or ``unix://PATH``; ``async with`` connects and disconnects."""

    def __init__(self, uri: str, *, connect_timeout: float = 10.0, read_timeout: float | None = 60.0) -> None:
        self.uri = uri
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        parsed = urlparse(self.uri)
        if parsed.scheme == "tcp":
            opening = asyncio.open_connection(parsed.hostname, parsed.port)
        elif parsed.scheme == "unix":
            opening = asyncio.open_unix_connection(parsed.path)
        else:
            raise ValueError(f"not a tcp:// or unix:// URI: {self.uri}")
        self._reader, self._writer = await asyncio.wait_for(opening, self.connect_timeout)

    async def disconnect(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def __aenter__(self) -> WyomingConnection:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()

    async def write_event(self, event: Event) -> None:
        await async_write_event(event, self._streams()[1])

    async def write_raw(self, data: bytes) -> None:
        """Bytes as they are: for events that are malformed on purpose."""
        writer = self._streams()[1]
        writer.write(data)
        await writer.drain()

    async def read_event(self) -> Event | None:
        """The next event; None when the server closed the connection; TimeoutError after `read_timeout`."""
        return await asyncio.wait_for(async_read_event(self._streams()[0]), self.read_timeout)

    def _streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            raise ConnectionError("not connected")
        return self._reader, self._writer
