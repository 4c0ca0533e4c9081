"""In-process engine benchmark (part (a) of ``make bench``).

    .venv/bin/python -m bench.engine [--quick]

Prints: CPU count, feature extraction speed from WAV files (x real time), enrolment time from 30
utterances, time to verify a 5-digit attempt (post-processing, speaker score, content check and
decision: everything ``engine.verify`` does) and to score it, and UBM training time. Uses the
shipped background model (``verification/data/default_ubm.npz``) and real recordings from
``$SPEAKERAUTH_CORPUS_DIR`` (default ``../shared/data``). No Django, no database.

BLAS runs on one thread, as the commands do: the matrices are small, and on a loaded machine
multi-threaded BLAS spins instead of computing. Timings are medians of repeated runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from verification import engine, features
from verification.engine import corpus, evaluation, replay, train
from verification.engine.gmm import train_gmm

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_UBM = ROOT / "verification" / "data" / "default_ubm.npz"


def corpus_dir() -> Path:
    return Path(os.environ.get("SPEAKERAUTH_CORPUS_DIR", ROOT.parent / "shared" / "data"))


def median_ms(fn, repeats: int) -> float:
    fn()  # warm caches (imports, filter bank, the UBM's cohort side)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def bench_extraction(folder: Path, n_files: int) -> tuple[float, float, int]:
    """-> (x real time, seconds of audio, files) for WAV -> browser features."""
    recs = corpus.list_recordings(folder)
    step = max(1, len(recs) // n_files)
    paths = [r.path for r in recs[::step][:n_files]]
    audio = 0.0
    t = time.perf_counter()
    for p in paths:
        signal, rate = features.read_wav(p)
        audio += signal.shape[0] / rate
        features.meyda_features(features.resample_to_16k(signal, rate))
    elapsed = time.perf_counter() - t
    return audio / elapsed, audio, len(paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer files, repeats and frames")
    args = parser.parse_args(argv)
    data = corpus_dir()
    fsdd, dsp = data / "fsdd", data / "dspspeech20"
    for folder in (fsdd, dsp):
        if not folder.is_dir():
            print(f"bench.engine: {folder} not found (set SPEAKERAUTH_CORPUS_DIR)", file=sys.stderr)
            return 1
    ubm = engine.load_background_model(SHIPPED_UBM.read_bytes())
    repeats = 20 if args.quick else 100
    n_files = 100 if args.quick else 400

    print("## Engine (in process)")
    print()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"- CPUs: {os.cpu_count()} (usable by this process: {affinity}); BLAS threads: 1")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load:
        print(f"- load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"- Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(
        f"- background model: {ubm.version} ({ubm.n_components} components x {ubm.n_dims} dims, "
        f"{ubm.cohort_lengths.size} cohort attempts, {ubm.cohort_shifts.shape[0]} cohort models, "
        f"AS-norm top {ubm.config.asnorm_top or 'off'})"
    )
    with threadpool_limits(limits=1):
        for name, folder in (("fsdd (8 kHz)", fsdd), ("dspspeech20 (16 kHz)", dsp)):
            speed, audio, n = bench_extraction(folder, n_files)
            print(
                f"- feature extraction, WAV -> Meyda melBands+rms, {name}: {speed:.0f}x real time "
                f"({n} files, {audio:.0f} s of audio)"
            )

        # One fsdd speaker: 3 utterances of each digit enrol (30), a 5-digit attempt is verified.
        recs = corpus.list_recordings(fsdd, speakers=["george"])
        utts = corpus.load_utterances(recs)
        split = evaluation.split_recordings(recs, 3)
        ids = evaluation.label_ids(recs)
        enrol = [
            features.Utterance(utts[p].mel_bands, utts[p].rms, ids[recs[p].label])
            for p in split.enroll["george"]
        ]
        if len(enrol) != 30:
            raise SystemExit(f"expected 30 enrolment utterances, got {len(enrol)}")
        enrol_ms = median_ms(lambda: engine.enroll(ubm, enrol), repeats)
        model = engine.enroll(ubm, enrol)
        prompted = [3, 1, 4, 5, 9]
        attempt = [
            features.Utterance(utts[split.test["george"][d][0]].mel_bands,
                               utts[split.test["george"][d][0]].rms)
            for d in prompted
        ]  # fmt: skip
        seconds = sum(u.n_frames for u in attempt) * features.HOP_LENGTH / features.SAMPLE_RATE
        verify_ms = median_ms(lambda: engine.verify(ubm, model, prompted, attempt), repeats)
        blob = engine.dump_speaker_model(model)
        cold_ms = median_ms(
            lambda: engine.verify(ubm, engine.load_speaker_model(blob), prompted, attempt), repeats
        )
        score_ms = median_ms(lambda: engine.score(ubm, model, attempt), repeats)
        verdict = engine.verify(ubm, model, prompted, attempt)
        print(
            f"- enrolment from 30 utterances (3 per digit, post-processing + MAP + z-norm): "
            f"{enrol_ms:.2f} ms (median of {repeats})"
        )
        print(
            f"- verifying a 5-digit attempt ({seconds:.1f} s of audio; post-processing, score, "
            f"content check, decision): {verify_ms:.2f} ms (median of {repeats}; "
            f"verdict {verdict.reason})"
        )
        print(
            f"- the same from the stored model blob (load + verify, per-model DTW scales "
            f"recomputed, as after a model-cache miss): {cold_ms:.2f} ms"
        )
        print(f"- speaker score alone (GMM-UBM LLR + z-norm) for that attempt: {score_ms:.2f} ms")
        # The replay check of that attempt as the service runs it for a user with a full memory:
        # each utterance against 15 of the speaker's other recordings of its digit.
        answered = {split.test["george"][d][0] for d in prompted}
        others = {
            d: [p for p in range(len(recs)) if ids[recs[p].label] == d and p not in answered]
            for d in prompted
        }
        probes = [replay.fingerprint(u.mel_bands) for u in attempt]
        references = [
            [replay.fingerprint(utts[p].mel_bands) for p in others[d][-15:]] for d in prompted
        ]
        # The service prepares each reference once per process (services._references); the
        # attempt's own utterances are prepared on every attempt (they are references for later).
        prepared = [replay.prepare(refs) for refs in references]
        replay_ms = median_ms(
            lambda: (replay.prepare(probes), replay.any_replay(probes, prepared)), repeats
        )
        changes_ms = median_ms(lambda: replay._change_distances(probes, prepared), repeats)
        prepare_ms = median_ms(lambda: [replay.prepare(refs) for refs in references], repeats)
        print(
            f"- replay check of that attempt (each utterance against 15 prepared references of "
            f"its digit, by changes, aligned and centred): {replay_ms:.2f} ms; the changes alone: "
            f"{changes_ms:.2f} ms; preparing the 75 references (once per process): "
            f"{prepare_ms:.2f} ms"
        )

        # UBM training: EM as train_ubm runs it on all of dspspeech20 (without calibration).
        recs = corpus.list_recordings(dsp)
        utts = corpus.load_utterances(recs)
        ceps = train.speech_frames(utts, ubm.cepstra_config)
        params = train.TrainingParams(**ubm.provenance.get("params", {}))
        X = np.concatenate(ceps).astype(np.float64)
        rng = np.random.default_rng(params.seed)
        n = min(X.shape[0], params.max_frames // (4 if args.quick else 1))
        X = X[np.sort(rng.choice(X.shape[0], size=n, replace=False))]
        t = time.perf_counter()
        train_gmm(X, params.n_components, seed=params.seed, max_iter=params.max_iter)
        em = time.perf_counter() - t
        folds = params.calibration_folds
        print(
            f"- UBM training (EM, {params.n_components} components, {n} frames x {X.shape[1]} "
            f"dims): {em:.1f} s; train_ubm also trains {folds} calibration-fold UBMs"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
