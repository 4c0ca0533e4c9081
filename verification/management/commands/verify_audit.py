"""Walk the audit hash chains and name the first row that does not verify (exit status 1).

Checks both append-only tables (verification attempts, audit events): every row's content must
hash to its ``entry_hash`` and link to the previous row. A rewrite of a whole chain tail is only
detectable against a head hash recorded elsewhere: pass it with ``--expect-head CHAIN:HASH``
(the heads are printed on every successful run, e.g. for a nightly log shipped off the host).
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from verification import selectors
from verification.models import AuditEvent, VerificationAttempt

CHAINS = {"attempt": VerificationAttempt, "event": AuditEvent}


def _triggers_missing() -> list[str]:
    """Audit tables without the append-only trigger of migration 0002 (Postgres only)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname = c.relname || '_append_only' AND t.tgenabled <> 'D'"
        )
        armed = {name for (name,) in cursor.fetchall()}
    return [m._meta.db_table for m in CHAINS.values() if m._meta.db_table not in armed]


class Command(BaseCommand):
    help = "Verify the audit log's hash chains; exit 1 naming the first row that fails."

    def add_arguments(self, parser):
        parser.add_argument(
            "--expect-head",
            action="append",
            default=[],
            metavar="CHAIN:HASH",
            help="Also require a chain's current head hash (chains: attempt, event).",
        )

    def handle(self, *args, expect_head: list[str], **options):
        expected = {}
        for item in expect_head:
            chain, _, digest = item.partition(":")
            if chain not in CHAINS or len(digest) != 64:
                raise CommandError(
                    f"--expect-head {item!r}: expected CHAIN:HASH with CHAIN in {list(CHAINS)}"
                )
            expected[chain] = digest
        for table in _triggers_missing():
            self.stderr.write(f"WARNING: append-only trigger missing or disabled on {table}")
        for chain, model in CHAINS.items():
            report = selectors.audit_chain_report(model)
            if not report.ok:
                row = model.objects.filter(seq=report.broken_at).values_list("pk", flat=True)
                pk = row.first()
                where = f"seq {report.broken_at}" + (f" (id {pk})" if pk is not None else "")
                raise CommandError(
                    f"{model._meta.db_table}: row {where} does not verify: {report.problem}; "
                    f"{report.rows} rows before it verified"
                )
            if chain in expected and expected[chain] != report.head:
                raise CommandError(
                    f"{model._meta.db_table}: head is {report.head}, expected {expected[chain]} "
                    "(rows were removed or the chain was rewritten)"
                )
            self.stdout.write(f"{chain}: {report.rows} rows verified, head {report.head}")
