"""Voice registry, prepared-voice cache, the built-in default voice and a clip checker.

A voice is a folder ``<voices-dir>/<name>/`` with ``reference.wav`` (a short clean clip of the
speaker), ``reference.txt`` (exactly what is said in it) and optionally ``voice.toml``.  Names that
clients send are only ever used as keys into the registry built from those folders; they never
become paths.

Run ``python -m wyoming_ishowtts.voices check voices/NAME`` to check a clip before using it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import sys
import threading
import urllib.request
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.options import SynthesisOptions
from ..errors import ReferenceAudioError, VoiceNotFoundError, VoiceUnavailableError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    from ..engine import Engine, PreparedClip, Voice

_LOGGER = logging.getLogger(__name__)

REFERENCE_AUDIO = "reference.wav"
REFERENCE_TEXT = "reference.txt"
VOICE_TOML = "voice.toml"

# F5TTS_v1_Base was trained on English and Mandarin and clones across the two.
DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "zh")
CACHE_FORMAT = b"wyoming-ishowtts voice cache v1"
VOICE_FORMAT = 2
MAX_CLIP_SECONDS_WARN = 12.0
MIN_CLIP_SECONDS = 1.0


def default_cache_dir() -> Path:
    """Where prepared voices and the built-in clip go by default; follows XDG so the cache lands where users
    and container images expect it."""
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "wyoming-ishowtts"


# --------------------------------------------------------------------------------------------------
# Built-in default voice


@dataclass(frozen=True)
class BuiltinVoiceSource:
    """A public-domain clip fetched on first use, so a new user hears speech without recording."""

    name: str
    url: str
    sha256: str
    size: int
    transcript: str
    languages: tuple[str, ...]
    description: str
    attribution_name: str
    attribution_url: str
    filename: str


# LJ Speech 1.1, clip LJ001-0001 (9.65 s, 22050 Hz mono 16-bit, 425830 bytes).  The LJ Speech
# dataset (Keith Ito, 2017; readings from LibriVox) is in the public domain:
# https://keithito.com/LJ-Speech-Dataset/ .  The file is fetched from the Coqui TTS repository,
# which carries a copy of a few LJ Speech clips as test data, pinned to a commit so the bytes cannot
# change.  The sha256 was computed from that exact git blob (blob id
# a274be89422809113adc336e624afeb255cdc67a at the pinned commit); the transcript is LJ Speech's own
# (metadata.csv).  No third-party audio is committed to this repository.
BUILTIN_VOICE = BuiltinVoiceSource(
    name="ljspeech",
    url=(
        "https://raw.githubusercontent.com/coqui-ai/TTS/"
        "dbf1a08a0d4e47fdad6172e433eeb34bc6b13b4e/tests/data/ljspeech/wavs/LJ001-0001.wav"
    ),
    sha256="4d2bd83ff0f7fe33491b03193abdf623f1b4cc2d8103972b33638d3607d86dc5",
    size=425830,
    transcript=(
        "Printing, in the only sense with which we are at present concerned, differs from most if not "
        "from all the arts and crafts represented in the Exhibition"
    ),
    languages=DEFAULT_LANGUAGES,
    description="LJ Speech (public domain, built in)",
    attribution_name="LJ Speech Dataset (public domain)",
    attribution_url="https://keithito.com/LJ-Speech-Dataset/",
    filename="LJ001-0001.wav",
)

_download_lock = threading.Lock()


def fetch_builtin_voice(cache_dir: Path, source: BuiltinVoiceSource = BUILTIN_VOICE) -> Path:
    """Download (once) and verify the built-in clip; a file that fails the checksum is replaced.

    Blocking network I/O: call it from the engine worker thread or a CLI, never the event loop.
    """
    target = cache_dir / "builtin" / source.filename
    with _download_lock:
        if target.is_file() and _sha256_file(target) == source.sha256:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        _LOGGER.info("Downloading default voice %s from %s", source.name, source.url)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            digest = hashlib.sha256()
            received = 0
            with urllib.request.urlopen(source.url, timeout=30) as response, tmp.open("wb") as out:
                while block := response.read(65536):
                    received += len(block)
                    if received > source.size:
                        raise VoiceUnavailableError(
                            f"default voice download is larger than the expected {source.size} bytes"
                        )
                    digest.update(block)
                    out.write(block)
            if digest.hexdigest() != source.sha256:
                raise VoiceUnavailableError(
                    f"default voice download failed its checksum (got {digest.hexdigest()}, "
                    f"expected {source.sha256})"
                )
            os.replace(tmp, target)
        except VoiceUnavailableError:
            raise
        except OSError as err:
            raise VoiceUnavailableError(
                f"could not download the default voice from {source.url}: {err}. Add your own voice "
                "to the voices folder or check the internet connection."
            ) from err
        finally:
            tmp.unlink(missing_ok=True)
    return target


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(65536):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class VoiceInfo:
    """Everything known about a voice before the engine prepares it."""

    name: str
    reference_audio: Path
    transcript: str
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    description: str | None = None
    # Per-voice SynthesisOptions fields from voice.toml (speed, nfe, seed, ...).
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    builtin: BuiltinVoiceSource | None = None
    # False when the languages are the model's defaults rather than chosen by the voice's owner.
    languages_declared: bool = False


def _normalize_language(language: str) -> str:
    return language.strip().replace("_", "-").lower()


def parse_voice_toml(path: Path) -> tuple[tuple[str, ...] | None, str | None, dict[str, Any]]:
    """Return (languages, description, synthesis options); raise ValueError on a bad file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: {err}") from err
    languages: tuple[str, ...] | None = None
    if "languages" in data or "language" in data:
        raw = data.pop("languages", None)
        if raw is None:
            raw = [data.pop("language")]
        else:
            data.pop("language", None)
        if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
            raise ValueError(f"{path}: 'languages' must be a list of language codes")
        languages = tuple(_normalize_language(x) for x in raw)
    description = data.pop("description", None)
    if description is not None and not isinstance(description, str):
        raise ValueError(f"{path}: 'description' must be a string")
    options = data.pop("options", {})
    if not isinstance(options, dict):
        raise ValueError(f"{path}: [options] must be a table")
    options = {**data, **options}  # top-level speed/nfe/seed are shorthands for [options]
    known = frozenset(f.name for f in dataclasses.fields(SynthesisOptions))
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    for key in ("speed",):
        if key in options and not (isinstance(options[key], (int, float)) and options[key] > 0):
            raise ValueError(f"{path}: '{key}' must be a positive number")
    for key in ("nfe", "seed"):
        if key in options and not isinstance(options[key], int):
            raise ValueError(f"{path}: '{key}' must be an integer")
    return languages, description, options


