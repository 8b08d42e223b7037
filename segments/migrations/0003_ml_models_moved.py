# The model-driven segments' models moved to their own, optional app (segments_ml). Their
# tables stay where they are: segments_ml's first migration takes them over by name, so an
# upgrade moves no data (and a site without segments_ml keeps them, unused).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('segments', '0002_ml_models'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='DriftCheck'),
                migrations.DeleteModel(name='ModelActivation'),
                migrations.DeleteModel(name='ModelVersion'),
                migrations.DeleteModel(name='MLModel'),
            ],
            database_operations=[],
        ),
    ]
