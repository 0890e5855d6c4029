"""Every ranking and pair-scoring weight, in one named structure.

Search relevance, the prescriber finder and therapist + prescriber pairs all
score with these numbers; change them here and every ranking follows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Weights:
    """How much each signal adds to a score (penalties are subtracted)."""

    # One listing's relevance to the patient (search, and each side of a pair).
    text: float = 3.0                # best free-text match scores this much
    modality: float = 1.0            # offers an asked-for or suited modality
    concern: float = 0.5             # treats the patient's concern
    nearness: float = 0.5            # at the patient's door, falling to 0 at the radius
    availability: float = 0.3        # can see the patient now, falling to 0 at...
    wait_horizon_days: float = 60.0  # ...this many days' wait
    # Pairs and the prescriber finder.
    pair_concern: float = 0.3        # a side that lists the concern itself
    stale: float = 1.0               # penalty: not verified within the stale period
    responsiveness: float = 1.0      # the prescriber's referral answers (0..1 score)
    same_clinic: float = 0.5         # therapist and prescriber work at one clinic
    shared_history: float = 0.3      # per completed referral together...
    shared_history_cap: int = 3      # ...counting at most this many
    close_practices: float = 0.4     # practices next door, falling to 0 at...
    close_practice_miles: float = 10.0  # ...this distance apart


WEIGHTS = Weights()
