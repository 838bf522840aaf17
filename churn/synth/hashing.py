"""Counter-based random numbers: the same (seed, user, day, stream) always gives the same value.

Listening rows are drawn per user-day from a hash instead of a sequential generator, so a day's rows are
identical whether it is written as part of the history dump, a range of daily drops, or one drop alone.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a fast, well-mixed 64-bit hash (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def uniform(seed: int, user: np.ndarray, day: np.ndarray, stream: int) -> np.ndarray:
    """Uniform floats in [0, 1) keyed by (seed, user, day, stream), vectorised."""
    with np.errstate(over="ignore"):
        key = _splitmix64(np.asarray(np.uint64(seed) * np.uint64(1_000_003) + np.uint64(stream)))
        x = _splitmix64(user.astype(np.uint64) ^ key)
        x = _splitmix64(x ^ day.astype(np.uint64))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def normal(seed: int, user: np.ndarray, day: np.ndarray, stream: int) -> np.ndarray:
    """Standard normal draws keyed like `uniform` (Box-Muller over two streams)."""
    return normals(seed, user, day, stream, 1)[:, 0]


def normals(seed: int, user: np.ndarray, day: np.ndarray, stream: int, count: int) -> np.ndarray:
    """`count` independent standard normals per key, shape (keys, count): Box-Muller gives two per pair
    of uniforms (cosine and sine), so many draws cost half the hashing. Column 0 is `normal(.., stream)`."""
    out = np.empty((np.size(user), count))
    for pair in range((count + 1) // 2):
        u1 = uniform(seed, user, day, stream + 2 * pair)
        u2 = uniform(seed, user, day, stream + 2 * pair + 7919)
        radius, angle = np.sqrt(-2.0 * np.log1p(-u1)), 2.0 * np.pi * u2
        out[:, 2 * pair] = radius * np.cos(angle)
        if 2 * pair + 1 < count:
            out[:, 2 * pair + 1] = radius * np.sin(angle)
    return out
