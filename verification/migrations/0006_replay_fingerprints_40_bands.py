"""Replay fingerprints now keep all 40 mel bands (``engine.replay``), not pairs of them: the
20-band rows of recent attempts cannot be compared with the new ones, and would be misread, so
they are dropped. The replay check keeps comparing with the stored enrollment utterances, whose
fingerprints are computed from their features; only attempts made before the upgrade are no
longer references."""

from django.db import migrations


def drop_20_band_fingerprints(apps, schema_editor):
    apps.get_model("verification", "ReplayFingerprint").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("verification", "0005_blob_storage_external")]

    operations = [migrations.RunPython(drop_20_band_fingerprints, migrations.RunPython.noop)]
