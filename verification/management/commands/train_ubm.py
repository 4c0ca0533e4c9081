"""``manage.py train_ubm --corpus DIR --out FILE``: train a background model from a WAV folder.

The shipped default is rebuilt by (see README, "Engine and evaluation")::

    python manage.py train_ubm --corpus ../shared/data/dspspeech20 \
        --out verification/data/default_ubm.npz
"""

import argparse
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from threadpoolctl import threadpool_limits

from verification import engine, features
from verification.engine import corpus, train
from verification.management.corpus_options import add_speaker_arguments, list_recordings

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "default_ubm.npz"
MAX_SHIPPED_BYTES = 2 * 1024 * 1024


class Command(BaseCommand):
    help = (
        "Train a universal background model (diagonal GMM), a z-norm cohort and a threshold "
        "calibrated by speaker-fold cross-validation, from {label}_{speaker}_{index}.wav files."
    )

    def add_arguments(self, parser):
        defaults = train.TrainingParams()
        parser.add_argument("--corpus", type=Path, required=True, help="folder of WAV files")
        add_speaker_arguments(parser, verb="train on")
        parser.add_argument("--components", type=int, default=defaults.n_components)
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .npz file")
        parser.add_argument("--name", help="version prefix (default: the corpus folder name)")
        parser.add_argument(
            "--calibration-folds",
            type=int,
            default=defaults.calibration_folds,
            help="speaker folds for threshold calibration (0: skip, threshold from --threshold)",
        )
        parser.add_argument(
            "--calibration-trials",
            type=int,
            default=defaults.calibration_trials,
            help="genuine and impostor trials per fold",
        )
        parser.add_argument(
            "--threshold",
            type=float,
            default=0.0,
            help="threshold to store when --calibration-folds is 0",
        )
        parser.add_argument("--max-frames", type=int, default=defaults.max_frames)
        parser.add_argument(
            "--narrowband-augment",
            action=argparse.BooleanOptionalAction,
            default=defaults.narrowband_augment,
            help="also train and calibrate on the recordings through an 8 kHz channel",
        )
        parser.add_argument(
            "--cache", type=Path, help="folder caching extracted features (outside the repo)"
        )
        parser.add_argument(
            "--asnorm-top",
            type=int,
            default=engine.EngineConfig().asnorm_top,
            help="AS-norm over this many top cohort scores, with one cohort model per speaker "
            "(default 0: z-norm; AS-norm did worse on fsdd with a dspspeech20 cohort, see README)",
        )

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    def handle(self, *args, **options):
        # One BLAS thread: the matrices are small and, on a shared machine, multi-threaded BLAS
        # spends more time spinning than computing (measured 40x slower under load).
        with threadpool_limits(limits=1):
            self._handle(**options)

    def _handle(self, **options):
        started = time.perf_counter()
        if options["components"] < 1:
            raise CommandError("--components must be >= 1")
        if options["asnorm_top"] < 0:
            raise CommandError("--asnorm-top must be >= 0")
        params = train.TrainingParams(
            n_components=options["components"],
            seed=options["seed"],
            max_frames=options["max_frames"],
            calibration_folds=options["calibration_folds"],
            calibration_trials=options["calibration_trials"],
            narrowband_augment=options["narrowband_augment"],
        )
        folder: Path = options["corpus"]
        recordings = list_recordings(folder, options)
        speakers = sorted({r.speaker for r in recordings})
        if params.calibration_folds == 1 or params.calibration_folds > len(speakers):
            raise CommandError(
                f"--calibration-folds must be 0 or 2..{len(speakers)} (number of speakers)"
            )
        self._say(f"{len(recordings)} files of {len(speakers)} speakers from {folder}")
        utterances = corpus.load_utterances(
            recordings, cache_dir=options["cache"], progress=self._say
        )
        config = engine.EngineConfig(asnorm_top=options["asnorm_top"])
        cepstra_config = features.DEFAULT_CONFIG
        ceps = train.speech_frames(utterances, cepstra_config)
        narrowband = []
        if params.narrowband_augment:
            narrowband = corpus.load_utterances(
                recordings, cache_dir=options["cache"], progress=self._say, narrowband=True
            )
        # Post-processed once: the calibration folds and the final model both train on them.
        narrow_ceps = train.speech_frames(narrowband, cepstra_config)

        threshold, calibration = options["threshold"], {"method": "given by --threshold"}
        if params.calibration_folds:
            try:
                threshold, calibration = train.calibrate_threshold(
                    recordings,
                    utterances,
                    ceps,
                    params=params,
                    config=config,
                    cepstra_config=cepstra_config,
                    narrowband=narrowband,
                    narrow_ceps=narrow_ceps,
                    progress=self._say,
                )
            except ValueError as exc:
                raise CommandError(f"calibration failed: {exc}") from exc

        self._say(f"training the background model on all {len(speakers)} speakers")
        provenance = {
            "corpus": folder.resolve().name,
            "speakers": speakers,
            "excluded_speakers": sorted(options["exclude_speakers"]),
            "n_files": len(recordings),
            "command": "manage.py train_ubm " + shlex.join(sys.argv[2:])
            if len(sys.argv) > 1 and sys.argv[1] == "train_ubm"
            else "manage.py train_ubm",
            "params": params.to_dict(),
            "feature_version": features.FEATURE_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "calibration": calibration,
        }
        try:
            ubm = train.train_background(
                recordings,
                ceps,
                name=options["name"] or folder.resolve().name,
                params=params,
                config=config,
                cepstra_config=cepstra_config,
                threshold=threshold,
                provenance=provenance,
                augment=narrow_ceps,
                progress=self._say,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        blob = engine.dump_background_model(ubm)
        out: Path = options["out"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(blob)
        size_note = ""
        if out.resolve() == DEFAULT_OUT.resolve() and len(blob) > MAX_SHIPPED_BYTES:
            size_note = " (over the 2 MB limit for the shipped model: lower the cohort size)"
        self._say(
            f"wrote {out} ({len(blob) / 1024:.0f} KiB{size_note}): version {ubm.version}, "
            f"{ubm.n_components} components x {ubm.n_dims} dims, threshold {threshold:.3f}, "
            f"{time.perf_counter() - started:.1f} s"
        )
