"""The policy server over real sockets: parity with the in-process ONNX policy, many clients,
dynamic batching, refused observations, hot swap under load, the client, the CLI and the node."""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from robostack import messages  # noqa: E402
from robostack.clock import now_ns  # noqa: E402
from robostack.policies.client import ServedPolicy, ServedPolicyError  # noqa: E402
from robostack.policies.onnx_policy import OnnxPolicy  # noqa: E402
from robostack.policies.preprocessing import encoder_feed  # noqa: E402
from robostack.policies.server import PolicyServer, ServerConfig  # noqa: E402
from robostack.transport import ServiceClient, ServiceError  # noqa: E402
from test_package import write_foreign_package  # noqa: E402  (hand-written graphs, no torch)

H, A, D = 4, 2, 3


def _obs(rng: np.random.Generator) -> dict:
    return {"image/front": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "state": rng.normal(size=D).astype(np.float32)}


def _expected(policy: OnnxPolicy, history: list, seed: int, num_samples: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal((num_samples, policy.spec.action_horizon, policy.spec.action_dim)).astype(np.float32)
    return policy.sample_actions(encoder_feed(policy.spec, policy.package.tokenizer, history), num_samples, noise)


def _act(client: ServiceClient, obs: dict, seed: int, stamp_ns: int | None = None, **meta) -> messages.Message:
    return client.call(messages.make("act", obs, stamp_ns=stamp_ns, meta={"seed": seed, **meta}), timeout_s=10)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("foreign") / "pkg"
    write_foreign_package(root)
    return root


@pytest.fixture()
def server(foreign):
    with PolicyServer(ServerConfig(str(foreign), bind="tcp://127.0.0.1:*", batch_window_ms=20)) as srv:
        yield srv


def test_served_chunks_equal_the_in_process_policy_for_the_same_seed(server, foreign):
    local = OnnxPolicy(foreign)
    rng = np.random.default_rng(0)
    history = [_obs(rng), _obs(rng)]
    client = ServiceClient(server.endpoint)
    stacked = {k: np.stack([o[k] for o in history]) for k in history[0]}
    reply = _act(client, stacked, seed=11, stamp_ns=123)
    np.testing.assert_allclose(reply["actions"], _expected(local, history, 11)[0], atol=1e-5)
    assert reply["actions"].shape == (H, A)
    np.testing.assert_allclose(reply["embedding"], local.last_embedding, atol=1e-6)
    assert (reply.meta["obs_stamp_ns"], reply.meta["start_ns"], reply.meta["dt_ns"]) == (123, 123, 100_000_000)
    assert set(reply.meta["timing"]) == {"queue_ms", "encode_ms", "sample_ms", "total_ms"}
    # B samples of one observation in one reply, each as the local policy samples it
    many = _act(client, stacked, seed=5, num_samples=6)
    assert many["actions"].shape == (6, H, A) and many.meta["batch"]["samples"] == 6
    np.testing.assert_allclose(many["actions"], _expected(local, history, 5, 6), atol=1e-5)
    client.close()


def test_served_policy_keeps_the_history_and_matches_onnx_policy(server, foreign):
    local = OnnxPolicy(foreign)
    rng = np.random.default_rng(1)
    obs = [_obs(rng) for _ in range(3)]
    with ServedPolicy(server.endpoint, seed=4) as served:
        seeds = np.random.default_rng(4)
        served.observe(obs[0], 0)
        chunk = served.act(obs[1], 100_000_000)
        local.observe(obs[0], 0)
        local.observe(obs[1], 100_000_000)
        np.testing.assert_allclose(chunk.actions, _expected(local, local.history(), int(seeds.integers(0, 2**62)))[0], atol=1e-5)
        assert (chunk.start_ns, chunk.dt_ns, chunk.obs_stamp_ns) == (100_000_000, 100_000_000, 100_000_000)
        samples = served.sample(obs[2], 5, stamp_ns=200_000_000)
        local.observe(obs[2], 200_000_000)
        np.testing.assert_allclose(samples, _expected(local, local.history(), int(seeds.integers(0, 2**62)), 5), atol=1e-5)
        assert served.last_embedding is not None and served.last_round_trip_ms > 0


@pytest.mark.parametrize("workers", [1, 2])
def test_many_clients_get_their_own_chunks_and_requests_are_batched(foreign, workers):
    server = PolicyServer(ServerConfig(str(foreign), bind="tcp://127.0.0.1:*", batch_window_ms=20, workers=workers)).start()
    local = OnnxPolicy(foreign)
    n = 6
    rng = np.random.default_rng(2)
    observations = [_obs(rng) for _ in range(n)]
    clients = [ServiceClient(server.endpoint) for _ in range(n)]
    for c in clients:  # connect and make every client "active" for the batcher
        _act(c, observations[0], seed=0)
    barrier = threading.Barrier(n)
    replies: dict[int, list] = {i: [] for i in range(n)}

    def worker(i: int) -> None:
        barrier.wait()
        for k in range(5):
            replies[i].append(_act(clients[i], observations[i], seed=100 * i + k))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(n):
        for k, reply in enumerate(replies[i]):
            expected = _expected(local, [observations[i]] * 2, 100 * i + k)[0]
            np.testing.assert_allclose(reply["actions"], expected, atol=1e-5)
    stats = server.stats()
    assert stats["batching"] == "dynamic"
    assert stats["multi_request_batches"] > 0
    assert stats["batches"] < stats["act_requests"]
    assert max(r.meta["batch"]["requests"] for rs in replies.values() for r in rs) > 1
    assert stats["workers"] == workers and 1 <= stats["max_concurrent_batches"] <= workers
    for c in clients:
        c.close()
    server.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_two_workers_compute_two_batches_at_the_same_time_and_one_worker_never_does(foreign, workers):
    # Each batch waits inside sampling until a second batch is sampling too: with two workers both
    # get there; with one, the first waits alone until the barrier gives up.
    config = ServerConfig(str(foreign), bind="tcp://127.0.0.1:*", max_batch=1, workers=workers, inline_lone_requests=False)
    with PolicyServer(config) as srv:
        assert srv.engine is not None
        if workers > 1:  # the cores are shared among the workers: one intra-op thread each here
            assert srv.engine.config.threads == max(1, (os.cpu_count() or 1) // workers)
        barrier = threading.Barrier(2, timeout=1.5)
        met: list[bool] = []
        sample = srv.engine.sample

        def meeting_sample(*args, **kwargs):
            try:
                barrier.wait()
                met.append(True)
            except threading.BrokenBarrierError:
                met.append(False)
            return sample(*args, **kwargs)

        srv.engine.sample = meeting_sample  # type: ignore[method-assign]
        local = OnnxPolicy(foreign)
        obs = _obs(np.random.default_rng(9))
        clients = [ServiceClient(srv.endpoint) for _ in range(2)]
        ids = [c.send(messages.make("act", obs, meta={"seed": 20 + i})) for i, c in enumerate(clients)]
        for i, (c, rid) in enumerate(zip(clients, ids)):
            reply = c.wait_for(rid, 10)
            np.testing.assert_allclose(reply["actions"], _expected(local, [obs] * 2, 20 + i)[0], atol=1e-5)
            c.close()
        assert met == ([True, True] if workers == 2 else [False, False])
        assert srv.stats()["max_concurrent_batches"] == workers


@pytest.mark.parametrize("inline", [True, False])
def test_a_lone_clients_requests_run_on_the_io_thread_only_when_inline_is_on_with_the_same_chunks(foreign, inline):
    local = OnnxPolicy(foreign)
    obs = _obs(np.random.default_rng(7))
    config = ServerConfig(str(foreign), bind="tcp://127.0.0.1:*", inline_lone_requests=inline)
    with PolicyServer(config) as srv:
        client = ServiceClient(srv.endpoint)
        for k in range(4):
            np.testing.assert_allclose(_act(client, obs, seed=k)["actions"], _expected(local, [obs] * 2, k)[0], atol=1e-5)
        stats = srv.stats()
        assert stats["act_requests"] == stats["batches"] == 4
        assert stats["inline_batches"] == (4 if inline else 0)
        client.close()


def test_replies_come_back_out_of_order_and_are_matched_by_request_id(foreign):
    with PolicyServer(ServerConfig(str(foreign), bind="tcp://127.0.0.1:*", batch_window_ms=500)) as srv:
        rng = np.random.default_rng(3)
        client, other = ServiceClient(srv.endpoint), ServiceClient(srv.endpoint)
        for c in (client, other):  # two active clients: a lone request waits the window for the other
            _act(c, _obs(rng), seed=0)
        slow = client.send(messages.make("act", _obs(rng), meta={"num_samples": 3, "seed": 1}))
        quick = client.send(messages.make("stats"))
        first = client.receive(timeout_ms=10_000)
        assert first is not None and first.request_id == quick  # stats overtook the held act request
        assert client.wait_for(slow, 10)["actions"].shape == (3, H, A)
        client.close()
        other.close()


@pytest.mark.parametrize(
    ("change", "kind", "pattern"),
    [
        (lambda o: o.pop("image/front"), "observation", r"observation has no 'image/front'"),
        (lambda o: o.update(state=np.zeros(5, np.float32)), "observation", r"'state': expected shape \[3\]"),
        (lambda o: o.update(state=np.zeros(3, np.float64)), "observation", r"'state': dtype float64, policy.json declares float32"),
        (lambda o: o.update(state=np.full(3, np.nan, np.float32)), "observation", r"NaN or Inf"),
        (lambda o: o.update({"image/front": np.zeros((8, 8, 3), np.float32)}), "observation", r"'image/front': dtype float32"),
        (lambda o: o.update(state=np.zeros((5, 3), np.float32)), "observation", r"history has 2 observations"),
        (lambda o: o.update(joints=np.zeros(3, np.float32)), "observation", r"\['joints'\] are not inputs"),
        (lambda o: o.update(prefix=np.zeros((H, A), np.float32)), "request", r"'prefix' array: prefix length d must be in \[1, 3\]"),
        (lambda o: o.update(prefix=np.zeros((2, A + 1), np.float32)), "request", r"'prefix' array: prefix must have shape \(d, 2\)"),
        (lambda o: o.update(prefix=np.full((2, A), np.inf, np.float32)), "request", r"'prefix' array: prefix contains NaN or Inf"),
        (lambda o: o.update(prefix=np.zeros((2, A), np.int32)), "request", r"'prefix' array: prefix must be a float array"),
    ],
)
def test_observations_that_do_not_match_policy_json_get_named_errors(server, change, kind, pattern):
    obs = _obs(np.random.default_rng(4))
    change(obs)
    client = ServiceClient(server.endpoint)
    with pytest.raises(ServiceError, match=pattern) as err:
        _act(client, obs, seed=0)
    assert err.value.kind == kind
    assert _act(client, _obs(np.random.default_rng(4)), seed=0)["actions"].shape == (H, A)  # still serving
    client.close()


def test_bad_meta_unknown_topics_and_garbage_frames_never_stop_the_server(server):
    import zmq

    client = ServiceClient(server.endpoint)
    obs = _obs(np.random.default_rng(5))
    with pytest.raises(ServiceError, match=r"'num_samples' must be an integer") as err:
        client.call(messages.make("act", obs, meta={"num_samples": "many"}), 5)
    assert err.value.kind == "request"
    with pytest.raises(ServiceError, match=r"unknown meta field\(s\) \['sed'\]"):
        client.call(messages.make("act", obs, meta={"sed": 1}), 5)
    with pytest.raises(ServiceError, match="unknown_topic"):
        client.call(messages.make("dance"), 5)
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.connect(server.endpoint)
    raw.send_multipart([b"junk"])  # no envelope: dropped and counted
    raw.send_multipart([b"", (7).to_bytes(8, "little"), b"act", b"{not json"])  # envelope ok: malformed reply
    assert raw.poll(5000)
    assert json.loads(raw.recv_multipart()[3])["meta"]["error"] == "malformed"
    raw.close(linger=0)
    assert client.ping(5)
    assert _act(client, obs, seed=0)["actions"].shape == (H, A)
    stats = client.call(messages.make("stats"), 5).meta
    assert stats["errors"]["request"] == 2 and stats["errors"]["unknown_topic"] == 1
    assert stats["service"]["malformed"]["envelope"] == 1
    client.close()


def test_stale_observations_are_refused(foreign):
    with PolicyServer(ServerConfig(str(foreign), bind="tcp://127.0.0.1:*", max_obs_age_ms=100)) as srv:
        client = ServiceClient(srv.endpoint)
        obs = _obs(np.random.default_rng(6))
        with pytest.raises(ServiceError, match=r"observation is \d+\.\d ms old, the server accepts at most 100 ms") as err:
            _act(client, obs, seed=0, stamp_ns=now_ns() - 1_000_000_000)
        assert err.value.kind == "stale"
        assert _act(client, obs, seed=0, stamp_ns=now_ns())["actions"].shape == (H, A)
        client.close()


def _fix_batch_axis(root: Path) -> None:
    """Rewrite the package's graphs with a fixed batch of 1 (as some exporters write them)."""
    for name in ("encoder.onnx", "step.onnx"):
        model = onnx.load(str(root / name))
        for value in list(model.graph.input) + list(model.graph.output):
            value.type.tensor_type.shape.dim[0].dim_value = 1
        onnx.save(model, str(root / name))


def test_graphs_without_a_batch_axis_are_served_sequentially_with_the_same_results(tmp_path, foreign):
    root = tmp_path / "fixed"
    write_foreign_package(root)
    _fix_batch_axis(root)
    local = OnnxPolicy(foreign)
    with PolicyServer(ServerConfig(str(root), bind="tcp://127.0.0.1:*")) as srv:
        client = ServiceClient(srv.endpoint)
        obs = _obs(np.random.default_rng(7))
        reply = _act(client, obs, seed=3, num_samples=3)
        np.testing.assert_allclose(reply["actions"], _expected(local, [obs, obs], 3, 3), atol=1e-5)
        stats = client.call(messages.make("stats"), 5).meta
        assert stats["batching"] == "sequential"
        assert stats["package"]["fixed_batch"] == {"encoder": 1, "step": 1}
        client.close()


def _edited_package(root: Path, name: str, action_max: list) -> Path:
    write_foreign_package(root)
    manifest = json.loads((root / "policy.json").read_text())
    manifest["name"] = name
    manifest["action"]["normalization"]["max"] = action_max
    (root / "policy.json").write_text(json.dumps(manifest))
    return root


@pytest.mark.parametrize("workers", [1, 3])
def test_hot_swap_under_load_keeps_every_client_and_switches_between_batches(tmp_path, foreign, workers):
    new = _edited_package(tmp_path / "v2", "foreign-v2", [3, 9])
    with PolicyServer(ServerConfig(str(foreign), bind="tcp://127.0.0.1:*", workers=workers)) as srv:
        stop = threading.Event()
        names: dict[int, list[str]] = {i: [] for i in range(4)}
        failures: list[BaseException] = []

        def worker(i: int) -> None:
            try:
                with ServedPolicy(srv.endpoint, seed=i) as policy:
                    rng = np.random.default_rng(i)
                    t = 0
                    while not stop.is_set():
                        t += 100_000_000
                        names[i].append(policy.act(_obs(rng), t).meta["policy"])
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        with ServedPolicy(srv.endpoint) as admin:
            with pytest.raises(ServedPolicyError, match="load_failed") as err:
                admin.load(str(tmp_path / "missing"))
            assert "not a directory" in err.value.detail
            loaded = admin.load(str(new))
            assert loaded["name"] == "foreign-v2"
            time.sleep(0.3)
            stop.set()
            for t in threads:
                t.join(10)
            stats = admin.stats()
        assert not failures
        for seq in names.values():
            assert seq[0] == "foreign" and seq[-1] == "foreign-v2"
            switch = seq.index("foreign-v2")
            assert set(seq[switch:]) == {"foreign-v2"}  # never back to the old package
        assert stats["swaps"] == 1 and stats["package"]["name"] == "foreign-v2"
        assert stats["errors"] == {"load_failed": 1}


def test_a_silent_server_is_a_clear_timeout(tmp_path):
    with pytest.raises(ServedPolicyError, match=r"no reply from the policy server at ipc://.* within 0.3 s") as err:
        ServedPolicy(f"ipc://{tmp_path}/nobody.sock", timeout_s=0.3)
    assert err.value.kind == "timeout"


def test_provider_report_names_where_each_graph_runs(server):
    report = server.stats()["package"]["providers"]
    assert report["graphs"] == {"encoder": ["CPUExecutionProvider"], "step": ["CPUExecutionProvider"]}
    assert server.warmup_ms  # warmed up before serving


def test_unavailable_providers_are_skipped_and_unknown_ones_refused(foreign):
    from robostack.policies.serving_engine import EngineConfig, ServingEngine, parse_providers

    with pytest.raises(ValueError, match=r"unknown execution provider 'gpu'"):
        parse_providers("gpu,cpu")
    engine = ServingEngine(foreign, EngineConfig(providers=parse_providers("tensorrt,cuda,cpu")))
    report = engine.providers_report()
    assert report["graphs"]["step"][-1] == "CPUExecutionProvider"
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert report["skipped_unavailable"] == ["tensorrt", "cuda"]
        with pytest.raises(RuntimeError, match="none of the requested execution providers"):
            ServingEngine(foreign, EngineConfig(providers=("cuda",)))


def test_serve_cli_registers_its_options_and_checks_them():
    from robostack.policies import serve_cli

    parser = argparse.ArgumentParser()
    serve_cli.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "pkg", "--providers", "tensorrt,cuda,cpu", "--bind", "tcp://0.0.0.0:6000", "--max-batch", "16"])
    config = serve_cli.server_config(args)
    assert config.engine.providers == ("tensorrt", "cuda", "cpu") and config.bind == "tcp://0.0.0.0:6000" and config.max_batch == 16
    assert config.workers == 2 and config.engine.threads is None  # threads: the cores shared among the workers
    assert serve_cli.server_config(parser.parse_args(["serve", "pkg", "--workers", "1", "--threads", "2"])).workers == 1
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        PolicyServer(serve_cli.server_config(parser.parse_args(["serve", "pkg", "--workers", "0"])))
    assert args.func(parser.parse_args(["serve", "pkg", "--providers", "tpu"])) == 2
    with pytest.raises(ValueError, match="--authorized-keys needs --curve-secret"):
        serve_cli.server_config(parser.parse_args(["serve", "pkg", "--authorized-keys", "keys"]))


