"""Reference clip handling: loading, mono/resampling, and upstream's clipping and trimming rules.

F5-TTS prepares a reference with pydub (``preprocess_ref_audio_text`` in
``infer/utils_infer.py``).  `trim_reference` reproduces those rules on float
samples with numpy, including pydub's millisecond arithmetic, so the engine gets
the same samples without pydub or ffmpeg at run time.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import numpy as np
import soundfile as sf

from wyoming_ishowtts.errors import ReferenceAudioError

__all__ = [
    "cut_at_pause",
    "cut_transcript",
    "load_audio",
    "normalize_ref_text",
    "pauses",
    "resample",
    "rms",
    "to_mono",
    "trim_reference",
]

MIN_REFERENCE_SECONDS = 0.5

# Upstream's clipping rules (milliseconds and dBFS).
_LONG_PASS = (1000, -50.0)  # (min_silence_len, silence_thresh) of pass 1
_SHORT_PASS = (100, -40.0)  # pass 2, when pass 1 found no usable long silence
_KEEP_SILENCE_MS = 1000
_SEEK_STEP_MS = 10
_ENOUGH_MS = 6000  # stop adding segments once past this ...
_LIMIT_MS = 12000  # ... if the next one would pass this
_EDGE_THRESH_DB = -42.0
_EDGE_STEP_MS = 10
_PAD_MS = 50


# --------------------------------------------------------------------------- loading


def load_audio(path: Path) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 in [-1, 1]: shape (n,) for mono, (n, channels) otherwise.

    Messages name the file as `voice-folder/file`, never the full path: they may reach network clients.
    """
    full = Path(path)
    path = Path(full.parent.name) / full.name
    if not full.is_file():
        raise ReferenceAudioError(f"Reference audio not found: {path}")
    try:
        audio, sample_rate = sf.read(str(full), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        reason = str(exc).replace(str(full), str(path))
        raise ReferenceAudioError(
            f"Cannot read reference audio {path}: not a supported audio file ({reason})"
        ) from exc
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and audio.shape[1] == 1:
        audio = audio[:, 0]
    if audio.shape[0] == 0 or audio.size == 0:
        raise ReferenceAudioError(f"Reference audio {path} contains no samples")
    if sample_rate <= 0:
        raise ReferenceAudioError(f"Reference audio {path} has an invalid sample rate ({sample_rate})")
    if not np.isfinite(audio).all():
        raise ReferenceAudioError(f"Reference audio {path} contains invalid (NaN or infinite) samples")
    return audio, int(sample_rate)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average the channels (upstream averages rather than picking one); mono input is returned as is."""
    audio = np.asarray(audio)
    if audio.ndim == 1:
        return audio.astype(np.float32, copy=False)
    return audio.mean(axis=1, dtype=np.float64).astype(np.float32)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """High-quality resampling with soxr; a no-op when the rates are equal.

    Upstream uses torchaudio's sinc resampler, so samples differ slightly after
    resampling; references already at 24 kHz are unaffected.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if sr_in == sr_out:
        return audio
    import soxr

    return np.asarray(soxr.resample(audio, sr_in, sr_out, quality="HQ"), dtype=np.float32)


def rms(audio: np.ndarray) -> float:
    """Root mean square over all samples (0.0 for empty input)."""
    data = np.asarray(audio, dtype=np.float64)
    if data.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(data))))


def normalize_ref_text(text: str) -> str:
    """Strip the transcript and make it end the way upstream does: with ". " or "。".

    Upstream appends " " after a final "." and ". " after anything else, so the
    model always sees a sentence end between the reference and the new text.
    """
    text = text.strip()
    if not text:
        raise ReferenceAudioError("The reference transcript is missing: give the words spoken in the clip")
    if text.endswith("。"):
        return text
    if text.endswith("."):
        return text + " "
    return text + ". "


# --------------------------------------------------------------------------- pydub-style clip


