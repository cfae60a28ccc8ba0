"""The SDK-based drivers against the emulated bus over a real pseudo-terminal."""

import json
import os
import time

import numpy as np
import pytest

from robostack.drivers.servo.bus import (
    BusConfig,
    BusNotRespondingError,
    CommunicationError,
    MotorModelError,
    MotorNotFoundError,
    PortOpenError,
    ServoBus,
)
from robostack.drivers.servo.emulator import EmulatedServoBus, EmulatorConfig, parse_id_list
from robostack.drivers.servo.factory import make_bus

IDS = [1, 2, 3, 4, 5, 6]
PROTOCOLS = ["feetech", "dynamixel"]
# Short reply timeouts keep failure tests fast; long enough to ride out a loaded machine.
SHORT_LATENCY_MS = 5.0
START = {1: 1000, 2: 1500, 3: 2000, 4: 2500, 5: 3000, 6: 3500}


@pytest.fixture
def emulated():
    """Factory: start an emulator, return it; everything is stopped at the end."""
    started = []

    def make(protocol, **kwargs):
        kwargs.setdefault("ids", IDS)
        kwargs.setdefault("initial_positions", dict(START))
        kwargs.setdefault("seed", 7)
        emulator = EmulatedServoBus(EmulatorConfig(protocol=protocol, **kwargs))
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


def open_bus(emulator, protocol, **kwargs):
    kwargs.setdefault("ids", IDS)
    kwargs.setdefault("latency_timer_ms", 10.0)
    bus = make_bus(BusConfig(port=emulator.port, protocol=protocol, **kwargs))
    bus.open()
    return bus


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_open_pings_every_motor_and_reads_model_numbers(emulated, protocol):
    emulator = emulated(protocol)
    bus = open_bus(emulator, protocol)
    try:
        expected = 777 if protocol == "feetech" else 1060
        assert bus.models == {i: expected for i in IDS}
        assert isinstance(bus, ServoBus)
        assert bus.ping(99) is None  # no such motor: None, not an exception
    finally:
        bus.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sync_read_returns_each_motors_own_position(emulated, protocol):
    emulator = emulated(protocol)
    bus = open_bus(emulator, protocol)
    try:
        np.testing.assert_array_equal(bus.read_positions(IDS), [START[i] for i in IDS])
        np.testing.assert_array_equal(bus.read_positions([6, 2]), [START[6], START[2]])
        state = bus.read_state(IDS)
        np.testing.assert_array_equal(state.positions, [START[i] for i in IDS])
        assert state.ids == tuple(IDS) and state.stamp_ns <= time.monotonic_ns()
    finally:
        bus.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_goals_move_motors_only_with_torque_and_are_logged(emulated, protocol):
    emulator = emulated(protocol)
    bus = open_bus(emulator, protocol)
    try:
        goals = np.array([1100, 1600, 2100, 2400, 2900, 3400])
        bus.write_goal_positions(IDS, goals)  # torque off: logged, but nothing moves
        time.sleep(0.1)
        np.testing.assert_array_equal(bus.read_positions(IDS), [START[i] for i in IDS])

        bus.set_torque(IDS, True)
        assert all(emulator.torque_enabled(i) for i in IDS)
        before = time.monotonic_ns()
        bus.write_goal_positions(IDS, goals)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            positions = bus.read_positions(IDS)
            if np.all(np.abs(positions - goals) <= 1):
                break
            time.sleep(0.01)
        np.testing.assert_allclose(positions, goals, atol=1)
        state = bus.read_state(IDS)
        assert np.all(np.abs(state.currents) <= 5)  # at rest on target: little current

        log = emulator.goal_log()
        assert len(log) == 12
        last = {r.motor_id: r for r in log[6:]}
        assert {i: last[i].ticks for i in IDS} == dict(zip(IDS, goals.tolist()))
        assert all(r.stamp_ns >= before and r.instruction == "sync_write" for r in log[6:])
        assert [r.ticks for r in emulator.goal_log(3)] == [2100, 2100]
    finally:
        bus.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_torque_off_frees_the_joint_for_a_hand(emulated, protocol):
    emulator = emulated(protocol)
    bus = open_bus(emulator, protocol)
    try:
        bus.set_torque(IDS, True)
        emulator.move_by_hand({1: 1234})
        assert bus.read_positions([1])[0] == START[1]  # held
        bus.set_torque([1], False)
        emulator.move_by_hand({1: 1234})
        assert bus.read_positions([1])[0] == 1234
    finally:
        bus.close()


