"""Safety layer: every rule, asserted on the positions it tells the driver to send, on a
synthetic 500 Hz clock."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robostack.chunks import ActionChunk
from robostack.executor import ActionExecutor, ExecutorConfig
from robostack.safety import SafetyConfig, SafetyLayer, SafetyState

MS = 1_000_000
TICK = 2 * MS
DT_S = TICK / 1e9
N = 3
LOWER = [-1.0, -2.0, -0.5]
UPPER = [1.0, 2.0, 0.5]


def config(**overrides) -> SafetyConfig:
    base = dict(position_lower=LOWER, position_upper=UPPER, max_velocity=2.0, servo_period_ns=TICK)
    base.update(overrides)
    return SafetyConfig(**base)


def settled(layer: SafetyLayer, position, start_tick: int = 0, ticks: int = 600) -> int:
    """Drive the layer with a constant command until it is ACTIVE at ``position``; returns the
    next tick index."""
    position = np.asarray(position, dtype=np.float64)
    k = start_tick
    for k in range(start_tick, start_tick + ticks):
        out = layer.step(k * TICK, position, position)
        if out.state is SafetyState.ACTIVE and np.allclose(out.positions, position):
            return k + 1
    raise AssertionError(f"layer never settled at {position}: {out}")


# -- config ------------------------------------------------------------------------------------

def test_config_errors_name_the_bad_field():
    with pytest.raises(ValueError, match="position_lower must be finite and below"):
        config(position_lower=[0.0, 0.0, 0.0], position_upper=[1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="max_velocity must be a scalar or 3 values"):
        config(max_velocity=[1.0, 2.0])
    with pytest.raises(ValueError, match="max_velocity must be finite and > 0"):
        config(max_velocity=0.0)
    with pytest.raises(ValueError, match="needs a safe_pose"):
        config(alarm_reaction="retreat")
    with pytest.raises(ValueError, match="safe_pose must lie within"):
        config(safe_pose=[0.0, 0.0, 3.0])
    with pytest.raises(ValueError, match="alarm_reaction must be one of"):
        config(alarm_reaction="panic")
    with pytest.raises(ValueError, match="forward_kinematics"):
        SafetyLayer(config(workspace_lower=[0, 0, 0], workspace_upper=[1, 1, 1]))


def test_measured_positions_of_the_wrong_shape_are_a_clear_error():
    layer = SafetyLayer(config())
    with pytest.raises(ValueError, match=r"measured positions must have shape \(3,\)"):
        layer.step(0, None, np.zeros(4))


# -- hold within one servo period --------------------------------------------------------------

@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_command_is_replaced_by_hold_on_the_same_tick(bad):
    layer = SafetyLayer(config())
    k = settled(layer, [0.2, 0.1, 0.0])
    out = layer.step(k * TICK, np.array([0.3, bad, 0.0]), np.array([0.2, 0.1, 0.0]))
    np.testing.assert_array_equal(out.positions, [0.2, 0.1, 0.0])
    assert out.state is SafetyState.HOLDING and "non_finite" in out.reasons
    assert layer.stats["non_finite"] == 1


def test_huge_jump_is_rejected_and_held_on_the_same_tick():
    layer = SafetyLayer(config(max_jump=0.1))
    k = settled(layer, [0.2, 0.1, 0.0])
    out = layer.step(k * TICK, np.array([0.9, 0.1, 0.0]), np.array([0.2, 0.1, 0.0]))
    np.testing.assert_array_equal(out.positions, [0.2, 0.1, 0.0])
    assert "jump" in out.reasons and layer.stats["jump"] == 1
    # The stream continuing where it was is accepted again.
    out = layer.step((k + 1) * TICK, np.array([0.201, 0.1, 0.0]), np.array([0.2, 0.1, 0.0]))
    assert out.state is SafetyState.ACTIVE and out.positions[0] == pytest.approx(0.201)


def test_jump_without_a_jump_limit_is_followed_at_the_velocity_limit():
    layer = SafetyLayer(config())
    k = settled(layer, [0.0, 0.0, 0.0])
    out = layer.step(k * TICK, np.array([0.9, 0.0, 0.0]), np.zeros(3))
    assert out.positions[0] == pytest.approx(2.0 * DT_S)
    assert "velocity_limit" in out.reasons


def test_a_late_tick_moves_as_far_as_the_elapsed_time_allows_but_at_most_two_periods():
    layer = SafetyLayer(config(max_velocity=1.0))
    k = settled(layer, [0.0, 0.0, 0.0])
    out = layer.step(k * TICK + 1 * MS, np.array([0.9, 0.0, 0.0]), np.zeros(3))  # 1.5 periods after the last
    assert out.positions[0] == pytest.approx(1.0 * 3 * MS / 1e9)
    out2 = layer.step(k * TICK + 31 * MS, np.array([0.9, 0.0, 0.0]), out.positions)  # a 30 ms stall
    assert out2.positions[0] - out.positions[0] == pytest.approx(1.0 * 2 * DT_S)


def test_out_of_range_command_is_clamped_to_the_limit():
    layer = SafetyLayer(config(max_velocity=1000.0))
    k = settled(layer, [0.9, 0.0, 0.0])
    out = layer.step(k * TICK, np.array([1.5, -9.0, 0.0]), np.array([0.9, 0.0, 0.0]))
    assert out.positions[0] == pytest.approx(1.0)
    assert out.positions[1] >= -2.0
    assert "position_limit" in out.reasons


def test_out_of_range_command_is_held_when_configured_to_reject():
    layer = SafetyLayer(config(out_of_range="reject"))
    k = settled(layer, [0.9, 0.0, 0.0])
    out = layer.step(k * TICK, np.array([1.01, 0.0, 0.0]), np.array([0.9, 0.0, 0.0]))
    np.testing.assert_array_equal(out.positions, [0.9, 0.0, 0.0])
    assert "out_of_range" in out.reasons


def test_command_of_the_wrong_shape_is_held_and_counted():
    layer = SafetyLayer(config())
    k = settled(layer, [0.1, 0.0, 0.0])
    out = layer.step(k * TICK, np.zeros(5), np.array([0.1, 0.0, 0.0]))
    np.testing.assert_array_equal(out.positions, [0.1, 0.0, 0.0])
    assert "bad_shape" in out.reasons


def test_workspace_box_rejects_a_command_whose_tip_leaves_it():
    def tip(q):  # a planar 2-link arm, links of 0.5 m, third joint ignored
        x = 0.5 * np.cos(q[0]) + 0.5 * np.cos(q[0] + q[1])
        y = 0.5 * np.sin(q[0]) + 0.5 * np.sin(q[0] + q[1])
        return np.array([[0.5 * np.cos(q[0]), 0.5 * np.sin(q[0]), 0.0], [x, y, 0.0]])

    layer = SafetyLayer(config(workspace_lower=[-1, -0.2, -0.1], workspace_upper=[1, 1, 0.1]), tip)
    k = settled(layer, [0.3, 0.2, 0.0])
    out = layer.step(k * TICK, np.array([-0.6, 0.2, 0.0]), np.array([0.3, 0.2, 0.0]))  # y < -0.2
    np.testing.assert_array_equal(out.positions, [0.3, 0.2, 0.0])
    assert "workspace" in out.reasons and layer.stats["workspace"] == 1


# -- rate limits -------------------------------------------------------------------------------

def test_velocity_and_acceleration_limits_bound_every_step_and_land_on_the_target():
    layer = SafetyLayer(config(max_velocity=1.0, max_acceleration=10.0))
    k = settled(layer, [0.0, 0.0, 0.0])
    positions = [np.zeros(3)]
    for i in range(k, k + 1000):
        out = layer.step(i * TICK, np.array([0.8, -1.0, 0.0]), positions[-1])
        positions.append(out.positions)
    q = np.asarray(positions)
    v = np.diff(q, axis=0) / DT_S
    a = np.diff(v, axis=0) / DT_S
    assert np.abs(v).max() <= 1.0 + 1e-9
    assert np.abs(a).max() <= 10.0 + 1e-6
    np.testing.assert_allclose(q[-1], [0.8, -1.0, 0.0], atol=1e-9)
    assert q[:, 0].max() <= 0.8 + 1e-3 and q[:, 1].min() >= -1.0 - 1e-3  # no real overshoot
    assert layer.stats["velocity_limit"] > 0 and layer.stats["acceleration_limit"] > 0


def test_a_feasible_trajectory_passes_through_unchanged():
    layer = SafetyLayer(config(max_velocity=1.0, max_acceleration=10.0))
    t = np.arange(1500) * DT_S
    # Starts at rest where the arm is; peak speeds 0.75 rad/s, accelerations ≤ 1.2 rad/s².
    traj = np.stack([0.5 * (1 - np.cos(1.5 * t)), 0.8 * np.cos(0.9 * t), 0.2 * np.cos(2 * t)], axis=1)
    sent = []
    for i, q in enumerate(traj):
        sent.append(layer.step(i * TICK, q, sent[-1] if sent else traj[0]).positions)
    np.testing.assert_allclose(np.asarray(sent), traj, atol=1e-12)
    assert layer.state is SafetyState.ACTIVE
    assert set(layer.stats) == set()


def test_a_trajectory_starting_in_motion_is_caught_up_then_passes_unchanged():
    layer = SafetyLayer(config(max_velocity=1.0, max_acceleration=10.0))
    t = np.arange(1500) * DT_S
    traj = np.stack([0.5 * np.sin(1.5 * t), 0.8 * np.sin(0.9 * t + 1), 0.2 * np.cos(2 * t)], axis=1)
    sent = []
    for i, q in enumerate(traj):
        sent.append(layer.step(i * TICK, q, sent[-1] if sent else traj[0]).positions)
    sent = np.asarray(sent)
    # Accelerating from rest to 0.75 rad/s lags the target; the limiter catches up within a
    # fraction of a second and from then on the command passes exactly.
    caught_up = int(np.nonzero(np.abs(sent - traj).max(axis=1) > 1e-12)[0].max()) + 1
    assert 0 < caught_up < 250
    np.testing.assert_allclose(sent[caught_up:], traj[caught_up:], atol=1e-12)
    v = np.diff(sent, axis=0) / DT_S
    assert np.abs(v).max() <= 1.0 + 1e-9 and np.abs(np.diff(v, axis=0)).max() / DT_S <= 10.0 + 1e-6


# -- watchdog ----------------------------------------------------------------------------------

def test_silence_holds_at_once_and_stops_after_the_watchdog_time():
    layer = SafetyLayer(config(stop_after_ns=200 * MS, stop_action="torque_off"))
    k = settled(layer, [0.3, 0.0, 0.0])
    last_valid = (k - 1) * TICK
    measured = np.array([0.3, 0.0, 0.0])
    out = layer.step(k * TICK, None, measured)
    assert out.state is SafetyState.HOLDING and out.torque_enabled
    np.testing.assert_array_equal(out.positions, measured)
    i = k
    while layer.state is SafetyState.HOLDING:
        i += 1
        out = layer.step(i * TICK, None, measured)
    assert out.state is SafetyState.STOPPED and not out.torque_enabled and out.positions is None
    assert i * TICK - last_valid == 200 * MS  # exactly at the watchdog time, on the servo grid
    assert layer.stats["watchdog_stop"] == 1


def test_stopped_arm_ignores_commands_until_reset_then_ramps_from_the_measured_position():
    layer = SafetyLayer(config(stop_after_ns=100 * MS, stop_action="torque_off", ramp_velocity=0.5))
    k = settled(layer, [0.3, 0.0, 0.0])
    for i in range(k, k + 60):
        layer.step(i * TICK, None, np.array([0.3, 0.0, 0.0]))
    assert layer.state is SafetyState.STOPPED
    sagged = np.array([0.1, 0.0, 0.0])  # the arm drooped while torque was off
    out = layer.step((k + 60) * TICK, np.array([0.3, 0.0, 0.0]), sagged)
    assert out.state is SafetyState.STOPPED and out.positions is None
    assert "stopped_needs_reset" in out.reasons
    layer.reset((k + 60) * TICK)
    out = layer.step((k + 61) * TICK, np.array([0.3, 0.0, 0.0]), sagged)
    assert out.state is SafetyState.RAMPING and out.torque_enabled
    np.testing.assert_allclose(out.positions, sagged + [0.5 * DT_S, 0, 0])


def test_auto_resume_leaves_a_watchdog_stop_on_the_next_command_with_a_ramp():
    layer = SafetyLayer(config(stop_after_ns=50 * MS, auto_resume=True))
    k = settled(layer, [0.3, 0.0, 0.0])
    for i in range(k, k + 30):
        out = layer.step(i * TICK, None, np.array([0.3, 0.0, 0.0]))
    assert out.state is SafetyState.STOPPED and out.torque_enabled  # default stop action: hold
    np.testing.assert_array_equal(out.positions, [0.3, 0.0, 0.0])
    out = layer.step((k + 30) * TICK, np.array([0.6, 0.0, 0.0]), np.array([0.3, 0.0, 0.0]))
    assert out.state is SafetyState.RAMPING
    assert out.positions[0] == pytest.approx(0.3 + 0.25 * 2.0 * DT_S)


def test_first_step_after_a_gap_is_bounded_and_starts_from_the_measured_position():
    layer = SafetyLayer(config(gap_threshold_ns=50 * MS, ramp_velocity=0.4, max_velocity=5.0))
    k = settled(layer, [0.0, 0.0, 0.0])
    for i in range(k, k + 40):  # 80 ms without a command
        layer.step(i * TICK, None, np.zeros(3))
    measured = np.array([0.05, 0.0, 0.0])  # pushed by hand while holding
    out = layer.step((k + 40) * TICK, np.array([0.9, 0.0, 0.0]), measured)
    assert out.state is SafetyState.RAMPING
    assert out.positions[0] == pytest.approx(0.05 + 0.4 * DT_S)
    # A short gap (below the threshold) continues from the last sent position instead.
    layer2 = SafetyLayer(config(gap_threshold_ns=50 * MS, max_velocity=5.0))
    k2 = settled(layer2, [0.0, 0.0, 0.0])
    for i in range(k2, k2 + 10):
        layer2.step(i * TICK, None, np.zeros(3))
    out = layer2.step((k2 + 10) * TICK, np.array([0.005, 0.0, 0.0]), measured)
    assert out.state is SafetyState.ACTIVE and out.positions[0] == pytest.approx(0.005)


def test_ramp_catches_up_with_a_moving_target():
    layer = SafetyLayer(config(ramp_velocity=0.2, max_velocity=2.0))
    measured = np.zeros(3)
    for i in range(2000):
        target = np.array([0.1 + 0.5 * i * DT_S, 0.0, 0.0])  # moving faster than the ramp speed
        out = layer.step(i * TICK, target, measured)
        if out.state is SafetyState.ACTIVE:
            break
    assert out.state is SafetyState.ACTIVE
    assert out.positions[0] == pytest.approx(target[0])


def test_idle_holds_where_the_arm_is_even_outside_its_limits_and_ramps_back_in():
    layer = SafetyLayer(config(ramp_velocity=0.5))
    outside = np.array([1.2, 0.0, 0.0])
    out = layer.step(0, None, outside)
    assert out.state is SafetyState.IDLE
    np.testing.assert_array_equal(out.positions, outside)  # no snap to the limit
    out = layer.step(TICK, np.array([0.5, 0.0, 0.0]), outside)
    assert out.positions[0] == pytest.approx(1.2 - 0.5 * DT_S)


def test_non_finite_measurement_falls_back_to_the_last_sent_position_or_commands_nothing():
    layer = SafetyLayer(config())
    out = layer.step(0, np.zeros(3), np.array([0.0, math.nan, 0.0]))
    assert out.positions is None and not out.torque_enabled and "measured_non_finite" in out.reasons
    k = settled(layer, [0.2, 0.0, 0.0], start_tick=1)
    layer.step(k * TICK, None, np.zeros(3))  # a hold
    for i in range(k + 1, k + 40):  # 80 ms gap: the next command ramps from "measured"
        layer.step(i * TICK, None, np.zeros(3))
    out = layer.step((k + 40) * TICK, np.array([0.5, 0.0, 0.0]), np.array([math.nan, 0.0, 0.0]))
    assert out.state is SafetyState.RAMPING
    assert out.positions[0] == pytest.approx(0.2 + 0.25 * 2.0 * DT_S)  # from the last sent


# -- e-stop ------------------------------------------------------------------------------------

def test_estop_is_latched_until_reset():
    layer = SafetyLayer(config())
    k = settled(layer, [0.2, 0.0, 0.0])
    layer.trigger_estop(k * TICK, "button")
    for i in range(k, k + 50):
        out = layer.step(i * TICK, np.array([0.2, 0.0, 0.0]), np.array([0.2, 0.0, 0.0]))
        assert out.state is SafetyState.ESTOPPED and not out.torque_enabled and out.positions is None
    layer.reset((k + 50) * TICK)
    out = layer.step((k + 51) * TICK, np.array([0.2, 0.0, 0.0]), np.array([0.2, 0.0, 0.0]))
    assert out.torque_enabled and out.state in (SafetyState.RAMPING, SafetyState.ACTIVE)
    assert [e.reason for e in layer.events if e.reason.startswith("estop")] == ["estop_triggered", "estop"]


def test_estop_can_hold_instead_of_dropping_torque():
    layer = SafetyLayer(config(estop_action="hold"))
    k = settled(layer, [0.2, 0.0, 0.0])
    layer.trigger_estop(k * TICK)
    out = layer.step(k * TICK, np.array([0.5, 0.0, 0.0]), np.array([0.2, 0.0, 0.0]))
    assert out.torque_enabled
    np.testing.assert_array_equal(out.positions, [0.2, 0.0, 0.0])


# -- failure alarms ----------------------------------------------------------------------------

def test_alarm_hold_freezes_the_arm_until_cleared():
    layer = SafetyLayer(config(alarm_reaction="hold"))
    k = settled(layer, [0.2, 0.0, 0.0])
    layer.raise_alarm(k * TICK, "failure predicted")
    out = layer.step(k * TICK, np.array([0.25, 0.0, 0.0]), np.array([0.2, 0.0, 0.0]))
    np.testing.assert_array_equal(out.positions, [0.2, 0.0, 0.0])
    assert out.state is SafetyState.ALARM_HOLD and "alarm_hold" in out.reasons
    layer.clear_alarm((k + 1) * TICK)
    out = layer.step((k + 2) * TICK, np.array([0.2005, 0.0, 0.0]), np.array([0.2, 0.0, 0.0]))
    assert out.positions[0] == pytest.approx(0.2005)


def test_alarm_slow_scales_the_velocity_limit():
    layer = SafetyLayer(config(alarm_reaction="slow", slow_factor=0.25, max_velocity=2.0))
    k = settled(layer, [0.0, 0.0, 0.0])
    layer.raise_alarm(k * TICK)
    out = layer.step(k * TICK, np.array([0.5, 0.0, 0.0]), np.zeros(3))
    assert out.positions[0] == pytest.approx(0.5 * DT_S)


def test_alarm_retreat_moves_to_the_safe_pose_at_bounded_velocity_then_holds():
    safe = np.array([0.0, 1.0, 0.0])
    layer = SafetyLayer(config(alarm_reaction="retreat", safe_pose=safe, retreat_velocity=0.5))
    k = settled(layer, [0.4, 0.0, 0.2])
    layer.raise_alarm(k * TICK)
    sent = [np.array([0.4, 0.0, 0.2])]
    for i in range(k, k + 2000):
        out = layer.step(i * TICK, np.array([0.4, 0.0, 0.2]), sent[-1])  # policy keeps sending
        sent.append(out.positions)
        if out.state is SafetyState.ALARM_HOLD:
            break
    q = np.asarray(sent)
    assert np.abs(np.diff(q, axis=0)).max() <= 0.5 * DT_S + 1e-12
    np.testing.assert_array_equal(q[-1], safe)
    out = layer.step((i + 1) * TICK, np.array([0.4, 0.0, 0.2]), safe)
    np.testing.assert_array_equal(out.positions, safe)
    assert out.state is SafetyState.ALARM_HOLD
    assert len(q) - 1 == pytest.approx(1.0 / 0.5 / DT_S, abs=1)  # 1 rad at 0.5 rad/s


def test_alarm_teleop_hands_the_arm_to_the_teleop_source():
    layer = SafetyLayer(config(alarm_reaction="teleop", ramp_velocity=0.5))
    k = settled(layer, [0.2, 0.0, 0.0])
    layer.raise_alarm(k * TICK)
    assert layer.accepted_source == "teleop"
    out = layer.step(k * TICK, np.array([0.25, 0.0, 0.0]), np.array([0.2, 0.0, 0.0]), source="policy")
    np.testing.assert_array_equal(out.positions, [0.2, 0.0, 0.0])
    assert "source_rejected" in out.reasons
    out = layer.step((k + 1) * TICK, np.array([0.6, 0.0, 0.0]), np.array([0.2, 0.0, 0.0]), source="teleop")
    assert out.state is SafetyState.RAMPING and out.positions[0] == pytest.approx(0.2 + 0.5 * DT_S)
    layer.clear_alarm((k + 2) * TICK)
    assert layer.accepted_source is None


# -- reporting ---------------------------------------------------------------------------------

def test_every_rejection_and_clamp_is_counted_by_reason_and_its_onset_recorded():
    layer = SafetyLayer(config(max_velocity=1.0))
    k = settled(layer, [0.0, 0.0, 0.0])
    for i in range(k, k + 5):
        layer.step(i * TICK, np.array([0.9, 0.0, 0.0]), np.zeros(3))
    layer.step((k + 5) * TICK, np.array([math.nan, 0.0, 0.0]), np.zeros(3))
    assert layer.stats["velocity_limit"] == 5 and layer.stats["non_finite"] == 1
    reasons = [e.reason for e in layer.events]
    assert reasons.count("velocity_limit") == 1  # onset, not one event per tick
    assert "non_finite" in reasons


# -- properties --------------------------------------------------------------------------------

commands = st.lists(
    st.one_of(
        st.none(),
        st.lists(st.one_of(st.floats(-5, 5), st.sampled_from([math.nan, math.inf])), min_size=N, max_size=N),
    ),
    min_size=1, max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(commands)
def test_whatever_it_is_sent_the_output_stays_within_position_and_velocity_limits(seq):
    cfg = config(max_velocity=1.5, max_acceleration=30.0, max_jump=0.5)
    layer = SafetyLayer(cfg)
    vmax_step = 1.5 * DT_S + 1e-12
    measured = np.zeros(3)
    prev = None
    for i, c in enumerate(seq):
        out = layer.step(i * TICK, None if c is None else np.array(c), measured)
        if out.positions is None:
            prev = None
            continue
        q = out.positions
        assert np.all(np.isfinite(q))
        assert np.all(q >= np.array(LOWER)) and np.all(q <= np.array(UPPER))
        if prev is not None:
            assert np.abs(q - prev).max() <= vmax_step
        prev = q
        measured = q


# -- executor + safety -------------------------------------------------------------------------

def test_async_executor_stream_passes_through_safety_without_holds_or_clamps():
    ex = ActionExecutor(ExecutorConfig(mode="async", blend_ns=100 * MS))
    layer = SafetyLayer(config(max_velocity=2.0, max_acceleration=40.0))
    dt = 20 * MS
    rng = np.random.default_rng(0)
    pending = []
    measured = np.zeros(3)
    for k in range(5000):
        now = k * TICK
        for item in [p for p in pending if p[0] <= now]:
            pending.remove(item)
            ex.submit(item[1], now)
        if ex.wants_chunk(now):
            ex.note_request(now)
            t = (now + np.arange(50) * dt) / 1e9
            acts = np.stack([0.4 * np.sin(t), 0.3 * np.cos(0.5 * t), 0.1 * np.sin(2 * t)], axis=1)
            acts += rng.normal(0, 0.02, size=3)
            pending.append((now + 200 * MS, ActionChunk(acts, now, dt, now)))
        out = layer.step(now, ex.command(now), measured)
        measured = out.positions
    assert ex.stats.gap_ticks == 0
    # Only the start-up (IDLE before the first chunk, then a ramp) differs from pure pass-through.
    assert set(layer.stats) <= {"ramp_limit", "acceleration_limit"}
    assert layer.state is SafetyState.ACTIVE


def test_reset_after_torque_off_holds_where_the_arm_was_moved_not_where_it_was():
    cfg = SafetyConfig(position_lower=[-2.0], position_upper=[2.0], max_velocity=[1.0], estop_action="torque_off")
    layer = SafetyLayer(cfg)
    t = 0
    for _ in range(5):
        t += 2_000_000
        layer.step(t, np.array([0.0]), np.array([0.0]))
    layer.trigger_estop(t)
    t += 2_000_000
    assert not layer.step(t, np.array([0.0]), np.array([0.0])).torque_enabled
    layer.reset(t)
    t += 2_000_000
    out = layer.step(t, None, np.array([0.8]))  # moved by hand while limp
    assert out.torque_enabled and out.positions is not None
    np.testing.assert_allclose(out.positions, [0.8])
