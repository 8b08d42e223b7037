"""What model-driven segments count for operators (Prometheus; docs/operations.md). Registered
by this optional app itself, so a site without the ``[ml]`` extra has none of these series."""

from prometheus_client import Counter, Histogram

SCORING_SECONDS = Histogram(
    "tailored_model_scoring_seconds",
    "Worker: time the active models took to score one batch's visitors (feature matrix, "
    "predictions, writing the outputs into the profiles).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SCORED_PROFILES = Counter(
    "tailored_model_scored_profiles", "Worker: visitor profiles scored by the active models."
)


def scoring(profiles: int):
    """Time one scoring call (a context manager) and count its profiles."""
    SCORED_PROFILES.inc(profiles)
    return SCORING_SECONDS.time()