def test_server_runs_as_a_graph_node(foreign, tmp_path):
    from robostack.policies.serving_node import PolicyServerNode

    endpoint = f"ipc://{tmp_path}/policy.sock"
    node = PolicyServerNode("policy", {"package": str(foreign), "bind": endpoint})
    node.setup()
    try:
        with ServedPolicy(endpoint) as policy:
            assert policy.act(_obs(np.random.default_rng(8)), 0).actions.shape == (H, A)
        node.step()
        assert node.extra_stats()["chunks"] == 1
    finally:
        node.close()


def test_curve_server_admits_only_authorized_clients(foreign, tmp_path):
    import zmq.auth

    from robostack.transport import CurveConfig

    keys, authorized = tmp_path / "keys", tmp_path / "authorized"
    keys.mkdir()
    authorized.mkdir()
    server_pub, server_sec = zmq.auth.create_certificates(str(keys), "server")
    client_pub, client_sec = zmq.auth.create_certificates(str(keys), "client")
    _, stranger_sec = zmq.auth.create_certificates(str(keys), "stranger")
    Path(client_pub).rename(authorized / "client.key")
    config = ServerConfig(str(foreign), bind="tcp://127.0.0.1:*", curve=CurveConfig(secret_key_file=server_sec, authorized_keys_dir=str(authorized)))
    with PolicyServer(config) as srv:
        with ServedPolicy(srv.endpoint, curve=CurveConfig(secret_key_file=client_sec, server_public_key_file=server_pub)) as policy:
            assert policy.act(_obs(np.random.default_rng(9)), 0).actions.shape == (H, A)
        with pytest.raises(ServedPolicyError, match="timeout"):
            ServedPolicy(srv.endpoint, timeout_s=0.5, curve=CurveConfig(secret_key_file=stranger_sec, server_public_key_file=server_pub))


