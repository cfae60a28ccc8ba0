import time

from robostack.clock import Rate, now_ns


def test_rate_schedule_does_not_drift_over_many_periods():
    rate = Rate(200.0)
    start = rate.next_deadline_ns - rate.period_ns
    lateness = [rate.sleep() for _ in range(100)]
    # deadlines stay on the grid start + k*period whatever the wake-up errors were
    k = (rate.next_deadline_ns - start) // rate.period_ns
    assert (rate.next_deadline_ns - start) % rate.period_ns == 0
    assert k == 101 + rate.stats.skipped
    assert min(lateness) >= 0  # never early


def test_rate_skips_lost_periods_after_an_overrun_and_counts_it():
    rate = Rate(100.0)
    rate.sleep()
    time.sleep(0.055)  # miss five deadlines
    rate.sleep()
    assert rate.stats.overruns == 1 and rate.stats.skipped >= 4
    t = now_ns()
    rate.sleep()
    assert (now_ns() - t) / 1e6 < 11  # the next wait is a normal one, not a burst
