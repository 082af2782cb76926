"""Check voice folders, or fetch the built-in voice ahead of time.

python -m wyoming_ishowtts.voices check voices/NAME [voices/OTHER ...]
python -m wyoming_ishowtts.voices fetch-default [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import VoiceUnavailableError
from . import default_cache_dir
from .builtin import fetch_builtin_voice
from .check import check_voice_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wyoming_ishowtts.voices", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check voice folders (reference.wav + reference.txt)")
    check.add_argument("folders", nargs="+", type=Path)
    fetch = sub.add_parser("fetch-default", help="download and verify the built-in default voice")
    fetch.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "fetch-default":
        try:
            path = fetch_builtin_voice(args.cache_dir or default_cache_dir())
        except VoiceUnavailableError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(path)
        return 0

    failed = False
    for folder in args.folders:
        print(f"{folder}:")
        for finding in check_voice_dir(folder):
            print(f"  {finding.level.upper():8} {finding.message} [{finding.code}]")
            failed = failed or finding.level == "error"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