def load_voice_dir(directory: Path) -> VoiceInfo:
    """Read one voice folder; raise ValueError with a message fit for the log."""
    audio = directory / REFERENCE_AUDIO
    text_path = directory / REFERENCE_TEXT
    if not audio.is_file():
        raise ValueError(f"{directory}: missing {REFERENCE_AUDIO}")
    if not text_path.is_file():
        raise ValueError(f"{directory}: missing {REFERENCE_TEXT} (the transcript of {REFERENCE_AUDIO})")
    transcript = " ".join(text_path.read_text(encoding="utf-8").split())
    if not transcript:
        raise ValueError(f"{directory}: {REFERENCE_TEXT} is empty")
    languages: tuple[str, ...] | None = None
    description: str | None = None
    options: dict[str, Any] = {}
    toml_path = directory / VOICE_TOML
    if toml_path.is_file():
        languages, description, options = parse_voice_toml(toml_path)
    return VoiceInfo(
        name=directory.name,
        reference_audio=audio,
        transcript=transcript,
        languages=languages or DEFAULT_LANGUAGES,
        description=description,
        options=MappingProxyType(options),
        languages_declared=languages is not None,
    )


class VoiceRegistry:
    """Name → voice, rebuilt from disk by ``scan`` so voices appear without a restart.

    ``scan`` does file I/O: run it off the event loop.  Lookups read an immutable snapshot that is
    swapped in one assignment, so they are safe from any thread.
    """

    def __init__(
        self,
        voices_dirs: Iterable[Path],
        default_voice: str | None = None,
        builtin: BuiltinVoiceSource | None = BUILTIN_VOICE,
        cache_dir: Path | None = None,
    ) -> None:
        self._dirs = tuple(voices_dirs)
        self._default_name = default_voice
        self._builtin = builtin
        self._cache_dir = cache_dir
        self._voices: Mapping[str, VoiceInfo] = MappingProxyType({})

    @property
    def voices(self) -> Mapping[str, VoiceInfo]:
        return self._voices

    def scan(self) -> Mapping[str, VoiceInfo]:
        found: dict[str, VoiceInfo] = {}
        for root in self._dirs:
            if not root.is_dir():
                _LOGGER.debug("Voices folder %s does not exist", root)
                continue
            for directory in sorted(root.iterdir()):
                if not directory.is_dir() or directory.name.startswith("."):
                    continue
                if directory.name in found:
                    _LOGGER.warning("Voice %s in %s is shadowed by an earlier folder", directory.name, root)
                    continue
                try:
                    found[directory.name] = load_voice_dir(directory)
                except (OSError, ValueError) as err:
                    _LOGGER.warning("Skipping voice: %s", err)
        if self._builtin is not None and self._builtin.name not in found:
            cache_dir = self._cache_dir or Path(".")
            found[self._builtin.name] = VoiceInfo(
                name=self._builtin.name,
                reference_audio=cache_dir / "builtin" / self._builtin.filename,
                transcript=self._builtin.transcript,
                languages=self._builtin.languages,
                description=self._builtin.description,
                builtin=self._builtin,
                languages_declared=True,
            )
        self._voices = MappingProxyType(found)
        return self._voices

    def default(self) -> VoiceInfo:
        voices = self._voices
        if self._default_name is not None:
            if self._default_name in voices:
                return voices[self._default_name]
            raise VoiceNotFoundError(f"the configured default voice {self._default_name!r} is not installed")
        user = [v for v in voices.values() if v.builtin is None]
        if user:
            return user[0]
        if voices:
            return next(iter(voices.values()))
        raise VoiceNotFoundError("no voices are installed; add one to the voices folder")

    def resolve(self, name: str | None = None, language: str | None = None) -> VoiceInfo:
        """By name, else by language, else the default voice."""
        voices = self._voices
        if name:
            info = voices.get(name)
            if info is None:
                raise VoiceNotFoundError(f"unknown voice {name!r}; installed: {', '.join(voices) or 'none'}")
            return info
        if language:
            wanted = _normalize_language(language)
            primary = wanted.split("-")[0]
            default: VoiceInfo | None
            try:
                default = self.default()
            except VoiceNotFoundError:
                default = None
            # Languages a voice's owner declared beat the model's implicit ones; within each group
            # an exact match beats a primary-language match, and the default voice goes first.
            ordered = sorted(voices.values(), key=lambda v: v is not default)
            for declared in (True, False):
                group = [v for v in ordered if v.languages_declared is declared]
                for match in (lambda lang: lang == wanted, lambda lang: lang.split("-")[0] == primary):
                    for info in group:
                        if any(match(lang) for lang in info.languages):
                            return info
        return self.default()


