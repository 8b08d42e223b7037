"""The benchmark suite: ``python -m bench`` (or ``make bench``); see docs/benchmarks.md."""
