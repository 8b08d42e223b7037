"""The offline evaluation's protocol on a small export where the answers are known."""

import csv
import gzip

import pytest

pytest.importorskip("numpy")
pytest.importorskip("scipy")

from recommendations import evaluation

HEADER = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]


def _export(tmp_path, rows):
    path = tmp_path / "retail.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for customer, code, when, quantity in rows:
            writer.writerow(["1", code, code, quantity, when, "1.0", customer, "UK"])
    return path


def test_split_returning_customers_and_the_metrics(tmp_path):
    before, after = "2011-05-01 10:00:00", "2011-10-01 10:00:00"
    rows = [
        # customers 1..4 bought 10 then 11 before the split: 11 goes with 10
        *[(str(c), "10", before, 1) for c in range(1, 5)],
        *[(str(c), "11", "2011-05-02 10:00:00", 1) for c in range(1, 5)],
        ("5", "10", before, 1),  # customer 5 bought 10 only, then 11 and 10 again
        ("5", "11", after, 2),
        ("5", "10", after, 1),
        ("6", "12", after, 1),  # not returning: left out
        ("5", "POST", after, 1),  # not a product
        ("5", "13", after, -1),  # a cancellation
    ]
    data = evaluation.load(_export(tmp_path, rows))
    assert len(data.test) == 1
    (truth,) = data.test.values()
    assert {data.items[i] for i in truth} == {"10", "11"}
    strategies = {s.name: s for s in evaluation.strategies(data, factorisation=False)}
    anyset = evaluation.evaluate(data, strategies["for_you"], new_only=False)
    new = evaluation.evaluate(data, strategies["for_you"], new_only=True)
    assert new.customers == 1 and new.recall == 1.0 and new.hit_rate == 1.0
    assert new.precision == pytest.approx(0.1) and new.ndcg == pytest.approx(1.0)
    # "any item": 10 is a recent item, which for you leaves out; popular tops it up with 10
    assert anyset.recall == 1.0
    again = evaluation.evaluate(data, strategies["buy_again"], new_only=False)
    assert again.recall == 1.0 and again.ndcg == pytest.approx(1.0)
    assert evaluation.evaluate(data, strategies["buy_again"], new_only=True).recall == 1.0
