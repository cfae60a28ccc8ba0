"""Episode phases of the sim arm: pure logic on an explicit clock."""

import pytest

from robostack.sim.nodes.episodes import EpisodePlan, EpisodeSequencer

S = 1_000_000_000


def phases(events):
    return [(e.phase, e.index, e.seed) for e in events]


def test_first_reset_waits_then_runs_then_succeeds_after_the_hold_and_moves_to_the_next_seed():
    seq = EpisodeSequencer(EpisodePlan(seed_start=7, episodes=2, time_limit_ns=10 * S, reset_ns=1 * S,
                                       first_reset_ns=3 * S, success_hold_ns=S // 2))
    assert phases(seq.start(0)) == [("reset", 0, 7)]
    assert seq.update(2 * S, False) == []
    assert phases(seq.update(3 * S, False)) == [("running", 0, 7)]
    assert seq.update(4 * S, True) == []  # success must hold
    assert seq.update(4 * S + S // 4, False) == []  # ... without a break
    assert seq.update(5 * S, True) == []
    events = seq.update(5 * S + S // 2, True)
    assert phases(events) == [("success", 0, 7), ("reset", 1, 8)]
    assert events[0].elapsed_s == pytest.approx(2.5)
    assert seq.update(6 * S, False) == []  # later resets take reset_ns, not first_reset_ns
    assert phases(seq.update(6 * S + S // 2, False)) == [("running", 1, 8)]
    events = seq.update(16 * S + S // 2, False)
    assert phases(events) == [("timeout", 1, 8), ("done", 1, 8)]
    assert seq.outcomes == ["success", "timeout"]
    assert seq.update(100 * S, True) == []  # done stays done


def test_zero_reset_time_runs_the_next_episode_at_once_as_lockstep_needs():
    seq = EpisodeSequencer(EpisodePlan(episodes=0, time_limit_ns=S, reset_ns=0, first_reset_ns=0, success_hold_ns=0))
    assert phases(seq.start(0)) == [("reset", 0, 0), ("running", 0, 0)]
    assert phases(seq.update(10, True)) == [("success", 0, 0), ("reset", 1, 1), ("running", 1, 1)]


def test_next_ends_the_episode_unsuccessfully_and_reset_starts_it_over():
    seq = EpisodeSequencer(EpisodePlan(episodes=3, reset_ns=0, first_reset_ns=0))
    seq.start(0)
    events = seq.end_now(5)
    assert phases(events) == [("timeout", 0, 0), ("reset", 1, 1), ("running", 1, 1)]
    assert events[0].reason == "next"
    assert phases(seq.restart(9)) == [("reset", 1, 1), ("running", 1, 1)]
    assert seq.outcomes == ["timeout"]


def test_bad_plans_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="episodes must be >= 0"):
        EpisodePlan(episodes=-1)
    with pytest.raises(ValueError, match="time limit"):
        EpisodePlan(time_limit_ns=0)
