import textwrap

import pytest

from robostack.graph import GraphError, load, parse_set


def write(tmp_path, text, name="g.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


GOOD = """
    name: g
    args:
      rate: {default: 30}
      big: {default: false, choices: [true, false]}
    nodes:
      cam:
        class: robostack.diagnostics:Pulse
        params: {shape: [4, 4], dtype: uint8, rate_hz: "${rate}"}
      probe:
        class: robostack.diagnostics:Probe
        inputs: {frames: {from: cam/out, queue_size: 50}}
"""


def test_valid_graph_resolves_an_endpoint_for_every_link(tmp_path):
    g = load(write(tmp_path, GOOD), run_dir=tmp_path / "run")
    cam, probe = g.specs["cam"], g.specs["probe"]
    assert cam.wiring.outputs["out"].endpoint.startswith("ipc://")
    assert probe.wiring.inputs["frames"].endpoints == [cam.wiring.outputs["out"].endpoint]
    assert probe.wiring.inputs["frames"].topic == "cam/out"
    assert probe.wiring.inputs["frames"].mode == "queue" and probe.wiring.inputs["frames"].queue_size == 50
    assert cam.params["rate_hz"] == 30  # ${rate} kept its type


def test_set_overrides_arguments_and_node_params(tmp_path):
    g = load(write(tmp_path, GOOD), ["rate=100", "cam.shape=[8, 8, 3]"], run_dir=tmp_path / "run")
    assert g.specs["cam"].params["rate_hz"] == 100 and g.specs["cam"].params["shape"] == [8, 8, 3]


def test_tcp_transport_gives_tcp_endpoints(tmp_path):
    g = load(write(tmp_path, GOOD.replace("name: g", "name: g\n    transport: tcp")), run_dir=tmp_path / "r")
    assert g.specs["cam"].wiring.outputs["out"].endpoint.startswith("tcp://127.0.0.1:")


def problems_of(tmp_path, text, sets=None):
    with pytest.raises(GraphError) as exc:
        load(write(tmp_path, text), sets, run_dir=tmp_path / "run")
    return "\n".join(exc.value.problems)


def test_unknown_class_is_reported_with_its_path(tmp_path):
    msg = problems_of(tmp_path, """
        nodes:
          a: {class: robostack.diagnostics:Pulsar}
    """)
    assert "robostack.diagnostics:Pulsar" in msg and "no 'Pulsar'" in msg


def test_unimportable_module_is_reported(tmp_path):
    assert "cannot import module 'nosuch.module'" in problems_of(tmp_path, "nodes:\n  a: {class: 'nosuch.module:X'}\n")


def test_unknown_param_is_reported_with_the_known_ones(tmp_path):
    msg = problems_of(tmp_path, """
        nodes:
          a: {class: robostack.diagnostics:Pulse, params: {rate: 3}}
    """)
    assert "unknown param(s) ['rate']" in msg and "rate_hz" in msg


def test_param_of_the_wrong_type_is_reported(tmp_path):
    msg = problems_of(tmp_path, """
        nodes:
          a: {class: robostack.diagnostics:Pulse, params: {rate_hz: fast}}
    """)
    assert "rate_hz" in msg and "expected a number" in msg


def test_misspelled_input_gets_a_suggestion(tmp_path):
    msg = problems_of(tmp_path, """
        nodes:
          cam: {class: robostack.diagnostics:Pulse}
          probe: {class: robostack.diagnostics:Probe, inputs: {frame: cam/out}}
    """)
    assert "no input 'frame'" in msg and "did you mean 'frames'" in msg
    assert "required input 'frames' is not connected" in msg


def test_link_to_a_missing_node_or_output_is_reported(tmp_path):
    msg = problems_of(tmp_path, """
        nodes:
          cam: {class: robostack.diagnostics:Pulse}
          p1: {class: robostack.diagnostics:Probe, inputs: {frames: camera/out}}
          p2: {class: robostack.diagnostics:Probe, inputs: {frames: cam/output}}
    """)
    assert "no node named 'camera'" in msg and "has no output 'output'" in msg


def test_duplicate_node_names_are_reported_with_lines(tmp_path):
    msg = problems_of(tmp_path, """
        nodes:
          cam: {class: robostack.diagnostics:Pulse}
          cam: {class: robostack.diagnostics:Pulse}
    """)
    assert "duplicate key 'cam'" in msg


def test_cycle_of_event_driven_nodes_cannot_start(tmp_path):
    msg = problems_of(tmp_path, """
        nodes:
          a: {class: robostack.diagnostics:Relay, inputs: {in: b/out}}
          b: {class: robostack.diagnostics:Relay, inputs: {in: a/out}}
    """)
    assert "can never start" in msg and "'a'" in msg and "'b'" in msg


def test_cycle_through_a_periodic_node_is_fine(tmp_path):
    from robostack.graph import build

    # a Relay loop fed by a Pulse still has a node that runs on its own
    data = {"nodes": {
        "p": {"class": "robostack.diagnostics:Pulse"},
        "a": {"class": "robostack.diagnostics:Relay", "inputs": {"in": "p/out"}},
        "b": {"class": "robostack.diagnostics:Relay", "inputs": {"in": "a/out"}},
    }}
    assert set(build(data, run_dir=tmp_path).nodes) == {"p", "a", "b"}


def test_unknown_set_target_and_bad_choice_are_reported(tmp_path):
    msg = problems_of(tmp_path, GOOD, ["rat=3", "camm.rate_hz=3", "big=maybe"])
    assert "--set rat: no such argument" in msg and "did you mean 'rate'" in msg
    assert "no node named 'camm'" in msg
    assert "big='maybe' is not one of" in msg


def test_select_picks_a_node_class_from_an_argument(tmp_path):
    g = load(write(tmp_path, """
        args: {kind: pulse}
        nodes:
          src:
            class: {$select: kind, pulse: "robostack.diagnostics:Pulse", relay: "robostack.diagnostics:Relay"}
    """), run_dir=tmp_path / "run")
    assert g.nodes["src"].class_path == "robostack.diagnostics:Pulse"


def test_disabled_node_is_left_out(tmp_path):
    g = load(write(tmp_path, GOOD.replace("      probe:\n", "      probe:\n        enabled: ${big}\n")), run_dir=tmp_path / "r")
    assert set(g.nodes) == {"cam"}


def test_parse_set_reads_yaml_values():
    args, params = parse_set(["a=3", "b=[1, 2]", "n.p=true", "s=hello"])
    assert args == {"a": 3, "b": [1, 2], "s": "hello"} and params == {"n": {"p": True}}


def test_all_problems_are_reported_at_once(tmp_path):
    with pytest.raises(GraphError) as exc:
        load(write(tmp_path, """
            nodes:
              a: {class: robostack.diagnostics:Pulse, params: {bogus: 1}}
              b: {class: robostack.diagnostics:Probe}
        """), run_dir=tmp_path / "run")
    assert len(exc.value.problems) == 2


def test_nodes_on_two_hosts_get_the_same_tcp_ports_on_both_launchers(tmp_path):
    from robostack.graph import build

    data = {"base_port": 47000, "nodes": {
        "cam": {"class": "robostack.diagnostics:Pulse", "transport": "tcp"},
        "probe": {"class": "robostack.diagnostics:Probe", "inputs": {"frames": "cam/out"}, "host": "gpubox", "transport": "tcp"},
    }}
    g = build(data, run_dir=tmp_path)
    assert g.local_nodes() == ["cam"] and g.local_nodes("gpubox") == ["probe"]
    ep = g.specs["cam"].wiring.outputs["out"].endpoint
    assert ep.startswith("tcp://") and g.specs["probe"].wiring.inputs["frames"].endpoints == [ep]
    # the remote node binds on all interfaces at a port both sides derive from base_port
    assert g.specs["probe"].wiring.stats_endpoint.startswith("tcp://*:470")


def test_other_hosts_without_base_port_are_refused(tmp_path):
    from robostack.graph import build

    data = {"nodes": {"cam": {"class": "robostack.diagnostics:Pulse", "host": "box", "transport": "tcp"}}}
    with pytest.raises(GraphError, match="base_port"):
        build(data, run_dir=tmp_path)


def test_send_queue_fits_the_largest_reader_queue(tmp_path):
    from robostack.graph import build

    data = {"nodes": {
        "cam": {"class": "robostack.diagnostics:Pulse"},
        "cam2": {"class": "robostack.diagnostics:Pulse"},
        "viewer": {"class": "robostack.diagnostics:Probe", "inputs": {"frames": {"from": "cam/out", "mode": "latest"}}},
        "recorder": {"class": "robostack.diagnostics:Probe", "inputs": {"frames": {"from": "cam2/out", "queue_size": 5000}}},
    }}
    g = build(data, run_dir=tmp_path)
    assert g.specs["cam"].wiring.outputs["out"].hwm == 1000
    assert g.specs["cam2"].wiring.outputs["out"].hwm == 5000
