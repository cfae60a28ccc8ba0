"""ArmController: executor + safety + command sources on a synthetic clock."""

import numpy as np
import pytest

from robostack.arm_control import ArmControlConfig, ArmController, applied_meta
from robostack.chunks import ActionChunk
from robostack.executor import ExecutorConfig
from robostack.safety import SafetyConfig, SafetyState

MS = 1_000_000
PERIOD = 10 * MS


def controller(**overrides) -> ArmController:
    safety = dict(position_lower=[-2.0, -2.0], position_upper=[2.0, 2.0], max_velocity=5.0,
                  servo_period_ns=PERIOD, max_jump=0.3, gap_threshold_ns=10_000 * MS)
    safety.update(overrides.pop("safety", {}))
    return ArmController(ArmControlConfig(safety=SafetyConfig(**safety),
                                          executor=ExecutorConfig(blend_ns=0, drop_margin_ns=0), **overrides))


def ramp_chunk(t0, start=0.0, slope=0.5, horizon=50, dt=20 * MS):
    times = np.arange(horizon) * dt / 1e9
    actions = start + slope * np.stack([times, times], axis=1)
    return ActionChunk(actions=actions, start_ns=t0, dt_ns=dt, obs_stamp_ns=t0)


def run(ctl, t0, t1, measured=np.zeros(2)):
    outs = []
    for t in range(t0, t1, PERIOD):
        outs.append(ctl.tick(t, measured))
    return outs


def test_teleop_command_is_held_for_its_hold_time_then_holds_then_the_watchdog_stops():
    ctl = controller(command_hold_ns=100 * MS)
    ctl.tick(0, np.zeros(2))
    assert ctl.submit_command(np.array([0.01, -0.01]), 5 * MS, stamp_ns=4 * MS)
    outs = run(ctl, 10 * MS, 400 * MS)
    held = [o for o in outs if o.stamp_ns <= 105 * MS]
    assert all(o.state is SafetyState.ACTIVE for o in held)
    np.testing.assert_allclose(held[-1].positions, [0.01, -0.01])
    after = [o for o in outs if 105 * MS < o.stamp_ns < 300 * MS]
    assert after[0].state is SafetyState.HOLDING and "no_command" in after[0].reasons
    stopped = [o for o in outs if o.state is SafetyState.STOPPED]
    # watchdog from the last valid command (tick at 100 ms) + 200 ms
    assert stopped[0].stamp_ns == 300 * MS
    assert ctl.counts["command_expired"] == 1


def test_non_finite_chunk_drops_the_plan_and_the_arm_holds_on_the_same_tick():
    ctl = controller()
    ctl.tick(0, np.zeros(2))
    assert ctl.submit_chunk(ramp_chunk(5 * MS), 5 * MS)
    outs = run(ctl, 10 * MS, 100 * MS)
    assert outs[-1].state is SafetyState.ACTIVE
    bad = ramp_chunk(100 * MS)
    actions = bad.actions.copy()
    actions[3, 1] = np.nan
    assert not ctl.submit_chunk(ActionChunk(actions, 100 * MS, bad.dt_ns, 100 * MS), 100 * MS)
    out = ctl.tick(100 * MS, np.zeros(2))
    assert out.state is SafetyState.HOLDING
    np.testing.assert_array_equal(out.positions, outs[-1].positions)
    assert ctl.counts["chunk_non_finite"] == 1 and ctl.counts["plan_dropped"] == 1


def test_non_finite_chunk_with_ignore_keeps_the_old_plan_running():
    ctl = controller(on_invalid_chunk="ignore")
    ctl.tick(0, np.zeros(2))
    ctl.submit_chunk(ramp_chunk(5 * MS), 5 * MS)
    run(ctl, 10 * MS, 100 * MS)
    assert not ctl.submit_chunk(ActionChunk(np.full((5, 2), np.inf), 100 * MS, 20 * MS, 100 * MS), 100 * MS)
    assert ctl.tick(100 * MS, np.zeros(2)).state is SafetyState.ACTIVE


def test_chunk_of_the_wrong_dimension_is_refused_and_counted_not_raised():
    ctl = controller()
    assert not ctl.submit_chunk(ActionChunk(np.zeros((4, 3)), 0, 20 * MS, 0), 0)
    assert ctl.counts["chunk_bad_dim"] == 1
    assert not ctl.submit_command(np.zeros(3), 0)
    assert ctl.counts["command_bad_shape"] == 1