# --------------------------------------------------------------------------------------------------
# Prepared voices (used only from the engine worker thread)


def voice_cache_key(audio_bytes: bytes, transcript: str, engine_key: str) -> str:
    digest = hashlib.sha256()
    for part in (CACHE_FORMAT, audio_bytes, transcript.encode("utf-8"), engine_key.encode("utf-8")):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


class PreparedVoices:
    """Prepare each voice once; keep the result in memory and on disk keyed by content.

    Keying by the clip's bytes, its transcript and the engine's cache key means editing a clip or
    switching model/precision can never serve stale tensors, and no invalidation logic is needed.
    """

    def __init__(self, cache_dir: Path, max_in_memory: int = 16) -> None:
        self._dir = cache_dir / "voices"
        self._memory: OrderedDict[str, Voice] = OrderedDict()
        self._max = max_in_memory
        # Temporary files being written right now (see ``_save`` and ``discard_partial``).
        self._writing: set[Path] = set()
        self._writing_lock = threading.Lock()
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> None:
        """Delete half-written cache files left by a process that was killed while saving one.

        Their names carry the writer's pid (``.KEY.PID.UUID.tmp.voice``); a file is stale when that
        process is gone, or is this one (a previous container run reusing the same pid, typically 1).
        """
        if not self._dir.is_dir():
            return
        for path in self._dir.glob(".*.tmp.voice"):
            parts = path.name.split(".")
            try:
                pid = int(parts[2])
            except (IndexError, ValueError):
                continue
            if pid != os.getpid() and _process_exists(pid):
                continue  # another server sharing this cache is writing it now
            _LOGGER.info("Removing a half-written voice cache file %s", path)
            path.unlink(missing_ok=True)

    def discard_partial(self) -> None:
        """Remove cache files still being written; called at shutdown when the worker did not stop in time.

        The writer may still be running: then its ``os.replace`` fails (logged) and the real name never
        points at a partial file, and the process exits without leaving the temporary one behind.
        """
        with self._writing_lock:
            writing = list(self._writing)
        for tmp in writing:
            _LOGGER.warning("Shutting down while %s was being written: removing it", tmp.name)
            tmp.unlink(missing_ok=True)

    def get(self, engine: Engine, info: VoiceInfo) -> Voice:
        from ..engine.reference import load_audio
        from ..engine.voice import prepare_clip

        audio_path = info.reference_audio
        if info.builtin is not None:
            audio_path = fetch_builtin_voice(self._dir.parent, info.builtin)
        try:
            audio_bytes = audio_path.read_bytes()
        except OSError as err:
            raise VoiceUnavailableError(
                f"voice {info.name!r}: cannot read its reference audio: {err}"
            ) from err
        key = voice_cache_key(audio_bytes, info.transcript, f"v{VOICE_FORMAT}-{engine.identity}")
        cached = self._memory.get(key)
        if cached is not None:
            self._memory.move_to_end(key)
            return cached
        path = self._dir / f"{key}.voice"
        voice: Voice | None = None
        if path.is_file():
            try:
                voice = engine.voice(read_clip(path))
                _LOGGER.debug("Loaded prepared voice %s from %s", info.name, path)
            except Exception as err:  # any unreadable cache file is rebuilt from the clip
                _LOGGER.warning("Rebuilding voice cache for %s (%s is unusable: %s)", info.name, path, err)
                path.unlink(missing_ok=True)
        if voice is None:
            audio, sample_rate = load_audio(audio_path)
            clip = prepare_clip(audio, sample_rate, info.transcript, name=info.name)
            voice = engine.voice(clip)
            self._save(clip, path)
            _LOGGER.info("Prepared voice %s", info.name)
        self._memory[key] = voice
        while len(self._memory) > self._max:
            self._memory.popitem(last=False)
        return voice

    def _save(self, clip: PreparedClip, path: Path) -> None:
        """Write atomically so a crash mid-write never leaves a truncated file under the real name."""
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp{path.suffix}")
        with self._writing_lock:
            self._writing.add(tmp)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_clip(clip, tmp)
            os.replace(tmp, path)
        except OSError as err:
            _LOGGER.warning("Could not cache prepared voice at %s: %s", path, err)
        finally:
            tmp.unlink(missing_ok=True)
            with self._writing_lock:
                self._writing.discard(tmp)


