"""The pre-exposure covariates the workers keep for CUPED, and the Statistic columns of their
sums (pure: no Django, so that the bench and the statistics can name them too)."""

# The pre-exposure covariates CUPED adjusts with, in the order of Assignment.covariates and of
# Statistic's covariate sums: each visitor's totals as of their first exposure (nothing after
# it), read from their profile by the workers (experiments.pipeline.pre_exposure). The first
# is the one kept before the vector was (Assignment.covariate, Statistic.x_sum, x_squares,
# xy_sum): the visitor's count of the experiment's primary goal event. Several features a
# profile already holds remove more of the goal's variance than any one of them (the
# simulation harness, docs/experiments.md "CUPED with several covariates").
COVARIATES = ("goal_events", "page_views", "active_days", "revenue")


def _x(i: int) -> str:
    return "x" if i == 0 else f"x{i}"


# Statistic's column names for the covariates' sufficient statistics: the sums of each x_i,
# of each product x_i x_j (i <= j: the matrix is symmetric) and of each x_i y.
COVARIATE_SUMS = tuple(f"{_x(i)}_sum" for i in range(len(COVARIATES)))
COVARIATE_PRODUCTS = {
    (i, j): "x_squares" if i == j == 0 else f"x{i}x{j}_sum"
    for i in range(len(COVARIATES))
    for j in range(i, len(COVARIATES))
}
COVARIATE_CROSS = tuple(f"{_x(i)}y_sum" for i in range(len(COVARIATES)))
