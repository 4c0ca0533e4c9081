"""Choosing engine settings on development speakers only (not a test, not part of ``make bench``).

    .venv/bin/python -m bench.dev_select --cache /tmp/featcache --out /tmp/dev.jsonl \
        --name base [--cep band_hi=29 ...] [--components 128] \
        [--variant fusion_weight=2 --variant relevance=8 ...]

Development data: the dspspeech20 speakers outside the evaluation split (README, "Engine and
evaluation"), never fsdd and never the ten split speakers. They are dealt into speaker folds
(``train.speaker_folds``); for each fold a background model is trained (``train.train_background``,
narrowband-augmented as ``train_ubm`` does) on the other development speakers only, the fold's
speakers enrol ``--enroll-per-label`` recordings per label and the protocol of
``verification.engine.evaluation`` runs on them, once on the recordings as they are (wideband) and
once through an 8 kHz channel (``corpus.narrowband_utterance``). Scores are pooled over folds; one
line of JSON per scoring variant (EngineConfig overrides on the same fold models) goes to ``--out``.

``--cep`` sets ``features.CepstraConfig`` fields, ``--variant`` ``engine.EngineConfig`` fields
(``;``-separated within one variant; each variant re-runs the trials); values are parsed as Python
literals. Every ``--fusion`` weight and ``--content-limit`` is applied afterwards to the same
per-trial scores (``AttemptScores``), so sweeping them costs nothing. ``both_k*`` is the EER of
both channels' trials pooled, at one threshold, as a deployment decides: a setting that moves
narrowband scores away from wideband ones can lower each channel's EER and raise this one.
Rates are in percent; EER counts a content-check rejection as a rejection, as ``manage.py
evaluate`` does. Wrong-content trials only run with ``--wrong-content``. Each fold model takes
0.5-1.5 min to train and the trials 1-2 min per variant on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from verification import engine, features
from verification.engine import corpus, evaluation, metrics, train
from verification.engine import model as model_mod

ROOT = Path(__file__).resolve().parents[1]
# The evaluation split of README "Engine and evaluation": never used to choose anything.
SPLIT_SPEAKERS = [
    "15307130120",
    "15307130191",
    "15307130288",
    "16307110258",
    "16307130192",
    "16307130194",
    "16307130228",
    "16307130302",
    "16307130307",
    "16307130343",
]


def _overrides(text: str) -> dict:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def _rates(kind: np.ndarray, score: np.ndarray, content_ok: np.ndarray) -> dict:
    g = kind == evaluation.GENUINE
    i = kind == evaluation.IMPOSTOR
    w = kind == evaluation.WRONG_CONTENT
    decision = np.where(content_ok, score, evaluation.REJECTED_SCORE)
    eer, thr = metrics.eer_threshold(decision[g], decision[i])
    out = {
        "eer": round(100 * eer, 3),
        "eer_speaker": round(100 * metrics.eer(score[g], score[i]), 3),
        "frr_at_far1": round(100 * metrics.frr_at_far(decision[g], decision[i], 0.01), 2),
        "genuine_content_rejected": round(100 * float(np.mean(~content_ok[g])), 2),
        "threshold": round(float(thr), 4),
    }
    if w.any():
        out["wrong_content_rejected"] = round(100 * float(np.mean(~content_ok[w])), 2)
    return out


def _decisions(scored: list, fusion: float, content_limit: float):
    """(kind, AttemptScores) pairs -> kind, fused score, content check passed."""
    cfg = replace(engine.EngineConfig(), fusion_weight=fusion)
    kind = np.array([k for k, _ in scored])
    score = np.array([s.fused(cfg) for _, s in scored])
    ok = np.array([s.content_score() <= content_limit for _, s in scored])
    return kind, score, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/data/dspspeech20")
    parser.add_argument("--cache", type=Path, help="feature cache folder (outside the repo)")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines appended here")
    parser.add_argument("--name", required=True)
    parser.add_argument("--cep", action="append", default=[], help="CepstraConfig key=value")
    parser.add_argument("--components", type=int, default=train.TrainingParams().n_components)
    parser.add_argument("--max-frames", type=int, default=train.TrainingParams().max_frames)
    parser.add_argument(
        "--cohort-models-both-channels", action="store_true", help="TrainingParams field"
    )
    parser.add_argument("--variant", action="append", default=[], help="EngineConfig overrides")
    parser.add_argument("--fusion", type=float, nargs="+", default=[0, 2, 4, 6, 8])
    parser.add_argument("--content-limit", type=float, nargs="+", default=[0.2])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--fold-seed", type=int, default=0)
    parser.add_argument("--k", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--enroll-per-label", type=int, default=2)
    parser.add_argument("--wrong-content", action="store_true", help="also wrong-content trials")
    args = parser.parse_args(argv)

    cep_cfg = features.CepstraConfig(**_overrides(";".join(args.cep)))
    variants = [_overrides(v) for v in args.variant] or [{}]
    params = train.TrainingParams(
        n_components=args.components,
        max_frames=args.max_frames,
        cohort_models_both_channels=args.cohort_models_both_channels,
    )
    recordings = corpus.list_recordings(args.corpus, exclude_speakers=SPLIT_SPEAKERS)
    speakers = sorted({r.speaker for r in recordings})
    if set(speakers) & set(SPLIT_SPEAKERS):
        raise SystemExit("split speakers in the development set")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    wide = corpus.load_utterances(recordings, cache_dir=args.cache)
    narrow = corpus.load_utterances(recordings, cache_dir=args.cache, narrowband=True)
    ceps_w = train.speech_frames(wide, cep_cfg)
    ceps_n = train.speech_frames(narrow, cep_cfg)
    folds = train.speaker_folds(speakers, args.folds, args.fold_seed)
    # Cohort speaker models are built for a config using AS-norm: for every variant that does.
    asnorm_top = max(replace(engine.EngineConfig(), **v).asnorm_top for v in variants)
    base_config = replace(engine.EngineConfig(), asnorm_top=asnorm_top)
    log(f"{args.name}: {len(speakers)} dev speakers, folds of {[len(f) for f in folds]}, {cep_cfg}")

    started = time.perf_counter()
    # scored[variant][channel][k] -> (kind, AttemptScores) of every trial, all folds
    scored = {
        j: {c: {k: [] for k in args.k} for c in ("wide", "narrow")} for j in range(len(variants))
    }
    for f, held_out in enumerate(folds, 1):
        held = set(held_out)
        tr = [i for i, r in enumerate(recordings) if r.speaker not in held]
        te = [i for i, r in enumerate(recordings) if r.speaker in held]
        t = time.perf_counter()
        base = train.train_background(
            [recordings[i] for i in tr],
            [ceps_w[i] for i in tr],
            name=f"dev{f}",
            params=params,
            config=base_config,
            cepstra_config=cep_cfg,
            augment=[ceps_n[i] for i in tr],
        )
        log(f"fold {f}: UBM on {len(tr)} files in {time.perf_counter() - t:.0f} s")
        test_recs = [recordings[i] for i in te]
        split = evaluation.split_recordings(test_recs, args.enroll_per_label)
        for j, overrides in enumerate(variants):
            ubm = replace(base, config=replace(engine.EngineConfig(), **overrides))
            for channel, utts in (("wide", wide), ("narrow", narrow)):
                test_utts = [utts[i] for i in te]
                models = evaluation.enroll_speakers(ubm, test_recs, test_utts, split)
                for k in args.k:
                    rng = np.random.default_rng([args.fold_seed, f, k])
                    trials = evaluation.make_trials(
                        test_recs, split, k=k, n_trials=args.trials, rng=rng
                    )
                    if not args.wrong_content:
                        trials = [x for x in trials if x.kind != evaluation.WRONG_CONTENT]
                    for x in trials:
                        utt = [features.Utterance(test_utts[p].mel_bands, test_utts[p].rms)
                               for p in x.recordings]  # fmt: skip
                        s = model_mod.attempt_scores(ubm, models[x.claimed], x.prompted, utt)
                        scored[j][channel][k].append((x.kind, s))
        log(f"fold {f} done, {time.perf_counter() - started:.0f} s so far")

    with args.out.open("a") as out:
        for j, overrides in enumerate(variants):
            for fusion in args.fusion:
                for limit in args.content_limit:
                    row = {
                        "name": args.name,
                        "variant": {**overrides, "fusion_weight": fusion,
                                    "content_max_log_ratio": limit},
                        "components": args.components,
                        "cepstra": asdict(cep_cfg),
                        "folds": args.folds,
                        "enroll_per_label": args.enroll_per_label,
                        "trials_per_kind_per_fold": args.trials,
                        "seconds": round(time.perf_counter() - started),
                    }  # fmt: skip
                    for k in args.k:
                        for channel in ("wide", "narrow"):
                            d = _decisions(scored[j][channel][k], fusion, limit)
                            row[f"{channel}_k{k}"] = _rates(*d)
                        both = scored[j]["wide"][k] + scored[j]["narrow"][k]
                        row[f"both_k{k}"] = _rates(*_decisions(both, fusion, limit))["eer"]
                    out.write(json.dumps(row) + "\n")
                    summary = " ".join(
                        [
                            f"{c}_k{k}={row[f'{c}_k{k}']['eer']:.2f}"
                            for c in ("wide", "narrow")
                            for k in args.k
                        ]
                        + [f"both_k{k}={row[f'both_k{k}']:.2f}" for k in args.k]
                    )
                    print(f"{args.name} {row['variant']}: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with threadpool_limits(limits=1):
        sys.exit(main())
