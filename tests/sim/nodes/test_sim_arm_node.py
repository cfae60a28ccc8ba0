"""The sim arm as a real node process: lockstep determinism, sim-time stamps, step requests,
and real-time mode stamping with CLOCK_MONOTONIC like a real arm."""

import time

import numpy as np
import pytest

from robostack.chunks import ActionChunk, chunk_to_message_parts
from node_harness import NodeProcess, make_publisher, short_dir

pytestmark = pytest.mark.slow
ARM = "robostack.sim.nodes.arm:SimArmNode"
PERIOD_NS = 10_000_000  # rate_hz 100


def start_arm(run_dir, params, subscribers):
    cmd, cmd_ep, cmd_topic = make_publisher(run_dir, "command")
    ctl, ctl_ep, ctl_topic = make_publisher(run_dir, "control")
    chunk, chunk_ep, chunk_topic = make_publisher(run_dir, "chunk")
    node = NodeProcess("arm", ARM, params, run_dir,
                       inputs={"command": (cmd_ep, cmd_topic, "latest"), "control": (ctl_ep, ctl_topic, "queue"),
                               "chunk": (chunk_ep, chunk_topic, "queue")},
                       outputs={"applied": 0, "world": 0, "episode": 0, "state": 0, **subscribers})
    return node, cmd, ctl, chunk


def next_state(node, sub, after_tick):
    while True:
        msg = node.wait(sub)
        if msg.meta["tick"] > after_tick:
            return msg


def lockstep_run(n_commands=120):
    """Drive a fresh lockstep arm with a fixed request sequence; returns ticks, stamps, positions."""
    run_dir = short_dir()
    node, cmd, ctl, chunk_pub = start_arm(run_dir, {"mode": "lockstep", "seed_start": 4, "task": "pick_place"},
                                         {"state": 1, "episode": 1})
    states = node.subscribe("state")
    episodes = node.subscribe("episode")
    try:
        for pub in (cmd, ctl, chunk_pub):
            assert pub.wait_for_subscribers(1, 20.0), node.log
        msg = node.wait(states, 30.0)
        home = np.asarray(msg["position"], dtype=np.float64)
        ticks, stamps, positions = [msg.meta["tick"]], [msg.stamp_ns], [np.asarray(msg["position"])]
        t0 = time.perf_counter()
        for k in range(n_commands):
            target = home + 0.25 * np.sin(0.05 * k + np.arange(home.size))
            target[-1] = 0.02
            cmd.publish({"position": target.astype(np.float32)}, stamp_ns=msg.stamp_ns)
            msg = next_state(node, states, msg.meta["tick"])
            ticks.append(msg.meta["tick"]); stamps.append(msg.stamp_ns); positions.append(np.asarray(msg["position"]))
        elapsed = time.perf_counter() - t0
        ctl.publish({}, meta={"command": "step", "steps": 7})  # time passes with the last target held
        msg = next_state(node, states, msg.meta["tick"])
        ticks.append(msg.meta["tick"]); stamps.append(msg.stamp_ns); positions.append(np.asarray(msg["position"]))
        chunk = ActionChunk(np.tile(positions[-1], (5, 1)) + 0.05, start_ns=msg.stamp_ns, dt_ns=50_000_000,
                            obs_stamp_ns=msg.stamp_ns)
        arrays, meta = chunk_to_message_parts(chunk)
        chunk_pub.publish(arrays, stamp_ns=msg.stamp_ns, meta=meta)
        msg = next_state(node, states, msg.meta["tick"])
        ticks.append(msg.meta["tick"]); stamps.append(msg.stamp_ns); positions.append(np.asarray(msg["position"]))
        first_episode = node.wait(episodes).meta
        stats = node.stats()
    finally:
        rc = node.stop()
        for s in (states, episodes):
            s.close()
        for pub in (cmd, ctl, chunk_pub):
            pub.close()
    assert rc == 0, node.log
    return np.array(ticks), np.array(stamps), np.array(positions), n_commands / elapsed, first_episode, stats


def test_lockstep_is_deterministic_and_stamps_are_sim_time():
    ticks, stamps, positions, rate, episode, stats = lockstep_run()
    ticks2, stamps2, positions2, rate2, _, _ = lockstep_run()
    print(f"lockstep round trips (command -> state) per second: {rate:.0f}, {rate2:.0f}")
    np.testing.assert_array_equal(ticks, ticks2)
    np.testing.assert_array_equal(stamps, stamps2)
    np.testing.assert_array_equal(positions, positions2)  # bit-identical trajectories
    # one control period per command, 7 for the step request, one for the chunk
    assert ticks.tolist() == list(range(121)) + [127, 128]
    np.testing.assert_array_equal(stamps, ticks * PERIOD_NS)  # sim time, not the wall clock
    assert np.abs(positions[60] - positions[0]).max() > 0.05  # the arm did follow the commands
    assert (episode["phase"], episode["seed"], episode["episode"]) == ("reset", 4, 0)
    extra = stats["extra"]
    assert extra["inputs"]["commands_accepted"] == 120 and extra["inputs"]["chunks_accepted"] == 1
    assert extra["hardware"]["control_ticks"] == 128


def test_realtime_arm_stamps_with_the_monotonic_clock_and_runs_episodes_to_the_time_limit():
    run_dir = short_dir()
    node, cmd, ctl, chunk_pub = start_arm(run_dir, {"mode": "realtime", "seed_start": 2, "episodes": 2,
                                                    "episode_time_s": 0.6, "reset_time_s": 0.2, "startup_s": 0.3},
                                         {"state": 1, "episode": 1, "world": 1})
    states = node.subscribe("state", mode="latest")
    episodes = node.subscribe("episode")
    worlds = node.subscribe("world", mode="latest")
    try:
        msg = node.wait(states, 30.0)
        assert abs(time.monotonic_ns() - msg.stamp_ns) < 0.5e9
        world = node.wait(worlds)
        assert world.meta["arm"] == "panda" and world["qpos"].shape == (23,)
        seen = []
        deadline = time.monotonic() + 20
        while not seen or seen[-1][0] != "done":
            assert time.monotonic() < deadline, (seen, node.log)
            ep = node.wait(episodes).meta
            if not seen or seen[-1] != (ep["phase"], ep["seed"]):
                seen.append((ep["phase"], ep["seed"]))
        assert seen == [("reset", 2), ("running", 2), ("timeout", 2), ("reset", 3), ("running", 3), ("timeout", 3),
                        ("done", 3)]
        ctl.publish({}, meta={"command": "step"})  # not in real-time mode: refused, counted, logged
        time.sleep(0.3)
    finally:
        rc = node.stop()
        for s in (states, episodes, worlds):
            s.close()
        for pub in (cmd, ctl, chunk_pub):
            pub.close()
    assert rc == 0, node.log
    assert "'step' only applies in lockstep mode" in node.log
