"""``python -m wyoming_ishowtts``: the server's command line (``server/cli.py``)."""

from .server.cli import main

if __name__ == "__main__":
    main()
