"""Offline evaluation of the strategies on Online Retail, as a recommender paper would
(docs/recommendations.md gives the protocol; ``python manage.py recommendations_eval`` and
``python -m bench --only recommendations`` print the table).

Protocol: purchases only (positive quantity, a customer, a product StockCode: one starting with
a digit); train on those before ``SPLIT`` (2011-09-10), test on what each *returning* customer
(at least one purchase before and one after) buys after it. The truth of a customer is the set
of distinct items they bought in the test period ("any item"), or those of them they had not
bought before ("items new to the customer"; customers with none are left out of that setting).
Every strategy gives K = 10 distinct items per customer; in the "new items" setting the
customer's own earlier items are removed from every strategy's list first (they cannot be
hits), then the list is cut to K. A hit is a recommended item in the truth, counted once.

Needs numpy and scipy (the ``[ml]`` extra); the factorisation model needs ``implicit``.
"""

import csv
import gzip
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import scoring
from .defaults import RECOMMENDATIONS_PAIR_ITEMS

SPLIT = "2011-09-10"
K = 10
HALF_LIFE_DAYS = 30.0
RECENT = 20
PAIR = RECOMMENDATIONS_PAIR_ITEMS  # as the drain pairs them
FACTORS = 128


@dataclass
class Data:
    """Purchases as (customer, item, ts), items as dense ints, split into train and test."""

    items: list[str]
    train: dict[int, list[tuple[int, float]]]  # customer -> [(item, ts)] in time order
    test: dict[int, set[int]]  # returning customers only
    split_ts: float


def load(path: str | Path, split: str = SPLIT) -> Data:
    split_ts = datetime.fromisoformat(split).timestamp()
    index: dict[str, int] = {}
    customers: dict[str, int] = {}
    train: dict[int, list[tuple[int, float]]] = defaultdict(list)
    test: dict[int, set[int]] = defaultdict(set)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for row in csv.DictReader(handle):
            customer, code = row["CustomerID"], row["StockCode"]
            if not customer or not code[:1].isdigit():
                continue
            try:
                if float(row["Quantity"]) <= 0:
                    continue
            except ValueError:
                continue
            ts = datetime.fromisoformat(row["InvoiceDate"]).timestamp()
            item = index.setdefault(code, len(index))
            c = customers.setdefault(customer, len(customers))
            if ts < split_ts:
                train[c].append((item, ts))
            else:
                test[c].add(item)
    for events in train.values():
        events.sort(key=lambda e: e[1])
    returning = {c: truth for c, truth in test.items() if c in train}
    return Data(list(index), dict(train), returning, split_ts)


# -- strategies: each a function customer -> ranked item ids (at least K + own items) ----------


def popular_ranking(data: Data) -> list[int]:
    buyers = Counter()
    for events in data.train.values():
        buyers.update({i for i, _ts in events})
    return [i for i, _n in sorted(buyers.items(), key=lambda kv: (-kv[1], kv[0]))]


def cooccurrence(data: Data) -> dict[int, list[tuple[int, float]]]:
    """Item neighbours as the drain step keeps them (the same increments: every purchase
    co-occurs with the customer's PAIR latest items, decayed)."""
    deltas = scoring.Deltas()
    half_life = HALF_LIFE_DAYS * 86400
    for events in data.train.values():
        recent = scoring.Recent()
        last = None
        for item, ts in events:
            if item == last:
                continue
            last = item
            deltas.add_event(
                recent,
                item,
                5.0,
                ts,
                (),
                half_life_seconds=half_life,
                keep=RECENT,
                purchase=True,
                pair_with=PAIR,
            )
    neighbours: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for (a, b), w in deltas.pairs.items():
        neighbours[a].append((b, w))
    return {a: sorted(links, key=lambda x: (-x[1], x[0]))[:50] for a, links in neighbours.items()}


@dataclass
class Strategy:
    name: str
    description: str
    rank: object  # customer -> list[int]
    seconds: float = 0.0


