"""Install the shipped background model (verification/data/default_ubm.npz) into the database.

Idempotent: a version already stored is left alone. The first background model installed becomes
the active one; later ones only with ``--activate``. ``make run`` and the Heroku release phase run
it after ``migrate``.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from verification import engine, services

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "default_ubm.npz"


class Command(BaseCommand):
    help = "Load verification/data/default_ubm.npz into the BackgroundModel table if missing."

    def add_arguments(self, parser):
        parser.add_argument(
            "--path", type=Path, default=DEFAULT_PATH, help="UBM file (default: the shipped one)."
        )
        parser.add_argument(
            "--activate",
            action="store_true",
            help="Make it the active background model even if another one is active.",
        )

    def handle(self, *args, path: Path, activate: bool, **options):
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        try:
            row, created = services.background_model_install(
                blob=blob,
                activate=True if activate else None,
                provenance_extra={"installed_from": path.name},
            )
        except engine.ModelFormatError as exc:
            raise CommandError(
                f"{path} is not a background model this engine reads: {exc}"
            ) from exc
        state = "active" if row.is_active else "inactive"
        verb = "Installed" if created else "Already installed:"
        self.stdout.write(
            f"{verb} background model {row.version} ({state}, threshold {row.threshold:g})"
        )
