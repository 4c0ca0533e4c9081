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
    n_q, max_n, n_dims = queries.shape
    n_t, max_m, _ = templates.shape
    # Squared Euclidean frame distances |q|^2 - 2 q.t + |t|^2 as one matrix product of augmented
    # rows [q, |q|^2, 1] . [-2 t, 1, |t|^2], laid out (max_n, n_q, n_t, max_m) so that the
    # recursion below reads one contiguous block per query frame.
    by_frame = queries.transpose(1, 0, 2).reshape(-1, n_dims)
    flat_t = templates.reshape(-1, n_dims)
    ones_q, ones_t = np.ones((by_frame.shape[0], 1)), np.ones((flat_t.shape[0], 1))
    q_aug = np.hstack([by_frame, np.sum(by_frame * by_frame, axis=1, keepdims=True), ones_q])
    # A template's padding frames get |t|^2 = inf: every distance to them comes out +inf (the
    # padding's other entries are 0 and the query's ones column finite, so no 0 x inf).
    t_norms = np.sum(flat_t * flat_t, axis=1, keepdims=True)
    t_norms[(np.arange(max_m)[None, :] >= template_lengths[:, None]).ravel()] = np.inf
    t_aug = np.hstack([-2.0 * flat_t, ones_t, t_norms])
    sq = (q_aug @ t_aug.T).reshape(max_n, n_q, n_t, max_m)
    cost = np.sqrt(np.maximum(sq, 0.0, out=sq), out=sq)

    # acc[..., j + 2] holds the path cost ending at template frame j; two +inf columns in front
    # stand for "advance from before the start", so each row is three shifted minima, in place
    # (views made once: the loop runs once per query frame and numpy's per-call cost dominates).
    acc = np.full((n_q, n_t, max_m + 2), np.inf)
    here, one_back, two_back = acc[:, :, 2:], acc[:, :, 1:-1], acc[:, :, :-2]
    acc[:, :, 2] = cost[0, :, :, 0]  # every path starts at (0, 0)
    best = np.empty((n_q, n_t, max_m))
    result = np.empty((n_q, n_t))  # path cost at each template's last frame, at the query's
    last_col, cols = template_lengths + 1, np.arange(n_t)
    finishing: dict[int, list[int]] = {}  # query frame index -> the queries ending there
    for q, n in enumerate(query_lengths.tolist()):
        finishing.setdefault(n - 1, []).append(q)
    for i in range(max_n):
        if i:
            np.minimum(here, one_back, out=best)
            np.minimum(best, two_back, out=best)
            np.add(cost[i], best, out=here)
        if i in finishing:
            done = finishing[i]
            result[done] = acc[done][:, cols, last_col]
    return result / query_lengths[:, None]


def dtw_distances_either_way(
    queries: np.ndarray,
    query_lengths: np.ndarray,
    templates: np.ndarray,
    template_lengths: np.ndarray,
) -> np.ndarray:
    """:func:`dtw_distances`, with the roles swapped for the pairs it cannot align (a query less
    than half as long as the template): -> (n_q, n_t), finite wherever one direction aligns."""
    dist = dtw_distances(queries, query_lengths, templates, template_lengths)
    cols = np.flatnonzero(np.isinf(dist).any(axis=0))
    if cols.size:
        m = int(template_lengths[cols].max())
        rev = dtw_distances(templates[cols, :m], template_lengths[cols], queries, query_lengths)
        dist[:, cols] = np.where(np.isinf(dist[:, cols]), rev.T, dist[:, cols])
    return dist
