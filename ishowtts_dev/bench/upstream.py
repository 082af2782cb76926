"""Upstream f5-tts 1.1.22, timed in a process of its own.

    python -m ishowtts_dev.bench.upstream JOB.json RESULT.json

The benchmark starts this module as a subprocess so that the peak RSS it reports belongs to upstream alone
(not to the benchmark's client code, nor to a previously loaded model). Two of upstream's paths are timed:

* ``infer``: ``F5TTS.infer(ref_file, ref_text, gen_text, nfe_step=N, seed=S)``, upstream's public API for a
  whole utterance. Time to first audio equals the total time: nothing is returned before the end.
  This machine has no FFmpeg, so ``torchaudio.load`` (torchcodec) cannot open files; it is replaced, in
  this process only, by a soundfile reader returning the same ``(channels, samples)`` float32 tensor and
  rate. Everything else (pydub silence clipping with its per-file cache, chunking, the thread pool that
  runs chunks, the cross-fade) is upstream's code, unchanged, and inside the timed region.
* ``stream``: ``utils_infer.infer_batch_process(..., streaming=True)``, the generator behind upstream's
  ``socket_server.py``. It is handed the reference that ``preprocess_ref_audio_text`` produced (prepared
  once, outside the timed region, as the socket server also does once per voice) as tensors, and text
  chunks made by ``utils_infer.chunk_text`` with ``infer_process``'s own ``max_chars`` rule (inside the
  timed region). Time to first audio is the first 2048-sample slice yielded.

Both get the global RNG seeded before every run. Forward hooks on the DiT record how much wall time had
at least one DiT call running ("DiT-busy" time): the benchmark uses it only to extrapolate, clearly
labelled, the runs at 32 steps that do not fit on a CPU. On a GPU the hooks would see only kernel launches
(the GPU runs behind the CPU) and making them synchronize would slow upstream down, so there no DiT-busy time
is recorded (None) and the benchmark measures every text instead of extrapolating.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .measure import OtherCpu, gpu_used_mb, peak_rss_mb, reset_peak_rss, write_json


class BusyClock:
    """Wall time during which at least one call of a module is running, from several threads too
    (``F5TTS.infer`` runs chunks in a thread pool, so summing per-call times would double-count)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._since = 0.0
        self.total = 0.0
        self.calls = 0

    def enter(self, *_: Any) -> None:
        with self._lock:
            if self._active == 0:
                self._since = time.perf_counter()
            self._active += 1
            self.calls += 1

    def leave(self, *_: Any) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self.total += time.perf_counter() - self._since

    def read(self) -> float:
        with self._lock:
            extra = time.perf_counter() - self._since if self._active else 0.0
            return self.total + extra


def _soundfile_load(path: Any, *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """Stand-in for ``torchaudio.load`` (FFmpeg is missing here): same (channels, samples) float32 tensor."""
    import soundfile as sf
    import torch

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate)


def _load_upstream(job: dict[str, Any]) -> Any:
    """F5TTS as a user builds it. For the `base` size, upstream's own constructor on our files; for `tiny`
    (not an architecture upstream knows), the same object with the transformer built from model.json."""
    from f5_tts.api import F5TTS

    model_dir = Path(job["model_dir"])
    device = job["device"]
    if job["size"] == "base":
        return F5TTS(
            model="F5TTS_v1_Base",
            ckpt_file=str(model_dir / "model.safetensors"),
            vocab_file=str(model_dir / "vocab.txt"),
            vocoder_local_path=str(model_dir / "vocos"),
            device=device,
        )
    from f5_tts.infer import utils_infer
    from f5_tts.model import DiT

    arch = json.loads((model_dir / "model.json").read_text())["dit"]
    keys = (
        "dim",
        "depth",
        "heads",
        "dim_head",
        "ff_mult",
        "text_dim",
        "conv_layers",
        "text_mask_padding",
        "pe_attn_head",
    )
    cfg = {k: arch[k] for k in keys} | {"attn_mask_enabled": False}
    api = F5TTS.__new__(F5TTS)  # what __init__ sets, without its fixed config lookup
    api.mel_spec_type = "vocos"
    api.target_sample_rate = 24000
    api.ode_method = "euler"
    api.use_ema = True
    api.device = device
    api.vocoder = utils_infer.load_vocoder("vocos", True, str(model_dir / "vocos"), device)
    api.ema_model = utils_infer.load_model(
        DiT, cfg, str(model_dir / "model.safetensors"), vocab_file=str(model_dir / "vocab.txt"), device=device
    )
    return api


def stream_chunks(text: str, ref_seconds: float, ref_text: str) -> list[str]:
    """The text chunks upstream's streaming path gets: ``chunk_text`` with ``infer_process``'s max_chars rule."""
    from f5_tts.infer import utils_infer

    max_chars = int(len(ref_text.encode("utf-8")) / ref_seconds * (22 - ref_seconds))
    return list(utils_infer.chunk_text(text, max_chars=max_chars))


