"""Find and read upstream's published files: the F5-TTS checkpoint, its vocabulary and the Vocos vocoder.

A model is either a known name fetched from the Hugging Face hub, an `hf://owner/repo/path/file` spec, or a
local folder laid out like the one `tools/random_model.py` writes:

    model.safetensors | model_*.safetensors | *.pt   F5 weights (EMA keys `ema_model.transformer.*`)
    vocab.txt                                        one token per line, line number = id
    vocos/config.yaml, vocos/pytorch_model.bin       vocoder (else fetched from the hub)
    model.json                                       optional: {"architecture": ..., "dit": {...}}
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError
from .dit import ARCHITECTURES, DiTConfig
from .options import DEFAULT_MODEL

_LOGGER = logging.getLogger(__name__)

# name -> (repo, checkpoint path, vocab path) on the Hugging Face hub
HUB_MODELS: dict[str, tuple[str, str, str]] = {
    "F5TTS_v1_Base": ("SWivid/F5-TTS", "F5TTS_v1_Base/model_1250000.safetensors", "F5TTS_v1_Base/vocab.txt"),
    "F5TTS_Base": ("SWivid/F5-TTS", "F5TTS_Base/model_1200000.safetensors", "F5TTS_Base/vocab.txt"),
}
VOCOS_REPO = "charactr/vocos-mel-24khz"
MODEL_INFO_FILE = "model.json"


@dataclass(frozen=True)
class ModelFiles:
    checkpoint: Path
    vocab: Path
    vocos_config: Path
    vocos_weights: Path
    dit: DiTConfig
    """Architecture without the vocabulary size, which comes from `vocab`."""


def _hub_file(repo: str, filename: str, cache_dir: Path | None) -> Path:
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id=repo, filename=filename, cache_dir=cache_dir))
    except Exception as err:  # offline, no such file, no network: all end the same way for the user
        raise ModelLoadError(
            f"Could not get {filename} from the Hugging Face repository {repo} ({type(err).__name__}). "
            "Without internet access, download the model once elsewhere and pass --model-dir DIR "
            "(a folder with model.safetensors, vocab.txt and vocos/config.yaml + vocos/pytorch_model.bin)."
        ) from err


def _architecture(name: str, info: dict[str, Any] | None) -> DiTConfig:
    if info and isinstance(info.get("dit"), dict):
        known = {f.name for f in fields(DiTConfig)}
        unknown = set(info["dit"]) - known
        if unknown:
            raise ModelLoadError(f"{MODEL_INFO_FILE}: unknown architecture fields {sorted(unknown)}")
        return DiTConfig(**info["dit"])
    arch_name = str(info.get("architecture", name)) if info else name
    if arch_name not in ARCHITECTURES:
        raise ModelLoadError(
            f"Unknown model architecture {arch_name!r}; choose one of {', '.join(ARCHITECTURES)} with --model"
        )
    return ARCHITECTURES[arch_name]


def _pick_checkpoint(folder: Path) -> Path:
    for pattern in ("model.safetensors", "model_*.safetensors", "*.safetensors", "*.pt"):
        found = sorted(folder.glob(pattern))
        if found:
            return found[-1]
    raise ModelLoadError(f"No checkpoint (*.safetensors or *.pt) in {folder}")


def resolve_model_files(model: str, model_dir: Path | None, cache_dir: Path | None = None) -> ModelFiles:
    """Locate every file the engine needs, downloading from the hub only when no folder is given."""
    if model_dir is not None:
        folder = Path(model_dir)
        if not folder.is_dir():
            raise ModelLoadError(f"--model-dir {folder} is not a folder")
        info = None
        if (folder / MODEL_INFO_FILE).is_file():
            try:
                info = json.loads((folder / MODEL_INFO_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise ModelLoadError(f"{folder / MODEL_INFO_FILE} is not valid JSON: {err}") from err
        vocab = folder / "vocab.txt"
        if not vocab.is_file():
            raise ModelLoadError(f"No vocab.txt in {folder}")
        vocos = folder / "vocos"
        if (vocos / "config.yaml").is_file() and (vocos / "pytorch_model.bin").is_file():
            vocos_config, vocos_weights = vocos / "config.yaml", vocos / "pytorch_model.bin"
        else:
            vocos_config = _hub_file(VOCOS_REPO, "config.yaml", cache_dir)
            vocos_weights = _hub_file(VOCOS_REPO, "pytorch_model.bin", cache_dir)
        return ModelFiles(
            _pick_checkpoint(folder), vocab, vocos_config, vocos_weights, _architecture(model, info)
        )

    if model.startswith("hf://"):
        parts = model[len("hf://") :].split("/")
        if len(parts) < 3:
            raise ModelLoadError("A hub model spec looks like hf://owner/repo/path/model.safetensors")
        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
        vocab_name = "/".join([*parts[2:-1], "vocab.txt"])
        arch = _architecture(DEFAULT_MODEL, None)  # a spec names a file, not an architecture: the default's
    elif model in HUB_MODELS:
        repo, filename, vocab_name = HUB_MODELS[model]
        arch = _architecture(model, None)
    else:
        raise ModelLoadError(
            f"Unknown model {model!r}: use one of {', '.join(HUB_MODELS)}, hf://owner/repo/path/file, "
            "or --model-dir DIR"
        )
    return ModelFiles(
        checkpoint=_hub_file(repo, filename, cache_dir),
        vocab=_hub_file(repo, vocab_name, cache_dir),
        vocos_config=_hub_file(VOCOS_REPO, "config.yaml", cache_dir),
        vocos_weights=_hub_file(VOCOS_REPO, "pytorch_model.bin", cache_dir),
        dit=arch,
    )


def _read_tensors(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelLoadError(f"Checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu"))
        # Only tensors and plain containers: a checkpoint never runs code on load.
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelLoadError(f"Could not read {path} (truncated or not a checkpoint?): {err}") from err
    if not isinstance(loaded, dict):
        raise ModelLoadError(f"{path} does not hold a state dict")
    return loaded


def read_dit_state(path: Path) -> dict[str, torch.Tensor]:
    """The EMA transformer weights of an upstream checkpoint, keys relative to the DiT."""
    raw = _read_tensors(path)
    for container in ("ema_model_state_dict", "model_state_dict"):
        if isinstance(raw.get(container), dict):
            raw = raw[container]
            break
    state: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        for prefix in ("ema_model.transformer.", "transformer."):
            if key.startswith(prefix):
                state[key[len(prefix) :]] = value
                break
        # `initted`, `step` and legacy mel front-end buffers carry nothing the DiT needs.
    if not state:
        raise ModelLoadError(f"{path} has no 'ema_model.transformer.*' weights: not an F5-TTS checkpoint")
    return state


def read_vocos_state(path: Path) -> dict[str, torch.Tensor]:
    raw = _read_tensors(path)
    state = {k: v for k, v in raw.items() if not k.startswith("feature_extractor.")}
    if not state:
        raise ModelLoadError(f"{path} has no Vocos weights")
    return state


def load_strict(
    module: nn.Module, state: dict[str, torch.Tensor], source: Path, assign: bool = False
) -> None:
    """load_state_dict(strict=True), but the error names the file and the offending keys. ``assign``: the
    tensors of `state` become the module's (for a module built on the meta device, which has no storage to
    copy into)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        lines = [f"{source} does not match the expected architecture:"]
        if missing:
            lines.append(f"missing keys ({len(missing)}): {', '.join(missing[:8])}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:8])}")
        if wrong:
            lines.append(
                "wrong shapes: "
                + ", ".join(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in wrong[:8])
            )
        raise ModelLoadError("; ".join(lines))
    module.load_state_dict(state, strict=True, assign=assign)


def dit_config_for(files: ModelFiles, vocab_size: int) -> DiTConfig:
    return replace(files.dit, text_num_embeds=vocab_size)
