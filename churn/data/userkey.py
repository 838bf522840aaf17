"""The integer user key used inside the lake, computed from msno alone (no lookup table, no registry).

msno is base64 of 32 random bytes: its first 16 characters carry 96 random bits. Mixing them into 63 bits
gives a key every process computes alike, with collisions negligible (~3e-6 for all 6.8M real users; the
ingest checks anyway). Grouping by it is about twice as fast as by the 44-char string (see
../shared/benchmarks.md), msno is stored once per user (Silver `users`), and `user_id % buckets` lays
Silver out by user.

The arithmetic reads the characters in place from the Arrow string buffer: no Python objects, no copies.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn.data.kkbox import MSNO_LENGTH

_BASE64 = np.zeros(256, dtype=bool)
_BASE64[
    np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", dtype=np.uint8)
] = True
_KEY_CHARS = 16
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(31)
_POSITIVE = np.uint64(0x7FFFFFFFFFFFFFFF)


def _words(msno: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Characters 0-7 and 8-15 as little-endian uint64, the last character, and characters 0-15 as
    bytes, of 44-byte values (views into the Arrow buffer)."""
    if msno.type == pa.large_string():
        msno = msno.cast(pa.string())
    _, offsets, data = msno.buffers()
    start = int(np.frombuffer(offsets, dtype=np.int32, count=1, offset=msno.offset * 4)[0])
    n = len(msno)
    first = np.ndarray((n,), dtype="<u8", buffer=data, offset=start, strides=(MSNO_LENGTH,))
    second = np.ndarray((n,), dtype="<u8", buffer=data, offset=start + 8, strides=(MSNO_LENGTH,))
    last = np.ndarray(
        (n,), dtype=np.uint8, buffer=data, offset=start + MSNO_LENGTH - 1, strides=(MSNO_LENGTH,)
    )
    head = np.ndarray((n, _KEY_CHARS), dtype=np.uint8, buffer=data, offset=start, strides=(MSNO_LENGTH, 1))
    return first, second, last, head


def hash_words(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Mix two 64-bit words into a non-negative int64 (multiply-xorshift, wrapping)."""
    with np.errstate(over="ignore"):
        x = first * _MIX
        x ^= x >> _SHIFT
        x ^= second
        x *= _MIX
        x ^= x >> _SHIFT
    return (x & _POSITIVE).astype(np.int64)


def decode_msno(msno: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(user_id, bad) per row: the int64 key, and True where msno is not a usable id.

    A usable msno is 44 bytes ending in '=' whose first 16 characters (those the key is made of) are
    base64: empty, truncated, quoted or otherwise mangled keys are rejected. Bad rows get key -1.
    """
    msno = msno.combine_chunks() if isinstance(msno, pa.ChunkedArray) else msno
    bad = pc.fill_null(pc.binary_length(msno), 0).to_numpy() != MSNO_LENGTH
    key = np.full(len(msno), -1, dtype=np.int64)
    good = np.flatnonzero(~bad)
    if good.size:
        values = msno if good.size == len(msno) else pc.take(msno, pa.array(good))
        first, second, last, head = _words(values)
        invalid = (last != ord("=")) | ~_BASE64[head].all(axis=1)
        key[good] = np.where(invalid, -1, hash_words(first, second))
        bad[good] = invalid
    return key, bad


def user_id_of(msno: str) -> int:
    """The key of one msno (the live path); raises ValueError for a malformed id."""
    key, bad = decode_msno(pa.array([msno], pa.string()))
    if bad[0]:
        raise ValueError(f"msno must be {MSNO_LENGTH} characters ending in '=' (got {msno!r})")
    return int(key[0])


def bucket_of(user_id: np.ndarray, buckets: int) -> np.ndarray:
    """The Silver bucket of each user key."""
    return (user_id % buckets).astype(np.int32)
