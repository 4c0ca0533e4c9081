"""Building a background model from a labelled corpus: UBM, z-norm cohort, calibrated threshold.

``manage.py train_ubm`` is a thin wrapper around :func:`build_background_model`. The threshold is
calibrated by cross-validation over the corpus' own speakers: each fold trains a UBM (same
settings) without the fold's speakers, runs the evaluation protocol on them, and the threshold is
the equal-error point of the pooled held-out scores. No speaker ever scores against a UBM or
cohort that saw them, so the threshold is the one a deployment with unseen users would need.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from verification import features

from . import evaluation, metrics
from .adapt import map_adapt_means, sufficient_statistics
from .evaluation import Recording
from .gmm import train_gmm
from .model import BackgroundModel, EngineConfig

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainingParams:
    """Everything that determines a background model besides its corpus (recorded in provenance).

    max_frames: UBM training frames, sampled uniformly from all speech frames when there are more.
    cohort_attempts / cohort_utterances: z-norm cohort of that many attempts, each that many
    utterances of distinct labels by one training speaker (speakers taken in turn).
    cohort_model_per_label: recordings per label of each training speaker MAP-adapted into that
    speaker's cohort model (the test side of AS-norm, built only for a config that uses it:
    ``EngineConfig.asnorm_top``), about what a user enrols; with
    narrowband augmentation the speakers alternate between the channels, or with
    cohort_models_both_channels each gets a model per channel (``build_cohort_models``).
    calibration_*: cross-validation folds over speakers (0 = no calibration, threshold 0),
    prompted labels per trial, enrolment recordings per label, trials per kind and fold.
    narrowband_augment: also train on every recording through an 8 kHz channel (see
    ``corpus.narrowband_utterance``) and calibrate on both versions.
    """

    n_components: int = 128
    seed: int = 0
    max_iter: int = 200
    max_frames: int = 120_000
    cohort_attempts: int = 48
    cohort_utterances: int = 3
    cohort_model_per_label: int = 2
    cohort_models_both_channels: bool = False
    calibration_folds: int = 3
    calibration_k: int = 5
    calibration_enroll_per_label: int = 2
    calibration_trials: int = 1000
    narrowband_augment: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def _quiet(message: str) -> None:
    pass


def speech_frames(
    utterances: Sequence[features.Utterance], cepstra_config: features.CepstraConfig
) -> list[np.ndarray]:
    """Cepstra of every utterance, a few hundred at a time (``features.cepstra_many``)."""
    utterances = list(utterances)
    out: list[np.ndarray] = []
    for i in range(0, len(utterances), _CEPSTRA_BATCH):
        out += features.cepstra_many(utterances[i : i + _CEPSTRA_BATCH], cepstra_config)
    return out


_CEPSTRA_BATCH = 256  # utterances per cepstra_many call: ~25 MB of float64 temporaries


def build_cohort(
    recordings: Sequence[Recording],
    ceps: Sequence[np.ndarray],
    *,
    n_attempts: int,
    per_attempt: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Impostor attempts for z-norm: -> frames (n_total, n_dims) float32, lengths (k,).

    Frames are rounded through float16, the precision they are stored with, so a model built in
    memory scores exactly as the same model loaded from its file.
    """
    by_speaker: dict[str, list[int]] = {}
    for pos, rec in enumerate(recordings):
        by_speaker.setdefault(rec.speaker, []).append(pos)
    speakers = sorted(by_speaker)
    rng.shuffle(speakers)
    attempts = []
    for i in range(n_attempts):
        pool = by_speaker[speakers[i % len(speakers)]]
        labels = sorted({recordings[p].label for p in pool})
        chosen = rng.choice(labels, size=min(per_attempt, len(labels)), replace=False)
        parts = []
        for label in chosen:
            options = [p for p in pool if recordings[p].label == label]
            parts.append(ceps[options[int(rng.integers(len(options)))]])
        attempt = np.concatenate(parts)
        if attempt.shape[0]:
            attempts.append(attempt)
    if not attempts:
        return np.zeros((0, ceps[0].shape[1]), np.float32), np.zeros(0, np.int64)
    frames = np.concatenate(attempts).astype(np.float16).astype(np.float32)
    return frames, np.array([a.shape[0] for a in attempts], dtype=np.int64)


def build_cohort_models(
    recordings: Sequence[Recording],
    channels: Sequence[Sequence[np.ndarray]],
    *,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    relevance: float,
    per_label: int,
    both_channels: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """MAP-adapted models of each speaker from ``per_label`` random recordings of each of their
    labels: -> shifts (n_models, n_components, n_dims) float32, adapted means minus the UBM's.

    ``channels``: cepstra of the recordings as recorded, then through other channels (same
    order). Speakers take the channels in turn, or with ``both_channels`` each speaker gets a
    model per channel: attempts from a narrowband microphone then meet narrowband impostors
    among their closest cohort models, so one threshold holds across channels.
    Rounded through float16, the precision they are stored with (as ``build_cohort``).
    """
    if per_label <= 0:
        return np.zeros((0, *means.shape), np.float32)
    by_speaker: dict[str, dict[str, list[int]]] = {}
    for pos, rec in enumerate(recordings):
        by_speaker.setdefault(rec.speaker, {}).setdefault(rec.label, []).append(pos)
    shifts = []
    for i, speaker in enumerate(sorted(by_speaker)):
        chosen = []
        for label in sorted(by_speaker[speaker]):
            pool = by_speaker[speaker][label]
            chosen += rng.choice(pool, size=min(per_label, len(pool)), replace=False).tolist()
        for ceps in channels if both_channels else [channels[i % len(channels)]]:
            X = np.concatenate([ceps[p] for p in chosen]).astype(np.float64)
            if X.shape[0] == 0:
                continue
            counts, first = sufficient_statistics(X, weights, means, variances)
            shifts.append(map_adapt_means(means, counts, first, relevance) - means)
    if not shifts:
        return np.zeros((0, *means.shape), np.float32)
    return np.stack(shifts).astype(np.float16).astype(np.float32)


def model_version(
    name: str,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    *extra: np.ndarray | str | float,
) -> str:
    """A version naming the corpus and hashing everything that decides (same training -> same
    version): the GMM parameters plus ``extra`` (threshold, configurations, cohort)."""
    h = hashlib.sha256()
    for a in (weights, means, variances):
        h.update(np.ascontiguousarray(a, dtype=np.float64).round(6).tobytes())
    for item in extra:
        if isinstance(item, np.ndarray):
            h.update(np.ascontiguousarray(item).tobytes())
        else:
            h.update(repr(item).encode())
    return f"{name}-c{weights.shape[0]}-{h.hexdigest()[:10]}"


def train_background(
    recordings: Sequence[Recording],
    ceps: Sequence[np.ndarray],
    *,
    name: str,
    params: TrainingParams,
    config: EngineConfig,
    cepstra_config: features.CepstraConfig,
    threshold: float = 0.0,
    provenance: dict | None = None,
    augment: Sequence[np.ndarray] = (),
    progress: Progress = _quiet,
) -> BackgroundModel:
    """Train a UBM and cohort on precomputed cepstra of ``recordings`` (no calibration).

    ``augment``: the same recordings through another channel (an 8 kHz one), in the same order,
    as more UBM training cepstra, so the UBM also covers speech without energy above 4 kHz; the
    z-norm cohort attempts use ``ceps`` only, AS-norm's cohort models both channels.
    """
    if augment and len(augment) != len(ceps):
        raise ValueError("augment must hold the same recordings as ceps, in the same order")
    rng = np.random.default_rng(params.seed)
    X = np.concatenate([*ceps, *augment]).astype(np.float64)
    if X.shape[0] > params.max_frames:
        X = X[np.sort(rng.choice(X.shape[0], size=params.max_frames, replace=False))]
    weights, means, variances = train_gmm(
        X, params.n_components, seed=params.seed, max_iter=params.max_iter, progress=progress
    )
    cohort_frames, cohort_lengths = build_cohort(
        recordings,
        ceps,
        n_attempts=params.cohort_attempts if config.znorm else 0,
        per_attempt=params.cohort_utterances,
        rng=rng,
    )
    channels = [ceps, augment] if augment else [ceps]
    cohort_shifts = build_cohort_models(
        recordings,
        channels,
        weights=weights,
        means=means,
        variances=variances,
        relevance=config.relevance,
        per_label=params.cohort_model_per_label if config.asnorm_top else 0,
        both_channels=params.cohort_models_both_channels,
        rng=rng,
    )
    return BackgroundModel(
        weights=weights,
        means=means,
        variances=variances,
        threshold=float(threshold),
        version=model_version(
            name,
            weights,
            means,
            variances,
            round(float(threshold), 6),
            json.dumps(config.to_dict(), sort_keys=True),
            json.dumps(asdict(cepstra_config), sort_keys=True),
            cohort_frames,
            cohort_lengths,
            cohort_shifts,
        ),
        feature_version=features.FEATURE_VERSION,
        provenance={**(provenance or {}), "training_frames": int(X.shape[0])},
        config=config,
        cepstra_config=cepstra_config,
        cohort_frames=cohort_frames,
        cohort_lengths=cohort_lengths,
        cohort_shifts=cohort_shifts,
    )


def speaker_folds(speakers: Sequence[str], n_folds: int, seed: int) -> list[list[str]]:
    """Speakers shuffled with ``seed`` and dealt into ``n_folds`` folds."""
    order = sorted(set(speakers))
    np.random.default_rng(seed).shuffle(order)
    return [sorted(order[i::n_folds]) for i in range(n_folds)]


def calibrate_threshold(
    recordings: Sequence[Recording],
    utterances: Sequence[features.Utterance],
    ceps: Sequence[np.ndarray],
    *,
    params: TrainingParams,
    config: EngineConfig,
    cepstra_config: features.CepstraConfig,
    narrowband: Sequence[features.Utterance] = (),
    narrow_ceps: Sequence[np.ndarray] = (),
    progress: Progress = _quiet,
) -> tuple[float, dict]:
    """Cross-validated equal-error threshold of the verification score (see module docstring).

    With ``narrowband`` (the recordings through an 8 kHz channel, same order) the fold UBMs are
    trained on both versions and the held-out trials are run on both, pooled: one threshold for
    wideband and narrowband microphones; ``narrow_ceps`` are their ``speech_frames`` (the caller
    has them: ``train_ubm`` trains the final model on them too).
    -> (threshold, report) with per-fold and pooled EER in percent and the trial counts.
    """
    folds = speaker_folds([r.speaker for r in recordings], params.calibration_folds, params.seed)
    genuine, impostor, per_fold = [], [], []
    for f, held_out in enumerate(folds, 1):
        held = set(held_out)
        train_pos = [i for i, r in enumerate(recordings) if r.speaker not in held]
        test_pos = [i for i, r in enumerate(recordings) if r.speaker in held]
        progress(
            f"calibration fold {f}/{len(folds)}: UBM on {len(recordings) - len(test_pos)} files, "
            f"trials on {len(held_out)} held-out speakers"
        )
        ubm = train_background(
            [recordings[i] for i in train_pos],
            [ceps[i] for i in train_pos],
            name=f"fold{f}",
            params=params,
            config=config,
            cepstra_config=cepstra_config,
            augment=[narrow_ceps[i] for i in train_pos] if narrowband else (),
            progress=_quiet,
        )
        gen, imp = [], []
        for version in (utterances, narrowband) if narrowband else (utterances,):
            results = evaluation.evaluate(
                ubm,
                [recordings[i] for i in test_pos],
                [version[i] for i in test_pos],
                k=params.calibration_k,
                n_trials=params.calibration_trials,
                enroll_per_label=params.calibration_enroll_per_label,
                rng=np.random.default_rng(params.seed + f),
            )
            gen.append(results.score[results.kind == evaluation.GENUINE])
            imp.append(results.score[results.kind == evaluation.IMPOSTOR])
        g, i = np.concatenate(gen), np.concatenate(imp)
        genuine.append(g)
        impostor.append(i)
        fold_eer, fold_t = metrics.eer_threshold(g, i)
        per_fold.append({"speakers": held_out, "eer": 100 * fold_eer, "threshold": fold_t})
        progress(f"calibration fold {f}: EER {100 * fold_eer:.2f} % at threshold {fold_t:.3f}")
    g, i = np.concatenate(genuine), np.concatenate(impostor)
    pooled_eer, threshold = metrics.eer_threshold(g, i)
    report = {
        "method": "equal-error threshold of pooled held-out scores, speaker-fold cross-validation",
        "folds": per_fold,
        "pooled_eer": 100 * pooled_eer,
        "genuine_trials": int(g.size),
        "impostor_trials": int(i.size),
        "k": params.calibration_k,
        "enroll_per_label": params.calibration_enroll_per_label,
    }
    progress(f"calibrated threshold {threshold:.3f} (pooled held-out EER {100 * pooled_eer:.2f} %)")
    return float(threshold), report
