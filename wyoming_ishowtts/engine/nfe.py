"""How many sampler steps (NFE) each text chunk gets.

Latency matters most for the first chunk: nothing is playing yet, so it gets a short EPSS grid (7 steps,
which the Fast F5-TTS paper reports as comparable in quality to 32). Once audio is playing, every second of
audio already delivered but not yet played is time the next chunk may spend; the policy picks the largest
step count from the ladder whose predicted cost fits in that slack with a safety margin, so quality rises
when the machine is fast and the stream never stalls when it is slow.

The choice is a pure function of its inputs (chunk index, slack, measured cost per step), so it is
deterministic and testable; the engine logs every choice.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NfePolicy:
    fixed: int | None = None
    """A step count for every chunk of every request (--nfe N, `EngineSettings.nfe`) overrides the policy.
    A request's own count (a voice's `nfe` setting, `SynthesisOptions.nfe`) never reaches the policy: the
    synthesis uses it instead of asking (`Synthesis.next_job`)."""
    first: int = 7
    ladder: tuple[int, ...] = (16, 12, 10, 7)
    """EPSS grids exist for these counts; tried from the most to the fewest steps."""
    safety: float = 0.7
    """Use at most this share of the slack, leaving room for the vocoder, the network and timing noise."""

    def counts(self) -> list[int]:
        """Every step count `choose` can return, smallest first: what a warm-up of whole-chunk CUDA graphs
        must record (one graph per count)."""
        if self.fixed is not None:
            return [self.fixed]
        return sorted({self.first, *self.ladder})

    def choose(self, chunk_index: int, slack_seconds: float, seconds_per_step: float | None) -> int:
        """Steps for chunk `chunk_index`.

        slack_seconds: audio delivered so far minus time elapsed since the request started (how long until
        the listener runs out of audio); seconds_per_step: predicted cost of one step for this chunk, or
        None when nothing has been measured yet.
        """
        if self.fixed is not None:
            return self.fixed
        if chunk_index == 0 or seconds_per_step is None:
            return self.first
        budget = self.safety * slack_seconds
        for nfe in self.ladder:
            if nfe * seconds_per_step <= budget:
                return nfe
        return self.ladder[-1]
