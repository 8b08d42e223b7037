"""The "for you" factorisation model: training, evaluation, activation, rollback and use.

Trained by a Celery job (``recommendations.train``, daily in ``BEAT_SCHEDULE``) on the
durable log's consented, unerased visitors (:func:`segments.api.visitor_histories`), so an
erased visitor's contribution leaves the model at the next training. Each training makes a
:class:`~recommendations.models.FactorModel` version:

- **evaluation**: leave-last-out: each visitor with at least two items has their last item
  held out; a model trained on the rest ranks items for them from their other items; recall@10
  and nDCG@10 of the held-out item, against *popular*'s on the same visitors;
- **activation**: the version is activated when it beats popular (``activate_if_better``), or
  by hand (:func:`activate`, from the admin's "For you" model screen too); the previous active
  version is retired; a failed version, or the active one, is refused
  (:class:`ActivationRefused`);
- **rollback**: :func:`rollback` activates again the version that was active before.

A training that fails is kept as a ``failed`` version with the error's kind, so the admin
shows it; it is never activated.

The drain uses the active version (:func:`for_you`): a visitor's vector is folded in from their
recent items (a ridge solve on those items' factors), and their list is the best-scoring items
they have not seen (nor bought). Needs numpy, scipy and ``implicit`` (the ``[ml]`` extra); without
them nothing is trained and "for you" stays co-occurrence.
"""

import importlib.util
import io
import logging
import math
import time
from collections import Counter

from django.db import transaction
from django.utils import timezone

from segments.api import visitor_histories

from .conf import get_setting
from .items import catalogue, item_of
from .models import FactorModel

logger = logging.getLogger(__name__)


class ActivationRefused(Exception):
    """Activation or rollback is not possible; the message says why, in plain words."""


FACTORS = 128
ITERATIONS = 15
REGULARIZATION = 0.05
K = 10


def available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("numpy", "scipy", "implicit"))


# -- use (in the drain) --------------------------------------------------------------------------

_active: tuple[float, int | None, object] | None = None


def active_model():
    """(version id, {page id: row}, item ids, factors) of the active version, or None; read at
    most once per ``RECOMMENDATIONS_CACHE_SECONDS`` (the factors only when the version
    changed)."""
    global _active
    now = time.monotonic()
    if _active is not None and now - _active[0] <= get_setting("RECOMMENDATIONS_CACHE_SECONDS"):
        return _active[2]
    pk = FactorModel.objects.filter(status=FactorModel.Status.ACTIVE).values_list("pk", flat=True)
    pk = pk.first()
    if pk is None:
        loaded = None
    elif _active is not None and _active[1] == pk:
        loaded = _active[2]
    else:
        import numpy as np

        row = FactorModel.objects.values("item_ids", "factors", "regularization").get(pk=pk)
        factors = np.load(io.BytesIO(bytes(row["factors"])), allow_pickle=False)
        ids = [int(i) for i in row["item_ids"]]
        loaded = (pk, {p: n for n, p in enumerate(ids)}, np.array(ids), factors)
    _active = (now, pk, loaded)
    return loaded


def forget() -> None:
    global _active
    _active = None


def for_you(touched: dict, *, exclude_bought: bool, length: int) -> dict[str, list[int]]:
    """Each touched visitor's "for you" list by the active model ({} without one; no list for
    a visitor none of whose recent items it knows)."""
    model = active_model()
    if model is None or not touched:
        return {}
    import numpy as np

    _pk, row_of, ids, factors = model
    gram_reg = REGULARIZATION * np.eye(factors.shape[1], dtype=factors.dtype)
    allowed = catalogue().allowed
    out = {}
    for key, recent in touched.items():
        rows = [row_of[i] for i in recent.items if i in row_of]
        if not rows:
            continue
        y = factors[rows]
        user = np.linalg.solve(y.T @ y + gram_reg, y.T @ np.ones(len(rows), dtype=factors.dtype))
        scores = factors @ user
        skip = set(recent.items) | (set(recent.bought) if exclude_bought else set())
        ranked = []
        for n in np.argsort(-scores)[: length * 3 + len(skip)]:
            item = int(ids[n])
            if item not in skip and item in allowed:
                ranked.append(item)
                if len(ranked) == length:
                    break
        out[key] = ranked
    return out


