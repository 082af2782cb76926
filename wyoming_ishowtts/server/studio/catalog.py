"""What the page shows about each voice, and which folder a name from a client means.

Voices are the folders of every ``--voices-dir`` (the first is the one the studio writes; the others are
shown read-only) and the built-in voice. Each is described with the clip checker's findings, so a folder
the server skips (no transcript, an unreadable clip) is listed with the reason. A name from a client is
only compared with the names found by listing the folders; it never becomes part of a path.

Everything here is blocking file I/O: the app runs it in a thread.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import soundfile

from ...errors import READ_ONLY_VOICE, STUDIO_UNKNOWN_VOICE, StudioError
from ...voices.cache import cache_file, prepared_voice_key
from ...voices.check import Finding, check_voice_dir
from ...voices.folder import REFERENCE_AUDIO, VoiceInfo, load_voice_dir
from ...voices.registry import VoiceRegistry
from .folders import VoiceFolders


def finding_json(finding: Finding) -> dict[str, str]:
    return asdict(finding)


def voice_list(
    registry: VoiceRegistry, folders: VoiceFolders, voices_dirs: tuple[Path, ...]
) -> list[dict[str, Any]]:
    """Every voice folder (ready or not, and why) and the built-in voice, in the order the registry sees them."""
    voices = registry.scan()
    listed: list[dict[str, Any]] = []
    seen: set[str] = set()
    for root in voices_dirs:
        if not root.is_dir():
            continue
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir() or entry.name in seen:
                continue
            seen.add(entry.name)
            listed.append(describe_folder(entry, folders, voices.get(entry.name)))
    for info in voices.values():
        if info.builtin is not None and info.name not in seen:
            listed.append(_describe_builtin(info))
    return listed


def describe_folder(folder: Path, folders: VoiceFolders, info: VoiceInfo | None = None) -> dict[str, Any]:
    if info is None:
        try:
            info = load_voice_dir(folder)
        except (OSError, ValueError):
            info = None
    findings = check_voice_dir(folder)
    errors = [f for f in findings if f.level == "error"]
    if info is None and not errors:
        findings.append(Finding("error", "not-loaded", "The server cannot load this voice; see its log."))
    return {
        "name": folder.name,
        "description": info.description if info is not None else None,
        "languages": list(info.languages) if info is not None else [],
        "transcript": info.transcript if info is not None else None,
        "speed": info.options.get("speed") if info is not None else None,
        "clip_seconds": _seconds(folder / REFERENCE_AUDIO),
        "ready": info is not None and not any(f.level == "error" for f in findings),
        "findings": [finding_json(f) for f in findings if f.level != "ok"],
        "editable": folder.parent == folders.root,
        "builtin": False,
    }


def _describe_builtin(info: VoiceInfo) -> dict[str, Any]:
    downloaded = info.reference_audio.is_file()
    note = Finding("ok", "builtin", "Built in: its clip is downloaded the first time it speaks.")
    return {
        "name": info.name,
        "description": info.description,
        "languages": list(info.languages),
        "transcript": info.transcript,
        "speed": None,
        "clip_seconds": _seconds(info.reference_audio) if downloaded else None,
        "ready": True,
        "findings": [] if downloaded else [finding_json(note)],
        "editable": False,
        "builtin": True,
    }


def names_in_use(registry: VoiceRegistry, voices_dirs: tuple[Path, ...]) -> set[str]:
    """Every voice name and every folder entry of every voices folder, case-folded (a new voice may not
    take any of them: on a case-insensitive disk 'Tone' is 'tone')."""
    names = set(registry.scan())
    for root in voices_dirs:
        if root.is_dir():
            names.update(entry.name for entry in root.iterdir())
    return {name.casefold() for name in names}


def managed_folder(
    name: str, registry: VoiceRegistry, folders: VoiceFolders, voices_dirs: tuple[Path, ...]
) -> Path:
    """The studio's own folder of the voice `name`, or a clear refusal: unknown, or not the studio's."""
    folder = folders.find(name)
    if folder is not None:
        return folder
    if name in registry.scan() or any(folder_in(root, name) for root in voices_dirs[1:]):
        raise StudioError(
            READ_ONLY_VOICE,
            f"'{name[:64]}' is not in the studio's voices folder ({folders.root}); change it there by hand.",
        )
    raise StudioError(STUDIO_UNKNOWN_VOICE, f"There is no voice named '{name[:64]}'.")


def reference_clip(name: str, registry: VoiceRegistry, voices_dirs: tuple[Path, ...]) -> Path:
    """The clip of the voice `name`, found by listing (the first voices folder that has it wins)."""
    for root in voices_dirs:
        folder = folder_in(root, name)
        if folder is not None:
            audio = folder / REFERENCE_AUDIO
            if audio.is_file():
                return audio
            break
    info = registry.voices.get(name)
    if info is not None and info.builtin is not None and info.reference_audio.is_file():
        return info.reference_audio
    raise StudioError(STUDIO_UNKNOWN_VOICE, f"There is no clip for a voice named '{name[:64]}'.")


def prepared_file(folder: Path, cache_dir: Path, engine_identity: str) -> Path | None:
    """The prepared-voice cache file the server keeps for the voice in `folder` (None: it cannot be loaded).

    The cache is keyed by content, so a deleted voice, or the old transcript of an edited one, would leave
    its file behind for ever; the studio removes it. Another folder with the very same clip and transcript
    shares the file: it is prepared again the next time it speaks, once.
    """
    try:
        info = load_voice_dir(folder)
        audio = info.reference_audio.read_bytes()
    except (OSError, ValueError):
        return None
    return cache_file(cache_dir, prepared_voice_key(audio, info.transcript, engine_identity))


def folder_in(root: Path, name: str) -> Path | None:
    if not root.is_dir():
        return None
    for entry in root.iterdir():
        if entry.name == name and not entry.name.startswith(".") and entry.is_dir():
            return entry
    return None


def _seconds(path: Path) -> float | None:
    try:
        return round(float(soundfile.info(str(path)).duration), 2)
    except Exception:  # unreadable or missing: the findings say why
        return None
