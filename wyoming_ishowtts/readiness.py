"""Whether the model is loaded, as the answer to ``describe`` tells it.

The server answers ``describe`` from the moment it listens, while the model still loads (Home Assistant
gives a new server one second), so an ``info`` alone does not say that a replica can synthesize yet. The
``installed`` flags cannot carry it: Home Assistant's integration drops programs and voices that are not
installed. The text-to-speech program's description is free text that Home Assistant does not show, so it
ends in `READY` or `LOADING`, and a load balancer's check (docker/haproxy.cfg) or
``python -m wyoming_ishowtts.healthcheck --ready`` looks for `READY` there before sending requests.

Light on purpose: the health check imports it and must not import torch (tests/test_layering.py).
"""

from __future__ import annotations

PROGRAM_DESCRIPTION = "F5-TTS voice cloning, streamed per text chunk"
READY = "(model ready)"
LOADING = "(loading the model)"


def program_description(ready: bool) -> str:
    """The description of the text-to-speech program in ``info``, with the model's state at its end."""
    return f"{PROGRAM_DESCRIPTION} {READY if ready else LOADING}"


def says_ready(description: str | None) -> bool:
    """Whether a program's description says its model is loaded (an older server's never does)."""
    return description is not None and description.rstrip().endswith(READY)