# -- training ------------------------------------------------------------------------------------


def _histories() -> list[list[int]]:
    """Each consented visitor's items (page ids), in time order, from the durable log."""

    weights = get_setting("RECOMMENDATIONS_EVENT_WEIGHTS")
    names = tuple(get_setting("RECOMMENDATIONS_ITEM_PROPERTIES"))
    items = catalogue()
    out = []
    for _key, events in visitor_histories():
        mine = [
            item
            for name, _ts, properties in events
            if weights.get(name) and (item := item_of(properties, items, names)) is not None
        ]
        if mine:
            out.append(mine)
    return out


def fit(histories: list[list[int]], item_ids: list[int]):
    """Item factors of an ALS model of these histories (rows: visitors; confidence
    1 + 10·log(1 + events))."""
    import numpy as np
    from implicit.als import AlternatingLeastSquares
    from scipy.sparse import csr_matrix
    from threadpoolctl import threadpool_limits

    col = {p: n for n, p in enumerate(item_ids)}
    rows, cols, vals = [], [], []
    for r, history in enumerate(histories):
        for item, n in Counter(history).items():
            rows.append(r)
            cols.append(col[item])
            vals.append(1.0 + 10.0 * math.log1p(n))
    matrix = csr_matrix(
        (np.array(vals, dtype=np.float32), (rows, cols)), shape=(len(histories), len(item_ids))
    )
    factors = factor_count(len(histories), len(item_ids))
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=REGULARIZATION,
            iterations=ITERATIONS,
            random_state=7,
            num_threads=1,  # deterministic for a seed (threads race on shared factors)
            calculate_training_loss=False,
        )
        model.fit(matrix, show_progress=False)
    item_factors = model.item_factors
    if hasattr(item_factors, "to_numpy"):  # a GPU model
        item_factors = item_factors.to_numpy()
    item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
    if not np.isfinite(item_factors).all():  # a diverged fit: a failed version, never used
        raise FloatingPointError("the factorisation diverged (non-finite factors)")
    return item_factors


