"""Experiment results over HTTP, for users who may read them (``experiments.
view_experiment_results`` or ``run_experiment``): ``GET /api/experiments/`` lists the
experiments, ``GET /api/experiments/<id>/results/`` answers
:func:`experiments.results.analyse` (the same figures as the results screen), with the stored
snapshots' times and primary-goal lifts when ``?history=1``.

Two ways in: the admin's session, and, for headless clients (a dashboard, a notebook, CI), a
token of DRF's ``rest_framework.authtoken`` (``Authorization: Token <key>``) when the project
installs that app. The permission is checked per experiment: a user holds it for every
experiment (the model permission) or, with an object-permission backend such as
django-guardian, for some (``user.has_perm(perm, experiment)``); the list shows those. No
credentials, or a bad token: 401 (with ``WWW-Authenticate: Token`` when tokens are on); a user
without the permission: 403, whether or not the experiment exists."""

import re

from django.apps import apps
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed, NotFound, PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from consent.api import APIEndpoint

from ..models import Experiment

PERMISSIONS = ("experiments.view_experiment_results", "experiments.run_experiment")
REFUSED = "You need the permission to view experiment results."
# The keys rest_framework.authtoken generates (hexlify(os.urandom(20))): anything else is
# refused before a query (a NUL, say, that the database would choke on).
TOKEN_KEY = re.compile(r"[0-9a-f]{40}")


def may_view(user, experiment: Experiment | None = None) -> bool:
    """Whether ``user`` may read the results of every experiment or, given one, of
    ``experiment``."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    return any(
        user.has_perm(p) or (experiment is not None and user.has_perm(p, experiment))
        for p in PERMISSIONS
    )


class ResultsTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, refusing (401) what cannot be a token's key unread."""

    def authenticate_credentials(self, key):
        if not TOKEN_KEY.fullmatch(key):
            raise AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(key)


def tokens_enabled() -> bool:
    return apps.is_installed("rest_framework.authtoken")


class ResultsEndpoint(APIEndpoint):
    # The token first: a request with no credentials is then told how to authenticate (401,
    # WWW-Authenticate: Token); a session still works as before (GET: no CSRF to check).
    authentication_classes = [ResultsTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    error_statuses = (401,)

    def get_authenticators(self):
        return [
            auth()
            for auth in self.authentication_classes
            if auth is not ResultsTokenAuthentication or tokens_enabled()
        ]

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        response["Vary"] = "Authorization, Cookie"
        return response


class ExperimentListView(ResultsEndpoint):
    @extend_schema(responses={200: dict}, operation_id="experiments_list")
    def get(self, request: Request) -> Response:
        user = request.user
        experiments = Experiment.objects.order_by("-created_at")
        if not may_view(user):
            # Per experiment (an object-permission backend): those this user may read.
            experiments = [e for e in experiments if may_view(user, e)]
            if not experiments:
                raise PermissionDenied(REFUSED)
            experiments = Experiment.objects.filter(pk__in=[e.pk for e in experiments])
        rows = experiments.order_by("-created_at").values(
            "id", "key", "name", "kind", "status", "mode", "started_at", "stopped_at"
        )
        return Response({"experiments": list(rows)})


class ExperimentResultsView(ResultsEndpoint):
    @extend_schema(
        parameters=[
            OpenApiParameter("pk", OpenApiTypes.INT, OpenApiParameter.PATH),
            OpenApiParameter("history", OpenApiTypes.BOOL, OpenApiParameter.QUERY),
        ],
        responses={200: dict},
        operation_id="experiments_results",
    )
    def get(self, request: Request, pk: str) -> Response:
        from ..results import analyse  # numpy and scipy: only when results are asked for
        from ..snapshots import snapshot_if_due

        experiment = None
        if pk.isascii() and pk.isdigit() and len(pk) <= 18:
            experiment = Experiment.objects.filter(pk=int(pk)).first()
        # Refused before "not found": who may not read results learns nothing of which exist.
        if not may_view(request.user, experiment):
            raise PermissionDenied(REFUSED)
        if experiment is None:
            raise NotFound("No such experiment.")
        data = analyse(experiment)
        snapshot_if_due(experiment, data)
        if request.query_params.get("history") in ("1", "true"):
            data["history"] = [
                {"computed_at": s.computed_at.isoformat(), "cells": s.data.get("cells", [])}
                for s in experiment.snapshots.order_by("computed_at")[:1000]
            ]
        return Response(data)
