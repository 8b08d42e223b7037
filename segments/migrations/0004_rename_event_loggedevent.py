# The durable log's model is LoggedEvent (segments.events.Event is an event on its way there);
# its table keeps its name, which the bulk writer's COPY statements use.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('segments', '0003_ml_models_moved'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RenameModel(old_name='Event', new_name='LoggedEvent'),
                migrations.AlterModelTable(name='loggedevent', table='segments_event'),
            ],
            database_operations=[],
        ),
    ]