def strategies(data: Data, *, factorisation: bool = True) -> list[Strategy]:
    popular = popular_ranking(data)
    top = popular[: K * 20]
    rank_of = {item: n for n, item in enumerate(popular)}

    def own(c: int) -> list[int]:
        counts = Counter(i for i, _ts in data.train[c])
        return sorted(counts, key=lambda i: (rank_of.get(i, 1 << 30), i))

    def own_by_habit(c: int) -> list[int]:
        """The customer's items by how often and how lately they bought them."""
        scores: dict[int, float] = defaultdict(float)
        for item, ts in data.train[c]:
            scores[item] += 2.0 ** ((ts - data.split_ts) / (HALF_LIFE_DAYS * 86400))
        return sorted(scores, key=lambda i: (-scores[i], i))

    started = time.perf_counter()
    neighbours = cooccurrence(data)
    cooc_seconds = time.perf_counter() - started

    def recent_items(c: int) -> list[int]:
        recent = scoring.Recent()
        for item, _ts in data.train[c]:
            recent.add(item, False, RECENT)
        return recent.items

    def for_you(c: int) -> list[int]:
        return scoring.for_you(recent_items(c), neighbours, length=K * 5) + top

    out = [
        Strategy("popular", "most customers bought it (the baseline)", lambda c: top),
        Strategy(
            "buy_again", "the customer's own items, most popular first", lambda c: own(c) + top
        ),
        Strategy(
            "for_you",
            "co-occurrence neighbours of the customer's recent items (the drain's lists)",
            for_you,
            cooc_seconds,
        ),
        Strategy(
            "habit_for_you",
            "the customer's own items by frequency and recency, then for you",
            lambda c: own_by_habit(c)[:K] + for_you(c),
            cooc_seconds,
        ),
    ]
    if factorisation:
        model = factorise(data)
        if model is not None:
            out += model
    return out


def factorise(data: Data) -> list[Strategy] | None:
    """The implicit-feedback ALS model (the ``implicit`` library), or None without it."""
    try:
        import numpy as np
        from implicit.als import AlternatingLeastSquares
        from scipy.sparse import csr_matrix
    except ImportError:
        return None
    from threadpoolctl import threadpool_limits

    customers = sorted(data.train)
    row_of = {c: n for n, c in enumerate(customers)}
    rows, cols, vals = [], [], []
    for c in customers:
        for item, n in Counter(i for i, _ts in data.train[c]).items():
            rows.append(row_of[c])
            cols.append(item)
            vals.append(1.0 + 10.0 * math.log1p(n))
    matrix = csr_matrix(
        (np.array(vals, dtype=np.float32), (rows, cols)), shape=(len(customers), len(data.items))
    )
    started = time.perf_counter()
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=FACTORS,
            regularization=0.05,
            iterations=15,
            random_state=7,
            num_threads=1,  # deterministic for a seed (threads race on shared factors)
            calculate_training_loss=False,
        )
        model.fit(matrix, show_progress=False)
    seconds = time.perf_counter() - started
    wanted = [c for c in customers if c in data.test]
    ids = np.array([row_of[c] for c in wanted])
    lists = {}
    for filtered in (False, True):
        found, _scores = model.recommend(
            ids, matrix[ids], N=K * 3, filter_already_liked_items=filtered
        )
        lists[filtered] = {c: [int(i) for i in found[n]] for n, c in enumerate(wanted)}
    return [
        Strategy(
            "als",
            "matrix factorisation (implicit ALS) of the purchases",
            lambda c: lists[False].get(c, []),
            seconds,
        ),
        Strategy(
            "als_new",
            "the same model, the customer's own items left out",
            lambda c: lists[True].get(c, []),
            seconds,
        ),
    ]


# -- metrics ----------------------------------------------------------------------------------


@dataclass
class Scores:
    precision: float = 0.0
    recall: float = 0.0
    ndcg: float = 0.0
    hit_rate: float = 0.0
    coverage: float = 0.0
    customers: int = 0
    extra: dict = field(default_factory=dict)


def _cut(ranked: list[int], skip: set[int]) -> list[int]:
    out, seen = [], set()
    for item in ranked:
        if item not in seen and item not in skip:
            seen.add(item)
            out.append(item)
            if len(out) == K:
                break
    return out


def evaluate(data: Data, strategy: Strategy, *, new_only: bool) -> Scores:
    totals = Scores()
    recommended: set[int] = set()
    catalogue = {i for events in data.train.values() for i, _ts in events}
    discount = [1.0 / math.log2(n + 2) for n in range(K)]
    for c, truth in data.test.items():
        past = {i for i, _ts in data.train[c]}
        if new_only:
            truth = truth - past
            if not truth:
                continue
        top = _cut(strategy.rank(c), past if new_only else set())
        recommended.update(top)
        hits = [item in truth for item in top]
        n_hits = sum(hits)
        totals.customers += 1
        totals.precision += n_hits / K
        totals.recall += n_hits / len(truth)
        totals.hit_rate += n_hits > 0
        ideal = sum(discount[: min(len(truth), K)])
        totals.ndcg += sum(d for d, h in zip(discount, hits, strict=False) if h) / ideal
    n = max(totals.customers, 1)
    return Scores(
        precision=totals.precision / n,
        recall=totals.recall / n,
        ndcg=totals.ndcg / n,
        hit_rate=totals.hit_rate / n,
        coverage=len(recommended & catalogue) / max(len(catalogue), 1),
        customers=totals.customers,
    )


