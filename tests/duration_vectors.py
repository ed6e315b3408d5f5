"""Every duration vector of a clip, for the alignment searches' exhaustive checks."""

import itertools


def duration_vectors(tokens: int, frames: int, skippable):
    """Every list of ``tokens`` durations summing to ``frames`` in which only tokens marked in ``skippable`` (a list
    of bools) take 0 frames."""
    for cuts in itertools.combinations_with_replacement(range(frames + 1), tokens - 1):
        durations = [b - a for a, b in zip((0, *cuts), (*cuts, frames))]
        if not any(d == 0 and not skippable[n] for n, d in enumerate(durations)):
            yield durations
