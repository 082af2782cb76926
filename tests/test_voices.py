"""Voice registry, prepared-voice cache, default-voice download and the clip checker."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import PYTHON, ROOT, make_voice, write_tone_clip

from wyoming_ishowtts.engine import Engine, EngineSettings
from wyoming_ishowtts.errors import VoiceNotFoundError, VoiceUnavailableError
from wyoming_ishowtts.voices import cache as cache_module
from wyoming_ishowtts.voices.builtin import BUILTIN_VOICE, BuiltinVoiceSource, fetch_builtin_voice
from wyoming_ishowtts.voices.cache import PreparedVoices
from wyoming_ishowtts.voices.check import Finding, check_clip, check_voice_dir
from wyoming_ishowtts.voices.registry import VoiceRegistry


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(EngineSettings(model_dir=tiny_model_dir, device="cpu", nfe=4))


def test_registry_scan_and_resolve(tmp_path: Path) -> None:
    make_voice(tmp_path, "alice", toml='languages = ["en-US"]\ndescription = "Alice"\nspeed = 1.1\n')
    make_voice(tmp_path, "bob", toml='languages = ["zh"]\n')
    make_voice(tmp_path, "plain")
    (tmp_path / "no-transcript").mkdir()
    write_tone_clip(tmp_path / "no-transcript" / "reference.wav")
    make_voice(tmp_path, "bad-toml", toml="speed = 'fast'\n")
    registry = VoiceRegistry([tmp_path], default_voice="plain", builtin=None)
    voices = registry.scan()
    assert set(voices) == {"alice", "bob", "plain"}
    assert voices["alice"].languages == ("en-us",)
    assert voices["alice"].options["speed"] == 1.1
    assert registry.resolve("bob").name == "bob"
    assert registry.resolve(language="zh_CN").name == "bob"
    assert registry.resolve(language="en").name == "alice"  # declared languages win
    assert registry.resolve(language="fr").name == "plain"
    assert registry.resolve().name == "plain"
    for hostile in ("../plain", str(tmp_path / "plain"), "plain/reference.wav", ""):
        if hostile:
            with pytest.raises(VoiceNotFoundError):
                registry.resolve(hostile)


def test_registry_offers_builtin_voice_when_no_user_voice(tmp_path: Path) -> None:
    registry = VoiceRegistry([tmp_path / "missing"], cache_dir=tmp_path / "cache")
    registry.scan()
    default = registry.resolve()
    assert default.name == BUILTIN_VOICE.name and default.builtin is BUILTIN_VOICE
    assert default.reference_audio.is_relative_to(tmp_path / "cache")


def test_unknown_voice_toml_setting_is_rejected(tmp_path: Path) -> None:
    make_voice(tmp_path, "typo", toml="nfee = 16\n")
    assert "typo" not in VoiceRegistry([tmp_path], builtin=None).scan()


def _must_not_prepare(*args: object, **kwargs: object) -> None:
    raise AssertionError("the voice was prepared from its clip again")


def test_prepared_voice_cache_roundtrip_and_corruption(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_voice(tmp_path / "voices", "tone")
    registry = VoiceRegistry([tmp_path / "voices"], builtin=None)
    info = registry.scan()["tone"]
    cache = tmp_path / "cache"

    first = PreparedVoices(cache).get(engine, info)
    files = list((cache / "voices").glob("*.voice"))
    assert len(files) == 1
    assert not list((cache / "voices").glob(".*tmp*")), "no temporary file left behind"

    # A fresh process (no memory cache) reads it from disk: what only the file holds comes back (a
    # transcript written into it), and the clip is not prepared again.
    cache_module.write_clip(dataclasses.replace(first, ref_text="Only in the file. "), files[0])
    with monkeypatch.context() as patch:
        patch.setattr(cache_module, "prepare_clip", _must_not_prepare)
        again = PreparedVoices(cache).get(engine, info)
    assert again.ref_text == "Only in the file. "
    assert np.array_equal(again.audio.numpy(), first.audio.numpy())
    cache_module.write_clip(first, files[0])

    # A truncated file is rebuilt from the clip.
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 3])
    rebuilt = PreparedVoices(cache).get(engine, info)
    assert np.array_equal(rebuilt.audio.numpy(), first.audio.numpy())
    assert len(files[0].read_bytes()) > len(data) // 3, "the cache file was rewritten"
    PreparedVoices(cache).get(engine, info)  # and the rewritten file loads

    # Changing the clip changes the key: a new cache entry, never stale tensors.
    write_tone_clip(info.reference_audio, seconds=2.5)
    PreparedVoices(cache).get(engine, info)
    assert len(list((cache / "voices").glob("*.voice"))) == 2


def _local_source(tmp_path: Path, sha256: str | None = None) -> tuple[BuiltinVoiceSource, bytes]:
    clip = tmp_path / "upstream.wav"
    write_tone_clip(clip)
    data = clip.read_bytes()
    source = dataclasses.replace(
        BUILTIN_VOICE,
        url=clip.as_uri(),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
    return source, data


def test_builtin_voice_download_is_verified(tmp_path: Path) -> None:
    source, data = _local_source(tmp_path)
    path = fetch_builtin_voice(tmp_path / "cache", source)
    assert path.read_bytes() == data
    # A damaged copy is fetched again.
    path.write_bytes(b"garbage")
    assert fetch_builtin_voice(tmp_path / "cache", source).read_bytes() == data


def test_builtin_voice_with_wrong_checksum_is_refused(tmp_path: Path) -> None:
    source, _ = _local_source(tmp_path, sha256="0" * 64)
    with pytest.raises(VoiceUnavailableError, match="checksum"):
        fetch_builtin_voice(tmp_path / "cache", source)
    assert not (tmp_path / "cache" / "builtin" / source.filename).exists()
    assert not list((tmp_path / "cache" / "builtin").iterdir())


def test_builtin_voice_unreachable(tmp_path: Path) -> None:
    source = dataclasses.replace(BUILTIN_VOICE, url=(tmp_path / "nowhere.wav").as_uri())
    with pytest.raises(VoiceUnavailableError):
        fetch_builtin_voice(tmp_path / "cache", source)


def _codes(findings: list[Finding]) -> dict[str, list[str]]:
    """Level -> the codes found at that level."""
    out: dict[str, list[str]] = {}
    for finding in findings:
        out.setdefault(finding.level, []).append(finding.code)
    return out


def test_check_good_clip(tmp_path: Path) -> None:
    codes = _codes(check_voice_dir(make_voice(tmp_path, "good")))
    assert "error" not in codes and "warning" not in codes, codes
    assert {"transcript", "rate", "length"} <= set(codes["ok"])


def test_check_problems(tmp_path: Path) -> None:
    short = make_voice(tmp_path, "short", seconds=0.5)
    assert "too-short" in _codes(check_voice_dir(short))["error"]

    long = make_voice(tmp_path, "long", transcript="A long clip. " * 12, seconds=14.0)
    assert "too-long" in _codes(check_voice_dir(long))["warning"]

    silent = tmp_path / "silent"
    write_tone_clip(silent / "reference.wav", silent=True)
    (silent / "reference.txt").write_text("Nothing.", encoding="utf-8")
    assert "silent" in _codes(check_voice_dir(silent))["error"]

    untranscribed = tmp_path / "untranscribed"
    write_tone_clip(untranscribed / "reference.wav")
    assert "transcript-missing" in _codes(check_voice_dir(untranscribed))["error"]

    low = tmp_path / "low-rate"
    low.mkdir()
    t = np.arange(4 * 11025) / 11025
    soundfile.write(str(low / "reference.wav"), (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 11025)
    (low / "reference.txt").write_text("A low sample rate clip.", encoding="utf-8")
    assert "rate-low" in _codes(check_voice_dir(low))["warning"]


def test_check_clip_judges_samples_as_the_folder_check_judges_the_file(tmp_path: Path) -> None:
    """The page checks a clip before it is a folder: the same findings as for the saved folder."""
    folder = make_voice(tmp_path, "edges")
    audio, rate = soundfile.read(str(folder / "reference.wav"), dtype="float32", always_2d=True)
    padded = np.concatenate([np.zeros((rate * 2, 1), np.float32), audio, np.zeros((rate * 2, 1), np.float32)])
    soundfile.write(str(folder / "reference.wav"), padded, rate, subtype="PCM_16")
    from_folder = check_voice_dir(folder)
    assert "edge-silence" in _codes(from_folder)["warning"]
    from_samples = check_clip(padded, rate, (folder / "reference.txt").read_text(encoding="utf-8"))
    assert sorted((f.level, f.code) for f in from_samples) == sorted((f.level, f.code) for f in from_folder)
    assert all(not f.message[0].islower() and f.message.endswith(".") for f in from_folder), from_folder
    # No transcript given: the clip is judged, the transcript is not.
    assert all(not f.code.startswith("transcript") for f in check_clip(padded, rate))


def test_check_command_exit_status(tmp_path: Path) -> None:
    good = make_voice(tmp_path, "good")
    bad = make_voice(tmp_path, "bad", seconds=0.4)
    ok = subprocess.run(
        [PYTHON, "-m", "wyoming_ishowtts.voices", "check", str(good)], cwd=ROOT, capture_output=True
    )
    assert ok.returncode == 0, ok.stdout
    fail = subprocess.run(
        [PYTHON, "-m", "wyoming_ishowtts.voices", "check", str(bad)], cwd=ROOT, capture_output=True
    )
    assert fail.returncode == 1 and b"ERROR" in fail.stdout and b"[too-short]" in fail.stdout


def test_stale_temporary_cache_files_are_removed_at_start(tmp_path: Path) -> None:
    """A server killed (SIGKILL, power loss) mid-write leaves a temporary file; the next start removes it."""
    folder = tmp_path / "voices"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = folder / f".abc.{dead.pid}.0123.tmp.voice"
    ours = folder / f".abc.{os.getpid()}.4567.tmp.voice"
    alive = folder / f".abc.{os.getppid()}.89ab.tmp.voice"  # another live process may be writing it
    kept = folder / "abc.voice"
    for path in (stale, ours, alive, kept):
        path.write_bytes(b"partial")
    PreparedVoices(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted([alive.name, kept.name])