def factor_count(visitors: int, items: int) -> int:
    """How many factors a model of ``visitors`` by ``items`` gets: ``FACTORS``, but at most a
    quarter of the smaller side (at least 2). A model with nearly as many factors as items
    reproduces each visitor's own items and ranks the others by noise (a small catalogue's
    model then ranks no better than popular); the cap binds only under 4 times ``FACTORS``."""
    return min(FACTORS, max(2, min(visitors, items) // 4))


def evaluate(histories: list[list[int]], item_ids: list[int]) -> dict:
    """Leave-last-out recall@10 of the model and of popular (module docstring)."""
    import numpy as np

    held, train = [], []
    for history in histories:
        distinct = list(dict.fromkeys(history))
        if len(distinct) >= 2:
            last = history[-1]
            rest = [i for i in history if i != last]
            if rest:
                held.append((rest, last))
                train.append(rest)
                continue
        train.append(history)
    if not held:
        return {"evaluated": 0}
    factors = fit(train, item_ids)
    row_of = {p: n for n, p in enumerate(item_ids)}
    popularity = Counter(i for h in train for i in set(h))
    popular = [i for i, _n in sorted(popularity.items(), key=lambda kv: (-kv[1], kv[0]))]
    reg = REGULARIZATION * np.eye(factors.shape[1], dtype=np.float32)
    hits = popular_hits = gain = popular_gain = 0.0
    for rest, last in held:
        seen = set(rest)
        y = factors[[row_of[i] for i in dict.fromkeys(rest)]]
        user = np.linalg.solve(y.T @ y + reg, y.T @ np.ones(len(y), dtype=np.float32))
        top = [item_ids[n] for n in np.argsort(-(factors @ user)) if item_ids[n] not in seen][:K]
        ranked_popular = [i for i in popular if i not in seen][:K]
        hits += last in top
        popular_hits += last in ranked_popular
        gain += _ndcg(top, last)
        popular_gain += _ndcg(ranked_popular, last)
    return {
        "evaluated": len(held),
        "recall_at_10": hits / len(held),
        "popular_recall_at_10": popular_hits / len(held),
        "ndcg_at_10": gain / len(held),
        "popular_ndcg_at_10": popular_gain / len(held),
    }


def _ndcg(ranked: list[int], held_out: int) -> float:
    """nDCG of one held-out item (the ideal DCG is 1: it first)."""
    return 1.0 / math.log2(ranked.index(held_out) + 2) if held_out in ranked else 0.0


def train(*, activate_if_better: bool = True) -> FactorModel | None:
    """Train, evaluate and store a new version (activated when it beats popular); None when
    there is nothing to train on or the [ml] extra is missing."""
    if not available():
        logger.info("recommendations: no factorisation model without the [ml] extra")
        return None
    histories = _histories()
    item_ids = sorted({i for h in histories for i in h})
    if len(histories) < 2 or len(item_ids) < 3:
        return None
    import numpy as np

    started = time.perf_counter()
    try:
        metrics = evaluate(histories, item_ids)
        factors = fit(histories, item_ids)
    except Exception as exc:  # kept as a failed version: the admin shows it, never activates it
        logger.exception("recommendations: training the factorisation model failed")
        return FactorModel.objects.create(
            status=FactorModel.Status.FAILED,
            visitors=len(histories),
            training_seconds=time.perf_counter() - started,
            item_ids=[],
            note=f"training failed ({type(exc).__name__})",
        )
    buffer = io.BytesIO()
    np.save(buffer, factors, allow_pickle=False)
    version = FactorModel.objects.create(
        visitors=len(histories),
        training_seconds=time.perf_counter() - started,
        metrics=metrics,
        item_ids=item_ids,
        factors=buffer.getvalue(),
        regularization=REGULARIZATION,
    )
    if activate_if_better and metrics.get("recall_at_10", 0) > metrics.get(
        "popular_recall_at_10", 0
    ):
        activate(version, note="beats popular on leave-last-out recall@10")
    return version


@transaction.atomic
def activate(version: FactorModel, *, note: str = "") -> FactorModel:
    """Make ``version`` the active one (the previous active version is retired). Raises
    :class:`ActivationRefused` for a failed version, one without factors, or the active one."""
    current = list(FactorModel.objects.select_for_update().filter(status=FactorModel.Status.ACTIVE))
    stored = FactorModel.objects.filter(pk=version.pk).values("status", "factors").first()
    if stored is None:
        raise ActivationRefused(f"version {version.pk} does not exist.")
    if stored["status"] == FactorModel.Status.ACTIVE:
        raise ActivationRefused(f"version {version.pk} is already active.")
    if stored["status"] == FactorModel.Status.FAILED or not stored["factors"]:
        raise ActivationRefused(f"version {version.pk} failed to train: it has no model to use.")
    FactorModel.objects.filter(pk__in=[c.pk for c in current]).update(
        status=FactorModel.Status.RETIRED
    )
    version.status = FactorModel.Status.ACTIVE
    version.activated_at = timezone.now()
    version.note = note[:200]
    version.save(update_fields=["status", "activated_at", "note"])
    transaction.on_commit(forget)
    return version


@transaction.atomic
def rollback(*, note: str = "rollback") -> FactorModel:
    """Activate again the version that was active before the current one. Raises
    :class:`ActivationRefused` when there is no earlier one (the current one stays)."""
    current = FactorModel.objects.filter(status=FactorModel.Status.ACTIVE).first()
    earlier = FactorModel.objects.filter(activated_at__isnull=False).exclude(
        status__in=[FactorModel.Status.ACTIVE, FactorModel.Status.FAILED]
    )
    if current is not None and current.activated_at is not None:
        earlier = earlier.filter(activated_at__lt=current.activated_at)
    previous = earlier.order_by("-activated_at").first()
    if previous is None:
        raise ActivationRefused("there is no earlier active version to return to.")
    return activate(previous, note=note)


def deactivate() -> None:
    """No active version: "for you" is co-occurrence again."""
    FactorModel.objects.filter(status=FactorModel.Status.ACTIVE).update(
        status=FactorModel.Status.RETIRED
    )
    transaction.on_commit(forget)