def write_clip(clip: PreparedClip, path: Path) -> None:
    """Write the prepared clip (not the mel: it depends on the device and is cheap to recompute)."""
    import torch

    torch.save(
        {
            "format": VOICE_FORMAT,
            "name": clip.name,
            "ref_text": clip.ref_text,
            "audio": clip.audio.cpu(),
            "rms": clip.rms,
            "source_seconds": clip.source_seconds,
        },
        path,
    )


def read_clip(path: Path) -> PreparedClip:
    """Read a file written by `write_clip`; raises ReferenceAudioError when it is corrupt or from another
    format. Never runs code from the file (``weights_only``)."""
    import torch

    from ..engine.voice import PreparedClip

    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or data.get("format") != VOICE_FORMAT:
            raise ValueError("unknown voice cache format")
        audio = data["audio"]
        if (
            not isinstance(audio, torch.Tensor)
            or audio.ndim != 2
            or audio.shape[0] != 1
            or audio.numel() == 0
        ):
            raise ValueError("bad audio tensor")
        return PreparedClip(
            str(data["name"]),
            str(data["ref_text"]),
            audio.float(),
            float(data["rms"]),
            float(data["source_seconds"]),
        )
    except Exception as err:
        raise ReferenceAudioError(f"voice cache {path.name} is unreadable: {err}") from err


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to another user
        return True
    return True


def synthesis_options(info: VoiceInfo) -> SynthesisOptions:
    return SynthesisOptions(**dict(info.options))


# --------------------------------------------------------------------------------------------------
# Clip checker


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning" | "ok"
    message: str


