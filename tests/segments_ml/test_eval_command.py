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


def test_the_evaluation_file_is_read_through_a_mapping(tmp_path):
    """--mapping: a preset, a JSON file or inline JSON, as for import_events."""
    path = tmp_path / "export.csv"
    path.write_text("kunde,zeit\n")
    with pytest.raises(CommandError, match=r"--mapping: .*not JSON"):
        call_command("segments_ml_eval", "--path", str(path), "--mapping", "{not json")
    with pytest.raises(CommandError, match="--mapping: No mapping 'nope'"):
        call_command("segments_ml_eval", "--path", str(path), "--mapping", "nope")
