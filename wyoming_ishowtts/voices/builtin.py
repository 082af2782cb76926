"""The built-in voice: a public-domain clip fetched (once, verified) on first use, so a new user hears
speech without recording a voice."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..engine.options import MODEL_LANGUAGES
from ..errors import VoiceUnavailableError

_LOGGER = logging.getLogger(__name__)


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
    languages=MODEL_LANGUAGES,
    description="LJ Speech (public domain, built in)",
    attribution_name="LJ Speech Dataset (public domain)",
    attribution_url="https://keithito.com/LJ-Speech-Dataset/",
    filename="LJ001-0001.wav",
)

_download_lock = threading.Lock()


def builtin_clip_path(cache_dir: Path, source: BuiltinVoiceSource = BUILTIN_VOICE) -> Path:
    """Where the built-in clip is kept once downloaded."""
    return cache_dir / "builtin" / source.filename


def fetch_builtin_voice(cache_dir: Path, source: BuiltinVoiceSource = BUILTIN_VOICE) -> Path:
    """Download (once) and verify the built-in clip; a file that fails the checksum is replaced.

    Blocking network I/O: call it from the engine worker thread or a CLI, never the event loop.
    """
    target = builtin_clip_path(cache_dir, source)
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
