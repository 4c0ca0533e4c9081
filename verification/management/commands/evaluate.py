"""``manage.py evaluate CORPUS_DIR``: error rates of the engine on a folder of labelled recordings.

Protocol (``verification.engine.evaluation``): per speaker, the ``--enroll-per-label`` lowest-index
recordings of every label enrol a speaker model; trials prompt K distinct random labels and are
genuine (the claimed speaker), impostor (another speaker saying the same labels) or wrong-content
(the claimed speaker saying other labels). Every trial goes through ``engine.enroll`` /
``engine.verify``, the code the API runs, with the background model given by ``--ubm`` (default:
the shipped one), which must not have been trained on the evaluated speakers. Each EER comes with a
95 % interval over ``--bootstrap`` replicates of the evaluated speakers (``metrics.eer_interval``).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError
from threadpoolctl import threadpool_limits

from verification import engine
from verification.engine import corpus, evaluation, metrics
from verification.management.corpus_options import add_speaker_arguments, list_recordings

from .train_ubm import DEFAULT_OUT as SHIPPED_UBM

ROWS = (
    ("eer", "EER %"),
    ("eer_interval", "EER % 95 % interval (by speaker)"),
    ("min_dcf", "minDCF (P_target 0.01)"),
    ("frr_at_far1", "FRR % at FAR 1 %"),
    ("far", "FAR % at shipped threshold"),
    ("frr", "FRR % at shipped threshold"),
    ("eer_speaker", "EER % without content check"),
    ("wrong_content_rejected", "wrong-content rejected %"),
    ("content_frr_cost", "FRR points lost to content check"),
    ("genuine_trials", "genuine trials"),
    ("impostor_trials", "impostor trials"),
    ("wrong_content_trials", "wrong-content trials"),
)


class Command(BaseCommand):
    help = (
        "Evaluate speaker verification on a folder of {label}_{speaker}_{index}.wav files: EER, "
        "minDCF, FRR at FAR 1 %, FAR/FRR at the shipped threshold, wrong-content rejection."
    )

    def add_arguments(self, parser):
        parser.add_argument("corpus", type=Path, help="folder of WAV files")
        parser.add_argument(
            "--ubm", type=Path, default=SHIPPED_UBM, help="background model file (default: shipped)"
        )
        parser.add_argument("--enroll-per-label", type=int, default=3)
        parser.add_argument(
            "--enroll-from",
            choices=("lowest", "spread"),
            default="lowest",
            help="enrol each label's lowest-index recordings (the protocol), or ones spread evenly "
            "over the indices (enrolment topped up across sittings)",
        )
        parser.add_argument(
            "--k", type=int, nargs="+", default=[3, 5], help="prompted labels per trial"
        )
        parser.add_argument("--trials", type=int, default=1000, help="trials per kind and K")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--bootstrap",
            type=int,
            default=1000,
            metavar="N",
            help="replicates of the speakers behind the EER's 95 %% interval (0: none)",
        )
        add_speaker_arguments(parser, verb="evaluate")
        parser.add_argument(
            "--json",
            nargs="?",
            const="-",
            metavar="FILE",
            help="write the results as JSON to FILE (without FILE: print JSON instead of a table)",
        )
        parser.add_argument("--plot", type=Path, metavar="PNG", help="draw DET curves")
        parser.add_argument(
            "--per-speaker",
            action="store_true",
            help="also print each speaker's error rates (always in --json)",
        )
        parser.add_argument(
            "--cache", type=Path, help="folder caching extracted features (outside the repo)"
        )

    def handle(self, *args, **options):
        # One BLAS thread: small matrices, shared machine (see train_ubm).
        with threadpool_limits(limits=1):
            self._handle(**options)

    def _log(self, message: str) -> None:
        # Progress goes to stderr so that ``--json`` alone prints parseable JSON.
        self.stderr.write(message)
        self.stderr.flush()

    def _handle(self, **options):
        started = time.perf_counter()
        if options["enroll_per_label"] < 1 or options["trials"] < 1:
            raise CommandError("--enroll-per-label and --trials must be >= 1")
        if options["bootstrap"] < 0:
            raise CommandError("--bootstrap must be >= 0")
        if any(k < 1 for k in options["k"]):
            raise CommandError("--k values must be >= 1")
        ubm_path: Path = options["ubm"]
        try:
            ubm = engine.load_background_model(ubm_path.read_bytes())
        except OSError as exc:
            raise CommandError(f"cannot read {ubm_path}: {exc}") from exc
        except engine.ModelFormatError as exc:
            raise CommandError(f"{ubm_path}: {exc}") from exc
        folder: Path = options["corpus"]
        recordings = list_recordings(folder, options)
        speakers = sorted({r.speaker for r in recordings})
        seen = set(ubm.provenance.get("speakers", ())) & set(speakers)
        if ubm.provenance.get("corpus") == folder.resolve().name and seen:
            raise CommandError(
                f"the background model {ubm.version} was trained on evaluated speakers "
                f"{sorted(seen)}: train one with --exclude-speakers, or evaluate other speakers"
            )
        self._log(
            f"{len(recordings)} files of {len(speakers)} speakers; UBM {ubm.version} "
            f"(threshold {ubm.threshold:.3f})"
        )
        utterances = corpus.load_utterances(
            recordings, cache_dir=options["cache"], progress=self._log
        )
        split = evaluation.split_recordings(
            recordings, options["enroll_per_label"], spread=options["enroll_from"] == "spread"
        )
        try:
            models = evaluation.enroll_speakers(ubm, recordings, utterances, split)
        except ValueError as exc:
            raise CommandError(f"enrolment failed: {exc}") from exc
        self._log(f"enrolled {len(models)} speakers")

        summary: dict[str, dict] = {}
        results_by_k = {}
        for k in options["k"]:
            rng = np.random.default_rng([options["seed"], k])
            try:
                trials = evaluation.make_trials(
                    recordings, split, k=k, n_trials=options["trials"], rng=rng
                )
            except ValueError as exc:
                raise CommandError(f"K={k}: {exc}") from exc
            results = evaluation.run_trials(ubm, models, utterances, trials)
            results_by_k[k] = results
            # The interval draws from the same stream after the trials, so it never changes them.
            summary[str(k)] = evaluation.summarise(
                results, ubm.threshold, n_boot=options["bootstrap"], rng=rng
            )
            summary[str(k)]["per_speaker"] = evaluation.per_speaker(results)
            self._log(f"K={k}: {len(trials)} trials verified")
        report = {
            "corpus": folder.resolve().name,
            "speakers": speakers,
            "n_files": len(recordings),
            "ubm": ubm.version,
            "threshold": ubm.threshold,
            "enroll_per_label": options["enroll_per_label"],
            "enroll_from": options["enroll_from"],
            "seed": options["seed"],
            "seconds": round(time.perf_counter() - started, 1),
            **summary,
        }
        target = options["json"]
        if target and target != "-":
            Path(target).write_text(json.dumps(report, indent=2) + "\n")
        if target == "-":
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write(self._table(report, options["k"]))
            if options["per_speaker"]:
                self.stdout.write(self._speaker_table(report, options["k"]))
        if options["plot"]:
            self._plot(options["plot"], results_by_k, report)

    @staticmethod
    def _table(report: dict, ks: list[int]) -> str:
        lines = [
            f"corpus {report['corpus']}: {report['n_files']} files, {len(report['speakers'])} "
            f"speakers, {report['enroll_per_label']} enrolment utterances per label "
            f"({report['enroll_from']} indices)",
            f"UBM {report['ubm']}, shipped threshold {report['threshold']:.3f}, "
            f"seed {report['seed']}",
        ]
        width = max(len(title) for _, title in ROWS)
        lines.append(f"{'':<{width}}" + "".join(f"{'K=' + str(k):>10}" for k in ks))
        for key, title in ROWS:
            if key not in report[str(ks[0])]:
                continue
            cells = []
            for k in ks:
                value = report[str(k)][key]
                if isinstance(value, list):
                    cells.append(f"{value[0]:.1f}-{value[1]:.1f}".rjust(10))
                else:
                    cells.append(f"{value:>10d}" if isinstance(value, int) else f"{value:>10.3f}")
            lines.append(f"{title:<{width}}" + "".join(cells))
        return "\n".join(lines)

    @staticmethod
    def _speaker_table(report: dict, ks: list[int]) -> str:
        columns = (("frr", "FRR %"), ("far_as_claimed", "FAR % claimed"))
        columns += (("far_as_impostor", "FAR % as impostor"),)
        heads = {k: f"K={k}, at the shipped threshold" for k in ks}
        width = max(*(len(h) for h in heads.values()), *(len(s) + 2 for s in report["speakers"]))
        lines = []
        for k in ks:
            lines.append(heads[k].ljust(width) + "".join(f"{title:>20}" for _, title in columns))
            for speaker, rates in report[str(k)]["per_speaker"].items():
                shown = ("-" if rates[key] is None else f"{rates[key]:.1f}" for key, _ in columns)
                cells = "".join(f"{text:>20}" for text in shown)
                lines.append(f"  {speaker}".ljust(width) + cells)
        return "\n".join(lines)

    def _plot(self, path: Path, results_by_k: dict, report: dict) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from scipy.stats import norm

        fig, ax = plt.subplots(figsize=(5, 5))
        for k, results in results_by_k.items():
            decision = np.where(results.wrong_content, evaluation.REJECTED_SCORE, results.score)
            g = decision[results.kind == evaluation.GENUINE]
            i = decision[results.kind == evaluation.IMPOSTOR]
            x, y = metrics.det_points(g, i)
            ax.plot(x, y, label=f"K={k} (EER {report[str(k)]['eer']:.2f} %)")
        ticks = np.array([0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
        ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
        ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
        lim = norm.ppf([0.0005, 0.5])
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_xlabel("false accept rate (%)")
        ax.set_ylabel("false reject rate (%)")
        ax.set_title(f"DET: {report['corpus']} ({len(report['speakers'])} speakers)")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        print(f"DET curves written to {path}", file=sys.stderr)
