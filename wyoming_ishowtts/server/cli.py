"""Command line entry point: ``python -m wyoming_ishowtts`` / ``wyoming-ishowtts``.

Arguments become two frozen settings objects (server and engine) and nothing reads ``argparse``
output after that; app.py serves with them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .. import __version__
from ..arguments import (
    device,
    ip_address,
    nfe,
    non_negative_float,
    nonempty,
    port,
    positive_float,
    positive_int,
    server_uri,
)
from ..engine.options import PRECISIONS, EngineSettings
from ..voices import default_cache_dir
from .settings import MB, ServerSettings, StudioSettings, default_of

_LOGGER = logging.getLogger("wyoming_ishowtts")


def _server(name: str) -> Any:
    return default_of(ServerSettings, name)


def _engine(name: str) -> Any:
    return default_of(EngineSettings, name)


def _studio(name: str) -> Any:
    return default_of(StudioSettings, name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wyoming-ishowtts",
        description="Wyoming text-to-speech server (F5-TTS voice cloning) for Home Assistant. "
        "Wyoming has no authentication: bind only to networks you trust.",
    )
    server = parser.add_argument_group("server")
    server.add_argument(
        "--uri",
        type=server_uri,
        default=_server("uri"),
        help=f"tcp://, unix:// or stdio:// (default: {_server('uri')})",
    )
    server.add_argument(
        "--zeroconf",
        nargs="?",
        const="ishowtts",
        default=None,
        metavar="NAME",
        help="advertise the server to Home Assistant over mDNS (tcp:// only; default name: ishowtts)",
    )
    server.add_argument("--no-streaming", action="store_true", help="do not announce streaming synthesis")
    server.add_argument(
        "--no-normalize",
        action="store_true",
        help="speak the text as sent: no numbers, units, times or markup put into words (for clients that "
        "send clean text; a voice's voice.toml can also say normalize = false)",
    )
    server.add_argument("--samples-per-chunk", type=positive_int, default=_server("samples_per_chunk"))
    server.add_argument(
        "--output-rate",
        type=positive_int,
        default=_server("output_rate"),
        help=f"sample rate of the audio sent (default: the model's {_server('output_rate')})",
    )

    voices = parser.add_argument_group("voices")
    voices.add_argument(
        "--voices-dir",
        type=Path,
        action="append",
        default=None,
        help="folder of voice folders (repeatable; default: ./voices)",
    )
    voices.add_argument("--voice", default=None, help="default voice name (default: first voice found)")
    voices.add_argument(
        "--no-builtin-voice",
        action="store_true",
        help="do not offer the built-in LJ Speech voice (downloaded on first use)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="one folder for everything downloaded or prepared: hub models in DATA/models, prepared voices "
        "and the built-in clip in DATA/cache (a Docker volume, say)",
    )
    voices.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="prepared voices and the downloaded default voice "
        f"(default: DATA/cache with --data-dir, else {default_cache_dir()})",
    )

    engine = parser.add_argument_group("engine")
    engine.add_argument(
        "--model", default=_engine("model"), help=f"model name or hub id (default: {_engine('model')})"
    )
    engine.add_argument(
        "--model-dir", type=Path, default=None, help="load the model from this folder instead"
    )
    engine.add_argument(
        "--device",
        type=device,
        default=_engine("device"),
        metavar="auto|cpu|cuda|cuda:N",
        help="where the model runs; cuda:N is GPU number N, for one server per GPU (default: auto)",
    )
    engine.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=_engine("precision"),
        help="auto picks per device (fp16 on a GPU; on a CPU bf16 where native, int8 where measured "
        "faster, else fp32); int8 is CPU only (default: auto)",
    )
    engine.add_argument(
        "--nfe", type=nfe, default=_engine("nfe"), metavar="auto|N", help="sampler steps (default: auto)"
    )
    engine.add_argument(
        "--threads",
        type=positive_int,
        default=_engine("threads"),
        help="CPU threads for the engine (default: one per physical core, within a container's CPU quota)",
    )
    engine.add_argument("--no-warmup", action="store_true", help="skip the warm-up synthesis at start-up")
    engine.add_argument(
        "--batch-chunks",
        type=positive_int,
        default=_engine("batch_chunks"),
        metavar="N",
        help="sample up to N later text chunks of a request in one batch (same audio; for GPUs; default 1)",
    )
    engine.add_argument(
        "--batch-requests",
        type=positive_int,
        default=_server("batch_requests"),
        metavar="N",
        help="sample the next chunks of up to N clients' requests in one batch (same audio; default 1)",
    )
    engine.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="replay each sampler step as a CUDA graph recorded at start-up (GPU only; same audio; "
        "measure with script/gpu-check before using)",
    )
    engine.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the sampler step at start-up (needs a C/C++ compiler; slow start-up; "
        "measure before using)",
    )
    engine.add_argument(
        "--length-bucket",
        type=positive_int,
        default=None,
        metavar="FRAMES",
        help="with --cuda-graphs or --compile: pad each batch to a multiple of FRAMES (same audio; "
        "default 256); ignored without them",
    )

    cache = parser.add_argument_group("audio cache (answers said before start at once; docs/server.md)")
    cache.add_argument(
        "--audio-cache-mb",
        type=non_negative_float,
        default=_server("audio_cache_bytes") / MB,
        metavar="MB",
        help="keep the audio of this many MB of sentences said before, in CACHE_DIR/audio, least recently "
        f"used out first; 0 turns it off (default: {_server('audio_cache_bytes') / MB:g})",
    )
    cache.add_argument(
        "--warm-phrases",
        type=phrases_file,
        default=(),
        metavar="FILE",
        help="say each line of FILE for the default voice while the server is idle, into the audio cache",
    )

    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-text-chars", type=positive_int, default=_server("max_text_chars"))
    limits.add_argument(
        "--max-queued-per-client", type=positive_int, default=_server("max_queued_per_client")
    )
    limits.add_argument("--max-queued-total", type=positive_int, default=_server("max_queued_total"))
    limits.add_argument("--max-connections", type=positive_int, default=_server("max_connections"))
    limits.add_argument(
        "--max-buffered-pieces",
        type=positive_int,
        default=_server("max_buffered_pieces"),
        help="synthesized pieces held per request for a client that reads slowly",
    )
    limits.add_argument("--stream-idle-timeout", type=positive_float, default=_server("stream_idle_timeout"))
    limits.add_argument(
        "--shutdown-timeout",
        type=non_negative_float,
        default=_server("shutdown_timeout"),
        metavar="S",
        help="at a stop, wait this long for the answers asked for before cutting them short "
        f"(default: {_server('shutdown_timeout'):g})",
    )

    studio = parser.add_argument_group(
        "voice studio (a web page to add, check and try voices; docs/studio.md)"
    )
    studio.add_argument(
        "--http-port", type=port, default=None, metavar="PORT", help="serve the voice studio on this port"
    )
    studio.add_argument(
        "--http-host",
        default=_studio("host"),
        metavar="HOST",
        help=f"address the studio listens on (default: {_studio('host')}; no login unless --http-token)",
    )
    studio.add_argument(
        "--http-token",
        type=nonempty,
        default=None,
        metavar="TOKEN",
        help="ask for this token (the page asks once; scripts send Authorization: Bearer TOKEN)",
    )
    studio.add_argument(
        "--http-proxy",
        type=ip_address,
        default=None,
        metavar="ADDRESS",
        help="answer only this reverse proxy, which authenticates users itself "
        "(the Home Assistant add-on: its ingress, 172.30.32.2)",
    )
    studio.add_argument(
        "--http-max-upload-mb",
        type=positive_float,
        default=_studio("max_upload_bytes") / MB,
        metavar="MB",
        help=f"largest request body, an uploaded clip (default: {_studio('max_upload_bytes') / MB:g})",
    )
    studio.add_argument(
        "--http-max-clip-seconds",
        type=positive_float,
        default=_studio("max_clip_seconds"),
        metavar="S",
        help=f"longest clip accepted (default: {_studio('max_clip_seconds'):g})",
    )

    parser.add_argument("--debug", action="store_true", help="log debug messages")
    parser.add_argument("--log-format", default=logging.BASIC_FORMAT, help="format for log messages")
    parser.add_argument("--version", action="version", version=__version__)
    return parser


def phrases_file(text: str) -> tuple[str, ...]:
    """The non-blank lines of a UTF-8 file, each stripped."""
    try:
        content = Path(text).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {err}") from None
    return tuple(dict.fromkeys(line.strip() for line in content.splitlines() if line.strip()))


def server_settings_from_args(args: argparse.Namespace) -> ServerSettings:
    host = urlparse(args.uri).hostname if args.uri.startswith("tcp://") else None
    return ServerSettings(
        uri=args.uri,
        voices_dirs=tuple(args.voices_dir or [Path("voices")]),
        default_voice=args.voice,
        builtin_voice=not args.no_builtin_voice,
        cache_dir=args.cache_dir or (args.data_dir / "cache" if args.data_dir else default_cache_dir()),
        samples_per_chunk=args.samples_per_chunk,
        output_rate=args.output_rate,
        max_text_chars=args.max_text_chars,
        max_queued_per_client=args.max_queued_per_client,
        max_queued_total=args.max_queued_total,
        max_connections=args.max_connections,
        max_buffered_pieces=args.max_buffered_pieces,
        batch_requests=args.batch_requests,
        stream_idle_timeout=args.stream_idle_timeout,
        shutdown_timeout=args.shutdown_timeout,
        streaming=not args.no_streaming,
        normalize=not args.no_normalize,
        zeroconf_name=args.zeroconf,
        zeroconf_host=host if host not in (None, "0.0.0.0", "::", "") else None,
        studio=studio_settings_from_args(args),
        audio_cache_bytes=int(args.audio_cache_mb * MB),
        warm_phrases=args.warm_phrases,
    )


def studio_settings_from_args(args: argparse.Namespace) -> StudioSettings | None:
    if args.http_port is None:
        return None
    return StudioSettings(
        port=args.http_port,
        host=args.http_host,
        token=args.http_token,
        proxy=args.http_proxy,
        max_upload_bytes=int(args.http_max_upload_mb * MB),
        max_clip_seconds=args.http_max_clip_seconds,
    )


def engine_settings_from_args(args: argparse.Namespace) -> EngineSettings:
    return EngineSettings(
        model=args.model,
        model_dir=args.model_dir,
        device=args.device,
        precision=args.precision,
        nfe=args.nfe,
        warmup=not args.no_warmup,
        threads=args.threads,
        compile=args.compile,
        cuda_graphs=args.cuda_graphs,
        batch_chunks=args.batch_chunks,
        length_bucket=args.length_bucket or _engine("length_bucket"),
        cache_dir=args.data_dir / "models" if args.data_dir else None,
    )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format=args.log_format)

    settings = server_settings_from_args(args)
    engine_settings = engine_settings_from_args(args)
    _LOGGER.debug("Server settings: %s", settings)
    _LOGGER.debug("Engine settings: %s", engine_settings)
    from .app import serve  # here, not at the top: --help and --version need neither torch nor wyoming

    try:
        status = asyncio.run(serve(settings, engine_settings))
    except KeyboardInterrupt:  # before the server has installed its own handler
        status = 0
    from .worker import ENGINE_THREAD

    if any(t.name == ENGINE_THREAD and t.is_alive() for t in threading.enumerate()):
        # The engine did not stop in time and is still inside a torch call: finalizing the interpreter
        # under it aborts the process ("terminate called without an active exception", status -6)
        # instead of exiting with the server's status. Leave without finalizing; the logs are flushed.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    main()
