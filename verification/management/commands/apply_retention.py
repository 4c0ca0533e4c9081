"""Delete what the retention rules say is due (``verification.retention``); run it daily."""

from django.core.management.base import BaseCommand

from verification import retention


class Command(BaseCommand):
    help = (
        "Delete voiceprints unused for VERIFICATION_VOICEPRINT_RETENTION_DAYS, unanswered "
        "challenges and expired failed sign-ins; --dry-run only counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args, dry_run: bool, **options):
        report = retention.retention_apply(dry_run=dry_run)
        verb = "due" if dry_run else "deleted"
        if report.voiceprint_cutoff is None:
            self.stdout.write(
                "voiceprints: kept indefinitely (VERIFICATION_VOICEPRINT_RETENTION_DAYS=0)"
            )
        else:
            cutoff = report.voiceprint_cutoff.isoformat(timespec="seconds")
            self.stdout.write(
                f"voiceprints {verb} (no voice activity since {cutoff}): {len(report.voiceprints)}"
            )
        self.stdout.write(f"unanswered challenges {verb}: {report.challenges}")
        self.stdout.write(f"expired failed sign-ins {verb}: {report.sign_in_failures}")
