"""Try a voice without a server: text in, WAV out.

python -m wyoming_ishowtts.synthesize --voice-dir voices/NAME --text "Hello." -o out.wav
python -m wyoming_ishowtts.synthesize --model-dir DIR --voice-dir voices/NAME --text "Hello." -o out.wav
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from .arguments import nfe
from .engine.core import Engine
from .engine.options import DEFAULT_MODEL, EngineSettings, SynthesisOptions
from .engine.reference import load_audio
from .errors import IShowTTSError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wyoming_ishowtts.synthesize", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"hub model name (default: {DEFAULT_MODEL})")
    parser.add_argument("--model-dir", type=Path, help="local model folder (see README)")
    parser.add_argument(
        "--voice-dir", type=Path, required=True, help="folder with reference.wav + reference.txt"
    )
    parser.add_argument("--text", help="text to speak (default: read standard input)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="WAV file to write")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument(
        "--nfe", type=nfe, default=None, metavar="auto|N", help="sampler steps per chunk (default: auto)"
    )
    parser.add_argument("--seed", type=int, help="random seed (default: random)")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--debug", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(levelname)s %(message)s"
    )
    text = args.text if args.text is not None else sys.stdin.read()
    try:
        engine = Engine.load(
            EngineSettings(
                model=args.model,
                model_dir=args.model_dir,
                device=args.device,
                precision=args.precision,
                nfe=args.nfe,
            )
        )
        transcript = (args.voice_dir / "reference.txt").read_text(encoding="utf-8")
        audio, rate = load_audio(args.voice_dir / "reference.wav")
        voice = engine.prepare_voice(audio, rate, transcript, name=args.voice_dir.name)
        started = time.monotonic()
        wave = engine.synthesize_all(voice, text, SynthesisOptions(seed=args.seed, speed=args.speed))
    except (IShowTTSError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    sf.write(args.output, np.clip(wave, -1.0, 1.0), engine.sample_rate, subtype="PCM_16")
    seconds = len(wave) / engine.sample_rate
    print(
        f"{args.output}: {seconds:.2f} s of audio in {elapsed:.2f} s (RTF {elapsed / max(seconds, 1e-9):.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
