"""The engine's public objects: background model, speaker model, verdict; enrol, score, verify.

Everything here takes parsed :class:`verification.features.Utterance` objects and returns
dataclasses; the server-side post-processing is ``features.cepstra`` for every caller (API,
evaluation command, tests), so what is measured is what is deployed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from verification import features

from . import dtw
from .adapt import map_adapt_means, sufficient_statistics
from .norm import split_segments, znorm_statistics, znormalise
from .scoring import mean_llr, segment_means, speaker_frame_llr, ubm_frames

REASON_ACCEPTED = "accepted"
REASON_LOW_SCORE = "low_score"
REASON_WRONG_CONTENT = "wrong_content"

# Score reported when an attempt holds no speech at all (far below any calibrated threshold).
NO_SPEECH_SCORE = -100.0


@dataclass(frozen=True)
class EngineConfig:
    """Scoring choices that travel with a background model (chosen by measurement, see README).

    relevance: MAP relevance factor r. top_c: UBM components evaluated per frame.
    znorm: normalise scores with the model's statistics on the shipped impostor cohort.
    fusion_weight: weight of the text-dependent (DTW) score added to the speaker score.
    dtw_dims: leading cepstral dimensions used for templates. dtw_stride: frame decimation
    for templates. content_max_miss_fraction: share of a prompt's utterances allowed to match
    another digit better than the prompted one (rounded down), absorbing rare recognition slips.
    min_frames: utterances with fewer speech frames count as not saying the prompted digit.
    """

    relevance: float = 16.0
    top_c: int = 5
    znorm: bool = True
    fusion_weight: float = 0.0
    dtw_dims: int = 13
    dtw_stride: int = 2
    content_max_miss_fraction: float = 0.0
    min_frames: int = 5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EngineConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown engine config keys: {sorted(unknown)}")
        return cls(**data)


def _empty_frames() -> np.ndarray:
    return np.zeros((0, 0), dtype=np.float32)


def _empty_lengths() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class BackgroundModel:
    """A universal background model: diagonal GMM + calibrated threshold + impostor cohort.

    ``cepstra_config`` is the post-processing the UBM was trained with; every utterance scored
    against it goes through ``features.cepstra(utt, cepstra_config)``.

    weights (n_components,), means and variances (n_components, n_dims) float64;
    cohort_frames (n_cohort_frames, n_dims) float32 split into attempts by cohort_lengths (k,).
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    threshold: float
    version: str
    feature_version: str
    provenance: dict
    config: EngineConfig = field(default_factory=EngineConfig)
    cepstra_config: features.CepstraConfig = features.DEFAULT_CONFIG
    cohort_frames: np.ndarray = field(default_factory=_empty_frames)
    cohort_lengths: np.ndarray = field(default_factory=_empty_lengths)

    @property
    def n_components(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_dims(self) -> int:
        return int(self.means.shape[1])


@dataclass(frozen=True, eq=False)
class SpeakerModel:
    """One user's voiceprint: MAP-adapted means plus per-digit enrolment templates.

    means (n_components, n_dims) float64; template_frames (n_template_frames, dtw_dims) float32
    split by template_lengths (k,) into templates labelled template_digits (k,).
    """

    means: np.ndarray
    ubm_version: str
    n_utterances: int
    template_frames: np.ndarray
    template_lengths: np.ndarray
    template_digits: np.ndarray
    znorm_mean: float = 0.0
    znorm_std: float = 1.0

    @property
    def digits(self) -> list[int]:
        return sorted({int(d) for d in self.template_digits})


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str
    score: float
    threshold: float
    n_frames: int


def _check_ubm(ubm: BackgroundModel) -> None:
    if ubm.feature_version != features.FEATURE_VERSION:
        raise ValueError(
            f"background model was trained on features {ubm.feature_version!r}, this server "
            f"computes {features.FEATURE_VERSION!r}: retrain it (manage.py train_ubm)"
        )


def _check_pair(ubm: BackgroundModel, model: SpeakerModel) -> None:
    _check_ubm(ubm)
    if model.ubm_version != ubm.version:
        raise ValueError(
            f"speaker model was adapted from UBM {model.ubm_version!r}, not {ubm.version!r}: "
            "re-enrol it from the stored enrolment features"
        )


def cepstra(ubm: BackgroundModel, utt: features.Utterance) -> np.ndarray:
    """The UBM's post-processing of one utterance: -> (n_kept_frames, ubm.n_dims) float32."""
    return features.cepstra(utt, ubm.cepstra_config)


def _template(cep: np.ndarray, config: EngineConfig) -> np.ndarray:
    """(n_frames, n_dims) cepstra -> (ceil(n / stride), dtw_dims) float32 template."""
    return np.ascontiguousarray(cep[:: config.dtw_stride, : config.dtw_dims], dtype=np.float32)


def _raw_score(ubm: BackgroundModel, means: np.ndarray, X: np.ndarray) -> float:
    return mean_llr(X, ubm.weights, ubm.means, ubm.variances, means, ubm.config.top_c)


def _cohort_scores(ubm: BackgroundModel, means: np.ndarray) -> np.ndarray:
    """Raw scores of every cohort attempt against adapted ``means``: -> (n_attempts,).

    The UBM side of the cohort frames is computed once per background model object and kept on
    it, so enrolment only pays for the speaker side (one matrix product).
    """
    frames = ubm.__dict__.get("_cohort_ubm_frames")
    if frames is None:
        frames = ubm_frames(
            ubm.cohort_frames.astype(np.float64),
            ubm.weights,
            ubm.means,
            ubm.variances,
            ubm.config.top_c,
        )
        object.__setattr__(ubm, "_cohort_ubm_frames", frames)  # a cache, not model state
    llr = speaker_frame_llr(frames, ubm.weights, ubm.variances, means)
    return segment_means(llr, ubm.cohort_lengths)


def enroll(ubm: BackgroundModel, utterances: Sequence[features.Utterance]) -> SpeakerModel:
    """MAP-adapt the UBM means to a user's enrolment utterances; keep per-digit templates.

    Every utterance must carry the digit it was prompted for (``utt.digit``): enrolment prompts
    come from the server, so the labels are the server's own.
    """
    _check_ubm(ubm)
    if not utterances:
        raise ValueError("enrolment needs at least one utterance")
    ceps = [cepstra(ubm, u) for u in utterances]
    kept = [(c, u.digit) for c, u in zip(ceps, utterances, strict=True)]
    if any(d is None for _, d in kept):
        raise ValueError("every enrolment utterance needs its prompted digit")
    kept = [(c, d) for c, d in kept if c.shape[0] >= ubm.config.min_frames]
    if not kept:
        raise ValueError("no enrolment utterance holds enough speech")
    X = np.concatenate([c for c, _ in kept]).astype(np.float64)
    counts, first = sufficient_statistics(X, ubm.weights, ubm.means, ubm.variances)
    means = map_adapt_means(ubm.means, counts, first, ubm.config.relevance)
    templates = [_template(c, ubm.config) for c, _ in kept]
    zmean, zstd = 0.0, 1.0
    if ubm.config.znorm and ubm.cohort_lengths.size:
        zmean, zstd = znorm_statistics(_cohort_scores(ubm, means))
    return SpeakerModel(
        means=means,
        ubm_version=ubm.version,
        n_utterances=len(kept),
        template_frames=np.concatenate(templates),
        template_lengths=np.array([t.shape[0] for t in templates], dtype=np.int64),
        template_digits=np.array([d for _, d in kept], dtype=np.int64),
        znorm_mean=zmean,
        znorm_std=zstd,
    )


def _template_distances(
    ubm: BackgroundModel, model: SpeakerModel, ceps: list[np.ndarray]
) -> np.ndarray:
    """DTW distance of each utterance to each enrolment template: -> (n_utterances, n_templates)."""
    queries, q_len = dtw.pad_sequences([_template(c, ubm.config) for c in ceps])
    tmpl, t_len = dtw.pad_sequences(split_segments(model.template_frames, model.template_lengths))
    return dtw.dtw_distances(queries, q_len, tmpl, t_len)


def _digit_distances(
    dist: np.ndarray, template_digits: np.ndarray, digits: list[int]
) -> np.ndarray:
    """(n_utt, n_templates) -> (n_utt, n_digits): the nearest template of each digit."""
    return np.stack([dist[:, template_digits == d].min(axis=1) for d in digits], axis=1)


def _speaker_score(ubm: BackgroundModel, model: SpeakerModel, ceps: list[np.ndarray]) -> float:
    X = np.concatenate(ceps).astype(np.float64)
    if X.shape[0] == 0:
        return NO_SPEECH_SCORE
    raw = _raw_score(ubm, model.means, X)
    if ubm.config.znorm:
        return znormalise(raw, model.znorm_mean, model.znorm_std)
    return raw


def score(
    ubm: BackgroundModel, model: SpeakerModel, utterances: Sequence[features.Utterance]
) -> float:
    """The speaker score of some utterances (no content check, no decision), e.g. for /test.

    On the same scale as ``ubm.threshold`` when the configuration fuses no text-dependent score.
    """
    _check_pair(ubm, model)
    ceps = [cepstra(ubm, u) for u in utterances]
    return _speaker_score(ubm, model, ceps)


def verify(
    ubm: BackgroundModel,
    model: SpeakerModel,
    prompted: Sequence[int],
    utterances: Sequence[features.Utterance],
) -> Verdict:
    """Decide whether ``utterances`` (one per prompted digit, in order) are the enrolled speaker
    saying the prompted digits.

    The client's ``utt.digit`` labels are ignored: the content check compares each utterance with
    the user's own enrolment templates of every digit.
    """
    _check_pair(ubm, model)
    prompted = [int(d) for d in prompted]
    if not prompted or len(prompted) != len(utterances):
        raise ValueError(
            f"need one utterance per prompted digit: {len(prompted)} prompted, "
            f"{len(utterances)} utterances"
        )
    digits = model.digits
    missing = sorted(set(prompted) - set(digits))
    if missing:
        raise ValueError(f"the speaker model has no enrolment template for digits {missing}")
    cfg = ubm.config
    ceps = [cepstra(ubm, u) for u in utterances]
    n_frames = int(sum(c.shape[0] for c in ceps))
    speech = [c.shape[0] >= cfg.min_frames for c in ceps]

    fused = _speaker_score(ubm, model, ceps)
    matched = np.zeros(len(ceps), dtype=bool)
    voiced = [c for c, ok in zip(ceps, speech, strict=True) if ok]
    if voiced:
        per_digit = _digit_distances(
            _template_distances(ubm, model, voiced), model.template_digits, digits
        )
        idx = np.array([digits.index(d) for d, ok in zip(prompted, speech, strict=True) if ok])
        rows = np.arange(len(voiced))
        own = per_digit[rows, idx]
        others = per_digit.copy()
        others[rows, idx] = np.inf
        matched[np.flatnonzero(speech)] = own < others.min(axis=1)
        if cfg.fusion_weight:
            fused += cfg.fusion_weight * _text_dependent_score(own)
    allowed_misses = int(np.floor(cfg.content_max_miss_fraction * len(prompted)))
    threshold = float(ubm.threshold)
    if int(np.sum(~matched)) > allowed_misses:
        return Verdict(False, REASON_WRONG_CONTENT, float(fused), threshold, n_frames)
    accepted = fused >= threshold
    reason = REASON_ACCEPTED if accepted else REASON_LOW_SCORE
    return Verdict(bool(accepted), reason, float(fused), threshold, n_frames)


def _text_dependent_score(own_distances: np.ndarray) -> float:
    """Higher is closer: minus the mean DTW distance to the prompted digits' templates."""
    return -float(np.mean(own_distances))
