"""The lockstep node graph (sim arm stepped by the expert node) solves an episode faster than
real time; its benchmark command is wired into the CLI."""

import argparse

import pytest

from robostack.sim import cli
from robostack.sim.nodes.bench import lockstep_graph, run_lockstep_bench


@pytest.mark.slow
def test_lockstep_arm_and_expert_processes_solve_an_episode_faster_than_real_time():
    result = run_lockstep_bench(episodes=1, timeout_s=120)
    assert result["successes"] == 1
    assert result["control_steps"] > 300  # the episode took seconds of sim time...
    assert result["realtime_factor"] > 1.5  # ...and less wall time than that


def test_bench_graph_ends_itself_and_queues_every_world_for_the_cameras():
    graph = lockstep_graph("stack", "so101", 2, cameras=True, size=(96, 128))
    assert graph["nodes"]["arm"]["shutdown_on_exit"] and graph["nodes"]["arm"]["params"]["exit_when_done"]
    assert graph["nodes"]["wrist"]["inputs"]["world"]["mode"] == "queue"
    assert graph["nodes"]["expert"]["params"] == {"task": "stack", "arm": "so101", "mode": "lockstep"}


def test_cli_registers_sim_bench_nodes():
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sim", "bench-nodes", "--episodes", "2", "--cameras", "--json"])
    assert args.func is cli.run_bench_nodes and args.episodes == 2 and args.cameras and args.json
