import time

from robostack.clock import Rate, now_ns


def test_rate_schedule_does_not_drift_over_many_periods():
    rate = Rate(200.0)
    start = rate.next_deadline_ns - rate.period_ns
    for _ in range(100):
        rate.sleep()
    # deadlines are start + k*period: after 100 periods we are within one period of 0.5 s
    assert abs((now_ns() - start) / 1e9 - 0.5) < 0.01


def test_rate_skips_lost_periods_after_an_overrun_and_counts_it():
    rate = Rate(100.0)
    rate.sleep()
    time.sleep(0.055)  # miss five deadlines
    rate.sleep()
    assert rate.stats.overruns == 1 and rate.stats.skipped >= 4
    t = now_ns()
    rate.sleep()
    assert (now_ns() - t) / 1e6 < 11  # the next wait is a normal one, not a burst
