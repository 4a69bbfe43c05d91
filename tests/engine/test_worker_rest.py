"""The engine worker's rest between passes: none while passes are spaced out, about as long as
the pass under sustained load, never more than the cap."""

from __future__ import annotations

import pytest

from opendeploy.engine.worker import MAX_REST_SECONDS, PASS_CREDIT_SECONDS, PassPacer


def test_passes_spaced_out_by_idle_time_never_rest() -> None:
    pacer = PassPacer()
    now = 0.0
    for _ in range(100):  # 8 ms passes, each after 10 ms of waiting (one host, short hooks)
        rest = pacer.rest_after(now, now + 0.008)
        assert rest == 0.0
        now += 0.018


def test_back_to_back_passes_rest_as_long_as_they_took_once_the_credit_is_spent() -> None:
    pacer = PassPacer()
    now, rests = 0.0, []
    for _ in range(20):
        rest = pacer.rest_after(now, now + 0.03)
        rests.append(rest)
        now += 0.03 + rest  # woken again at once: the next pass starts right after the rest
    assert rests[0] == 0.0  # the first pass is paid from the credit
    assert rests[-5:] == [pytest.approx(0.03)] * 5
    # Under sustained load the engine runs about half the time.
    busy = 20 * 0.03
    assert busy / now == pytest.approx(0.5, abs=0.05)


def test_a_huge_pass_rests_at_most_the_cap_and_its_debt_is_forgotten() -> None:
    pacer = PassPacer()
    rest = pacer.rest_after(0.0, 5.0)
    assert rest == MAX_REST_SECONDS
    # After one rest and a cheap pass, the worker is not still paying for the huge one.
    later = 5.0 + MAX_REST_SECONDS
    assert pacer.rest_after(later, later + 0.001) == pytest.approx(0.001)
    assert pacer.rest_after(later + 1.0, later + 1.001) == 0.0
    # Idle time earns at most the credit's limit, however long it lasts.
    assert pacer.rest_after(later + 100.0, later + 100.0 + 2 * PASS_CREDIT_SECONDS) == (
        pytest.approx(PASS_CREDIT_SECONDS)
    )