def check_voice_dir(directory: Path) -> list[Finding]:
    """Judge a voice folder the way the engine will use it, with advice a user can act on."""
    import soundfile

    findings: list[Finding] = []
    audio_path = directory / REFERENCE_AUDIO
    text_path = directory / REFERENCE_TEXT
    if not directory.is_dir():
        return [Finding("error", f"{directory} is not a folder")]

    transcript = ""
    if not text_path.is_file():
        findings.append(
            Finding("error", f"{REFERENCE_TEXT} is missing: write exactly what is said in the clip")
        )
    else:
        try:
            transcript = " ".join(text_path.read_text(encoding="utf-8").split())
        except UnicodeDecodeError:
            findings.append(Finding("error", f"{REFERENCE_TEXT} is not UTF-8 text"))
        else:
            if transcript:
                findings.append(Finding("ok", f"transcript: {len(transcript)} characters"))
            else:
                findings.append(Finding("error", f"{REFERENCE_TEXT} is empty"))

    if (directory / VOICE_TOML).is_file():
        try:
            parse_voice_toml(directory / VOICE_TOML)
            findings.append(Finding("ok", f"{VOICE_TOML} is valid"))
        except (OSError, ValueError) as err:
            findings.append(Finding("error", str(err)))

    if not audio_path.is_file():
        findings.append(Finding("error", f"{REFERENCE_AUDIO} is missing"))
        return findings
    try:
        audio, rate = soundfile.read(str(audio_path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises its own LibsndfileError and RuntimeError
        findings.append(Finding("error", f"{REFERENCE_AUDIO} cannot be read as audio: {err}"))
        return findings
    mono = audio.mean(axis=1) if audio.size else np.zeros(0, dtype=np.float32)
    seconds = len(mono) / rate if rate else 0.0
    if audio.shape[1] > 1:
        findings.append(Finding("ok", f"{audio.shape[1]} channels (mixed down to mono)"))
    if rate < 8000:
        findings.append(Finding("error", f"sample rate {rate} Hz is too low; record at 24000 Hz or more"))
    elif rate < 16000:
        findings.append(Finding("warning", f"sample rate {rate} Hz is low; 24000 Hz or more sounds better"))
    else:
        findings.append(Finding("ok", f"sample rate {rate} Hz (resampled to 24000 Hz)"))
    if seconds < MIN_CLIP_SECONDS:
        findings.append(
            Finding("error", f"clip is {seconds:.2f} s; at least {MIN_CLIP_SECONDS:.0f} s is needed")
        )
    elif seconds > MAX_CLIP_SECONDS_WARN:
        findings.append(
            Finding(
                "warning",
                f"clip is {seconds:.1f} s; keep it under {MAX_CLIP_SECONDS_WARN:.0f} s "
                "(longer clips slow every request and may be cut)",
            )
        )
    else:
        findings.append(Finding("ok", f"length {seconds:.2f} s"))

    if len(mono):
        peak = float(np.max(np.abs(mono)))
        if peak < 1e-4:
            findings.append(Finding("error", "clip is silent"))
        else:
            frame = max(1, int(rate * 0.02))
            usable = len(mono) // frame * frame
            frames = mono[:usable].reshape(-1, frame) if usable else mono.reshape(1, -1)
            rms_db = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-10)
            quiet = rms_db < -45.0
            quiet_fraction = float(np.mean(quiet))
            lead = int(np.argmax(~quiet)) * frame / rate
            trail = int(np.argmax(~quiet[::-1])) * frame / rate
            if quiet_fraction > 0.6:
                findings.append(Finding("warning", f"{quiet_fraction:.0%} of the clip is near silence"))
            if lead > 1.0 or trail > 1.0:
                findings.append(
                    Finding(
                        "warning",
                        f"long silence at the edges ({lead:.1f} s start, {trail:.1f} s end); trim it",
                    )
                )
            clipped = float(np.mean(np.abs(mono) >= 0.999))
            if clipped > 0.001:
                findings.append(Finding("warning", f"{clipped:.1%} of samples are clipped; record less loud"))
            if peak < 0.05:
                findings.append(Finding("warning", f"clip is very quiet (peak {peak:.3f})"))
    if transcript and seconds >= MIN_CLIP_SECONDS:
        rate_cps = len(transcript) / seconds
        if rate_cps > 35:
            findings.append(
                Finding("warning", f"transcript looks too long for the clip ({rate_cps:.0f} chars/s)")
            )
        elif rate_cps < 1.5:
            findings.append(
                Finding("warning", f"transcript looks too short for the clip ({rate_cps:.1f} chars/s)")
            )
    return findings


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wyoming_ishowtts.voices", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check voice folders (reference.wav + reference.txt)")
    check.add_argument("folders", nargs="+", type=Path)
    fetch = sub.add_parser("fetch-default", help="download and verify the built-in default voice")
    fetch.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "fetch-default":
        try:
            path = fetch_builtin_voice(args.cache_dir or default_cache_dir())
        except VoiceUnavailableError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(path)
        return 0

    failed = False
    for folder in args.folders:
        print(f"{folder}:")
        for finding in check_voice_dir(folder):
            print(f"  {finding.level.upper():8} {finding.message}")
            failed = failed or finding.level == "error"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main())
