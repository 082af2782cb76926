"""See what the server will say: the spoken form of a text.

python -m wyoming_ishowtts.text --language en "The living room is 21.5 °C."
printf 'Timer set for 1 hours\\n下午3点45分\\n' | python -m wyoming_ishowtts.text --language zh

With TEXT, its spoken form; without, standard input is read one input per line and one spoken line is
written for each (an input with nothing to speak gives an empty line), so the output lines up with the input.
"""

from __future__ import annotations

import argparse
import sys

from . import spoken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wyoming_ishowtts.text", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--language", default="en", help="en, zh (other languages: markup removed only)")
    parser.add_argument("text", nargs="*", help="the text (default: standard input, one input per line)")
    args = parser.parse_args(argv)
    if args.text:
        print(spoken(" ".join(args.text), args.language))
        return 0
    for line in sys.stdin:
        print(spoken(line.rstrip("\n"), args.language), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
