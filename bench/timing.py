"""Percentiles over measured durations."""

from __future__ import annotations

import statistics


def summary_ms(durations_s: list[float]) -> dict[str, float]:
    ordered = sorted(durations_s)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3)

    return {
        "n": len(ordered),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }
