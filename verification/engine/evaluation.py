"""The evaluation protocol (shared by ``manage.py evaluate`` and threshold calibration).

A corpus is a list of :class:`Recording` named ``{label}_{speaker}_{index}.wav``. Per speaker the
``enroll_per_label`` lowest-index recordings of every label enrol the speaker model; the others
are the test pool. A trial prompts K distinct random labels:

* genuine: the claimed speaker's test recordings of the prompted labels;
* impostor: another speaker's test recordings of the same prompted labels;
* wrong_content: the claimed speaker's test recordings of K other labels (none of the prompted).

Every trial goes through :func:`enroll` and :func:`verify`, exactly as the API calls them.
No I/O here: callers read the WAV files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verification.features import Utterance

from . import metrics
from .model import REASON_WRONG_CONTENT, BackgroundModel, SpeakerModel, enroll, verify

GENUINE = "genuine"
IMPOSTOR = "impostor"
WRONG_CONTENT = "wrong_content"
KINDS = (GENUINE, IMPOSTOR, WRONG_CONTENT)
# Stands in for "rejected whatever the score" (content check) in DET computations.
REJECTED_SCORE = -1e9


@dataclass(frozen=True)
class Recording:
    label: str
    speaker: str
    index: int
    path: str


def parse_name(path: str | Path) -> Recording:
    """``{label}_{speaker}_{index}.wav`` -> Recording (the speaker part may hold underscores)."""
    p = Path(path)
    parts = p.stem.split("_")
    if len(parts) < 3 or not parts[-1].isdigit():
        raise ValueError(f"{p.name}: expected a name like label_speaker_index.wav")
    return Recording(parts[0], "_".join(parts[1:-1]), int(parts[-1]), str(p))


def label_ids(recordings: Sequence[Recording]) -> dict[str, int]:
    """Labels -> the integers used as prompted digits: numeric labels keep their value
    ("0".."9" -> 0..9), others are numbered in sorted order."""
    labels = sorted({r.label for r in recordings})
    if all(lab.isdigit() for lab in labels):
        return {lab: int(lab) for lab in labels}
    return {lab: i for i, lab in enumerate(labels)}


@dataclass(frozen=True)
class Split:
    """Per speaker: enrolment recording positions and the test pool by label id."""

    enroll: dict[str, list[int]]
    test: dict[str, dict[int, list[int]]]


def split_recordings(
    recordings: Sequence[Recording], enroll_per_label: int, *, spread: bool = False
) -> Split:
    """Per speaker and label, the ``enroll_per_label`` lowest-index recordings enrol; with
    ``spread``, recordings spaced evenly over the index range instead (first and last included),
    as if enrolment had been topped up in later sittings."""
    ids = label_ids(recordings)
    groups: dict[tuple[str, int], list[int]] = {}
    for pos, rec in enumerate(recordings):
        groups.setdefault((rec.speaker, ids[rec.label]), []).append(pos)
    enrol: dict[str, list[int]] = {}
    test: dict[str, dict[int, list[int]]] = {}
    for (speaker, label), positions in sorted(groups.items()):
        positions.sort(key=lambda p: recordings[p].index)
        n = min(enroll_per_label, len(positions))
        if spread and n > 1:
            picks = set(np.linspace(0, len(positions) - 1, n).round().astype(int).tolist())
        else:
            picks = set(range(n))
        enrol.setdefault(speaker, []).extend(p for j, p in enumerate(positions) if j in picks)
        rest = [p for j, p in enumerate(positions) if j not in picks]
        if rest:
            test.setdefault(speaker, {})[label] = rest
    return Split(enrol, test)


@dataclass(frozen=True)
class Trial:
    kind: str
    claimed: str
    prompted: tuple[int, ...]
    recordings: tuple[int, ...]  # positions in the corpus list, one per prompted label
    source: str  # who speaks: the claimed speaker, or the impostor


def make_trials(
    recordings: Sequence[Recording],
    split: Split,
    *,
    k: int,
    n_trials: int,
    rng: np.random.Generator,
) -> list[Trial]:
    """``n_trials`` trials of each kind with K prompted labels, drawn with ``rng``."""
    speakers = sorted(s for s in split.test if len(split.test[s]) >= k)
    if len(speakers) < 2:
        raise ValueError(f"need two speakers with test recordings of at least {k} labels")
    trials: list[Trial] = []
    for kind in KINDS:
        for _ in range(n_trials):
            claimed = speakers[int(rng.integers(len(speakers)))]
            pool = split.test[claimed]
            labels = sorted(pool)
            prompted = tuple(int(x) for x in rng.choice(labels, size=k, replace=False))
            source, said = claimed, prompted
            if kind == IMPOSTOR:
                others = [
                    s for s in speakers if s != claimed and set(prompted) <= set(split.test[s])
                ]
                source = others[int(rng.integers(len(others)))]
            elif kind == WRONG_CONTENT:
                rest = [lab for lab in labels if lab not in prompted]
                if len(rest) < k:
                    raise ValueError(f"wrong-content trials need at least {2 * k} labels")
                said = tuple(int(x) for x in rng.choice(rest, size=k, replace=False))
            recs = tuple(
                int(split.test[source][lab][int(rng.integers(len(split.test[source][lab])))])
                for lab in said
            )
            trials.append(Trial(kind, claimed, prompted, recs, source))
    return trials


def enroll_speakers(
    ubm: BackgroundModel,
    recordings: Sequence[Recording],
    utterances: Sequence[Utterance],
    split: Split,
    speakers: Sequence[str] | None = None,
) -> dict[str, SpeakerModel]:
    """One speaker model per speaker from its enrolment recordings (labels = prompted digits)."""
    ids = label_ids(recordings)
    models = {}
    for speaker in speakers if speakers is not None else sorted(split.enroll):
        utts = [
            Utterance(utterances[p].mel_bands, utterances[p].rms, ids[recordings[p].label])
            for p in split.enroll[speaker]
        ]
        models[speaker] = enroll(ubm, utts)
    return models


@dataclass(frozen=True)
class TrialResults:
    """Per trial (n,): kind, claimed speaker, speaking speaker, verdict score, accepted, rejected
    by the content check."""

    kind: np.ndarray
    claimed: np.ndarray
    source: np.ndarray
    score: np.ndarray
    accepted: np.ndarray
    wrong_content: np.ndarray


def run_trials(
    ubm: BackgroundModel,
    models: dict[str, SpeakerModel],
    utterances: Sequence[Utterance],
    trials: Sequence[Trial],
) -> TrialResults:
    """verify() every trial. The client's digit labels are dropped, as the API never trusts them."""
    scores, accepted, content = [], [], []
    for trial in trials:
        utts = [
            Utterance(utterances[p].mel_bands, utterances[p].rms, None) for p in trial.recordings
        ]
        verdict = verify(ubm, models[trial.claimed], trial.prompted, utts)
        scores.append(verdict.score)
        accepted.append(verdict.accepted)
        content.append(verdict.reason == REASON_WRONG_CONTENT)
    return TrialResults(
        kind=np.array([t.kind for t in trials]),
        claimed=np.array([t.claimed for t in trials]),
        source=np.array([t.source for t in trials]),
        score=np.array(scores, dtype=np.float64),
        accepted=np.array(accepted, dtype=bool),
        wrong_content=np.array(content, dtype=bool),
    )