def test_dynamixel_ignores_goal_beyond_position_limit_feetech_clamps(emulated):
    from robostack.drivers.servo.registers import DYNAMIXEL_X, FEETECH_STS

    for protocol, table in (("dynamixel", DYNAMIXEL_X), ("feetech", FEETECH_STS)):
        emulator = emulated(protocol)
        bus = open_bus(emulator, protocol, ids=[1])
        try:
            bus.write_register(table.max_position_limit, 1, 3000)
            bus.set_torque([1], True)
            bus.write_goal_positions([1], [3500])
            time.sleep(0.05)
            goal_now = bus.read_register(table.goal_position, 1)
            assert goal_now == (START[1] if protocol == "dynamixel" else 3000)
            assert emulator.goal_log(1)[-1].ticks == 3500  # the log keeps what the wire carried
            assert emulator.goal_log(1)[-1].applied is (protocol == "feetech")
        finally:
            bus.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_corrupted_replies_are_retried_counted_and_never_leak_into_readings(emulated, protocol):
    emulator = emulated(protocol, corrupt_rate=0.10)
    # a generous reply timeout, so that a scheduler stall on a loaded machine is not a fault
    bus = open_bus(emulator, protocol, retries=6, latency_timer_ms=20.0)
    try:
        expected = [START[i] for i in IDS]
        for _ in range(150):
            np.testing.assert_array_equal(bus.read_positions(IDS), expected)
        stats = bus.stats
        assert stats.rx_corrupt > 0
        assert stats.retries >= stats.rx_corrupt
        assert stats.recovered_transactions > 0
        assert stats.failed_transactions == 0
        # every fault the driver saw was injected by the bus
        assert stats.rx_corrupt + stats.rx_timeouts <= emulator.stats.replies_corrupted
    finally:
        bus.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dropped_replies_count_as_timeouts_and_recover(emulated, protocol):
    emulator = emulated(protocol, timeout_rate=0.05)
    bus = open_bus(emulator, protocol, retries=6, latency_timer_ms=20.0)
    try:
        for _ in range(40):
            np.testing.assert_array_equal(bus.read_positions(IDS), [START[i] for i in IDS])
        assert bus.stats.rx_timeouts > 0
        assert bus.stats.rx_timeouts <= emulator.stats.replies_dropped
        assert bus.stats.failed_transactions == 0
    finally:
        bus.close()


def test_missing_port_error_names_the_port():
    bus = make_bus(BusConfig(port="/dev/ttyUSB_robostack_missing", protocol="feetech"))
    with pytest.raises(PortOpenError, match="ttyUSB_robostack_missing' does not exist"):
        bus.open()


def test_path_that_is_not_a_serial_port_is_a_port_error(tmp_path):
    path = tmp_path / "not_a_tty"
    path.write_text("")
    bus = make_bus(BusConfig(port=str(path), protocol="dynamixel"))
    with pytest.raises(PortOpenError, match="cannot open serial port"):
        bus.open()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_baud_rate_reports_that_no_motor_answered(emulated, protocol):
    emulator = emulated(protocol, baudrate=1_000_000)
    bus = make_bus(BusConfig(port=emulator.port, protocol=protocol, ids=[1, 2], baudrate=57600,
                             latency_timer_ms=1.0, retries=0))
    with pytest.raises(BusNotRespondingError, match="no motor answered .* 57600 baud.*baud rate"):
        bus.open()
    assert not bus.is_open
    assert emulator.stats.wrong_baud_bytes > 0


def test_wrong_protocol_looks_like_a_silent_bus(emulated):
    emulator = emulated("dynamixel")
    bus = make_bus(BusConfig(port=emulator.port, protocol="feetech", ids=[1], latency_timer_ms=1.0, retries=0))
    with pytest.raises(BusNotRespondingError, match="feetech protocol"):
        bus.open()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_missing_motor_id_is_named_with_the_ids_that_answered(emulated, protocol):
    emulator = emulated(protocol, ids=[1, 2, 3])
    bus = make_bus(BusConfig(port=emulator.port, protocol=protocol, ids=[1, 2, 3, 4], latency_timer_ms=SHORT_LATENCY_MS,
                             retries=1))
    with pytest.raises(MotorNotFoundError, match=r"motor id\(s\) \[4\] did not answer.*answered: \[1, 2, 3\]") as info:
        bus.open()
    assert info.value.missing == [4] and info.value.found == [1, 2, 3]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_motor_dying_mid_run_fails_reads_naming_it_while_writes_go_on(emulated, protocol):
    emulator = emulated(protocol)
    bus = open_bus(emulator, protocol, retries=2, latency_timer_ms=SHORT_LATENCY_MS)
    try:
        bus.read_positions(IDS)
        emulator.set_faults(dead_ids=[4])
        with pytest.raises(CommunicationError, match="motor 4") as info:
            bus.read_positions(IDS)
        assert info.value.motor_id == 4
        assert bus.stats.failed_transactions == 1
        assert bus.stats.per_motor_failures[4] == 3  # first attempt + 2 retries
        # the other motors still answer, and the bus stays usable
        np.testing.assert_array_equal(bus.read_positions([1, 2, 3]), [START[1], START[2], START[3]])
        bus.write_goal_positions([1], [1000])
    finally:
        bus.close()


