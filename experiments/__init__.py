"""Experiments: A/B/n tests, holdouts and bandits on personalised content.

The pure core (no Django): ``assignment`` (GrowthBook-compatible bucketing), ``stats``
(frequentist, sequential and Bayesian analysis on sufficient statistics, as GrowthBook's
gbstats), ``bandits`` (Thompson sampling, inverse propensity weighting) and ``simulate``
(the simulation harness behind ``python -m bench --only experiments``).
"""
