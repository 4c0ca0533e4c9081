"""Dynamic time warping of cepstral sequences against enrolment templates (text-dependent part).

Step pattern: each query frame is matched to exactly one template frame and the template index
advances by 0, 1 or 2 per query frame (D[i, j] = c[i, j] + min(D[i-1, j], D[i-1, j-1],
D[i-1, j-2])). That keeps each row depending only on the previous row, so one numpy step per
query frame aligns every (query, template) pair at once, and the path cost divided by the query
length is an average frame distance comparable across lengths.
"""

from __future__ import annotations

import numpy as np


def pad_sequences(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack k sequences (n_i, n_dims) -> (k, max_n, n_dims) zero-padded and (k,) lengths."""
    lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
    out = np.zeros((len(seqs), int(lengths.max()), seqs[0].shape[1]), dtype=np.float64)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out, lengths


def dtw_distances(
    queries: np.ndarray,
    query_lengths: np.ndarray,
    templates: np.ndarray,
    template_lengths: np.ndarray,
) -> np.ndarray:
    """Average aligned frame distance of every query to every template.

    queries (n_q, max_n, n_dims) padded, query_lengths (n_q,), templates (n_t, max_m, n_dims)
    padded, template_lengths (n_t,) -> (n_q, n_t). A template more than twice as long as the
    query cannot be aligned (slope <= 2) and gets +inf.
    """
    n_q, max_n, _ = queries.shape
    n_t, max_m, _ = templates.shape
    # Euclidean frame distances, (n_q, max_n, n_t, max_m), via one matrix product.
    q2 = np.sum(queries * queries, axis=2)
    t2 = np.sum(templates * templates, axis=2)
    cross = np.einsum("qnd,tmd->qntm", queries, templates, optimize=True)
    cost = np.sqrt(np.maximum(q2[:, :, None, None] + t2[None, None, :, :] - 2.0 * cross, 0.0))
    cost[:, :, np.arange(max_m)[None, :] >= template_lengths[:, None]] = np.inf

    inf_col = np.full((n_q, n_t, 2), np.inf)
    acc = np.full((n_q, n_t, max_m), np.inf)
    acc[:, :, 0] = cost[:, 0, :, 0]  # every path starts at (0, 0)
    result = np.full((n_q, n_t), np.inf)
    last_col = template_lengths - 1
    for i in range(max_n):
        if i > 0:
            prev = np.concatenate([inf_col, acc], axis=2)  # prev[..., j + 2] == acc[..., j]
            best = np.minimum(np.minimum(prev[:, :, 2:], prev[:, :, 1:-1]), prev[:, :, :-2])
            acc = cost[:, i] + best
        done = query_lengths - 1 == i
        if np.any(done):
            result[done] = acc[done][:, np.arange(n_t), last_col]
    return result / query_lengths[:, None]