class _Clip:
    """Frames (n, channels) float64 addressed in milliseconds the way pydub does.

    pydub's length is ``round(1000 * frames / rate)`` and a millisecond position
    maps to frame ``int(ms * (rate / 1000.0))``; slices reaching past the data
    (possible because the length is rounded) are padded with silence.  Loudness is
    the RMS of all samples of all channels, like ``audioop.rms``.
    """

    def __init__(self, frames: np.ndarray, rate: int) -> None:
        self.frames = frames
        self.rate = rate
        energy = np.square(frames).sum(axis=1)
        self._cumulative = np.concatenate([[0.0], np.cumsum(energy)])

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    def __len__(self) -> int:
        return _length_ms(self.n_frames, self.rate)

    def _bounds(self, start_ms: float, end_ms: float) -> tuple[int, int]:
        length = len(self)
        start = _frame_at(min(start_ms, length), self.rate)
        end = _frame_at(min(end_ms, length), self.rate)
        return start, end

    def slice(self, start_ms: float, end_ms: float | None = None) -> np.ndarray:
        start, end = self._bounds(start_ms, len(self) if end_ms is None else end_ms)
        data = self.frames[start:end]
        wanted = end - start
        if wanted > data.shape[0]:
            padding = np.zeros((wanted - data.shape[0], self.frames.shape[1]))
            data = np.concatenate([data, padding])
        return data

    def window_rms(self, start_ms: float, end_ms: float) -> float:
        """RMS of `slice(start_ms, end_ms)` without copying, from a running sum of squares."""
        start, end = self._bounds(start_ms, end_ms)
        if end <= start:
            return 0.0
        stop = min(end, self.n_frames)
        total = max(self._cumulative[stop] - self._cumulative[min(start, stop)], 0.0)
        return math.sqrt(total / ((end - start) * self.frames.shape[1]))


def _length_ms(n_frames: int, rate: int) -> int:
    return round(1000 * (float(n_frames) / rate))


def _frame_at(ms: float, rate: int) -> int:
    return int(ms * (rate / 1000.0))


def _db_to_amplitude(db: float) -> float:
    return float(10 ** (db / 20))


def _silent_ranges(clip: _Clip, min_len: int, thresh_db: float, step: int) -> list[tuple[int, int]]:
    """Silent [start, end) ranges in ms: windows of `min_len` ms every `step` ms at or below the threshold.

    Overlapping or touching silent windows merge into one range, as in pydub's
    ``detect_silence``; the last window is always tested even off the step grid.
    """
    length = len(clip)
    if length < min_len:
        return []
    thresh = _db_to_amplitude(thresh_db)
    last_start = length - min_len
    starts = list(range(0, last_start + 1, step))
    if last_start % step:
        starts.append(last_start)
    silent = [s for s in starts if clip.window_rms(s, s + min_len) <= thresh]
    if not silent:
        return []
    ranges: list[tuple[int, int]] = []
    range_start = previous = silent[0]
    for start in silent[1:]:
        if start != previous + step and start > previous + min_len:
            ranges.append((range_start, previous + min_len))
            range_start = start
        previous = start
    ranges.append((range_start, previous + min_len))
    return ranges


def _nonsilent_ranges(clip: _Clip, min_len: int, thresh_db: float, step: int) -> list[tuple[int, int]]:
    """The complement of `_silent_ranges` (pydub's ``detect_nonsilent``)."""
    silent = _silent_ranges(clip, min_len, thresh_db, step)
    length = len(clip)
    if not silent:
        return [(0, length)]
    if silent[0] == (0, length):
        return []
    ranges: list[tuple[int, int]] = []
    previous_end = 0
    for start, end in silent:
        ranges.append((previous_end, start))
        previous_end = end
    if silent[-1][1] != length:
        ranges.append((previous_end, length))
    if ranges[0] == (0, 0):
        ranges.pop(0)
    return ranges


def _split_on_silence(clip: _Clip, min_len: int, thresh_db: float) -> list[np.ndarray]:
    """Sounding parts with up to 1 s of their surrounding silence (pydub's ``split_on_silence``).

    When two parts' kept silences would overlap, the silence between them is
    shared at its midpoint, so neighbouring parts join without a gap.
    """
    ranges = [
        [start - _KEEP_SILENCE_MS, end + _KEEP_SILENCE_MS]
        for start, end in _nonsilent_ranges(clip, min_len, thresh_db, _SEEK_STEP_MS)
    ]
    for current, following in pairwise(ranges):
        if following[0] < current[1]:
            middle = (current[1] + following[0]) // 2
            current[1] = middle
            following[0] = middle
    length = len(clip)
    return [clip.slice(max(start, 0), min(end, length)) for start, end in ranges]


