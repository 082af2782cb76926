"""Voice name -> voice, rebuilt from the voice folders so voices appear without a restart.

Names that clients send are only ever used as keys into the registry built from those folders; they never
become paths.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from ..errors import VoiceNotFoundError
from .builtin import BUILTIN_VOICE, BuiltinVoiceSource, builtin_clip_path
from .folder import VoiceInfo, load_voice_dir, normalize_language

_LOGGER = logging.getLogger(__name__)


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
                reference_audio=builtin_clip_path(cache_dir, self._builtin),
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
            wanted = normalize_language(language)
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
