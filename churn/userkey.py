"""The integer user key used inside the lake, derived from msno without any lookup table.

msno is base64 of 32 random bytes, so its first ten characters carry 60 uniformly random bits: decoding
them gives a stable int64 key (collisions are negligible: ~2e-5 for all 6.8M real users) that every
process computes alike, with no central registry. Grouping by it is about twice as fast as by the 44-char
string (see ../shared/benchmarks.md), and `user_id % buckets` lays Silver out by user.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn.kkbox import MSNO_LENGTH

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_LUT = np.full(256, 255, dtype=np.uint8)
_LUT[np.frombuffer(_ALPHABET, dtype=np.uint8)] = np.arange(64, dtype=np.uint8)
_KEY_CHARS = 10


def _chars(msno: pa.Array) -> np.ndarray:
    """The bytes of a string array whose values all have 44 bytes, as an (n, 44) uint8 view (no copy)."""
    if msno.type == pa.large_string():
        msno = msno.cast(pa.string())
    _, offsets, data = msno.buffers()
    start = np.frombuffer(offsets, dtype=np.int32, count=1, offset=msno.offset * 4)[0]
    raw = np.frombuffer(data, dtype=np.uint8, count=len(msno) * MSNO_LENGTH, offset=int(start))
    return raw.reshape(-1, MSNO_LENGTH)


def decode_msno(msno: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(user_id, bad) per row: the int64 key, and True where msno is not a usable 44-char base64 id.

    A usable id is 44 bytes long, ends with '=' and has base64 characters where the key is read from
    (checking every character costs 5x more and broken rows are caught by the length and padding).
    Bad rows get key -1.
    """
    msno = msno.combine_chunks() if isinstance(msno, pa.ChunkedArray) else msno
    length = pc.fill_null(pc.binary_length(msno), 0).to_numpy()
    bad = length != MSNO_LENGTH
    key = np.full(len(msno), -1, dtype=np.int64)
    good = np.flatnonzero(~bad)
    if good.size:
        chars = _chars(msno if good.size == len(msno) else pc.take(msno, pa.array(good)))
        values = _LUT[chars[:, :_KEY_CHARS]]
        invalid = (values.max(axis=1) == 255) | (chars[:, MSNO_LENGTH - 1] != ord("="))
        packed = np.zeros(good.size, dtype=np.int64)
        for column in range(_KEY_CHARS):
            packed = (packed << 6) | values[:, column]  # uint8 column widens to int64 here
        key[good] = np.where(invalid, -1, packed)
        bad[good] = invalid
    return key, bad


def bucket_of(user_id: np.ndarray, buckets: int) -> np.ndarray:
    """The Silver bucket of each user key."""
    return (user_id % buckets).astype(np.int32)
