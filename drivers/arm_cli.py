"""`robostack arm ...` commands (emulate, scan, calibrate) and the `bench bus` benchmark.

Only the standard library is imported here; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

PROTOCOL_CHOICES = ("feetech", "dynamixel")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``arm`` command group to the core CLI."""
    arm = subparsers.add_parser("arm", help="servo-bus arms: emulate a bus, scan, calibrate")
    arm_sub = arm.add_subparsers(dest="arm_command", metavar="{emulate,scan,calibrate}")
    arm_sub.required = True

    emulate = arm_sub.add_parser(
        "emulate",
        help="emulate a Feetech or Dynamixel servo bus on a pseudo-terminal",
        description="Open a pseudo-terminal that answers the real servo wire protocol. The first line "
        "printed on stdout is the port path to give a driver (--port).",
    )
    _add_bus_arguments(emulate, need_port=False)
    emulate.add_argument("--model", help="motor model (default sts3215 / xl430-w250)")
    emulate.add_argument("--corrupt-rate", type=float, default=0.0, help="probability of a corrupted reply")
    emulate.add_argument("--timeout-rate", type=float, default=0.0, help="probability of a dropped reply")
    emulate.add_argument("--dead-id", type=int, action="append", default=[], help="a motor that never answers")
    emulate.add_argument("--log", help="append every received goal position to this JSONL file")
    emulate.add_argument(
        "--hand-sweep", action="store_true", help="free (torque-off) joints sweep their range, like a person"
    )
    emulate.add_argument("--no-byte-time", action="store_true", help="answer instantly instead of at baud pace")
    emulate.add_argument("--seed", type=int, help="random seed of the fault injection")
    emulate.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    emulate.set_defaults(func=run_emulate)

    scan = arm_sub.add_parser("scan", help="list the motors that answer on a bus")
    _add_bus_arguments(scan, need_port=True, ids_default="0-252")
    scan.add_argument("--json", action="store_true", help="print JSON")
    scan.add_argument("--latency-timer-ms", type=float, default=16.0, help="USB adapter latency (ms)")
    scan.set_defaults(func=run_scan)

    calibrate = arm_sub.add_parser(
        "calibrate",
        help="record homing offsets and joint ranges into a calibration file",
        description="Torque is disabled; put every joint at its zero pose, then move each joint through "
        "its full range. --scripted replaces the two Enter presses by timers (for scripts and tests).",
    )
    _add_bus_arguments(calibrate, need_port=True)
    calibrate.add_argument("--out", required=True, help="calibration JSON file to write")
    calibrate.add_argument("--arm-type", default=None, help="arm type stored in the file (so101, koch, ...)")
    calibrate.add_argument("--names", help="comma-separated joint names in id order")
    calibrate.add_argument("--invert", default="", help="ids whose drive direction is reversed, e.g. 2,3")
    calibrate.add_argument("--scripted", action="store_true", help="no prompts: use the timers below")
    calibrate.add_argument("--home-after", type=float, default=0.0, help="scripted: seconds before homing")
    calibrate.add_argument("--record-seconds", type=float, default=10.0, help="scripted: range recording time")
    calibrate.add_argument("--latency-timer-ms", type=float, default=16.0, help="USB adapter latency (ms)")
    calibrate.set_defaults(func=run_calibrate)


def _add_bus_arguments(parser: argparse.ArgumentParser, need_port: bool, ids_default: str = "1-6") -> None:
    if need_port:
        parser.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyACM0 or /dev/pts/3")
    parser.add_argument("--protocol", required=True, choices=PROTOCOL_CHOICES)
    parser.add_argument("--ids", default=ids_default, help=f"motor ids, e.g. 1-6 or 1,2,5 (default {ids_default})")
    parser.add_argument("--baud", type=int, default=1_000_000, help="baud rate (default 1000000)")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