def _collect(parts: list[np.ndarray], rate: int, channels: int) -> np.ndarray:
    """Add parts in order until the total is past 6 s and the next part would take it past 12 s."""
    kept: list[np.ndarray] = []
    n_frames = 0
    for part in parts:
        if _length_ms(n_frames, rate) > _ENOUGH_MS and _length_ms(n_frames + part.shape[0], rate) > _LIMIT_MS:
            break
        kept.append(part)
        n_frames += part.shape[0]
    if not kept:
        return np.zeros((0, channels))
    return np.concatenate(kept)


def _leading_silence_ms(clip: _Clip) -> int:
    """Milliseconds of 10 ms steps below -42 dBFS at the start (pydub's ``detect_leading_silence``)."""
    length = len(clip)
    thresh = _db_to_amplitude(_EDGE_THRESH_DB)
    trim = 0
    # "< -42 dBFS" on 20*log10(rms); an all-zero window counts as -inf dBFS.
    while trim < length and clip.window_rms(trim, trim + _EDGE_STEP_MS) < thresh:
        trim += _EDGE_STEP_MS
    return min(trim, length)


def _strip_edges(frames: np.ndarray, rate: int) -> np.ndarray:
    clip = _Clip(frames, rate)
    frames = clip.slice(_leading_silence_ms(clip))
    clip = _Clip(frames, rate)
    trailing = _leading_silence_ms(_Clip(frames[::-1], rate))
    if trailing > 0:
        frames = clip.slice(0, len(clip) - trailing)
    return frames


def _pad_frames(rate: int) -> int:
    """Frames of the 50 ms pad upstream appends.

    pydub creates it at 11025 Hz (551 frames) and converts it with
    ``audioop.ratecv``, whose output length we count here; at most a frame or two
    away from ``0.05 * rate``.
    """
    base_rate = 11025
    n_in = int(base_rate * (_PAD_MS / 1000.0))
    if rate <= base_rate:
        # pydub would instead raise the whole clip to 11025 Hz; we keep the rate.
        return int(rate * (_PAD_MS / 1000.0))
    divisor = math.gcd(base_rate, rate)
    in_step, out_step = base_rate // divisor, rate // divisor
    # ratecv emits floor((k * out_step - 1) / in_step) + 1 frames after k inputs.
    return (n_in * out_step - out_step) // in_step + 1


def trim_reference(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Clip a reference to at most ~12 s and trim its silent ends, following upstream's rules.

    Call it on the file's own samples and rate (upstream trims before mixing
    down or resampling).  The steps:

    1. split where at least 1 s is below -50 dBFS (keeping up to 1 s of silence
       around each part) and keep parts while the total is under 6 s or stays
       within 12 s;
    2. if that is still over 12 s, the same with 100 ms below -40 dBFS;
    3. if still over 12 s, cut at 12 s;
    4. drop leading and trailing 10 ms steps below -42 dBFS and append 50 ms of
       silence.

    The one intended difference from pydub: levels are measured on float samples
    with full scale 1.0 (20*log10(rms)), whereas pydub measures the integer
    samples against the sample width's maximum and truncates the RMS to an
    integer, so windows within one integer step of a threshold may be judged
    differently.  Below 11025 Hz pydub also resamples the clip to 11025 Hz; we
    keep the rate.

    Raises ReferenceAudioError when nothing audible remains or less than 0.5 s.
    """
    data = np.asarray(audio, dtype=np.float64)
    mono_input = data.ndim == 1
    frames = data[:, None] if mono_input else data
    if frames.ndim != 2 or frames.shape[0] == 0:
        raise ReferenceAudioError("The reference audio is empty")
    channels = frames.shape[1]
    clip = _Clip(frames, sample_rate)

    kept = _collect(_split_on_silence(clip, *_LONG_PASS), sample_rate, channels)
    if _length_ms(kept.shape[0], sample_rate) > _LIMIT_MS:
        kept = _collect(_split_on_silence(clip, *_SHORT_PASS), sample_rate, channels)
    if _length_ms(kept.shape[0], sample_rate) > _LIMIT_MS:
        kept = _Clip(kept, sample_rate).slice(0, _LIMIT_MS)

    voiced = _strip_edges(kept, sample_rate)
    if voiced.shape[0] == 0:
        raise ReferenceAudioError("The reference audio is silent (everything is below -42 dBFS)")
    if voiced.shape[0] < MIN_REFERENCE_SECONDS * sample_rate:
        seconds = voiced.shape[0] / sample_rate
        raise ReferenceAudioError(
            f"The reference audio has only {seconds:.2f} s of sound; "
            f"at least {MIN_REFERENCE_SECONDS} s is needed"
        )
    result = np.concatenate([voiced, np.zeros((_pad_frames(sample_rate), channels))])
    result32 = result.astype(np.float32)
    return result32[:, 0] if mono_input else result32


# --------------------------------------------------------------------------- max_reference_seconds

PAUSE_FRAME_SECONDS = 0.02
"""The pause detector's frame: its loudness is measured 20 ms at a time."""
MIN_PAUSE_SECONDS = 0.15
"""A pause is at least this long: shorter quiet stretches are stops inside words (p, t, k)."""
PAUSE_BELOW_DB = 30.0
"""A frame is quiet when it is this far below the clip's speech level (its 95th-percentile frame)."""
_CLAUSE_ENDS = ".,;:!?\u3002\uff0c\u3001\uff1b\uff1a\uff01\uff1f"


