"""A fixed-bin latency histogram: 10 us bins below 100 ms, 1 ms bins up to 120 s.

Fixed bins keep the client's hot path to one list increment per tick and merge across client
processes by addition. Percentiles report a bin's upper edge, so they err high by at most one
bin (10 us below 100 ms).
"""

from __future__ import annotations

FINE_BIN_US = 10
FINE_LIMIT_US = 100_000  # 10,000 fine bins
COARSE_BIN_US = 1000
COARSE_LIMIT_US = 120_000_000
N_FINE = FINE_LIMIT_US // FINE_BIN_US
N_BINS = N_FINE + (COARSE_LIMIT_US - FINE_LIMIT_US) // COARSE_BIN_US + 1


def bin_of(lat_us: int) -> int:
    if lat_us < FINE_LIMIT_US:
        return max(lat_us, 0) // FINE_BIN_US
    return min(N_FINE + (lat_us - FINE_LIMIT_US) // COARSE_BIN_US, N_BINS - 1)


def upper_edge_us(b: int) -> int:
    if b < N_FINE:
        return (b + 1) * FINE_BIN_US
    return FINE_LIMIT_US + (b - N_FINE + 1) * COARSE_BIN_US


def to_sparse(bins: list[int]) -> dict[str, int]:
    return {str(i): c for i, c in enumerate(bins) if c}


def merge_sparse(parts: list[dict[str, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for part in parts:
        for k, c in part.items():
            out[int(k)] = out.get(int(k), 0) + c
    return out


def percentiles_ms(sparse: dict[int, int], qs: tuple[float, ...] = (0.5, 0.99, 0.999)) -> dict[str, float | None]:
    total = sum(sparse.values())
    out: dict[str, float | None] = {}
    if not total:
        return {f"p{q * 100:g}": None for q in qs}
    keys = sorted(sparse)
    for q in qs:
        want = q * total
        seen = 0
        for k in keys:
            seen += sparse[k]
            if seen >= want:
                out[f"p{q * 100:g}"] = upper_edge_us(k) / 1000
                break
    return out
