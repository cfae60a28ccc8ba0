"""Benchmark of a real SDK driver against the emulated bus at a realistic byte time.

Each cycle is what an arm driver does at its servo rate: one sync read of the present positions
of every motor and one sync write of new goal positions. Phases: a clean bus at full speed, a
clean bus paced at a target rate, and a bus that corrupts (and optionally drops) replies, where
the driver must keep running, count every fault and recover.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from robostack.drivers.servo.bus import BusConfig, CommunicationError
from robostack.drivers.servo.emulator import EmulatedServoBus, EmulatorConfig, EmulatorProcess
from robostack.drivers.servo.factory import make_bus
from robostack.drivers.servo.registers import Protocol


@dataclass
class BusBenchConfig:
    protocol: Protocol = "feetech"
    motors: int = 6
    baudrate: int = 1_000_000
    seconds: float = 3.0  # per phase
    target_hz: float = 100.0
    corrupt_rate: float = 0.05
    timeout_rate: float = 0.0
    latency_timer_ms: float = 4.0  # a pty has no USB latency timer; 4 ms rides out scheduler stalls
    retries: int = 3
    in_process: bool = False  # emulator in a thread instead of its own process
    seed: int = 0


def _percentiles_ms(durations_s: list[float]) -> dict[str, float]:
    if not durations_s:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    arr = np.asarray(durations_s) * 1e3
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 4),
        "p99_ms": round(float(np.percentile(arr, 99)), 4),
        "max_ms": round(float(arr.max()), 4),
    }


def _run_phase(bus, ids: list[int], seconds: float, target_hz: float | None) -> dict:
    cycle_times: list[float] = []
    failed_cycles = 0
    goals_sent = 0
    last_goals = None
    before = bus.stats.as_dict()
    period = 1.0 / target_hz if target_hz else 0.0
    start = time.perf_counter()
    next_tick = start
    missed = 0
    k = 0
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        try:
            bus.read_positions(ids)
        except CommunicationError:
            failed_cycles += 1  # a real driver holds its last command and goes on
        # a 0.5 Hz sine per joint, phase-shifted, as a teleop or policy stream would look
        phase = 2 * np.pi * 0.5 * k / max(target_hz or 200.0, 1.0) + np.arange(len(ids))
        goals = (2048 + 400 * np.sin(phase)).astype(np.int64)
        bus.write_goal_positions(ids, goals)
        goals_sent += len(ids)
        last_goals = goals
        cycle_times.append(time.perf_counter() - t0)
        k += 1
        if period:
            next_tick += period
            delay = next_tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                missed += 1
                next_tick = time.perf_counter()  # drift-free schedule would pile up; restart it
    elapsed = time.perf_counter() - start
    after = bus.stats.as_dict()
    delta = {key: after[key] - before[key] for key in after if isinstance(after[key], int)}
    result = {
        "cycles": k,
        "rate_hz": round(k / elapsed, 2),
        "failed_cycles": failed_cycles,
        "goals_sent": goals_sent,
        "cycle_time": _percentiles_ms(cycle_times),
        "bus": {
            key: delta[key]
            for key in (
                "attempts", "retries", "rx_corrupt", "rx_timeouts", "recovered_transactions", "failed_transactions"
            )
        },
    }
    if period:
        result["target_hz"] = target_hz
        result["missed_deadlines"] = missed
    result["_last_goals"] = last_goals
    return result


def _with_emulator(cfg: BusBenchConfig, emu_cfg: EmulatorConfig, body) -> tuple[dict, dict]:
    if cfg.in_process:
        emulator = EmulatedServoBus(emu_cfg)
        port = emulator.start()
        try:
            out = body(port)
        finally:
            emulator.stop()
        stats, goals = emulator.stats, emulator.goal_log()
    else:
        proc = EmulatorProcess(emu_cfg)
        try:
            out = body(proc.port)
        finally:
            stats, goals = proc.stop()
    return out, {"stats": stats, "goals": goals}


def run_bus_benchmark(cfg: BusBenchConfig) -> dict:
    """Run the three phases; returns a JSON-ready report."""
    ids = list(range(1, cfg.motors + 1))
    report: dict = {
        "protocol": cfg.protocol,
        "motors": cfg.motors,
        "baudrate": cfg.baudrate,
        "byte_time_us": round(10 / cfg.baudrate * 1e6, 3),
        "latency_timer_ms": cfg.latency_timer_ms,
        "retries": cfg.retries,
        "emulator": "thread" if cfg.in_process else "process",
        "phases": {},
    }

    def bus_for(port: str):
        return make_bus(
            BusConfig(
                port=port,
                protocol=cfg.protocol,
                ids=ids,
                baudrate=cfg.baudrate,
                retries=cfg.retries,
                latency_timer_ms=cfg.latency_timer_ms,
            )
        )

    def phases_for(fault: bool):
        def body(port: str) -> dict:
            bus = bus_for(port)
            bus.open()
            try:
                bus.set_torque(ids, True)
                if fault:
                    return {"faulty": _run_phase(bus, ids, cfg.seconds, None), "bus_totals": bus.stats.as_dict()}
                return {
                    "clean_max_rate": _run_phase(bus, ids, cfg.seconds, None),
                    "clean_paced": _run_phase(bus, ids, cfg.seconds, cfg.target_hz),
                }
            finally:
                bus.close()

        return body

    clean_cfg = EmulatorConfig(protocol=cfg.protocol, ids=ids, baudrate=cfg.baudrate, seed=cfg.seed)
    clean, clean_emu = _with_emulator(cfg, clean_cfg, phases_for(False))
    faulty_cfg = EmulatorConfig(
        protocol=cfg.protocol,
        ids=ids,
        baudrate=cfg.baudrate,
        corrupt_rate=cfg.corrupt_rate,
        timeout_rate=cfg.timeout_rate,
        seed=cfg.seed,
    )
    faulty, faulty_emu = _with_emulator(cfg, faulty_cfg, phases_for(True))

    for name, phase in (("clean_max_rate", clean["clean_max_rate"]), ("clean_paced", clean["clean_paced"])):
        phase.pop("_last_goals")
        report["phases"][name] = phase
    phase = faulty["faulty"]
    last_goals = phase.pop("_last_goals")
    phase["corrupt_rate"] = cfg.corrupt_rate
    phase["timeout_rate"] = cfg.timeout_rate
    stats = faulty_emu["stats"]
    phase["emulator"] = {
        "replies_corrupted": stats.replies_corrupted,
        "replies_dropped": stats.replies_dropped,
        "replies_sent": stats.replies_sent,
        "goals_received": stats.goals_received,
    }
    # The bus must have received exactly what the driver sent, ending with its last command.
    goals = faulty_emu["goals"]
    last_received = {}
    for record in goals:
        last_received[record.motor_id] = record.ticks
    phase["goals_received_match_sent"] = stats.goals_received == phase["goals_sent"]
    phase["last_goals_match"] = last_goals is not None and all(
        last_received.get(i) == int(g) for i, g in zip(ids, last_goals)
    )
    report["phases"]["faulty"] = phase
    report["clean_goals_received_match_sent"] = clean_emu["stats"].goals_received == (
        report["phases"]["clean_max_rate"]["goals_sent"] + report["phases"]["clean_paced"]["goals_sent"]
    )
    return report
