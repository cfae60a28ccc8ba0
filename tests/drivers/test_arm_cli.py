"""`robostack arm ...` and `bench bus` through argparse, against the emulated bus."""

import argparse
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from robostack.drivers import arm_cli
from robostack.drivers.servo.bus import BusConfig
from robostack.drivers.servo.calibration import load_calibration
from robostack.drivers.servo.emulator import EmulatedServoBus, EmulatorConfig
from robostack.drivers.servo.factory import make_bus


def parse(argv):
    parser = argparse.ArgumentParser(prog="robostack")
    sub = parser.add_subparsers(dest="command", required=True)
    arm_cli.register(sub)
    bench = sub.add_parser("bench")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    bus = bench_sub.add_parser("bus")
    arm_cli.add_bench_bus_arguments(bus)
    bus.set_defaults(func=arm_cli.run_bench_bus)
    return parser.parse_args(argv)


def test_register_adds_arm_commands_with_run_functions():
    args = parse(["arm", "emulate", "--protocol", "feetech", "--ids", "1-3", "--dead-id", "2"])
    assert args.func is arm_cli.run_emulate and args.dead_id == [2]
    args = parse(["arm", "calibrate", "--port", "/dev/x", "--protocol", "dynamixel", "--out", "c.json"])
    assert args.func is arm_cli.run_calibrate


def test_scripted_calibration_against_emulator_records_what_the_hand_did(tmp_path, capsys):
    emulator = EmulatedServoBus(EmulatorConfig(protocol="dynamixel", ids=[1, 2, 3],
                                               initial_positions={1: 2000, 2: 2100, 3: 2200}))
    port = emulator.start()
    out = tmp_path / "koch.json"

    def hand():
        # the calibrator turns torque off first (else no hand could move a joint); homing is read
        # 0.1 s later, then the hand takes each joint to both ends
        deadline = time.monotonic() + 10
        while any(emulator.torque_enabled(i) for i in (1, 2, 3)) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.4)
        for positions in ({1: 1500, 2: 2600, 3: 2200}, {1: 2700, 2: 1700, 3: 1000}, {1: 2000, 2: 2100, 3: 3100}):
            emulator.move_by_hand(positions)
            time.sleep(0.2)

    try:
        # the calibrator must turn torque off, or the hand cannot move anything
        bus = make_bus(BusConfig(port=port, protocol="dynamixel", ids=[1, 2, 3], latency_timer_ms=10.0))
        bus.open()
        bus.set_torque([1, 2, 3], True)
        bus.close()
        mover = threading.Thread(target=hand)
        mover.start()
        code = arm_cli.run_calibrate(parse([
            "arm", "calibrate", "--port", port, "--protocol", "dynamixel", "--ids", "1-3", "--out", str(out),
            "--arm-type", "koch_test", "--names", "base,shoulder,elbow", "--invert", "2", "--scripted",
            "--home-after", "0.1", "--record-seconds", "1.6", "--latency-timer-ms", "10",
        ]))
        mover.join()
    finally:
        emulator.stop()
    assert code == 0, capsys.readouterr().err
    cal = load_calibration(out, arm_type="koch_test", ids=[1, 2, 3], protocol="dynamixel")
    assert [j.homing_offset for j in cal.joints] == [2000, 2100, 2200]
    assert [(j.range_min, j.range_max) for j in cal.joints] == [(1500, 2700), (1700, 2600), (1000, 3100)]
    assert [j.drive_direction for j in cal.joints] == [1, -1, 1]
    assert [j.model for j in cal.joints] == ["xl430-w250"] * 3
    assert "wrote" in capsys.readouterr().out