@dataclass
class Report:
    rows: dict[str, dict[str, Scores]]  # setting -> strategy -> scores
    training_seconds: float
    verdicts: list[tuple[str, str, bool]]  # (target, measured, met)
    descriptions: dict[str, str]


def run(path: str | Path, *, factorisation: bool = True) -> Report:
    data = load(path)
    found = strategies(data, factorisation=factorisation)
    rows: dict[str, dict[str, Scores]] = {"any": {}, "new": {}}
    for s in found:
        if s.name != "als_new":
            rows["any"][s.name] = evaluate(data, s, new_only=False)
        if s.name not in ("als", "habit_for_you"):  # the same lists as others once own items go
            rows["new"][s.name] = evaluate(data, s, new_only=True)
    training = max((s.seconds for s in found if s.name.startswith("als")), default=math.nan)
    return Report(rows, training, verdicts(rows, training), {s.name: s.description for s in found})


def verdicts(rows: dict[str, dict[str, Scores]], training: float) -> list[tuple[str, str, bool]]:
    anyr, newr = rows["any"], rows["new"]
    personal_any = {k: v for k, v in anyr.items() if k not in ("popular", "buy_again")}
    personal_new = {k: v for k, v in newr.items() if k not in ("popular", "buy_again")}
    best_any = max(personal_any, key=lambda k: personal_any[k].recall)
    best_new = max(personal_new, key=lambda k: personal_new[k].recall)
    b, p = anyr["buy_again"], newr["popular"]
    out = [
        (
            f"any item: best ({best_any}) beats buy_again on recall@10 and nDCG@10",
            f"{anyr[best_any].recall:.4f} vs {b.recall:.4f}; "
            f"{anyr[best_any].ndcg:.4f} vs {b.ndcg:.4f}",
            anyr[best_any].recall > b.recall and anyr[best_any].ndcg > b.ndcg,
        ),
        (
            f"new items: best ({best_new}) recall@10 >= 2.5x popular",
            f"{newr[best_new].recall / max(p.recall, 1e-12):.2f}x",
            newr[best_new].recall >= 2.5 * p.recall,
        ),
        (
            "every personalised strategy beats popular (recall@10, both settings)",
            "any: "
            + ", ".join(f"{k} {v.recall:.4f}" for k, v in personal_any.items())
            + f" (popular {anyr['popular'].recall:.4f}); new: "
            + ", ".join(f"{k} {v.recall:.4f}" for k, v in personal_new.items())
            + f" (popular {p.recall:.4f})",
            all(v.recall > anyr["popular"].recall for v in personal_any.values())
            and all(v.recall > p.recall for v in personal_new.values()),
        ),
        (
            f"new items: coverage of the best ({best_new}) >= 40%",
            f"{newr[best_new].coverage:.1%}",
            newr[best_new].coverage >= 0.40,
        ),
    ]
    if not math.isnan(training):
        out.append(("factorisation training <= 60 s", f"{training:.1f} s", training <= 60))
    return out


def table(report: Report) -> str:
    lines = []
    for setting, title in (("any", "any item"), ("new", "items new to the customer")):
        lines.append(
            f"{title} (K={K}, customers: {next(iter(report.rows[setting].values())).customers})"
        )
        lines.append(
            f"  {'strategy':<14} {'P@10':>7} {'R@10':>7} {'nDCG@10':>8} {'HR@10':>7} {'cover':>6}"
        )
        for name, s in report.rows[setting].items():
            lines.append(
                f"  {name:<14} {s.precision:7.4f} {s.recall:7.4f} {s.ndcg:8.4f} "
                f"{s.hit_rate:7.4f} {s.coverage:6.1%}"
            )
    lines.append("targets:")
    for target, measured, met in report.verdicts:
        lines.append(f"  [{'ok' if met else 'MISSED'}] {target}: {measured}")
    return "\n".join(lines)
