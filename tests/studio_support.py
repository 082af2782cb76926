"""The real server with its voice studio, for the studio's tests: `Service` (what ``serve()`` runs) in a thread
of the test process, started with ``studio=StudioSettings(...)`` as ``--http-port`` starts it, on the tiny
random model on the CPU. Nothing of the server is put together by hand here.

Also the small HTTP client the tests share.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from conftest import load_tiny_engine
from inprocess import InProcessServer, run_server
from multidict import CIMultiDictProxy

from wyoming_ishowtts.server.settings import StudioSettings


@dataclass
class StudioServer:
    uri: str
    """The Wyoming side."""
    url: str
    """The studio page; API paths are relative to it."""
    voices_dir: Path
    """The folder the studio writes (the first --voices-dir)."""
    cache_dir: Path
    server: InProcessServer


@contextmanager
def studio_server(
    model_dir: Path,
    voices_dirs: tuple[Path, ...],
    cache_dir: Path,
    *,
    max_text_chars: int = 2000,
    **studio: Any,
) -> Iterator[StudioServer]:
    """A server on loopback with the studio on a port the system picks; ``studio`` are StudioSettings fields."""
    engine = load_tiny_engine(model_dir)
    settings = StudioSettings(port=0, **studio)
    with run_server(engine, voices_dirs, cache_dir, max_text_chars=max_text_chars, studio=settings) as server:
        yield StudioServer(server.uri, server.studio_url, voices_dirs[0], cache_dir, server)


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str:
        return str(self.json()["error"]["code"])


def http(method: str, url: str, **kwargs: Any) -> Reply:
    """One request from a fresh client (its own event loop, in this thread)."""

    async def go() -> Reply:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, **kwargs) as response,
        ):
            return Reply(response.status, response.headers, await response.read())

    return asyncio.run(go())
