"""Model scoring is timed and counted by the app itself (its series exist only with it)."""

import time

import pytest
from prometheus_client import REGISTRY

from segments.api import Profile
from segments.extensions import extensions

pytestmark = pytest.mark.django_db


def test_the_registered_scorer_is_timed_and_counted():
    def sample(name):
        return REGISTRY.get_sample_value(name) or 0.0

    calls = sample("tailored_model_scoring_seconds_count")
    profiles = sample("tailored_model_scored_profiles_total")
    extensions.scorers["segments_ml"]([Profile(), Profile()], time.time())
    assert sample("tailored_model_scoring_seconds_count") == calls + 1
    assert sample("tailored_model_scored_profiles_total") == profiles + 2
