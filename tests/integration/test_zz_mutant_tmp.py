import etl.export_marts as em
from tests.integration.test_export_marts import *  # noqa
def test_mutant(data_dir, monkeypatch):
    monkeypatch.setattr(em, "RECENT_DAYS", 0); monkeypatch.setattr(em, "MIN_PRICES", 0)
    test_view_marts_are_refreshed_incrementally_and_equal_a_full_recomputation(data_dir)
