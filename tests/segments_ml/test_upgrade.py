"""Upgrading a database migrated before model-driven segments became their own app loses
nothing: the rows stay in their tables, the models read them under the new app, and permissions
granted on them stay granted (their content types move with them)."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = [
    pytest.mark.services,
    # like every transactional test here, so the data post_migrate made is restored after it
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# (experiments refers to a later segments migration: it goes back to before it too.)
BEFORE = [("segments", "0002_ml_models"), ("segments_ml", None), ("experiments", None)]


def _migrate(targets):
    """Migrate to ``targets`` and return the models as they are there (every other app at its
    latest migration)."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    pinned = {app for app, _name in targets}
    nodes = [n for n in executor.loader.graph.leaf_nodes() if n[0] not in pinned]
    nodes += [t for t in targets if t[1] is not None]
    return executor.loader.project_state(nodes, at_end=True).apps


def _latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def test_upgrading_from_the_segments_app_keeps_models_versions_permissions_and_the_log():
    latest = _latest()
    try:
        old = _migrate(BEFORE)  # the schema as main had it before the move
        OldModel = old.get_model("segments", "MLModel")
        OldVersion = old.get_model("segments", "ModelVersion")
        OldActivation = old.get_model("segments", "ModelActivation")
        OldDrift = old.get_model("segments", "DriftCheck")
        ContentType = old.get_model("contenttypes", "ContentType")
        model = OldModel.objects.create(name="Buys again", slug="buys-again", kind="propensity")
        version = OldVersion.objects.create(
            model=model, number=1, status="ready", is_active=True, metrics={"roc_auc": 0.74}
        )
        OldActivation.objects.create(model=model, version=version, by="editor")
        OldDrift.objects.create(version=version, threshold=0.2, max_psi=0.05)
        OldEvent = old.get_model("segments", "Event")  # the durable log's model before 0004
        OldEvent.objects.create(
            event_id="0" * 32,
            visitor_key="k" * 32,
            name="purchase",
            occurred_at="2026-01-02T03:04Z",
        )
        # A permission on the model, granted to a group, as a site would have it.
        content_type, _ = ContentType.objects.get_or_create(app_label="segments", model="mlmodel")
        permission, _ = Permission.objects.get_or_create(
            content_type_id=content_type.pk, codename="view_mlmodel", defaults={"name": "Can view"}
        )
        group = Group.objects.create(name="Model viewers")
        group.permissions.add(permission)

        _migrate(latest)

        from segments_ml.models import DriftCheck, MLModel, ModelActivation, ModelVersion

        upgraded = MLModel.objects.get(slug="buys-again")
        assert upgraded.active_version.metrics == {"roc_auc": 0.74}
        assert ModelActivation.objects.get().by == "editor"
        assert DriftCheck.objects.get().version.model == upgraded
        assert ModelVersion.objects.count() == 1
        from segments.models import LoggedEvent

        assert LoggedEvent.objects.get().name == "purchase"
        perms = Group.objects.get(name="Model viewers").permissions.all()
        assert [(p.content_type.app_label, p.codename) for p in perms] == [
            ("segments_ml", "view_mlmodel")
        ]
    finally:
        _migrate(latest)
