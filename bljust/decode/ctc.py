"""CTC decoding on log-posteriors: greedy and prefix beam search.

Both take log-probs (B, T, V) with per-utterance lengths and return, per
utterance, an n-best list of Hypothesis(tokens, score):
- greedy: the best path, repeats collapsed and blanks dropped; score = the
  path's log-probability (sum of per-frame maxima).
- beam: CTC prefix beam search; score = log of the total probability of all
  paths that collapse to the prefix (blank-ending + non-blank-ending).

The beam search is run for the whole batch at once: per frame, every beam of
every utterance is extended by the frame's top-k tokens in one set of array
ops over (batch, beam, 1 + top-k) (numpy: on arrays this small its per-call
cost is about 4x lower than torch's), prefixes are identified by a 62-bit rolling
hash so that "extend prefix p by c" can be merged with an existing beam equal
to p+c, and the token sequences are recovered at the end from per-frame
back-pointers (cheap: no prefix copies per frame).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch

NEG_INF = float("-inf")
# Two independent polynomial hashes mod a 31-bit prime: products stay < 2**62
# so int64 never overflows; combined they make a 62-bit key per prefix.
_P = 2147483647
_A1 = 1000003
_A2 = 69069


@dataclass
class Hypothesis:
    tokens: List[int]
    score: float


def _check(log_probs: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
    B, T, _ = log_probs.shape
    if lengths is None:
        return torch.full((B,), T, dtype=torch.long)
    lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
    if lengths.shape != (B,) or bool((lengths > T).any()) or bool((lengths < 0).any()):
        raise ValueError(f"lengths must be (B,) with 0 <= length <= T={T}, got {lengths.tolist()}")
    return lengths


def greedy_search(
    log_probs: torch.Tensor, lengths: Optional[torch.Tensor] = None, blank_id: int = 0
) -> List[List[Hypothesis]]:
    """Best-path decoding for a batch: argmax per frame, collapse repeats, drop blanks."""
    lengths = _check(log_probs, lengths)
    B, T, _ = log_probs.shape
    best, ids = log_probs.detach().max(dim=-1)  # (B, T)
    best, ids = best.float().cpu(), ids.cpu()
    valid = torch.arange(T)[None, :] < lengths[:, None]
    prev = torch.cat([torch.full((B, 1), -1, dtype=ids.dtype), ids[:, :-1]], dim=1)
    keep = valid & (ids != blank_id) & (ids != prev)
    scores = torch.where(valid, best, torch.zeros_like(best)).sum(dim=1).tolist()
    ids_np, keep_np = ids.numpy(), keep.numpy()
    return [[Hypothesis(ids_np[b][keep_np[b]].tolist(), scores[b])] for b in range(B)]


def prefix_beam_search(
    log_probs: torch.Tensor,
    lengths: Optional[torch.Tensor] = None,
    beam_size: int = 10,
    nbest: int = 1,
    blank_id: int = 0,
    token_topk: Optional[int] = None,
    prune_threshold: Optional[float] = None,
) -> List[List[Hypothesis]]:
    """CTC prefix beam search for a batch.

    token_topk: per frame only the k most probable non-blank tokens extend the
      beams (default: beam_size; 0 or >= V-1: all tokens, exact up to the beam).
    prune_threshold: additionally drop extensions by tokens whose frame
      log-prob is below this value (e.g. log(1e-4)); blanks and repeats of the
      last token (which do not extend a prefix) are always kept.
    Returns up to `nbest` hypotheses per utterance, best first.
    """
    lengths = _check(log_probs, lengths)
    if beam_size < 1 or nbest < 1:
        raise ValueError(f"beam_size and nbest must be >= 1, got {beam_size}, {nbest}")
    lp_all = log_probs.detach().float().cpu()
    B, T, V = lp_all.shape
    K = beam_size
    n_nonblank = V - 1 if 0 <= blank_id < V else V
    k = token_topk if token_topk is not None else beam_size
    k = n_nonblank if (k <= 0 or k >= n_nonblank) else k
    if k == 0 or T == 0:
        return [[Hypothesis([], 0.0 if T == 0 else float(lp_all[b, : lengths[b], blank_id].sum()))]
                for b in range(B)]

    # The per-frame work is on small arrays, where numpy's per-call cost is a few
    # times lower than torch's; everything is still vectorised over (B, K, k).
    lp_np = lp_all.numpy()
    lens = lengths.numpy()
    # Beam state. Beam 0 is the empty prefix; unused slots are -inf with key -1.
    pb = np.full((B, K), NEG_INF, dtype=np.float32)
    pnb = np.full((B, K), NEG_INF, dtype=np.float32)
    pb[:, 0] = 0.0
    h1 = np.full((B, K), -1, dtype=np.int64)
    h2 = np.full((B, K), -1, dtype=np.int64)
    h1[:, 0] = 0
    h2[:, 0] = 0
    last = np.full((B, K), -1, dtype=np.int64)  # last token of the prefix, -1 if empty
    parents = np.empty((T, B, K), dtype=np.int64)
    appended = np.empty((T, B, K), dtype=np.int64)  # token appended at frame t, -1 if none

    rows = np.arange(B)[:, None]
    ident = np.broadcast_to(np.arange(K), (B, K))
    Kk = K * k
    no_pb = np.full((B, Kk), NEG_INF, dtype=np.float32)
    all_tokens = k == n_nonblank
    if all_tokens:
        tok_all = np.array([v for v in range(V) if v != blank_id], dtype=np.int64)
        top_tok = np.broadcast_to(tok_all, (B, k))

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for t in range(T):
            lp = lp_np[:, t]  # (B, V)
            if all_tokens:
                top_lp = lp[:, tok_all]
            else:  # the frame's k best non-blank tokens
                row = lp.copy()
                row[:, blank_id] = NEG_INF
                top_tok = np.argpartition(row, V - k, axis=1)[:, V - k :]
                top_lp = row[rows, top_tok]
            if prune_threshold is not None:
                top_lp = np.where(top_lp < prune_threshold, NEG_INF, top_lp)
            p_tot = np.logaddexp(pb, pnb)
            # Stay candidates: the prefix is unchanged (blank, or a repeat of its last token).
            stay_pb = p_tot + lp[:, blank_id, None]
            stay_pnb = pnb + np.where(last >= 0, lp[rows, np.maximum(last, 0)], NEG_INF)
            # Extension candidates (B, K*k): prefix + c. A repeat of the last token
            # extends only from blank-ending paths (a blank separates the two copies).
            same = top_tok[:, None, :] == last[:, :, None]
            ext_pnb = (np.where(same, pb[:, :, None], p_tot[:, :, None]) + top_lp[:, None, :]).reshape(B, Kk)
            e1 = ((h1[:, :, None] * _A1 + top_tok[:, None, :] + 1) % _P).reshape(B, Kk)
            e2 = ((h2[:, :, None] * _A2 + top_tok[:, None, :] + 1) % _P).reshape(B, Kk)
            live = h1 >= 0
            ext_valid = np.repeat(live, k, axis=1)
            # Merge an extension into an existing beam that already equals prefix + c.
            match = (e1[:, :, None] == h1[:, None, :]) & (e2[:, :, None] == h2[:, None, :])
            match &= ext_valid[:, :, None] & live[:, None, :]
            if match.any():
                into = np.logaddexp.reduce(np.where(match, ext_pnb[:, :, None], NEG_INF), axis=1)
                stay_pnb = np.logaddexp(stay_pnb, into)
                ext_valid &= ~match.any(axis=2)
            ext_pnb = np.where(ext_valid, ext_pnb, NEG_INF)

            cand_pb = np.concatenate([stay_pb, no_pb], axis=1)  # (B, K + K*k)
            cand_pnb = np.concatenate([stay_pnb, ext_pnb], axis=1)
            neg = -np.logaddexp(cand_pb, cand_pnb)
            sel = np.argpartition(neg, K - 1, axis=1)[:, :K] if K < neg.shape[1] else np.argsort(neg, axis=1)
            is_ext = sel >= K
            ext_i = np.maximum(sel - K, 0)
            parent = np.where(is_ext, ext_i // k, sel)
            tok = np.where(is_ext, top_tok[rows, ext_i % k], -1)
            n_pb, n_pnb = cand_pb[rows, sel], cand_pnb[rows, sel]
            dead = np.isneginf(n_pb) & np.isneginf(n_pnb)
            n_h1 = np.where(dead, -1, np.where(is_ext, e1[rows, ext_i], h1[rows, parent]))
            n_h2 = np.where(dead, -1, np.where(is_ext, e2[rows, ext_i], h2[rows, parent]))
            n_last = np.where(is_ext, tok, last[rows, parent])

            act = lens > t
            if act.all():
                pb, pnb, h1, h2, last = n_pb, n_pnb, n_h1, n_h2, n_last
                parents[t], appended[t] = parent, tok
            else:  # utterances that have ended keep their state
                a = act[:, None]
                pb, pnb = np.where(a, n_pb, pb), np.where(a, n_pnb, pnb)
                h1, h2, last = np.where(a, n_h1, h1), np.where(a, n_h2, h2), np.where(a, n_last, last)
                parents[t], appended[t] = np.where(a, parent, ident), np.where(a, tok, -1)

    final = np.logaddexp(pb, pnb)
    n = min(nbest, K)
    fin_idx = np.argsort(-final, axis=1, kind="stable")[:, :n]
    fin_scores = final[rows, fin_idx]
    cur = fin_idx.copy()
    toks = np.empty((T, B, n), dtype=np.int64)
    for t in range(T - 1, -1, -1):
        toks[t] = appended[t][rows, cur]
        cur = parents[t][rows, cur]
    out: List[List[Hypothesis]] = []
    for b in range(B):
        hyps = []
        for j in range(n):
            if np.isneginf(fin_scores[b, j]) and j > 0:
                continue
            seq = toks[:, b, j]
            hyps.append(Hypothesis(seq[seq >= 0].tolist(), float(fin_scores[b, j])))
        out.append(hyps)
    return out


def ctc_decode(
    log_probs: torch.Tensor,
    lengths: Optional[torch.Tensor] = None,
    method: str = "greedy",
    beam_size: int = 10,
    nbest: int = 1,
    blank_id: int = 0,
    token_topk: Optional[int] = None,
    prune_threshold: Optional[float] = None,
) -> List[List[Hypothesis]]:
    """Dispatches to greedy_search ("greedy") or prefix_beam_search ("beam")."""
    if method == "greedy":
        if nbest > 1:
            raise ValueError("greedy decoding gives one hypothesis: use --decode_method beam for n-best")
        return greedy_search(log_probs, lengths, blank_id)
    if method == "beam":
        return prefix_beam_search(log_probs, lengths, beam_size, nbest, blank_id, token_topk, prune_threshold)
    raise ValueError(f"unknown decode method '{method}' (greedy or beam)")
