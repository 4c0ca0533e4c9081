"""What the replay check costs genuine users, and what it catches, on the evaluation protocol.

    .venv/bin/python -m bench.replay_cost ../shared/data/fsdd [--k 5] [--trials 1000] [--seed 0]

The trials are exactly those of ``manage.py evaluate`` (``engine.evaluation.make_trials`` with
``default_rng([seed, k])``): per speaker the lowest-index recordings of every label enrol, and
genuine, impostor and wrong-content trials are drawn from the rest. The service's replay check
(``engine.replay``) is replayed offline, as ``services.verification_score`` runs it: each trial
is an attempt by the claimed user, checked against that user's enrollment utterances of the
prompted labels and the fingerprints of their last ``REPLAY_RECENT_FINGERPRINTS`` attempted
utterances (trials are processed interleaved: genuine, impostor, wrong-content, genuine, ...).

The protocol draws recordings with replacement, so a later trial may reuse the very same file:
a person never produces the same recording twice, so such pairs are not compared (counted as
"reused recordings"). Byte-identical *different* files (dspspeech20 has 20) are compared: they
are copies, and reported apart.

Printed: genuine trials flagged as replay (% of genuine trials, an upper bound of the cost), the
FRR increase (flagged trials the engine would otherwise have accepted, in points), and the share
of replay attacks caught: previous genuine attempts resent bit-exact; with 1, 3 or 10 %
multiplicative or 1 % additive noise; shifted by 3 frames; each frame attenuated by 0-10 dB;
20 % of frames dropped or repeated; each mel band attenuated by 0-3 or 0-10 dB; frames and bands
by 0-6 dB each; and band gains, frame gains, or both, with 3 % noise (the blind spots of the
changes and of the plain alignment at once: the centred alignment cancels gains per band or per
frame, and both only where it is polished, on 30 frames or more). With each,
the distribution behind ``CHANGE_DISTANCE`` (each genuine utterance's change distance to its
nearest reference, and each replayed one's) and how many replayed attempts the engine would
accept and how many of those get past the replay check (what an attacker gains).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections import defaultdict, deque
from pathlib import Path

import numpy as np

from verification import engine
from verification.engine import corpus, evaluation, replay
from verification.features import Utterance

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "verification" / "data" / "default_ubm.npz"
REPLAY_RECENT_FINGERPRINTS = 100  # as services.REPLAY_RECENT_FINGERPRINTS


def _attacks(utt: Utterance, rng: np.random.Generator) -> dict[str, Utterance]:
    """Copies an attacker can make of captured features that the engine still scores as the
    original (it drops each frame's level and keeps no frame order beyond the deltas)."""
    mel = utt.mel_bands.astype(np.float64)
    n = len(mel)
    energy = np.expm1(mel)

    def frames(index) -> Utterance:
        return Utterance(mel[index], utt.rms[index], None)

    def gains(log10_gains: np.ndarray) -> Utterance:  # attenuations: the frame's rms stays valid
        return Utterance(np.log1p(energy * 10**log10_gains), utt.rms, None)

    def noisy(copy: Utterance, sigma: float) -> Utterance:  # multiplicative noise on the bands
        return Utterance(
            copy.mel_bands * (1 + sigma * rng.standard_normal(mel.shape)), utt.rms, None
        )

    exact = Utterance(mel, utt.rms, None)
    return {
        "exact": exact,
        "noise 1%": noisy(exact, 0.01),
        "additive noise 1%": Utterance(
            np.clip(mel + 0.01 * mel.std() * rng.standard_normal(mel.shape), 0, None), utt.rms, None
        ),
        "shift 3": frames(slice(3, None)),
        "frame gains 0..-10 dB": gains(rng.uniform(-1, 0, size=(n, 1))),
        "20% of frames dropped": frames(rng.random(n) >= 0.2),
        "20% of frames repeated": frames(np.sort(np.r_[np.arange(n), rng.choice(n, n // 5)])),
        "band gains 0..-3 dB": gains(rng.uniform(-0.3, 0, size=(1, 40))),
        "band gains 0..-10 dB": gains(rng.uniform(-1, 0, size=(1, 40))),
        "frame and band gains 0..-6 dB": gains(
            rng.uniform(-0.6, 0, size=(n, 1)) + rng.uniform(-0.6, 0, size=(1, 40))
        ),
        "noise 3%": noisy(exact, 0.03),
        "noise 10%": noisy(exact, 0.1),
        # Each measure's blind spot at once (the changes' noise, the alignment's gains per band or
        # per frame).
        "band gains 0..-10 dB and noise 3%": noisy(gains(rng.uniform(-1, 0, size=(1, 40))), 0.03),
        "frame gains 0..-10 dB and noise 3%": noisy(gains(rng.uniform(-1, 0, size=(n, 1))), 0.03),
        # Gains per frame and per band together, with noise: only a polished alignment (30 frames
        # or more) cancels both.
        "frame and band gains 0..-6 dB and noise 3%": noisy(
            gains(rng.uniform(-0.6, 0, size=(n, 1)) + rng.uniform(-0.6, 0, size=(1, 40))), 0.03
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--ubm", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--enroll-per-label", type=int, default=3)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-engine", action="store_true", help="skip the accept/reject run")
    args = parser.parse_args()

    started = time.perf_counter()
    recordings = corpus.list_recordings(args.corpus)
    utterances = corpus.load_utterances(recordings)
    digests = [hashlib.sha256(Path(r.path).read_bytes()).hexdigest() for r in recordings]
    ids = evaluation.label_ids(recordings)
    split = evaluation.split_recordings(recordings, args.enroll_per_label)
    rng = np.random.default_rng([args.seed, args.k])
    trials = evaluation.make_trials(recordings, split, k=args.k, n_trials=args.trials, rng=rng)
    fingerprints = [replay.fingerprint(u.mel_bands) for u in utterances]
    prepared = replay.prepare(fingerprints)  # as references, once (the service caches them too)

    accepted = models = None
    if not args.no_engine:
        ubm = engine.load_background_model(args.ubm.read_bytes())
        models = evaluation.enroll_speakers(ubm, recordings, utterances, split)
        genuine = [t for t in trials if t.kind == evaluation.GENUINE]
        results = evaluation.run_trials(ubm, models, utterances, genuine)
        accepted = dict(zip(map(id, genuine), results.accepted, strict=True))

    # Per user: enrollment references by label (corpus positions), recent attempts (label, pos).
    enrolled: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for speaker, positions in split.enroll.items():
        for p in positions:
            enrolled[speaker][ids[recordings[p].label]].append(p)
    recent: dict[str, deque] = defaultdict(lambda: deque(maxlen=REPLAY_RECENT_FINGERPRINTS))

    by_kind = defaultdict(list)
    for t in trials:
        by_kind[t.kind].append(t)
    order = [t for group in zip(*by_kind.values(), strict=True) for t in group]

    flagged = flagged_accepted = flagged_duplicates = reused = n_genuine = n_accepted = 0
    caught = defaultdict(int)
    # distance to the nearest reference: per attack, of each replayed utterance; of each
    # genuine utterance that has no byte-identical reference.
    attack_distances = defaultdict(list)
    genuine_nearest, genuine_centred = [], []
    # Per attack, replayed attempts (all K utterances copied) the engine accepts, and of those
    # the ones the replay check lets through: what an attacker gains.
    engine_accepts, got_through = defaultdict(int), defaultdict(int)
    attempts_tried = 0
    attack_rng = np.random.default_rng(args.seed)
    last_genuine: dict[str, evaluation.Trial] = {}
    for trial in order:
        user = trial.claimed
        hit = duplicate = False
        for label, pos in zip(trial.prompted, trial.recordings, strict=True):
            refs = enrolled[user][label] + [p for lab, p in recent[user] if lab == label]
            reused += refs.count(pos)
            refs = [ref for ref in refs if ref != pos]
            probe, references = fingerprints[pos], [prepared[r] for r in refs]
            found = replay.change_distances(probe, references)
            aligned, centred = replay._alignment(probe, references)  # both in one pass
            close = (
                (found < replay.CHANGE_DISTANCE)
                | (aligned < replay.ALIGNED_DISTANCE)
                | (centred < replay.CENTRED_DISTANCE)
            )
            identical = np.array([digests[pos] == digests[r] for r in refs], dtype=bool)
            hit |= bool(close.any())
            duplicate |= bool((close & identical).any())
            if trial.kind == evaluation.GENUINE and not identical.any():
                genuine_nearest.append(float(found.min(initial=np.inf)))
                genuine_centred.append(float(centred.min(initial=np.inf)))
        if trial.kind == evaluation.GENUINE:
            n_genuine += 1
            ok = accepted is not None and bool(accepted[id(trial)])
            n_accepted += ok
            if hit:
                flagged += 1
                flagged_duplicates += duplicate
                flagged_accepted += ok
            previous = last_genuine.get(user)
            if previous is not None:  # an attacker resends the user's previous attempt
                attempts_tried += 1
                sent, stopped = defaultdict(list), defaultdict(bool)
                for label, pos in zip(previous.prompted, previous.recordings, strict=True):
                    refs = enrolled[user][label] + [p for lab, p in recent[user] if lab == label]
                    references = [prepared[r] for r in refs]
                    for name, copy in _attacks(utterances[pos], attack_rng).items():
                        probe = replay.fingerprint(copy.mel_bands)
                        found = replay.change_distances(probe, references)
                        attack_distances[name].append(float(found.min(initial=np.inf)))
                        hit = replay.is_replay(probe, references)
                        caught[name] += hit
                        stopped[name] |= hit
                        sent[name].append(copy)
                if models is not None:  # would the engine accept the replayed attempt?
                    for name, copies in sent.items():
                        verdict = engine.verify(ubm, models[user], previous.prompted, copies)
                        engine_accepts[name] += verdict.accepted
                        got_through[name] += verdict.accepted and not stopped[name]
            last_genuine[user] = trial
        for label, pos in zip(trial.prompted, trial.recordings, strict=True):
            recent[user].append((label, pos))

    n_utts = attempts_tried * args.k
    print(
        f"corpus {args.corpus} ({len(recordings)} files, {len(split.enroll)} speakers), "
        f"K={args.k}, seed {args.seed}, CHANGE_DISTANCE {replay.CHANGE_DISTANCE}, "
        f"ALIGNED_DISTANCE {replay.ALIGNED_DISTANCE}, CENTRED_DISTANCE {replay.CENTRED_DISTANCE}"
    )
    print(f"genuine trials: {n_genuine}; reused recordings skipped: {reused} comparisons")
    print(
        f"genuine trials flagged as replay: {flagged} ({100 * flagged / n_genuine:.2f} %), "
        f"of which byte-identical corpus duplicates: {flagged_duplicates}"
    )
    if accepted is not None:
        print(
            f"engine accepts {n_accepted}/{n_genuine} genuine trials "
            f"(FRR {100 * (1 - n_accepted / n_genuine):.2f} %); replay check would reject "
            f"{flagged_accepted} of them: FRR +{100 * flagged_accepted / n_genuine:.2f} points"
        )
    near = np.array(genuine_nearest)
    low = [np.percentile(near, q, method="lower") for q in (0.1, 1)]
    print(
        f"genuine utterances ({near.size}, no byte-identical reference): distance to the "
        f"nearest reference: min {near.min():.3f}, 0.1 % {low[0]:.3f}, 1 % {low[1]:.3f}, "
        f"median {np.median(near):.3f}"
    )
    centred = np.array(genuine_centred)
    low = [np.percentile(centred, q, method="lower") for q in (0.1, 1)]
    print(
        f"the same, centred distance: min {centred.min():.3f}, 0.1 % {low[0]:.3f}, "
        f"1 % {low[1]:.3f}, median {np.median(centred):.3f}"
    )
    for name, count in caught.items():
        far = np.array(attack_distances[name])
        finite = far[np.isfinite(far)]
        print(
            f"replayed utterances caught ({name}): {count}/{n_utts} "
            f"({100 * count / max(n_utts, 1):.1f} %); change distance 99 % "
            f"{np.percentile(finite, 99, method='higher'):.3f}, max {finite.max():.3f} "
            f"({far.size - finite.size} with too few frames to compare)"
        )
        if models is not None:
            print(
                f"    replayed attempts the engine accepts: {engine_accepts[name]}/"
                f"{attempts_tried}; accepted and not caught: {got_through[name]}/{attempts_tried}"
            )
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
