"""Time to first audio, ours against upstream's streaming first piece, interleaved in one process.

    python -m ishowtts_dev.bench.ttfa --model-dir bench-results/model-base [--text medium] [--nfe 4]
        [--precision fp32] [--repeats 3]

The end-to-end benchmark (``ishowtts_dev.bench``) times upstream's process and then our server, minutes
apart, on a machine whose speed drifts; here both take turns in one process, so drift hits both alike.
Ours: ``Engine.synthesize`` (the server's engine, without the network) until its first piece. Upstream:
``utils_infer.infer_batch_process(..., streaming=True)`` until its first 2048-sample slice, given the
reference as ``preprocess_ref_audio_text`` prepared it and chunks by ``infer_process``'s rule, as
``ishowtts_dev.bench`` drives it. Same weights, reference clip, transcript, step count, seed. The ratio is
the median of the per-round ratios. Needs the ``reference`` extra (upstream f5-tts).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from wyoming_ishowtts.engine import Engine, EngineSettings, SynthesisOptions

from ..clips import reference_clip
from .texts import REFERENCE_SECONDS, REFERENCE_TEXT, SAMPLE_RATE, TEXTS
from .upstream import _load_upstream, _soundfile_load, stream_chunks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--size", choices=("base", "tiny"), default="base")
    parser.add_argument("--text", default="medium", choices=sorted(TEXTS))
    parser.add_argument("--nfe", type=int, default=4)
    parser.add_argument("--precision", default="fp32", help="ours; upstream runs fp32 on a CPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from f5_tts.infer import utils_infer

    utils_infer.torchaudio.load = _soundfile_load  # no FFmpeg here: see ishowtts_dev.bench.upstream
    quiet = {"show_info": lambda *_: None}
    text = TEXTS[args.text]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "reference.wav"
        # The file both servers are given.
        sf.write(wav, reference_clip(REFERENCE_SECONDS), SAMPLE_RATE, subtype="PCM_16")
        engine = Engine.load(
            EngineSettings(model_dir=args.model_dir, device="cpu", precision=args.precision, nfe=args.nfe)
        )
        audio, rate = sf.read(wav, dtype="float32")
        voice = engine.prepare_voice(audio, rate, REFERENCE_TEXT)
        api = _load_upstream({"model_dir": str(args.model_dir), "device": "cpu", "size": args.size})
        prepared_file, prepared_text = utils_infer.preprocess_ref_audio_text(
            str(wav), REFERENCE_TEXT, **quiet
        )
        prepared_audio, prepared_sr = _soundfile_load(prepared_file)

    def ours() -> float:
        started = time.perf_counter()
        # The first piece; the generator is then dropped (closed), so no later chunk is sampled.
        next(engine.synthesize(voice, text, SynthesisOptions(nfe=args.nfe, seed=args.seed)))
        return time.perf_counter() - started

    def upstream() -> float:
        torch.manual_seed(args.seed)
        started = time.perf_counter()
        batches = stream_chunks(text, prepared_audio.shape[-1] / prepared_sr, prepared_text)
        pieces = utils_infer.infer_batch_process(
            (prepared_audio, prepared_sr),
            prepared_text,
            batches,
            api.ema_model,
            api.vocoder,
            nfe_step=args.nfe,
            device="cpu",
            streaming=True,
            progress=None,
        )
        next(pieces)
        spent = time.perf_counter() - started
        pieces.close()
        return spent

    plan = engine.plan(voice, text)
    print(
        f"ours: first chunk {plan[0]!r} of {len(plan)}; upstream: {len(stream_chunks(text, prepared_audio.shape[-1] / prepared_sr, prepared_text))} chunk(s)"
    )
    runs: dict[str, list[float]] = {"ours": [], "upstream": []}
    ours(), upstream()  # warm-up, not counted
    for round_ in range(args.repeats):
        order: list[tuple[str, Any]] = [("ours", ours), ("upstream", upstream)]
        for name, fn in order if round_ % 2 == 0 else order[::-1]:
            runs[name].append(fn())
        print(
            f"round {round_ + 1}: ours {runs['ours'][-1]:.2f} s, upstream {runs['upstream'][-1]:.2f} s",
            flush=True,
        )
    ratio = float(np.median(np.array(runs["ours"]) / np.array(runs["upstream"])))
    print(
        f"time to first audio, {args.text} text, nfe {args.nfe}, ours {args.precision}: ours "
        f"{np.median(runs['ours']):.2f} s, upstream {np.median(runs['upstream']):.2f} s (medians of "
        f"{args.repeats}), ours/upstream {ratio:.3f} (median of per-round ratios)"
    )
    if args.out:
        report = {
            "text": args.text,
            "nfe": args.nfe,
            "precision": args.precision,
            "runs": runs,
            "ratio": ratio,
        }
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
