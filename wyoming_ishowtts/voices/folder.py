"""What a voice is on disk: a folder ``NAME/`` with ``reference.wav`` (a short clean clip of the speaker),
``reference.txt`` (exactly what is said in it) and optionally ``voice.toml`` (languages, a description,
per-voice synthesis options such as speed, nfe and seed, and max_reference_seconds). The server and
``synthesize.py`` both read a voice through `load_voice_dir` and `synthesis_options`, so a voice sounds the
same from either. Torch-free.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..engine.options import MODEL_LANGUAGES, SynthesisOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    from .builtin import BuiltinVoiceSource

REFERENCE_AUDIO = "reference.wav"
REFERENCE_TEXT = "reference.txt"
VOICE_TOML = "voice.toml"

MIN_MAX_REFERENCE_SECONDS, MAX_MAX_REFERENCE_SECONDS = 3.0, 12.0
"""What voice.toml's max_reference_seconds may be: a shorter clip clones too little of a voice, and the
engine keeps at most about 12 s anyway (upstream's rule)."""

DEFAULT_LANGUAGES = MODEL_LANGUAGES
"""A voice's languages when its voice.toml names none: the model's."""


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
    # Whether the server puts this voice's text into words first (voice.toml: normalize = false turns it off).
    normalize: bool = True
    # voice.toml's max_reference_seconds: the clip is cut at a pause within this many seconds (and its
    # transcript where that cut most likely falls) when it is prepared; None: upstream's rule alone (<= 12 s).
    max_reference_seconds: float | None = None
    # A clip being tried before it is saved (the voice studio's preview): prepared in memory only, never
    # written to the prepared-voice cache, so trying clips leaves no files behind.
    transient: bool = False


def normalize_language(language: str) -> str:
    return language.strip().replace("_", "-").lower()


@dataclass(frozen=True)
class VoiceToml:
    """What a voice.toml says (`parse_voice_toml`)."""

    languages: tuple[str, ...] | None
    description: str | None
    options: dict[str, Any]
    normalize: bool = True
    max_reference_seconds: float | None = None


def parse_voice_toml(path: Path) -> VoiceToml:
    """Read a voice.toml; raise ValueError on a bad file."""
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
        languages = tuple(normalize_language(x) for x in raw)
    description = data.pop("description", None)
    if description is not None and not isinstance(description, str):
        raise ValueError(f"{path}: 'description' must be a string")
    normalize = data.pop("normalize", True)
    if not isinstance(normalize, bool):
        raise ValueError(f"{path}: 'normalize' must be true or false")
    max_reference = data.pop("max_reference_seconds", None)
    if max_reference is not None and not (
        isinstance(max_reference, (int, float))
        and not isinstance(max_reference, bool)
        and MIN_MAX_REFERENCE_SECONDS <= max_reference <= MAX_MAX_REFERENCE_SECONDS
    ):
        raise ValueError(
            f"{path}: 'max_reference_seconds' must be a number of seconds from "
            f"{MIN_MAX_REFERENCE_SECONDS:g} to {MAX_MAX_REFERENCE_SECONDS:g}"
        )
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
    limit = None if max_reference is None else float(max_reference)
    return VoiceToml(languages, description, options, normalize, limit)


def load_voice_dir(directory: Path) -> VoiceInfo:
    """Read one voice folder; raise ValueError with a message fit for the log."""
    if not directory.is_dir():
        raise ValueError(
            f"{directory} is not a folder (a voice folder holds {REFERENCE_AUDIO} and {REFERENCE_TEXT})"
        )
    audio = directory / REFERENCE_AUDIO
    text_path = directory / REFERENCE_TEXT
    if not audio.is_file():
        raise ValueError(f"{directory}: missing {REFERENCE_AUDIO}")
    if not text_path.is_file():
        raise ValueError(f"{directory}: missing {REFERENCE_TEXT} (the transcript of {REFERENCE_AUDIO})")
    transcript = " ".join(text_path.read_text(encoding="utf-8").split())
    if not transcript:
        raise ValueError(f"{directory}: {REFERENCE_TEXT} is empty")
    toml_path = directory / VOICE_TOML
    settings = parse_voice_toml(toml_path) if toml_path.is_file() else VoiceToml(None, None, {})
    return VoiceInfo(
        name=directory.name,
        reference_audio=audio,
        transcript=transcript,
        languages=settings.languages or DEFAULT_LANGUAGES,
        description=settings.description,
        options=MappingProxyType(settings.options),
        languages_declared=settings.languages is not None,
        normalize=settings.normalize,
        max_reference_seconds=settings.max_reference_seconds,
    )


def synthesis_options(info: VoiceInfo) -> SynthesisOptions:
    return SynthesisOptions(**dict(info.options))