def test_expected_model_mismatch_is_reported(emulated):
    emulator = emulated("dynamixel", model="xl330-m288")
    bus = make_bus(BusConfig(port=emulator.port, protocol="dynamixel", ids=IDS, latency_timer_ms=SHORT_LATENCY_MS,
                             expected_model="xm430-w350"))
    with pytest.raises(MotorModelError, match="expected xm430-w350 motors, but found .*xl330-m288"):
        bus.open()


def test_dynamixel_scan_uses_broadcast_ping_and_feetech_scan_pings_ids(emulated):
    emulator = emulated("dynamixel", ids=[2, 5, 9])
    bus = open_bus(emulator, "dynamixel", ids=[2])
    try:
        assert bus.scan() == {2: 1060, 5: 1060, 9: 1060}
    finally:
        bus.close()
    emulator = emulated("feetech", ids=[3, 4])
    bus = open_bus(emulator, "feetech", ids=[3], latency_timer_ms=SHORT_LATENCY_MS)
    try:
        assert bus.scan(range(1, 7), retries=2) == {3: 777, 4: 777}
    finally:
        bus.close()


def test_non_finite_goal_is_rejected_before_reaching_the_bus(emulated):
    emulator = emulated("feetech")
    bus = open_bus(emulator, "feetech")
    try:
        with pytest.raises(ValueError, match="finite"):
            bus.write_goal_positions(IDS, [1.0, np.nan, 3.0, 4.0, 5.0, 6.0])
        with pytest.raises(ValueError, match="6 ids but 2 values"):
            bus.write_goal_positions(IDS, [1, 2])
        assert emulator.goal_log() == []
    finally:
        bus.close()


def test_goal_log_file_is_jsonl_with_monotonic_stamps(emulated, tmp_path):
    log_path = tmp_path / "goals.jsonl"
    emulator = emulated("dynamixel", log_path=log_path)
    bus = open_bus(emulator, "dynamixel")
    try:
        bus.write_goal_positions(IDS, [2000 + i for i in IDS])
        bus.write_goal_positions(IDS, [2100 + i for i in IDS])
        time.sleep(0.05)
    finally:
        bus.close()
    rows = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [r["ticks"] for r in rows] == [2000 + i for i in IDS] + [2100 + i for i in IDS]
    assert rows[0]["stamp_ns"] <= rows[-1]["stamp_ns"] <= time.monotonic_ns()


def test_bus_config_rejects_bad_values_with_named_errors():
    with pytest.raises(ValueError, match="baud rate 123 is not supported by the feetech SDK"):
        BusConfig(port="/dev/null", protocol="feetech", baudrate=123)
    with pytest.raises(ValueError, match="duplicate motor ids"):
        BusConfig(port="/dev/null", protocol="dynamixel", ids=[1, 1])
    with pytest.raises(ValueError, match="unknown servo protocol"):
        BusConfig(port="/dev/null", protocol="canbus")


def test_id_list_parsing():
    assert parse_id_list("1-3,7") == [1, 2, 3, 7]
    with pytest.raises(ValueError, match="bad motor id list '6-1'"):
        parse_id_list("6-1")


def test_emulator_config_rejects_dead_id_not_on_bus():
    with pytest.raises(ValueError, match=r"dead ids \[9\] are not among the bus ids"):
        EmulatorConfig(protocol="feetech", ids=[1, 2], dead_ids=[9])


def test_emulator_pty_is_a_tty_and_closes_cleanly(emulated):
    emulator = emulated("feetech")
    fd = os.open(emulator.port, os.O_RDWR | os.O_NOCTTY)
    try:
        assert os.isatty(fd)
    finally:
        os.close(fd)


def test_hand_sweep_moves_free_joints_through_a_range_but_not_held_ones(emulated):
    emulator = emulated("feetech", ids=[1, 2], hand_sweep=True)
    bus = open_bus(emulator, "feetech", ids=[1, 2])
    try:
        bus.set_torque([2], True)
        seen = np.array([bus.read_positions([1, 2]) for _ in range(60) if time.sleep(0.02) is None])
        assert seen[:, 0].max() - seen[:, 0].min() > 1000
        assert seen[:, 0].min() >= 1100 and seen[:, 0].max() <= 3000
        assert seen[:, 1].max() - seen[:, 1].min() <= 1
    finally:
        bus.close()
