"""Content-based "similar pages": TF-IDF vectors of the items' text, cosine similarity.

Needs scikit-learn (the optional ``[ml]`` extra). Without it :func:`build_similar` builds
nothing and "similar pages" falls back on "popular" (:data:`recommendations.lists.FALLBACKS`).
"""

import importlib.util

from django.db import transaction

from .conf import get_setting
from .models import Item, SimilarList


def available() -> bool:
    return importlib.util.find_spec("sklearn") is not None


def build_similar() -> int:
    """Every recommendable item's most similar recommendable items by text; returns how many
    lists were written (0 without scikit-learn or without two items with text)."""
    if not available():
        return 0
    from sklearn.feature_extraction.text import TfidfVectorizer

    rows = list(
        Item.objects.filter(recommendable=True).exclude(text="").values_list("page_id", "text")
    )
    if len(rows) < 2:
        SimilarList.objects.all().delete()
        return 0
    ids = [r[0] for r in rows]
    matrix = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=1).fit_transform(
        [r[1] for r in rows]
    )
    length = int(get_setting("RECOMMENDATIONS_LIST_LENGTH"))
    lists = []
    for start in range(0, len(ids), 500):
        block = (matrix[start : start + 500] @ matrix.T).toarray()
        for n, row in enumerate(block):
            row[start + n] = 0.0  # not similar to itself
            order = row.argsort()[::-1][:length]
            lists.append(
                SimilarList(item=ids[start + n], similar=[ids[j] for j in order if row[j] > 0])
            )
    with transaction.atomic():
        SimilarList.objects.all().delete()
        SimilarList.objects.bulk_create(lists, batch_size=1000)
    return len(lists)
