"""Action executor: interpolation, the three modes, the late-action guard, stats and the frozen
prefix, all on a synthetic clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robostack.chunks import ActionChunk
from robostack.executor import (
    ActionExecutor,
    ChunkTrajectory,
    ExecutorConfig,
    Interpolation,
    minimum_jerk_ramp,
)

MS = 1_000_000
TICK = 2 * MS  # 500 Hz servo
DT = 20 * MS  # 50 Hz policy


def chunk(values, start_ns, dt_ns=DT, obs_ns=None) -> ActionChunk:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    return ActionChunk(actions=arr, start_ns=start_ns, dt_ns=dt_ns,
                       obs_stamp_ns=start_ns if obs_ns is None else obs_ns)


def demo(t_s: np.ndarray) -> np.ndarray:
    """A smooth 2-joint reference motion."""
    t_s = np.asarray(t_s, dtype=np.float64)
    return np.stack([0.6 * np.sin(1.3 * t_s), 0.4 * np.cos(0.7 * t_s) - 0.2 * np.sin(2.1 * t_s)], axis=-1)


# -- interpolation ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(Interpolation))
def test_every_interpolation_passes_through_the_waypoints(kind):
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(7, 3))
    traj = ChunkTrajectory(chunk(pts, 1_000 * MS), kind)
    for i in range(7):
        np.testing.assert_allclose(traj.sample(1_000 * MS + i * DT), pts[i], atol=1e-12)


def test_linear_interpolation_is_the_straight_line_between_waypoints():
    traj = ChunkTrajectory(chunk([0.0, 1.0, 3.0], 0), Interpolation.LINEAR)
    assert traj.sample(DT // 4)[0] == pytest.approx(0.25)
    assert traj.sample(DT + DT // 2)[0] == pytest.approx(2.0)


def test_cubic_interpolation_reproduces_a_quadratic_between_interior_waypoints():
    t = np.arange(8) * DT / 1e9
    traj = ChunkTrajectory(chunk(3.0 * t**2 - t, 0), Interpolation.CUBIC)
    for t_ns in range(DT, 6 * DT, DT // 7):  # interior segments: central differences are exact
        ts = t_ns / 1e9
        assert traj.sample(t_ns)[0] == pytest.approx(3.0 * ts**2 - ts, abs=1e-12)


@pytest.mark.parametrize("kind", [Interpolation.CUBIC, Interpolation.MINIMUM_JERK])
def test_smooth_interpolations_have_continuous_velocity_at_waypoints(kind):
    rng = np.random.default_rng(2)
    traj = ChunkTrajectory(chunk(rng.normal(size=8), 0), kind)
    h = 1_000  # 1 µs
    for i in range(1, 7):
        knot = i * DT
        left = (traj.sample(knot) - traj.sample(knot - h)) / h
        right = (traj.sample(knot + h) - traj.sample(knot)) / h
        assert left[0] == pytest.approx(right[0], rel=1e-3, abs=1e-9)
    # Linear, in contrast, has a kink at the knots of a zig-zag.
    lin = ChunkTrajectory(chunk([0.0, 1.0, 0.0], 0), Interpolation.LINEAR)
    assert (lin.sample(DT) - lin.sample(DT - h))[0] > 0 > (lin.sample(DT + h) - lin.sample(DT))[0]


def test_minimum_jerk_interpolation_has_continuous_acceleration_at_waypoints():
    rng = np.random.default_rng(5)
    traj = ChunkTrajectory(chunk(rng.normal(size=8), 0), Interpolation.MINIMUM_JERK)
    cubic = ChunkTrajectory(traj.chunk, Interpolation.CUBIC)
    h = 10_000  # 10 µs

    def accel(tr, t):
        return (tr.sample(t + h) - 2 * tr.sample(t) + tr.sample(t - h))[0] / h**2

    for i in range(1, 7):
        knot = i * DT
        cubic_jump = abs(accel(cubic, knot + 2 * h) - accel(cubic, knot - 2 * h))
        smooth_jump = abs(accel(traj, knot + 2 * h) - accel(traj, knot - 2 * h))
        assert cubic_jump > 0 and smooth_jump < 0.05 * cubic_jump


def test_trajectory_holds_the_end_waypoints_outside_its_span():
    traj = ChunkTrajectory(chunk([1.0, 2.0], 100 * MS), Interpolation.CUBIC)
    assert traj.sample(0)[0] == 1.0
    assert traj.sample(10_000 * MS)[0] == 2.0


def test_minimum_jerk_ramp_is_flat_at_both_ends():
    assert minimum_jerk_ramp(0.0) == 0.0 and minimum_jerk_ramp(1.0) == 1.0
    assert minimum_jerk_ramp(0.5) == pytest.approx(0.5)
    assert minimum_jerk_ramp(1e-3) < 1e-8 and 1 - minimum_jerk_ramp(1 - 1e-3) < 1e-8


# -- late-action guard, validation ------------------------------------------------------------

def test_chunk_entirely_in_the_past_is_rejected_and_counted():
    ex = ActionExecutor(ExecutorConfig(mode="async"))
    now = 1_000 * MS
    # Last action at now + 10 ms: within the drop margin, so nothing of it can still execute.
    late = chunk(np.zeros(5), now - 4 * DT + 10 * MS)
    assert not ex.submit(late, now)
    assert ex.stats.chunks_rejected == {"late": 1}
    assert ex.command(now) is None
    # One just beyond the margin is accepted.
    assert ex.submit(chunk(np.zeros(5), now - 4 * DT + 11 * MS), now)
    assert ex.stats.chunks_accepted == 1


def test_actions_within_the_drop_margin_never_execute():
    ex = ActionExecutor(ExecutorConfig(mode="async", blend_ns=0, interpolation="linear"))
    ex.submit(chunk(np.zeros(50), 0), 0)
    now = 300 * MS
    assert ex.submit(chunk(np.ones(50), 0, obs_ns=1), now)  # computed from a newer observation
    # Until now + 10 ms the old chunk still runs; after it, the new one.
    for t in range(now, now + 10 * MS + 1, TICK):
        assert ex.command(t)[0] == 0.0
    assert ex.command(now + 12 * MS)[0] == 1.0


def test_chunk_with_non_finite_action_is_rejected():
    ex = ActionExecutor()
    assert not ex.submit(chunk([0.0, math.nan, 1.0], 0), 0)
    assert ex.stats.chunks_rejected == {"non_finite": 1}


def test_chunk_from_an_older_observation_than_the_current_one_is_rejected():
    ex = ActionExecutor()
    assert ex.submit(chunk(np.zeros(50), 0, obs_ns=100 * MS), 100 * MS)
    assert not ex.submit(chunk(np.zeros(50), 50 * MS, obs_ns=50 * MS), 110 * MS)
    assert ex.stats.chunks_rejected == {"stale": 1}


def test_chunk_of_another_action_dimension_is_a_clear_error():
    ex = ActionExecutor()
    ex.submit(chunk(np.zeros((10, 2)), 0), 0)
    with pytest.raises(ValueError, match="action dimension 3 differs"):
        ex.submit(chunk(np.zeros((10, 3)), 0), 0)


def test_time_going_backwards_is_a_clear_error():
    ex = ActionExecutor()
    ex.command(10 * MS)
    with pytest.raises(ValueError, match="backwards"):
        ex.command(5 * MS)


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="execute_steps"):
        ExecutorConfig(execute_steps=0)
    with pytest.raises(ValueError, match="mode"):
        ExecutorConfig(mode="sometimes")
    with pytest.raises(ValueError, match="blend_ns"):
        ExecutorConfig(blend_ns=-1)


# -- receding horizon -------------------------------------------------------------------------

def test_receding_horizon_executes_k_actions_then_holds_and_asks():
    ex = ActionExecutor(ExecutorConfig(mode="receding_horizon", execute_steps=4, blend_ns=0,
                                       interpolation="linear"))
    assert ex.wants_chunk(0)
    ex.note_request(0)
    assert not ex.wants_chunk(TICK)  # one request in flight
    arrive = 50 * MS
    values = np.arange(16, dtype=np.float64)
    assert ex.submit(chunk(values, 0), arrive)
    # Actions at 0..60 ms are in the past (≤ 60 ms = arrive + margin); 80..140 ms execute.
    assert ex.command(80 * MS)[0] == 4.0
    assert ex.command(140 * MS)[0] == 7.0
    assert not ex.wants_chunk(138 * MS)
    assert ex.wants_chunk(140 * MS)
    assert ex.command(142 * MS) is None  # synchronous: the arm holds while the next is computed
    assert ex.stats.pauses == 1 and ex.stats.gap_ticks == 1


def test_receding_horizon_blends_from_the_held_position_after_a_pause():
    ex = ActionExecutor(ExecutorConfig(mode="receding_horizon", execute_steps=4, blend_ns=40 * MS,
                                       interpolation="linear"))
    ex.submit(chunk(np.zeros(10), 0), 0)  # executes the actions at 20..80 ms
    ex.command(40 * MS)
    ex.command(80 * MS)
    assert ex.command(82 * MS) is None
    ex.submit(chunk(np.ones(10), 90 * MS, obs_ns=90 * MS), 90 * MS)  # takes over at 101 ms
    first = ex.command(104 * MS)[0]
    assert 0.0 < first < 0.1  # fades in from the hold instead of jumping to 1
    assert ex.command(150 * MS)[0] == pytest.approx(1.0)


# -- temporal ensembling ----------------------------------------------------------------------

def test_temporal_ensemble_weights_the_oldest_chunk_most():
    m = 0.5
    ex = ActionExecutor(ExecutorConfig(mode="temporal_ensemble", ensemble_m=m))
    ex.submit(chunk(np.full(20, 1.0), 0, obs_ns=0), 0)
    ex.submit(chunk(np.full(20, 2.0), 0, obs_ns=10 * MS), 20 * MS)
    ex.submit(chunk(np.full(20, 4.0), 0, obs_ns=20 * MS), 40 * MS)
    w = np.exp(-m * np.arange(3))
    expected = (w * np.array([1.0, 2.0, 4.0])).sum() / w.sum()
    assert ex.command(100 * MS)[0] == pytest.approx(expected)
    # Before the newest chunk's drop margin has passed only the two older ones count.
    ex2 = ActionExecutor(ExecutorConfig(mode="temporal_ensemble", ensemble_m=m))
    ex2.submit(chunk(np.full(20, 1.0), 0), 0)
    ex2.submit(chunk(np.full(20, 2.0), 0, obs_ns=10 * MS), 20 * MS)
    w2 = np.exp(-m * np.arange(2))
    assert ex2.command(25 * MS)[0] == pytest.approx(1.0)
    assert ex2.command(40 * MS)[0] == pytest.approx((w2 * [1.0, 2.0]).sum() / w2.sum())


def test_temporal_ensemble_with_the_act_default_is_nearly_an_average():
    ex = ActionExecutor(ExecutorConfig(mode="temporal_ensemble"))
    assert ex.config.ensemble_m == 0.01
    for i in range(5):
        ex.submit(chunk(np.full(50, float(i)), 0, obs_ns=i), i * 20 * MS)
    assert ex.command(200 * MS)[0] == pytest.approx(2.0, abs=0.02)


def test_temporal_ensemble_asks_every_query_period():
    ex = ActionExecutor(ExecutorConfig(mode="temporal_ensemble", query_period_ns=20 * MS,
                                       request_timeout_ns=10 * MS))
    assert ex.wants_chunk(0)
    ex.note_request(0)
    assert not ex.wants_chunk(5 * MS)
    ex.submit(chunk(np.zeros(30), 0), 8 * MS)
    assert not ex.wants_chunk(18 * MS)
    assert ex.wants_chunk(20 * MS)


# -- asynchronous execution -------------------------------------------------------------------

class SimulatedPolicy:
    """Returns the demo motion from the observation time on, offset by a random per-chunk bias
    (a multimodal policy picks a slightly different mode each time) and, when given, conditioned
    on a frozen prefix: the first actions equal the prefix, the rest fade to its own prediction."""

    def __init__(self, horizon=50, bias=0.05, seed=0):
        self.horizon = horizon
        self.bias = bias
        self.rng = np.random.default_rng(seed)

    def act(self, obs_ns: int, prefix: np.ndarray | None = None) -> ActionChunk:
        t = (obs_ns + np.arange(self.horizon) * DT) / 1e9
        actions = demo(t) + self.rng.normal(0.0, self.bias, size=2)
        if prefix is not None and len(prefix):
            d = len(prefix)
            actions[:d] = prefix
            fade = np.clip((np.arange(self.horizon) - d + 1) / 10.0, 0.0, 1.0)[:, None]
            anchor = prefix[-1] - (demo(t[d - 1]) + 0.0)
            actions[d:] = demo(t[d:]) + (1.0 - fade[d:]) * anchor + fade[d:] * (actions[d:] - demo(t[d:]))
        return ActionChunk(actions=actions, start_ns=obs_ns, dt_ns=DT, obs_stamp_ns=obs_ns)


def run_closed_loop(ex: ActionExecutor, latency_ns: int, seconds: float, policy=None, use_prefix=False):
    """Ticks the executor at 500 Hz; requests go to the policy and come back ``latency_ns`` later."""
    policy = policy or SimulatedPolicy()
    in_flight: list[tuple[int, ActionChunk]] = []
    commands = []
    for k in range(int(seconds * 500)):
        now = k * TICK
        for item in [c for c in in_flight if c[0] <= now]:
            in_flight.remove(item)
            ex.submit(item[1], now)
        if ex.wants_chunk(now):
            prefix = ex.frozen_prefix(now, latency_ns, DT) if use_prefix else None
            ex.note_request(now)
            in_flight.append((now + latency_ns, policy.act(now, prefix)))
        commands.append((now, ex.command(now)))
    return commands


@pytest.mark.parametrize("latency_ms", [100, 200, 300])
def test_async_execution_never_pauses_under_inference_latency(latency_ms):
    ex = ActionExecutor(ExecutorConfig(mode="async", blend_ns=100 * MS))
    commands = run_closed_loop(ex, latency_ms * MS, seconds=20.0)
    first = next(i for i, (_, c) in enumerate(commands) if c is not None)
    assert all(c is not None for _, c in commands[first:])
    assert ex.stats.gap_ticks == 0 and ex.stats.pauses == 0
    assert ex.stats.chunks_accepted > 15 and not ex.stats.chunks_rejected
    # The stream follows the demonstration (within the policy's per-chunk bias).
    errors = [np.abs(c - demo(t / 1e9)).max() for t, c in commands[first:]]
    assert max(errors) < 0.25
    assert ex.latency_estimate_ns == latency_ms * MS


def test_synchronous_receding_horizon_pauses_under_the_same_latency():
    ex = ActionExecutor(ExecutorConfig(mode="receding_horizon", execute_steps=8))
    run_closed_loop(ex, 200 * MS, seconds=10.0)
    assert ex.stats.pauses > 10
    assert ex.stats.gap_ticks > 500


def test_async_blending_makes_chunk_boundaries_much_smoother_than_naive_switching():
    jumps = {}
    for name, blend in (("naive", 0), ("blended", 100 * MS)):
        ex = ActionExecutor(ExecutorConfig(mode="async", blend_ns=blend))
        run_closed_loop(ex, 200 * MS, seconds=20.0, policy=SimulatedPolicy(seed=3))
        jumps[name] = np.asarray(ex.stats.boundary_jumps)
        assert len(jumps[name]) >= 15
    # Naive switching jumps by the mode difference (bias 0.05 per joint, so ~0.07 typical).
    assert np.mean(jumps["naive"]) > 0.03
    assert np.mean(jumps["naive"]) > 10 * np.mean(jumps["blended"])


def test_boundary_jump_measures_the_offset_between_old_and_new_chunk():
    ex = ActionExecutor(ExecutorConfig(mode="async", blend_ns=0, interpolation="linear"))
    ex.submit(chunk(np.linspace(0.0, 0.5, 50), 0), 0)
    for t in range(0, 200 * MS, TICK):
        ex.command(t)
    ex.submit(chunk(np.linspace(0.0, 0.5, 50) + 0.3, 0, obs_ns=1), 200 * MS)
    for t in range(200 * MS, 300 * MS, TICK):
        ex.command(t)
    assert list(ex.stats.boundary_jumps) == [pytest.approx(0.3, abs=1e-9)]


def test_async_asks_early_enough_for_the_measured_latency():
    cfg = ExecutorConfig(mode="async", blend_ns=50 * MS, request_slack_ns=20 * MS)
    ex = ActionExecutor(cfg)
    ex.note_request(0)
    ex.submit(chunk(np.zeros(50), 0), 150 * MS)  # measured latency 150 ms; chunk ends at 980 ms
    lead = 150 * MS + cfg.drop_margin_ns + 50 * MS + 20 * MS
    assert not ex.wants_chunk(980 * MS - lead - TICK)
    assert ex.wants_chunk(980 * MS - lead)
    # An explicit latency overrides the measurement.
    assert ex.wants_chunk(500 * MS, latency_ns=400 * MS)


def test_async_gives_up_on_a_lost_request_after_the_timeout():
    ex = ActionExecutor(ExecutorConfig(mode="async", request_timeout_ns=500 * MS))
    ex.note_request(0)
    assert not ex.wants_chunk(499 * MS)
    assert ex.wants_chunk(500 * MS)


def test_async_replans_periodically_when_asked_to():
    ex = ActionExecutor(ExecutorConfig(mode="async", replan_every_ns=200 * MS, initial_latency_ns=0))
    ex.submit(chunk(np.zeros(100), 0), 0)  # 2 s of actions
    assert not ex.wants_chunk(150 * MS)
    assert ex.wants_chunk(211 * MS)


def test_async_with_chunks_arriving_faster_than_the_blend_stays_continuous():
    ex = ActionExecutor(ExecutorConfig(mode="async", blend_ns=100 * MS, replan_every_ns=20 * MS,
                                       initial_latency_ns=50 * MS))
    commands = run_closed_loop(ex, 50 * MS, seconds=5.0, policy=SimulatedPolicy(seed=6))
    first = next(i for i, (_, c) in enumerate(commands) if c is not None)
    stream = np.asarray([c for _, c in commands[first:]])
    assert len(stream) == len(commands) - first  # no gaps
    assert ex.stats.chunks_accepted > 60
    # Overlapping blends still never jump by more than a fraction of the per-chunk bias.
    assert np.abs(np.diff(stream, axis=0)).max() < 0.02


def test_chunk_scheduled_in_the_future_starts_at_its_own_stamp():
    ex = ActionExecutor(ExecutorConfig(mode="async", blend_ns=0, interpolation="linear"))
    ex.submit(chunk(np.zeros(50), 0), 0)
    ex.submit(chunk(np.ones(50), 300 * MS, obs_ns=100 * MS), 100 * MS)
    assert ex.command(298 * MS)[0] == 0.0
    assert ex.command(300 * MS)[0] == 1.0


def test_reset_forgets_the_plan():
    ex = ActionExecutor()
    ex.submit(chunk(np.zeros(50), 0), 0)
    assert ex.command(20 * MS) is not None
    ex.reset()
    assert ex.command(22 * MS) is None and ex.wants_chunk(22 * MS)


# -- frozen prefix ----------------------------------------------------------------------------

def test_frozen_prefix_is_the_plan_on_the_next_chunks_grid_during_inference():
    ex = ActionExecutor(ExecutorConfig(mode="async", interpolation="cubic"))
    c = chunk(demo(np.arange(50) * DT / 1e9), 0)
    ex.submit(c, 0)
    now, latency = 105 * MS, 200 * MS
    prefix = ex.frozen_prefix(now, latency)
    # i * 20 ms ≤ 210 ms for i = 0..10
    assert prefix.shape == (11, 2)
    traj = ChunkTrajectory(c, Interpolation.CUBIC)
    for i in range(11):
        np.testing.assert_allclose(prefix[i], traj.sample(now + i * DT))


def test_frozen_prefix_holds_the_last_position_past_the_plan_and_is_empty_without_one():
    ex = ActionExecutor()
    assert ex.frozen_prefix(0, 100 * MS).shape[0] == 0
    ex.submit(chunk(np.array([[0.0], [1.0], [2.0]]), 0), 0)
    prefix = ex.frozen_prefix(30 * MS, 100 * MS)
    assert prefix[-1, 0] == 2.0 and prefix.shape == (6, 1)


def test_prefix_conditioned_chunks_switch_without_a_jump_even_without_blending():
    ex = ActionExecutor(ExecutorConfig(mode="async", blend_ns=0))
    run_closed_loop(ex, 200 * MS, seconds=10.0, policy=SimulatedPolicy(seed=4), use_prefix=True)
    naive = ActionExecutor(ExecutorConfig(mode="async", blend_ns=0))
    run_closed_loop(naive, 200 * MS, seconds=10.0, policy=SimulatedPolicy(seed=4))
    assert np.mean(ex.stats.boundary_jumps) < 0.1 * np.mean(naive.stats.boundary_jumps)
    assert ex.stats.gap_ticks == 0


# -- the benchmark command ----------------------------------------------------------------------

def test_bench_executor_prints_a_json_report_with_no_async_pauses(capsys):
    import argparse
    import json

    from robostack.bench import executor as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--duration", "1.5", "--replay-duration", "5", "--json"])
    assert bench.run(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["period_error_ms"]["n"] == 750
    assert [r["latency_ms"] for r in report["latency_runs"]] == [100.0, 200.0, 300.0]
    assert all(r["pauses"] == 0 and r["gap_ticks"] == 0 for r in report["latency_runs"])
    for entry in report["boundary_discontinuity"]["by_latency_ms"].values():
        assert entry["ratio_mean"] > 5 and entry["async_pauses"] == 0
    assert all(s["pauses"] > 0 for s in report["synchronous_receding_horizon"].values())
    assert report["targets"]["async_never_pauses"] is True


def test_bench_executor_rejects_a_trajectory_of_the_wrong_shape(tmp_path):
    import argparse

    from robostack.bench import executor as bench

    path = tmp_path / "flat.npy"
    np.save(path, np.zeros(10))
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    with pytest.raises(SystemExit, match=r"expected an array \(T, D\)"):
        bench.run(parser.parse_args(["--trajectory", str(path), "--duration", "1"]))
