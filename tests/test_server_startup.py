"""Start-up of the real server process: its defaults and options, and a model that cannot load."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, ROOT, connect, expected_samples, read_until, samples_of, start_server
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeVoice

from wyoming_ishowtts.engine.options import EngineSettings
from wyoming_ishowtts.server.cli import (
    build_parser,
    engine_settings_from_args,
    server_settings_from_args,
    studio_settings_from_args,
)
from wyoming_ishowtts.server.settings import ServerSettings, StudioSettings, default_of


def test_model_that_cannot_load_exits_nonzero(voices_dir: Path, tmp_path: Path) -> None:
    """Exit status 1 for the reason the name gives: the log says the model could not be loaded and why
    (naming the folder), with no traceback. Any other crash at start-up exits 1 too, and fails here."""
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(RuntimeError, match="server exited with 1") as raised:
        start_server(empty, voices_dir, tmp_path / "work")
    log = str(raised.value)
    assert f"Model could not be loaded: No vocab.txt in {empty}" in log, log
    assert "Stopping: the model could not be loaded" in log, log
    assert "Traceback" not in log, log


def test_version_and_help() -> None:
    version = subprocess.run(
        [PYTHON, "-m", "wyoming_ishowtts", "--version"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert version.stdout.strip()
    helptext = subprocess.run(
        [PYTHON, "-m", "wyoming_ishowtts", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for option in (
        "--uri",
        "--voices-dir",
        "--model-dir",
        "--nfe",
        "--output-rate",
        "--zeroconf",
        "--max-text-chars",
    ):
        assert option in helptext


def test_output_rate_is_resampled(tiny_model_dir: Path, voices_dir: Path, tmp_path: Path) -> None:
    server = start_server(
        tiny_model_dir,
        voices_dir,
        tmp_path,
        ["--output-rate", "16000", "--samples-per-chunk", "512", "--no-warmup"],
    )
    text = "The audio of this sentence is sent at sixteen kilohertz."
    try:

        async def go() -> list[Event]:
            async with connect(server.uri) as client:
                await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="tone")).event())
                return await read_until(client, "audio-stop")

        events = asyncio.run(go())
    finally:
        assert server.stop() == 0
    formats = {
        (e.data["rate"], e.data["width"], e.data["channels"])
        for e in events
        if e.type.startswith("audio-") and e.type != "audio-stop"
    }
    assert formats == {(16000, 2, 1)}
    assert all(len(e.payload or b"") <= 1024 for e in events if e.type == "audio-chunk")
    # The 24 kHz answer resampled as one stream and flushed at its end: nothing lost at a seam or the end.
    assert samples_of(events) == round(expected_samples(text) * 16000 / 24000)


def test_listens_on_loopback_by_default_and_docs_warn_about_authentication() -> None:
    settings = server_settings_from_args(build_parser().parse_args([]))
    assert settings.uri == "tcp://127.0.0.1:10200"
    docs = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    assert "no authentication" in docs and "firewall" in docs
    assert "no authentication" in build_parser().format_help()


def test_the_command_line_defaults_are_the_settings_defaults() -> None:
    """No option restates a default: with no arguments the settings equal the dataclasses' own defaults."""
    args = build_parser().parse_args(["--http-port", "0"])
    server, studio = server_settings_from_args(args), studio_settings_from_args(args)
    # Worked out by the command line, not defaults: ./voices, the cache folder, --http-port's settings, the
    # host zeroconf advertises (--uri's).
    derived = {"voices_dirs", "cache_dir", "studio", "zeroconf_host"}
    for field in dataclasses.fields(ServerSettings):
        if field.name not in derived:
            assert getattr(server, field.name) == default_of(ServerSettings, field.name), field.name
    assert studio == StudioSettings(port=0)
    engine = engine_settings_from_args(args)
    for name in (
        "model",
        "model_dir",
        "device",
        "precision",
        "nfe",
        "threads",
        "batch_chunks",
        "length_bucket",
    ):
        assert getattr(engine, name) == default_of(EngineSettings, name), name


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "soon"])
def test_a_shutdown_timeout_must_be_a_finite_number_zero_or_more(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--shutdown-timeout", bad])
    assert exit_.value.code == 2  # argparse's usage error, not a traceback
    error = capsys.readouterr().err
    assert "argument --shutdown-timeout" in error and bad in error, error
    assert "Traceback" not in error
    for good in ("0", "2.5"):
        settings = server_settings_from_args(build_parser().parse_args(["--shutdown-timeout", good]))
        assert settings.shutdown_timeout == float(good)
