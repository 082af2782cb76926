"""Try a voice without a server: text in, WAV out.

python -m wyoming_ishowtts.synthesize --voice-dir voices/NAME --text "Hello." -o out.wav
python -m wyoming_ishowtts.synthesize --model-dir DIR --voice-dir voices/NAME --text "Hello." -o out.wav

The voice folder is read as the server reads it (its voice.toml's speed, nfe, seed and other options
apply), the text is put into words as the server does it (text/: numbers, units, markup; --no-normalize
turns that off) and the audio is written as the server sends it (16-bit, 24 kHz), so a voice sounds the
same here as from the server; --nfe, --seed and --speed, when given, override the voice's settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from .arguments import device, nfe, positive_float
from .engine.core import Engine
from .engine.options import DEFAULT_MODEL, PRECISIONS, SAMPLE_RATE, EngineSettings
from .engine.reference import load_audio
from .engine.voice import prepare_clip
from .errors import IShowTTSError
from .server.pcm import float_to_int16_bytes
from .text import language_of, spoken
from .voices.folder import load_voice_dir, synthesis_options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wyoming_ishowtts.synthesize", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"hub model name (default: {DEFAULT_MODEL})")
    parser.add_argument("--model-dir", type=Path, help="local model folder (see README)")
    parser.add_argument(
        "--voice-dir", type=Path, required=True, help="voice folder: reference.wav, reference.txt, voice.toml"
    )
    parser.add_argument("--text", help="text to speak (default: read standard input)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="WAV file to write")
    parser.add_argument("--device", type=device, default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument(
        "--nfe",
        type=nfe,
        default=None,
        metavar="auto|N",
        help="sampler steps (default: the voice's, else auto)",
    )
    parser.add_argument("--seed", type=int, help="random seed (default: the voice's, else random)")
    parser.add_argument("--speed", type=positive_float, help="speaking rate (default: the voice's, else 1.0)")
    parser.add_argument(
        "--language", help="language of the text, e.g. en or zh (default: the voice's first language)"
    )
    parser.add_argument(
        "--no-normalize", action="store_true", help="speak the text as written (no numbers put into words)"
    )
    parser.add_argument("--debug", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        info = load_voice_dir(args.voice_dir)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    given = {"nfe": args.nfe, "seed": args.seed, "speed": args.speed}
    options = dataclasses.replace(
        synthesis_options(info), **{name: value for name, value in given.items() if value is not None}
    )
    text = args.text if args.text is not None else sys.stdin.read()
    if not args.no_normalize and info.normalize:
        text = spoken(text, language_of(args.language, info.languages))
        print(f"spoken as: {text}", file=sys.stderr)
    if not text.strip():
        print("error: nothing to speak in the text", file=sys.stderr)
        return 1
    try:
        engine = Engine.load(
            EngineSettings(
                model=args.model, model_dir=args.model_dir, device=args.device, precision=args.precision
            )
        )
        audio, rate = load_audio(info.reference_audio)
        clip = prepare_clip(audio, rate, info.transcript, info.name, max_seconds=info.max_reference_seconds)
        voice = engine.voice(clip)
        started = time.monotonic()
        wave = engine.synthesize_all(voice, text, options)
    except (IShowTTSError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    sf.write(
        args.output, np.frombuffer(float_to_int16_bytes(wave), dtype="<i2"), SAMPLE_RATE, subtype="PCM_16"
    )
    seconds = len(wave) / SAMPLE_RATE
    print(
        f"{args.output}: {seconds:.2f} s of audio in {elapsed:.2f} s (RTF {elapsed / max(seconds, 1e-9):.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