def test_an_exported_diffusion_policy_serves_what_it_computes_in_process(tmp_path):
    pytest.importorskip("torch", reason="the package is exported from a torch model")
    from policy_packages import random_observation, tiny_diffusion_package

    _, package = tiny_diffusion_package(tmp_path / "diffusion")
    local = OnnxPolicy(package)
    rng = np.random.default_rng(10)
    history = [random_observation(rng), random_observation(rng)]  # 48x64 frames: resized by the server
    with PolicyServer(ServerConfig(str(tmp_path / "diffusion"), bind="tcp://127.0.0.1:*")) as srv:
        client = ServiceClient(srv.endpoint)
        stacked = {k: np.stack([o[k] for o in history]) for k in ("image/front", "state")}
        reply = _act(client, stacked, seed=21, num_samples=3)
        np.testing.assert_allclose(reply["actions"], _expected(local, history, 21, 3), atol=1e-4)
        np.testing.assert_allclose(reply["embedding"], local.last_embedding, atol=1e-5)
        client.close()


def test_serving_path_imports_no_torch_and_cli_modules_only_the_standard_library():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import robostack.policies.serve_cli, robostack.policies.serve_bench\n"
        "cli_mods = {m.split('.')[0] for m in sys.modules} & {'numpy', 'zmq', 'onnxruntime'}\n"
        "import robostack.policies.server, robostack.policies.client, robostack.policies.serving_node\n"
        "heavy = [m for m in ('torch', 'onnx', 'mujoco', 'cv2') if m in sys.modules]\n"
        "print(sorted(cli_mods), heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []", out.stdout