def summarise(
    results: TrialResults,
    threshold: float,
    *,
    n_boot: int = 0,
    rng: np.random.Generator | None = None,
) -> dict[str, float | int | list[float]]:
    """Rates in percent. ``eer`` etc. are of the whole decision (a content-check rejection counts
    as a rejection at any threshold); ``*_speaker`` ones ignore the content check. With
    ``n_boot`` (and ``rng`` to draw them), ``eer_interval`` is the EER's 95 % interval over
    ``n_boot`` replicates of the claimed speakers (:func:`metrics.eer_interval`)."""
    g = results.kind == GENUINE
    i = results.kind == IMPOSTOR
    w = results.kind == WRONG_CONTENT
    decision = np.where(results.wrong_content, REJECTED_SCORE, results.score)
    gs, is_ = decision[g], decision[i]
    far, frr = metrics.rates_at_threshold(gs, is_, threshold)
    _, frr_no_content = metrics.rates_at_threshold(results.score[g], results.score[i], threshold)
    interval = {}
    if n_boot:
        low, high = metrics.eer_interval(
            gs,
            is_,
            results.claimed[g],
            results.claimed[i],
            rng=rng,
            n_boot=n_boot,
        )
        interval = {"eer_interval": [100 * low, 100 * high]}
    return {
        "eer": 100 * metrics.eer(gs, is_),
        **interval,
        "min_dcf": metrics.min_dcf(gs, is_, p_target=0.01),
        "frr_at_far1": 100 * metrics.frr_at_far(gs, is_, 0.01),
        "far": 100 * far,
        "frr": 100 * frr,
        "threshold": float(threshold),
        "eer_speaker": 100 * metrics.eer(results.score[g], results.score[i]),
        "wrong_content_rejected": 100 * float(np.mean(~results.accepted[w])) if w.any() else 0.0,
        "content_frr_cost": 100 * (frr - frr_no_content),
        "genuine_trials": int(g.sum()),
        "impostor_trials": int(i.sum()),
        "wrong_content_trials": int(w.sum()),
    }


def per_speaker(results: TrialResults) -> dict[str, dict[str, float | int | None]]:
    """Each speaker's share of the errors at the shipped threshold (the verdicts), rates in
    percent: ``frr`` of the genuine trials claiming the speaker, ``far_as_claimed`` of the
    impostor trials against the speaker's model (easy to imitate) and ``far_as_impostor`` of the
    impostor trials the speaker speaks (a good imitator). A pooled error rate can hide that a few
    voices make most of the errors."""
    g = results.kind == GENUINE
    i = results.kind == IMPOSTOR

    def rate(mask: np.ndarray, errors: np.ndarray) -> float | None:
        return 100 * float(np.mean(errors[mask])) if mask.any() else None  # no trials, no rate

    out = {}
    for speaker in np.unique(np.concatenate([results.claimed, results.source])).tolist():
        claims, speaks = results.claimed == speaker, results.source == speaker
        out[speaker] = {
            "genuine_trials": int((g & claims).sum()),
            "frr": rate(g & claims, ~results.accepted),
            "impostor_trials_claiming": int((i & claims).sum()),
            "far_as_claimed": rate(i & claims, results.accepted),
            "impostor_trials_speaking": int((i & speaks).sum()),
            "far_as_impostor": rate(i & speaks, results.accepted),
        }
    return out


def evaluate(
    ubm: BackgroundModel,
    recordings: Sequence[Recording],
    utterances: Sequence[Utterance],
    *,
    k: int,
    n_trials: int,
    enroll_per_label: int,
    rng: np.random.Generator,
    models: dict[str, SpeakerModel] | None = None,
) -> TrialResults:
    """The whole protocol for one K: split, enrol every speaker (unless ``models`` are given),
    draw ``n_trials`` trials of each kind, verify them."""
    split = split_recordings(recordings, enroll_per_label)
    trials = make_trials(recordings, split, k=k, n_trials=n_trials, rng=rng)
    if models is None:
        models = enroll_speakers(ubm, recordings, utterances, split)
    return run_trials(ubm, models, utterances, trials)