def pauses(mono: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """The clip's pauses, (start, end) in seconds: runs of at least MIN_PAUSE_SECONDS of 20 ms frames
    PAUSE_BELOW_DB quieter than its speech. Relative to the clip's own level, so a quiet recording's
    pauses are found as a loud one's are."""
    frame = max(1, int(rate * PAUSE_FRAME_SECONDS))
    count = len(mono) // frame
    if count == 0:
        return []
    frames = np.asarray(mono[: count * frame], dtype=np.float64).reshape(count, frame)
    level = 10 * np.log10(np.mean(np.square(frames), axis=1) + 1e-12)
    quiet = level < np.percentile(level, 95) - PAUSE_BELOW_DB
    found: list[tuple[float, float]] = []
    start: int | None = None
    for i, is_quiet in enumerate([*quiet.tolist(), False]):
        if is_quiet and start is None:
            start = i
        elif not is_quiet and start is not None:
            if (i - start) * frame >= MIN_PAUSE_SECONDS * rate:
                found.append((start * frame / rate, i * frame / rate))
            start = None
    return found


def cut_at_pause(audio: np.ndarray, rate: int, max_seconds: float) -> np.ndarray:
    """The clip (``(n,)`` or ``(n, channels)``) cut to at most `max_seconds`, in the middle of its last
    pause that starts after MIN_REFERENCE_SECONDS of sound and ends by then. Without one, at the quietest 20 ms
    in the second half of that span (still no cut through a loud syllable). Unchanged when not longer."""
    if len(audio) <= max_seconds * rate:
        return audio
    mono = to_mono(np.asarray(audio))
    limit = int(max_seconds * rate)
    inside = [(s, e) for s, e in pauses(mono, rate) if s >= MIN_REFERENCE_SECONDS and e * rate <= limit]
    if inside:
        start, end = inside[-1]
        return audio[: int((start + end) / 2 * rate)]
    frame = max(1, int(rate * PAUSE_FRAME_SECONDS))
    first = limit // 2 // frame
    count = limit // frame - first
    frames = np.asarray(mono[first * frame : (first + count) * frame], dtype=np.float64).reshape(count, frame)
    quietest = first + int(np.argmin(np.mean(np.square(frames), axis=1)))
    return audio[: (quietest * frame + frame // 2)]


def cut_transcript(text: str, fraction: float) -> str:
    """The start of `text` that a clip cut to `fraction` of its length says, estimated: the clause or
    sentence end nearest `fraction` of its characters (a pause is most often at one), else the nearest
    word end. An estimate: the words actually said by the cut come from the recording, which only a
    listener (or a speech recognizer) knows; `voices check` shows the result."""
    words = " ".join(text.split())
    target = fraction * len(words)
    clause_ends = [i + 1 for i, ch in enumerate(words) if ch in _CLAUSE_ENDS and i + 1 < len(words)]
    word_ends = [i for i, ch in enumerate(words) if ch == " "]
    for ends in (clause_ends, word_ends):
        near = [i for i in ends if abs(i - target) <= 0.15 * len(words)]
        if near:
            return words[: min(near, key=lambda i: abs(i - target))].strip()
    if word_ends:
        return words[: min(word_ends, key=lambda i: abs(i - target))].strip()
    return words[: max(1, round(target))]  # text without spaces (Chinese): characters
