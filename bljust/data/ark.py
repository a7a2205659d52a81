"""Feature matrices from Kaldi arks, with a fast path for compressed ones.

Kaldi's `compress=true` arks (CompressedMatrix, kOneByteWithColHeaders: "CM") store a
byte per value and four quantiles per column; each byte maps to a float by a
piecewise-linear function of its column's quantiles. kaldiio evaluates that function
for every value (three branches, each over the whole matrix), which made reading
compressed features about 5x slower than float32 ones. Here each column's 256
possible values are computed once (with kaldiio's own formula, so the result is
bit-identical) and the bytes index that table. Every other entry (float matrices,
CM2/CM3, pipes, slices) goes to kaldiio unchanged.
"""
from __future__ import annotations

from typing import Optional, Tuple

import kaldiio
import numpy as np
from kaldiio.compression_header import GlobalHeader, PerColHeader

_BYTES = np.arange(256, dtype=np.uint8)


def _ark_and_offset(spec: str) -> Optional[Tuple[str, int]]:
    """(file, offset) of a plain `file.ark:offset` entry; None for anything else."""
    s = spec.strip()
    if s.startswith("|") or s.endswith("|") or "[" in s or ":" not in s:
        return None
    path, offset = s.rsplit(":", 1)
    return (path, int(offset)) if offset.isdigit() else None


def load_mat(spec: str) -> np.ndarray:
    """The matrix a feats.scp entry points at, as kaldiio.load_mat returns it."""
    where = _ark_and_offset(spec)
    if where is None:
        return kaldiio.load_mat(spec)
    with open(where[0], "rb") as f:
        f.seek(where[1])
        if f.read(5) != b"\0BCM ":
            return kaldiio.load_mat(spec)
        head = GlobalHeader.read(f, "CM", "<")
        if head.rows < 0 or head.cols <= 0:
            raise ValueError(f"{spec}: compressed matrix header says {head.rows} x {head.cols}")
        cols = PerColHeader.read(f, head)
        n = head.rows * head.cols
        data = np.frombuffer(f.read(n), dtype=np.uint8)
    if data.size != n:
        raise ValueError(f"{spec}: truncated compressed matrix ({data.size} of {n} bytes)")
    table = cols.char_to_float(np.broadcast_to(_BYTES, (head.cols, 256))).astype(np.float32, copy=False)
    index = data.reshape(head.cols, head.rows) + (np.arange(head.cols, dtype=np.intp) * 256)[:, None]
    return table.reshape(-1)[index].T