# -- arm emulate ---------------------------------------------------------------------------
def run_emulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robostack.drivers.servo.emulator import EmulatedServoBus, EmulatorConfig, parse_id_list

    try:
        config = EmulatorConfig(
            protocol=args.protocol,
            ids=parse_id_list(args.ids),
            baudrate=args.baud,
            model=args.model,
            corrupt_rate=args.corrupt_rate,
            timeout_rate=args.timeout_rate,
            dead_ids=tuple(args.dead_id),
            emulate_byte_time=not args.no_byte_time,
            hand_sweep=args.hand_sweep,
            log_path=Path(args.log) if args.log else None,
            seed=args.seed,
        )
    except ValueError as exc:
        return _fail(str(exc))
    import signal

    def _terminate(signum, frame):  # SIGTERM ends the emulator as cleanly as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    emulator = EmulatedServoBus(config)
    port = emulator.start()
    print(port, flush=True)
    print(
        f"emulated {config.protocol} bus: {config.model} ids {list(config.ids)} at {config.baudrate} baud on {port}"
        + (f", dead ids {list(config.dead_ids)}" if config.dead_ids else "")
        + " (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    try:
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    print(json.dumps({"emulator_stats": vars(emulator.stats)}), file=sys.stderr)
    return 0


# -- arm scan ------------------------------------------------------------------------------
def run_scan(args: argparse.Namespace) -> int:
    from robostack.drivers.servo.bus import BusConfig, ServoBusError
    from robostack.drivers.servo.emulator import parse_id_list
    from robostack.drivers.servo.factory import make_bus
    from robostack.drivers.servo.registers import model_name

    try:
        ids = parse_id_list(args.ids)
        # Scanning must not require any id to answer, so the port is opened without the check.
        bus = make_bus(BusConfig(port=args.port, protocol=args.protocol, ids=ids, baudrate=args.baud,
                                 latency_timer_ms=args.latency_timer_ms))
        bus.open_port_only()
        try:
            found = bus.scan(ids)
        finally:
            bus.close()
    except (ServoBusError, ValueError) as exc:
        return _fail(str(exc))
    rows = {str(i): {"model_number": n, "model": model_name(args.protocol, n)} for i, n in found.items()}
    if args.json:
        print(json.dumps({"port": args.port, "protocol": args.protocol, "baud": args.baud, "motors": rows}))
    else:
        if not found:
            print(f"no motor answered on {args.port} at {args.baud} baud ({args.protocol})")
        for i, row in rows.items():
            print(f"id {i:>3}: {row['model']} (model number {row['model_number']})")
    return 0 if found else 1


# -- arm calibrate -------------------------------------------------------------------------
def run_calibrate(args: argparse.Namespace) -> int:
    from robostack.drivers.servo.bus import BusConfig, ServoBusError
    from robostack.drivers.servo.calibration import (
        CalibrationError,
        CalibrationRecorder,
        record_calibration,
    )
    from robostack.drivers.servo.emulator import parse_id_list
    from robostack.drivers.servo.factory import make_bus
    from robostack.drivers.servo.registers import model_name

    try:
        ids = parse_id_list(args.ids)
        inverted = parse_id_list(args.invert) if args.invert.strip() else []
        names = [n.strip() for n in args.names.split(",")] if args.names else None
        arm_type = args.arm_type or ("so101" if args.protocol == "feetech" else "koch")
        bus = make_bus(
            BusConfig(port=args.port, protocol=args.protocol, ids=ids, baudrate=args.baud,
                      latency_timer_ms=args.latency_timer_ms)
        )
        bus.open()
    except (ServoBusError, ValueError) as exc:
        return _fail(str(exc))
    try:
        bus.set_torque(ids, False)
        recorder = CalibrationRecorder(ids)
        if args.scripted:
            def wait_for_home() -> None:
                time.sleep(args.home_after)

            record_end: list[float] = []

            def range_done() -> bool:
                if not record_end:
                    record_end.append(time.monotonic() + args.record_seconds)
                return time.monotonic() >= record_end[0]

            on_sample = None
        else:
            done = threading.Event()

            def wait_for_home() -> None:
                input(f"Torque is off. Put every joint of the {arm_type} arm at its zero pose, then press Enter.")
                print("Now move every joint through its full range; press Enter when done.")
                # only now: a reader started earlier would take the first Enter for this one
                threading.Thread(target=lambda: (input(), done.set()), daemon=True).start()

            def range_done() -> bool:
                return done.is_set()

            def on_sample(ticks) -> None:
                low, high = recorder.low, recorder.high
                spans = " ".join(f"{i}:{int(lo)}..{int(hi)}" for i, lo, hi in zip(ids, low, high))
                print(f"\r{spans}", end="", flush=True)

        record_calibration(lambda: bus.read_positions(ids), recorder, wait_for_home, range_done,
                           on_sample=on_sample)
        if not args.scripted:
            print()
        models = {i: model_name(args.protocol, bus.models[i]) for i in ids}
        calibration = recorder.result(arm_type, args.protocol, models, names=names, inverted_ids=inverted)
        path = calibration.save(args.out)
    except (ServoBusError, CalibrationError, ValueError) as exc:
        return _fail(str(exc))
    finally:
        bus.close()
    print(f"wrote {path}")
    for joint in calibration.joints:
        low, high = joint.range_radians()
        print(f"  {joint.name:<14} id {joint.motor_id:>3}  home {joint.homing_offset:>5}  "
              f"ticks {joint.range_min}..{joint.range_max}  rad {low:+.3f}..{high:+.3f}")
    return 0


# -- bench bus -----------------------------------------------------------------------------
def add_bench_bus_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `robostack bench bus`."""
    parser.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="feetech")
    parser.add_argument("--motors", type=int, default=6)
    parser.add_argument("--baud", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each phase")
    parser.add_argument("--target-hz", type=float, default=100.0, help="rate of the paced phase")
    parser.add_argument("--corrupt-rate", type=float, default=0.05, help="faulty phase: corrupted replies")
    parser.add_argument("--timeout-rate", type=float, default=0.0, help="faulty phase: dropped replies")
    parser.add_argument("--latency-timer-ms", type=float, default=4.0)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--in-process", action="store_true", help="run the emulator in a thread")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")


def run_bench_bus(args: argparse.Namespace) -> int:
    """Run the bus benchmark; exit code 1 if the bus did not receive what the driver sent."""
    from robostack.drivers.servo.bus_bench import BusBenchConfig, run_bus_benchmark

    try:
        report = run_bus_benchmark(
            BusBenchConfig(
                protocol=args.protocol,
                motors=args.motors,
                baudrate=args.baud,
                seconds=args.seconds,
                target_hz=args.target_hz,
                corrupt_rate=args.corrupt_rate,
                timeout_rate=args.timeout_rate,
                latency_timer_ms=args.latency_timer_ms,
                retries=args.retries,
                in_process=args.in_process,
            )
        )
    except ValueError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['protocol']} bus, {report['motors']} motors at {report['baudrate']} baud "
              f"(emulator in a {report['emulator']})")
        for name, phase in report["phases"].items():
            ct = phase["cycle_time"]
            print(f"  {name:<15} {phase['rate_hz']:>8.1f} Hz  cycle p50 {ct['p50_ms']:.2f} ms  "
                  f"p99 {ct['p99_ms']:.2f} ms  failed cycles {phase['failed_cycles']}  "
                  f"retries {phase['bus']['retries']}  corrupt {phase['bus']['rx_corrupt']}  "
                  f"timeouts {phase['bus']['rx_timeouts']}")
    faulty = report["phases"]["faulty"]
    ok = (
        report["clean_goals_received_match_sent"]
        and faulty["goals_received_match_sent"]
        and faulty["last_goals_match"]
    )
    return 0 if ok else 1


# The core CLI's benchmark protocol (`add_arguments` / `run`): `robostack bench bus` can name this
# module directly.
add_arguments = add_bench_bus_arguments
run = run_bench_bus


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m robostack.drivers.arm_cli``) with ``arm`` and ``bench-bus``."""
    parser = argparse.ArgumentParser(prog="robostack")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    bench = sub.add_parser("bench-bus", help="servo bus benchmark against the emulator")
    add_bench_bus_arguments(bench)
    bench.set_defaults(func=run_bench_bus)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
