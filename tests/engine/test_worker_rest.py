"""The engine worker's rest between passes: none for cheap passes, bounded for costly ones."""

from __future__ import annotations

from opendeploy.engine.worker import CHEAP_PASS_SECONDS, MAX_REST_SECONDS, rest_after_pass


def test_cheap_passes_run_back_to_back() -> None:
    assert rest_after_pass(0.0) == 0.0
    assert rest_after_pass(CHEAP_PASS_SECONDS / 2) == 0.0


def test_a_costly_pass_rests_as_long_as_it_took_up_to_the_cap() -> None:
    assert rest_after_pass(0.05) == 0.05
    assert rest_after_pass(5.0) == MAX_REST_SECONDS
