# features.FEATURE_VERSION ("meyda-5.6.3/melbands40-hamming-16k-v1", 37 chars) did not fit
# max_length=32: Postgres refused every UBM install and every enrollment (SQLite does not check).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('verification', '0002_audit_log_chain'),
    ]

    operations = [
        migrations.AlterField(
            model_name='backgroundmodel',
            name='feature_version',
            field=models.CharField(max_length=64),
        ),
        migrations.AlterField(
            model_name='enrollmentutterance',
            name='feature_version',
            field=models.CharField(max_length=64),
        ),
    ]
