"""Evaluate the model-driven segments on the public Online Retail data, through the product's
own code path: rows are read and keyed like an import (segments.events.importer), events are
applied to profiles like the workers do, features come from the catalog as of each cut-off
(segments_ml.dataset.build), and the clustering and propensity code is the training code."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

DATASETS = {"online-retail": "online_retail.csv.gz"}
DEFAULT_AS_OF = "2011-12-10"  # the day after Online Retail's last invoice
DEFAULT_CUTOFF = "2011-09-10"


def default_data_dir() -> Path:
    """``shared/data/online_retail`` beside the project directory (``BASE_DIR``, else the
    working directory), where the demo keeps the public data; resolved when the command runs,
    never at import, so the app does not depend on a project setting to be imported."""
    project = Path(getattr(settings, "BASE_DIR", None) or Path.cwd())
    return project.parent / "shared" / "data" / "online_retail"


class Command(BaseCommand):
    help = (
        "Train and evaluate RFM clustering and a 'buys again within 90 days' propensity model "
        "on the Online Retail data (features before the cut-off, labels after it) and print "
        "silhouette per k, the cluster profiles, and ROC AUC, PR AUC, lift and calibration of "
        "HistGradientBoosting against the logistic-regression baselines."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", choices=sorted(DATASETS), default="online-retail")
        parser.add_argument(
            "--data-dir",
            type=Path,
            help="The directory holding the datasets' files (default: "
            "shared/data/online_retail/ beside the project directory).",
        )
        parser.add_argument("--path", help="The CSV itself (default: the dataset's file there).")
        parser.add_argument(
            "--mapping",
            default="online-retail",
            help="Which column plays which role in the file: a preset, a JSON file or inline "
            "JSON, as for import_events (default: the online-retail preset).",
        )
        parser.add_argument(
            "--as-of",
            dest="as_of",
            help="Evaluate as the data stood at this instant (a date: its midnight, UTC; or an "
            "ISO date and time): later events are ignored, the clustering's features are "
            "computed then, and propensity labels end by then. Default: 2011-12-10, the end of "
            "Online Retail.",
        )
        parser.add_argument(
            "--cutoff",
            help="Held-out cut-off (date). Default: one horizon before the as-of date.",
        )
        parser.add_argument("--horizon", type=int, default=90, help="Days after the cut-off.")
        parser.add_argument("--end", help="The former name of --as-of.")
        parser.add_argument("--k-min", type=int, default=3)
        parser.add_argument("--k-max", type=int, default=8)
        parser.add_argument("--windows", type=int, default=4, help="Training cut-offs.")

    def handle(self, *args, **options):
        data_dir = options["data_dir"] or default_data_dir()
        path = Path(options["path"] or data_dir / DATASETS[options["dataset"]])
        if not path.exists():
            raise CommandError(f"{path} not found (see ../shared/data/README.md).")

        # numpy and scikit-learn load only once the data is known to be there
        from segments.api import load_mapping
        from segments_ml import clustering
        from segments_ml import dataset as ds
        from segments_ml.training import fit_propensity

        try:
            mapping = load_mapping(options["mapping"])
        except ValueError as exc:
            raise CommandError(f"--mapping: {exc}") from exc
        started = time.perf_counter()
        source = ds.from_file(path, mapping)
        events = sum(len(e) for _, e in source)
        self.stdout.write(
            f"Read {events} events of {len(source)} customers from {path.name} "
            f"in {time.perf_counter() - started:.1f} s (rows without a customer skipped).\n"
        )
        end = _as_of(options)
        source = ds.events_before(source, end.timestamp())
        options["as_of"] = end.isoformat()
        if not options["cutoff"]:
            default = _date(DEFAULT_AS_OF) == end and options["horizon"] == 90
            options["cutoff"] = (
                DEFAULT_CUTOFF
                if default  # the published figures (docs/models.md)
                else (end - timedelta(days=options["horizon"])).date().isoformat()
            )
        self.stdout.write(
            f"As of {options['as_of']}: {sum(len(e) for _, e in source)} events of "
            f"{len(source)} customers before it (later events ignored).\n"
        )
        self._clustering(source, end, options, ds, clustering)
        try:
            self._propensity(source, options, ds, fit_propensity)
        except ValueError as exc:  # as of a date the data cannot label (after its end, say)
            self.stdout.write(f"== Propensity: not evaluated as of {options['as_of']}: {exc}")

    def _clustering(self, source, end, options, ds, clustering):
        # scikit-learn's plain K-Means, the baseline the clustering is compared with
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        out = self.stdout.write
        out("== RFM clustering (as of {}; customers with a purchase) ==".format(options["as_of"]))
        started = time.perf_counter()
        data = ds.build(source, [end.timestamp()], ds.RFM, require="purchase")
        fitted = clustering.train(
            data.X, ds.RFM, ks=range(options["k_min"], options["k_max"] + 1), log=True
        )
        seconds = time.perf_counter() - started
        out(f"{len(data)} customers; features: {', '.join(ds.RFM)} (log, standardised)")
        for k, score in fitted["silhouette_by_k"].items():
            out(f"  k={k}: silhouette {score:.4f}")
        out(f"chosen k={fitted['k']} (silhouette {fitted['silhouette']:.4f}) in {seconds:.1f} s")
        # Plain K-Means (scikit-learn defaults) on the same standardised log-RFM, same k.
        # numpy: loaded once the data is there
        from segments_ml.transform import Transform

        Z = Transform.from_dict(fitted["transform"])(data.X)
        for k in sorted({3, 4, fitted["k"]}):
            plain = KMeans(k, random_state=0).fit(Z)
            out(
                f"  reference: plain K-Means k={k} silhouette "
                f"{silhouette_score(Z, plain.labels_):.4f}"
            )
        out("Clusters:")
        for c in sorted(fitted["clusters"], key=lambda c: -c["size"]):
            med = c["median"]
            out(
                f"  [{c['key']}] {c['name']}: {c['size']} customers ({c['share']:.0%}); median "
                f"{med['days_since_last_purchase']:.0f} days since last purchase, "
                f"{med['purchase_count']:.0f} orders, {med['monetary_value']:.0f} spent"
            )
            out(f"      named for: {c['name_reason']}")
            for words in c["description"]:
                out(f"      - {words}")
        out("")

    def _propensity(self, source, options, ds, fit_propensity):
        out = self.stdout.write
        horizon = options["horizon"]
        target = ds.Target("purchase", horizon)
        cutoff = _date(options["cutoff"]).timestamp()
        if cutoff + target.horizon > _date(options["as_of"]).timestamp() + 1e-6:
            raise CommandError(
                f"--cutoff {options['cutoff']} leaves less than {horizon} days of labels before "
                f"the as-of date {options['as_of'][:10]}."
            )
        first = cutoff - target.horizon
        split = ds.TimeSplit(
            tuple(first - i * 30 * ds.DAY for i in range(options["windows"])),
            cutoff,
            target.horizon,
        )
        out(f"== Propensity: {target.describe()} ==")
        out(
            "time-based split: training cut-offs "
            + ", ".join(c[:10] for c in split.as_dict()["train_cutoffs"])
            + f" (labels end by the held-out cut-off); held out: {options['cutoff']}, labels "
            f"{options['cutoff']} to +{horizon} days"
        )
        started = time.perf_counter()
        features = ds.DEFAULT_PROPENSITY_FEATURES
        data = ds.build(source, split.cutoffs, features, target, require="purchase")
        out(f"dataset built in {time.perf_counter() - started:.1f} s: {len(data)} rows")
        rows = []
        for name, algorithm, cols in (
            ("HistGradientBoosting (default)", "hgb", features),
            ("Logistic regression, all features", "logistic", features),
            (
                "Logistic regression baseline, log-RFM + tenure",
                "logistic",
                [*ds.RFM, "days_since_first_seen"],
            ),
        ):
            idx = [features.index(c) for c in cols]
            subset = ds.Dataset(cols, data.X[:, idx], data.y, data.cutoffs, data.keys)
            started = time.perf_counter()
            result = fit_propensity(subset, split, algorithm=algorithm, baseline=None)
            rows.append((name, result, time.perf_counter() - started))
        holdout = rows[0][1]
        out(
            f"training rows {holdout.train_rows}, held-out customers {holdout.holdout_rows} "
            f"({holdout.metrics['base_rate']:.1%} bought again)"
        )
        out(f"{'model':48} {'ROC AUC':>8} {'PR AUC':>8} {'lift@10%':>9} {'Brier':>7} {'ECE':>7}")
        for name, result, seconds in rows:
            m = result.metrics
            out(
                f"{name:48} {m['roc_auc']:8.4f} {m['pr_auc']:8.4f} {m['lift_top_decile']:9.2f} "
                f"{m['brier']:7.4f} {m['ece']:7.4f}  ({seconds:.1f} s)"
            )
        out("Calibration of the default model on held-out time (predicted, observed, customers):")
        for predicted, observed, n in holdout.metrics["calibration"]:
            out(f"  {predicted:.2f} -> {observed:.2f} ({n})")
        out("Lift by decile: " + ", ".join(f"{v:.2f}" for v in holdout.metrics["lift_by_decile"]))
        y = holdout.holdout.y
        ours = _scores(holdout)
        for name, result, _seconds in rows[1:]:
            low, high = _difference_interval(y, ours, _scores(result))
            diff = holdout.metrics["roc_auc"] - result.metrics["roc_auc"]
            out(
                f"ROC AUC of HistGradientBoosting minus {name}: {diff:+.4f} "
                f"(95% paired bootstrap interval {low:+.4f} to {high:+.4f})"
            )


def _scores(result):
    # numpy and scikit-learn: loaded once the data is there
    from segments_ml.propensity import predict

    return predict(result.estimator, result.holdout.X)


def _difference_interval(y, a, b, rounds: int = 300) -> tuple[float, float]:
    """Bootstrap interval of ROC AUC(a) - ROC AUC(b) over the same resampled customers."""
    # numpy and scikit-learn: loaded once the data is there
    import numpy as np
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        if len(set(y[idx].tolist())) == 2:
            diffs.append(roc_auc_score(y[idx], a[idx]) - roc_auc_score(y[idx], b[idx]))
    return float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))


def _date(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not a date: {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _as_of(options) -> datetime:
    """The instant the evaluation is as of: --as-of (or its former name --end), else the end
    of Online Retail."""
    if options["as_of"] and options["end"] and _date(options["as_of"]) != _date(options["end"]):
        raise CommandError("give --as-of or --end (its former name), not both.")
    return _date(options["as_of"] or options["end"] or DEFAULT_AS_OF)