def test_estop_turns_torque_off_on_the_next_tick_and_refuses_inputs_until_released():
    ctl = controller()
    ctl.tick(0, np.zeros(2))
    ctl.submit_chunk(ramp_chunk(5 * MS), 5 * MS)
    run(ctl, 10 * MS, 50 * MS)
    ctl.set_estop(True, 55 * MS)
    out = ctl.tick(60 * MS, np.zeros(2))
    assert out.state is SafetyState.ESTOPPED and not out.torque_enabled and out.positions is None
    assert not ctl.submit_chunk(ramp_chunk(70 * MS), 70 * MS)
    assert not ctl.submit_command(np.zeros(2), 70 * MS)
    assert applied_meta(out)["mode"] == "estop"


def test_release_after_a_torque_off_estop_holds_where_the_arm_is_now_not_where_it_was():
    ctl = controller()
    ctl.tick(0, np.zeros(2))
    ctl.submit_command(np.array([0.2, 0.2]), 0)
    run(ctl, 10 * MS, 50 * MS, measured=np.array([0.2, 0.2]))
    ctl.set_estop(True, 50 * MS)
    ctl.tick(60 * MS, np.array([0.2, 0.2]))
    ctl.set_estop(False, 70 * MS)  # meanwhile the arm sagged to -0.5 with its torque off
    out = ctl.tick(80 * MS, np.array([-0.5, -0.4]))
    assert out.torque_enabled
    np.testing.assert_allclose(out.positions, [-0.5, -0.4])
    assert ctl.safety_stats["estop"] >= 1  # counts survive the re-arm


def test_the_input_that_arrived_last_wins_between_chunks_and_commands():
    ctl = controller(safety={"max_jump": None})
    ctl.tick(0, np.zeros(2))
    ctl.submit_chunk(ramp_chunk(5 * MS, start=0.0, slope=0.0), 5 * MS)
    ctl.tick(10 * MS, np.zeros(2))
    assert ctl.last_source == "policy"
    ctl.submit_command(np.array([0.02, 0.02]), 15 * MS)
    out = ctl.tick(20 * MS, np.zeros(2))
    assert ctl.last_source == "teleop"
    np.testing.assert_allclose(out.positions, [0.02, 0.02])
    ctl.submit_chunk(ramp_chunk(25 * MS, start=0.0, slope=0.0), 25 * MS)
    ctl.tick(40 * MS, np.zeros(2))
    assert ctl.last_source == "policy" and ctl.counts["source_switches"] == 2


def test_teleop_alarm_hands_over_to_commands_even_while_chunks_keep_coming():
    ctl = controller(safety={"alarm_reaction": "teleop", "max_jump": None})
    ctl.tick(0, np.zeros(2))
    ctl.submit_chunk(ramp_chunk(5 * MS, slope=0.0), 5 * MS)
    ctl.set_alarm(True, 10 * MS)
    ctl.submit_command(np.array([0.01, 0.01]), 12 * MS)
    ctl.submit_chunk(ramp_chunk(15 * MS, slope=0.0), 15 * MS)  # newer, but not accepted now
    ctl.tick(20 * MS, np.zeros(2))
    assert ctl.last_source == "teleop"


def test_stale_command_is_refused():
    ctl = controller(max_command_age_ns=50 * MS)
    assert not ctl.submit_command(np.zeros(2), 200 * MS, stamp_ns=100 * MS)
    assert ctl.counts["command_stale"] == 1


@pytest.mark.parametrize("bad", [{"command_hold_ns": 0}, {"on_invalid_chunk": "panic"},
                                 {"chunk_source": "x", "command_source": "x"}])
def test_bad_config_is_refused_with_a_message_naming_the_field(bad):
    with pytest.raises(ValueError, match="ArmControlConfig"):
        controller(**bad)


def test_chunk_far_from_the_running_plan_is_refused_as_a_jump_and_the_arm_holds():
    ctl = controller(max_chunk_jump=0.3)
    ctl.tick(0, np.zeros(2))
    assert ctl.submit_chunk(ramp_chunk(5 * MS), 5 * MS)
    outs = run(ctl, 10 * MS, 100 * MS)
    # the executor would blend this in smoothly; the controller refuses it as a jump
    assert not ctl.submit_chunk(ramp_chunk(100 * MS, start=1.0), 100 * MS)
    out = ctl.tick(100 * MS, np.zeros(2))
    assert out.state is SafetyState.HOLDING
    np.testing.assert_array_equal(out.positions, outs[-1].positions)
    assert ctl.counts["chunk_jump"] == 1


def test_chunk_with_a_jump_between_two_actions_is_refused_even_as_the_first_chunk():
    ctl = controller(max_chunk_jump=0.3)
    actions = np.zeros((10, 2))
    actions[5:, 0] = 1.0
    assert not ctl.submit_chunk(ActionChunk(actions, 0, 20 * MS, 0), 0)
    assert ctl.counts["chunk_jump"] == 1
    # a far first chunk (no plan running) is fine: the safety layer ramps to it
    assert ctl.submit_chunk(ramp_chunk(0, start=1.0), 0)
