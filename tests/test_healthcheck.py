"""The container health check against small stand-in Wyoming servers (no model needed)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice

from wyoming_ishowtts.healthcheck import build_parser, check, judge_info, main
from wyoming_ishowtts.readiness import program_description

ATTRIBUTION = Attribution(name="test", url="https://example.invalid")
Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def tts_info(installed: bool = True, programs: int = 1, description: str | None = None) -> Info:
    voice = TtsVoice(
        name="alice",
        attribution=ATTRIBUTION,
        installed=True,
        description=None,
        version=None,
        languages=["en"],
    )
    program = TtsProgram(
        name="ishowtts",
        attribution=ATTRIBUTION,
        installed=installed,
        description=description,
        version="0",
        voices=[voice],
    )
    return Info(tts=[program] * programs)


@asynccontextmanager
async def fake_server(reply: Reply) -> AsyncIterator[str]:
    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def answering(*events: Event) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await async_read_event(reader)
        assert request is not None and Describe.is_type(request.type)
        for event in events:
            await async_write_event(event, writer)
        writer.close()

    return reply


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(10)  # accepts the connection (a port probe would pass) but never answers
    writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def run_check(reply: Reply, timeout: float = 2.0) -> tuple[bool, str]:
    async with fake_server(reply) as uri:
        result = await check(uri, timeout)
    return result.healthy, result.message


def test_healthy_when_a_tts_program_is_installed() -> None:
    healthy, message = asyncio.run(run_check(answering(tts_info().event())))
    assert healthy, message
    assert "ishowtts" in message and "1 installed voice" in message


def test_stray_events_before_info_are_skipped() -> None:
    healthy, message = asyncio.run(run_check(answering(Event(type="ping"), tts_info().event())))
    assert healthy, message


@pytest.mark.parametrize(
    ("info", "reason"),
    [
        (Info(), "no text-to-speech program"),
        (tts_info(installed=False), "none is installed"),
    ],
)
def test_unhealthy_without_an_installed_program(info: Info, reason: str) -> None:
    healthy, message = asyncio.run(run_check(answering(info.event())))
    assert not healthy
    assert reason in message


def test_unhealthy_when_the_server_never_answers() -> None:
    healthy, message = asyncio.run(run_check(silent, timeout=0.5))
    assert not healthy
    assert "within 0.5 s" in message


def test_unhealthy_when_the_server_hangs_up() -> None:
    healthy, message = asyncio.run(run_check(answering()))
    assert not healthy
    assert "closed the connection" in message


def test_unhealthy_when_nothing_listens() -> None:
    result = asyncio.run(check(f"tcp://127.0.0.1:{free_port()}", 2.0))
    assert not result.healthy
    assert "cannot reach" in result.message


def test_bad_uri_is_unhealthy_not_a_crash() -> None:
    result = asyncio.run(check("tcp://127.0.0.1", 1.0))
    assert not result.healthy


def test_judge_info_counts_voices_of_installed_programs() -> None:
    assert judge_info(tts_info(programs=2)).message.endswith("2 installed voice(s)")


def test_ready_asks_for_a_loaded_model_and_alive_does_not() -> None:
    """--ready passes only when the program's description says the model is loaded (the server's own
    wording, readiness.py); a server still loading, or one too old to say, is alive but not ready."""
    for description in (program_description(False), None, "F5-TTS (model ready) soon"):
        info = tts_info(description=description)
        assert judge_info(info).healthy, description
        verdict = judge_info(info, ready=True)
        assert not verdict.healthy and "not loaded" in verdict.message, description
    assert judge_info(tts_info(description=program_description(True)), ready=True).healthy


def test_ready_flag_reaches_the_check(capsys: pytest.CaptureFixture[str]) -> None:
    loading = answering(tts_info(description=program_description(False)).event())

    async def go(argv: list[str]) -> int:
        async with fake_server(loading) as uri:
            return await asyncio.to_thread(main, ["--uri", uri, "--timeout", "2", *argv])

    assert asyncio.run(go([])) == 0
    assert asyncio.run(go(["--ready"])) == 1
    assert "model is not loaded yet" in capsys.readouterr().err


def test_main_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--uri", f"tcp://127.0.0.1:{free_port()}", "--timeout", "1"]) == 1
    assert "unhealthy: cannot reach" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_timeout_must_be_positive(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused as a usage error (exit 2) that says what is wrong with --timeout; a positive one is taken."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--timeout", value])
    assert exit_info.value.code == 2
    assert f"argument --timeout: must be positive, got {value}" in capsys.readouterr().err
    assert build_parser().parse_args(["--timeout", "0.5"]).timeout == 0.5
