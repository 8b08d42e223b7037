"""segments_ml_eval finds its data where the project is, at call time (not at import)."""

import pytest
from django.core.management import CommandError, call_command


def test_the_evaluation_data_is_looked_for_where_the_project_is_at_call_time(settings, tmp_path):
    settings.BASE_DIR = tmp_path / "site"
    expected = tmp_path / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
    with pytest.raises(CommandError, match=str(expected)):
        call_command("segments_ml_eval")
    with pytest.raises(CommandError, match=str(tmp_path / "elsewhere")):
        call_command("segments_ml_eval", "--data-dir", str(tmp_path / "elsewhere"))


def test_the_evaluation_is_as_of_a_date_and_ignores_later_events(tmp_path):
    """Issue #12: --as-of leaves out the events after the instant (a file with a later order
    gives the same figures as one without it) and the propensity cut-off follows it."""
    import io

    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    rows = []
    for c in range(40):
        for o in range(1 + c % 4):
            day = 1 + (c * 7 + o * 41) % 300
            rows.append(
                f"{c}{o},X,thing,{1 + o},2011-{1 + day // 28 % 12:02d}-{1 + day % 28:02d} "
                f"10:00,{2.5 + c % 5},{12000 + c},UK\n"
            )
    early = tmp_path / "early.csv"
    early.write_text(header + "".join(rows))
    later = tmp_path / "later.csv"
    later.write_text(header + "".join(rows) + "99,X,thing,50,2011-12-20 10:00,9.0,12001,UK\n")

    def run(path):
        out = io.StringIO()
        call_command(
            "segments_ml_eval",
            "--path",
            str(path),
            "--as-of",
            "2011-12-15",
            "--k-max",
            "3",
            stdout=out,
        )
        lines = out.getvalue().splitlines()
        return [line for line in lines[1:] if " s)" not in line and " in " not in line]

    figures = run(early)
    assert figures == run(later)
    assert any("As of 2011-12-15" in line for line in figures)
    assert any("held out: 2011-09-16" in line for line in figures)  # one horizon before


def test_the_evaluation_file_is_read_through_a_mapping(tmp_path):
    """--mapping: a preset, a JSON file or inline JSON, as for import_events."""
    path = tmp_path / "export.csv"
    path.write_text("kunde,zeit\n")
    with pytest.raises(CommandError, match=r"--mapping: .*not JSON"):
        call_command("segments_ml_eval", "--path", str(path), "--mapping", "{not json")
    with pytest.raises(CommandError, match="--mapping: No mapping 'nope'"):
        call_command("segments_ml_eval", "--path", str(path), "--mapping", "nope")
