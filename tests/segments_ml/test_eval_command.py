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
