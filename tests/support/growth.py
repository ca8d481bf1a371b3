"""Time growth of a parser with its input: the check that scanning stays linear."""

from __future__ import annotations

import time


def growth(parse, make) -> float:
    """How much longer 4x the input takes than 1x (best of three each): ~4 linear, ~16 quadratic."""

    def best(text: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            parse(text)
            times.append(time.perf_counter() - started)
        return min(times)

    small, large = make(5_000), make(20_000)
    return best(large) / max(best(small), 1e-3)  # a floor: below a millisecond the clock is noise
