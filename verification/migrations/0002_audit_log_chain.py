# Audit log (issue 6): hash chain on verification attempts, an audit table for enrollment changes,
# voiceprint deletions, lockout resets and labels, staff labels, and database triggers that refuse
# UPDATE and DELETE on both audit tables.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

# Frozen copy of VerificationAttempt.AUDIT_FIELDS at this migration (a later change of the model
# must not change how existing rows were chained).
ATTEMPT_FIELDS = (
    "created_at",
    "user_id",
    "challenge_id",
    "background_model_id",
    "decision",
    "reason",
    "score",
    "threshold",
    "frame_count",
    "speaker_model_version",
    "ubm_version",
    "client_ip",
    "user_agent",
    "latency_ms",
)
AUDIT_TABLES = ("verification_verificationattempt", "verification_auditevent")


def chain_existing_attempts(apps, schema_editor):
    """Rows written before this migration join the chain in the order they were written."""
    from verification import audit

    Attempt = apps.get_model("verification", "VerificationAttempt")
    prev = audit.GENESIS
    for seq, row in enumerate(Attempt.objects.order_by("created_at", "id").iterator(), start=1):
        content = {"seq": seq}
        for name in ATTEMPT_FIELDS:
            content[name.removesuffix("_id")] = getattr(row, name)
        digest = audit.entry_hash("attempt", content, prev)
        Attempt.objects.filter(pk=row.pk).update(seq=seq, prev_hash=prev, entry_hash=digest)
        prev = digest


POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION verification_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        # params=None: the function body has literal % placeholders of RAISE.
        schema_editor.execute(POSTGRES_FUNCTION, params=None)
        for table in AUDIT_TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION verification_audit_append_only()"
            )
    elif vendor == "sqlite":
        # Local development only. UPDATE is refused; DELETE is not, because Django's test flush
        # (TransactionTestCase, live-server tests) empties tables with DELETE on SQLite (TRUNCATE,
        # which row triggers do not see, on Postgres). The hash chain still exposes a deletion.
        for table in AUDIT_TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'audit table {table} is append-only: "
                "UPDATE refused'); END"
            )


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for table in AUDIT_TABLES:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        schema_editor.execute("DROP FUNCTION IF EXISTS verification_audit_append_only()")
    elif vendor == "sqlite":
        for table in AUDIT_TABLES:
            for op in ("update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")


class Migration(migrations.Migration):

    dependencies = [
        ('verification', '0001_initial_data_model'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='verificationattempt',
            name='created_at',
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.AddField(
            model_name='verificationattempt',
            name='seq',
            field=models.PositiveBigIntegerField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name='verificationattempt',
            name='prev_hash',
            field=models.CharField(default='', editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='verificationattempt',
            name='entry_hash',
            field=models.CharField(default='', editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(chain_existing_attempts, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='verificationattempt',
            name='seq',
            field=models.PositiveBigIntegerField(editable=False, unique=True),
        ),
        migrations.CreateModel(
            name='AuditEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('seq', models.PositiveBigIntegerField(editable=False, unique=True)),
                ('prev_hash', models.CharField(editable=False, max_length=64)),
                ('entry_hash', models.CharField(editable=False, max_length=64)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('kind', models.CharField(choices=[('utterance_added', 'enrollment utterance added'), ('model_trained', 'speaker model (re)trained'), ('voiceprint_deleted', 'voiceprint deleted'), ('lockout_reset', 'lockout reset'), ('attempt_labelled', 'attempt labelled')], max_length=32)),
                ('details', models.JSONField(blank=True, default=dict)),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='audit_events_performed', to=settings.AUTH_USER_MODEL)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='audit_events', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ('-created_at', '-id'),
                'indexes': [models.Index(fields=['user', '-created_at'], name='verif_event_user_time')],
            },
        ),
        migrations.CreateModel(
            name='AttemptLabel',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('truth', models.CharField(choices=[('genuine', 'genuine (the user)'), ('impostor', 'impostor')], max_length=8)),
                ('note', models.CharField(blank=True, max_length=200)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('attempt', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='label', to='verification.verificationattempt')),
                ('labelled_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='attempt_labels', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