def test_calibrate_reports_a_missing_motor_clearly(tmp_path, capsys):
    emulator = EmulatedServoBus(EmulatorConfig(protocol="feetech", ids=[1, 2]))
    port = emulator.start()
    try:
        code = arm_cli.run_calibrate(parse([
            "arm", "calibrate", "--port", port, "--protocol", "feetech", "--ids", "1-3", "--out",
            str(tmp_path / "c.json"), "--scripted", "--latency-timer-ms", "5",
        ]))
    finally:
        emulator.stop()
    assert code == 2
    assert "motor id(s) [3] did not answer" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_bench_bus_keeps_running_through_corruption_and_counts_it(capsys):
    args = parse(["bench", "bus", "--protocol", "feetech", "--seconds", "0.4", "--corrupt-rate", "0.05",
                  "--in-process", "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    faulty = report["phases"]["faulty"]
    assert faulty["cycles"] > 0 and faulty["emulator"]["replies_corrupted"] > 0
    assert faulty["bus"]["rx_corrupt"] > 0
    assert faulty["bus"]["recovered_transactions"] > 0
    # failed cycles are counted, never fatal, and every goal still reached the bus
    assert faulty["failed_cycles"] == faulty["bus"]["failed_transactions"]
    assert faulty["goals_received_match_sent"] and faulty["last_goals_match"]
    assert report["clean_goals_received_match_sent"]


@pytest.mark.slow
def test_emulate_command_serves_a_driver_from_its_own_process(tmp_path):
    log = tmp_path / "goals.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "robostack.drivers.arm_cli", "arm", "emulate", "--protocol", "feetech",
         "--ids", "1-6", "--log", str(log), "--duration", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/pts/"), proc.stderr.read()
        bus = make_bus(BusConfig(port=port, protocol="feetech", latency_timer_ms=4.0))
        bus.open()
        try:
            bus.set_torque(range(1, 7), True)
            bus.write_goal_positions(range(1, 7), [2100, 2200, 2300, 2400, 2500, 2600])
            time.sleep(0.3)
            np.testing.assert_allclose(bus.read_positions(range(1, 7)), [2100, 2200, 2300, 2400, 2500, 2600],
                                       atol=1)
        finally:
            bus.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["ticks"] for r in rows] == [2100, 2200, 2300, 2400, 2500, 2600]


def test_scan_command_lists_motors_as_json(capsys):
    emulator = EmulatedServoBus(EmulatorConfig(protocol="feetech", ids=[2, 4]))
    port = emulator.start()
    try:
        code = arm_cli.run_scan(parse(["arm", "scan", "--port", port, "--protocol", "feetech", "--ids", "1-5",
                                       "--json", "--latency-timer-ms", "16"]))
    finally:
        emulator.stop()
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["motors"] == {"2": {"model_number": 777, "model": "sts3215"},
                                "4": {"model_number": 777, "model": "sts3215"}}


@pytest.mark.slow
def test_interactive_calibration_follows_the_two_enter_presses(tmp_path):
    emulator = EmulatedServoBus(EmulatorConfig(protocol="feetech", ids=[1, 2],
                                               initial_positions={1: 2000, 2: 2050}))
    port = emulator.start()
    out = tmp_path / "so101.json"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "robostack.drivers.arm_cli", "arm", "calibrate", "--port", port,
             "--protocol", "feetech", "--ids", "1,2", "--out", str(out), "--latency-timer-ms", "10"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        prompt = ""
        while not prompt.endswith("press Enter."):  # the joints sit at their zero pose
            char = proc.stdout.read(1)
            assert char, proc.stderr.read()
            prompt += char
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert "full range" in proc.stdout.readline()
        time.sleep(0.2)
        emulator.move_by_hand({1: 1200, 2: 2900})
        time.sleep(0.3)
        emulator.move_by_hand({1: 2800, 2: 1300})
        time.sleep(0.3)
        out_text, err_text = proc.communicate("\n", timeout=20)
    finally:
        emulator.stop()
    assert proc.returncode == 0, err_text
    assert "zero pose" in prompt and "wrote" in out_text
    cal = load_calibration(out, arm_type="so101", ids=[1, 2])
    assert [(j.homing_offset, j.range_min, j.range_max) for j in cal.joints] == [(2000, 1200, 2800), (2050, 1300, 2900)]
