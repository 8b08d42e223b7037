"""``python -m bench [--only NAME] [--quick] [--strict]``: run benchmarks, print their figures.

NAME: request, pipeline, blocks, ml, experiments, scale, recommendations or channels
(repeatable); all of them by default.

See docs/benchmarks.md for what each figure means and how it is measured.
"""

import argparse
import importlib
import json
import sys

from . import report

# Benchmark name: module with run(options) -> result, rows(result) -> table rows of
# (figure, value, baseline, ratio, target, "PASS"/"FAIL"/""), and details(result) -> text.
BENCHMARKS = {
    "request": "bench.request_cost",
    "pipeline": "bench.pipeline",
    "blocks": "bench.blocks",
    "ml": "bench.ml",
    "experiments": "bench.experiments",
    "scale": "bench.scale",
    "recommendations": "bench.recommendations",
    "channels": "bench.channels",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument(
        "--no-wp", action="store_true", help="skip wagtail-personalisation (no second venv)"
    )
    parser.add_argument("--profile", action="store_true", help="add a cProfile of the plugin")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--pipeline-steps",
        type=lambda v: [s for s in v.split(",") if s],
        metavar="STEPS",
        help="pipeline: only these steps, comma-separated (throughput, baseline, freshness, "
        "scaling); e.g. --only pipeline --pipeline-steps freshness (about 2 minutes)",
    )
    options = parser.parse_args(argv)
    selected = options.only or list(BENCHMARKS)
    results, failed = {}, False
    for name in selected:
        module = importlib.import_module(BENCHMARKS[name])
        result = module.run(options)
        results[name] = result
        lines = module.rows(result)
        failed |= any(r[5] == "FAIL" for r in lines)
        print(f"\n== {name} ==\n")
        print(report.table(lines))
        print()
        print(module.details(result))
    if options.json:
        with open(options.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
    return 1 if failed and options.strict else 0


if __name__ == "__main__":
    sys.exit(main())