def _cuda(device: str) -> Any:
    import torch

    return torch.cuda if device.startswith("cuda") and torch.cuda.is_available() else None


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    from f5_tts.infer import utils_infer

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    utils_infer.torchaudio.load = _soundfile_load  # see the module docstring
    device = job["device"]
    cuda = _cuda(device)
    t0 = time.perf_counter()
    api = _load_upstream(job)
    load_s = time.perf_counter() - t0
    dtype = str(next(api.ema_model.parameters()).dtype).replace("torch.", "")
    clock = BusyClock()
    if cuda is None:  # see the module docstring
        api.ema_model.transformer.register_forward_pre_hook(clock.enter)
        api.ema_model.transformer.register_forward_hook(clock.leave)

    def busy_since(mark: float) -> float | None:
        return None if cuda is not None else clock.read() - mark

    ref_wav, ref_text, seed = job["ref_wav"], job["ref_text"], int(job["seed"])
    quiet = {"show_info": lambda *_: None}

    def sync() -> None:
        if cuda is not None:
            cuda.synchronize()

    def run_infer(text: str, nfe: int) -> dict[str, float | None]:
        busy0 = clock.read()
        others = OtherCpu(["self"])
        sync()
        others.start()
        start = time.perf_counter()
        wav, sr, _ = api.infer(ref_wav, ref_text, text, nfe_step=nfe, seed=seed, **quiet)
        sync()
        total = time.perf_counter() - start
        others_cpu = others.stop()
        audio = len(wav) / sr
        return {
            "ttfa_s": total,
            "total_s": total,
            "audio_s": audio,
            "rtf": total / audio,
            "dit_busy_s": busy_since(busy0),
            "dit_busy_at_first_s": busy_since(busy0),
            "others_cpu": others_cpu,
        }

    # The streaming path gets the reference exactly as upstream's preprocessing leaves it (done once).
    prepared_file, prepared_text = utils_infer.preprocess_ref_audio_text(ref_wav, ref_text, **quiet)
    prepared_audio, prepared_sr = _soundfile_load(prepared_file)

    def run_stream(text: str, nfe: int) -> dict[str, float | None]:
        torch.manual_seed(seed)
        busy0 = clock.read()
        others = OtherCpu(["self"])
        sync()
        others.start()
        start = time.perf_counter()
        batches = stream_chunks(text, prepared_audio.shape[-1] / prepared_sr, prepared_text)
        first = None
        busy_first: float | None = 0.0
        samples = 0
        rate = 24000
        for piece, sr in utils_infer.infer_batch_process(
            (prepared_audio, prepared_sr),
            prepared_text,
            batches,
            api.ema_model,
            api.vocoder,
            nfe_step=nfe,
            device=device,
            streaming=True,
            progress=None,
        ):
            if first is None:
                first = time.perf_counter() - start
                busy_first = busy_since(busy0)
            samples += len(piece)
            rate = sr
        sync()
        total = time.perf_counter() - start
        others_cpu = others.stop()
        audio = samples / rate
        assert first is not None
        return {
            "ttfa_s": first,
            "total_s": total,
            "audio_s": audio,
            "rtf": total / audio,
            "dit_busy_s": busy_since(busy0),
            "dit_busy_at_first_s": busy_first,
            "chunks": float(len(batches)),
            "others_cpu": others_cpu,
        }

    runners = {"infer": run_infer, "stream": run_stream}
    texts: dict[str, str] = job["texts"]
    warmup_s = None
    if job.get("warmup", True):
        # One-time costs (allocator growth, kernel selection, pydub's reference cache) are paid here, once.
        w_text = min(texts.values(), key=len)
        w_nfe = min(int(c["nfe"]) for c in job["configs"])
        start = time.perf_counter()
        for mode in job["modes"]:
            runners[mode](w_text, w_nfe)
        warmup_s = time.perf_counter() - start

    results: list[dict[str, Any]] = []
    resets_ok = True
    for config in job["configs"]:
        nfe = int(config["nfe"])
        for text_name in config["texts"]:
            resets_ok &= reset_peak_rss()
            if cuda is not None:
                cuda.reset_peak_memory_stats()
            runs: dict[str, list[dict[str, float | None]]] = {mode: [] for mode in job["modes"]}
            for _ in range(int(config["repeats"])):
                for mode in job["modes"]:  # interleaved, so slow drift in machine load hits both alike
                    runs[mode].append(runners[mode](texts[text_name], nfe))
                    print(
                        f"upstream {mode} {text_name} nfe={nfe}: {runs[mode][-1]}",
                        file=sys.stderr,
                        flush=True,
                    )
            for mode, mode_runs in runs.items():
                results.append(
                    {
                        "label": config["label"],
                        "mode": mode,
                        "text": text_name,
                        "nfe": nfe,
                        "runs": mode_runs,
                        "peak_rss_mb": peak_rss_mb(),
                        "peak_gpu_mb": cuda.max_memory_allocated() / 2**20 if cuda is not None else None,
                        "peak_gpu_reserved_mb": cuda.max_memory_reserved() / 2**20
                        if cuda is not None
                        else None,
                        "gpu_smi_mb": gpu_used_mb(os.getpid()) if cuda is not None else None,
                    }
                )
    return {
        "load_s": load_s,
        "warmup_s": warmup_s,
        "dtype": dtype,
        "device": device,
        "peak_rss_reset_per_text": resets_ok,
        "results": results,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Time upstream f5-tts (started by ishowtts_dev.bench).")
    parser.add_argument("job", type=Path)
    parser.add_argument("result", type=Path)
    args = parser.parse_args(argv)
    job = json.loads(args.job.read_text())
    write_json(args.result, run_job(job))


if __name__ == "__main__":
    main()
