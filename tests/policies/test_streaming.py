"""Streaming diffusion (SDP): the per-action-timestep step graph against torch, the rolling
buffer's noise schedule with an exact denoiser, the in-process policy and the server's sessions
giving the same chunks, restarts, refusals, and the train / export / bench commands."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from robostack.policies import sampling
from robostack.policies.package import PolicyPackageError, SamplerSpec, load_package, parse_policy_json
from robostack.policies.streaming import StreamingSampler, StreamingSchedule, StreamState

TRAIN = 100
ACP = sampling.squaredcos_alphas_cumprod(TRAIN)


def _spec(steps: int = 8, chunks: int = 4, clip: float | None = None, train: int = TRAIN) -> SamplerSpec:
    return SamplerSpec("streaming_ddim", steps, "epsilon", train, sampling.squaredcos_alphas_cumprod(train), clip, chunks)


# -- the sampler, numpy only ---------------------------------------------------------------------


def test_schedule_puts_chunk_i_at_level_n_times_i_plus_1_over_h_minus_1():
    sched = StreamingSchedule(horizon=8, chunks=4, steps=8, train_timesteps=TRAIN)
    assert (sched.chunk_size, sched.steps_per_call, sched.stride) == (2, 2, 12)
    np.testing.assert_array_equal(sched.start_levels(), [1, 1, 3, 3, 5, 5, 7, 7])
    np.testing.assert_array_equal(sched.timesteps(np.array([0, 7])), [0.0, 84.0])
    with pytest.raises(ValueError, match="horizon 8 does not split into 3 chunks"):
        StreamingSchedule(8, 3, 9, TRAIN)
    with pytest.raises(ValueError, match="6 steps do not split into 4 chunks"):
        StreamingSchedule(8, 4, 6, TRAIN)


def _target(times: np.ndarray, action_dim: int) -> np.ndarray:
    """The trajectory the exact denoiser knows: ``(len(times), A)``, smooth in absolute time."""
    return 0.6 * np.sin(0.4 * times[:, None] + np.arange(action_dim)[None]).astype(np.float32)


def test_exact_denoiser_gives_clean_first_chunks_and_the_buffer_follows_the_noise_schedule():
    """With a denoiser that knows the true trajectory, every returned chunk is that trajectory at
    the call's times (clean, shifted right), and what stays in the buffer is the trajectory noised
    exactly to the schedule's levels: the implied noise is standard normal chunk by chunk. (DDIM
    visiting every training timestep, so that its top level is pure noise.)"""
    H, A, B, steps, chunks = 8, 2, 2000, 16, 4
    acp = sampling.squaredcos_alphas_cumprod(steps)
    stream = StreamingSampler(_spec(steps, chunks, train=steps), H, A)
    sched = stream.schedule
    c = sched.chunk_size
    call = {"offset": 0, "steps": 0}

    def exact_step(feed: dict) -> np.ndarray:
        call["steps"] += 1
        t = feed["timestep"].astype(np.int64)
        assert feed["timestep"].shape == feed["sample"].shape[:2]
        a = acp[t].astype(np.float32)[..., None]
        x_star = _target(call["offset"] + np.arange(H), A)[None]
        return (feed["sample"] - np.sqrt(a) * x_star) / np.sqrt(1 - a)

    state, rng = StreamState(), np.random.default_rng(0)
    for k in range(5):
        call["offset"], call["steps"] = k * c, 0
        assert stream.prepare(state, stamp_ns=k * c * 10, dt_ns=10, num_samples=B) == ("start" if k == 0 else None)
        (chunk,) = stream.advance(exact_step, [state], {}, [rng], [B])
        assert call["steps"] == (steps if k == 0 else steps // chunks)  # a restart samples the whole horizon
        np.testing.assert_allclose(chunk, np.broadcast_to(_target(k * c + np.arange(c), A), (B, c, A)), atol=2e-5)
        levels = sched.start_levels()
        np.testing.assert_array_equal(state.levels, np.broadcast_to(levels, (B, H)))
        a = acp[sched.timesteps(levels).astype(np.int64)].astype(np.float32)[None, :, None]
        implied = (state.buffer - np.sqrt(a) * _target((k + 1) * c + np.arange(H), A)[None]) / np.sqrt(1 - a)
        for i in range(chunks):
            part = implied[:, i * c : (i + 1) * c]
            assert abs(part.mean()) < 0.05 and abs(part.std() - 1) < 0.05, (k, i, part.mean(), part.std())


def test_whole_chunk_sampling_with_per_action_timesteps_is_plain_ddim():
    stream = StreamingSampler(_spec(8, 4, clip=1.0), 8, 3)
    noise = np.random.default_rng(1).standard_normal((5, 8, 3)).astype(np.float32)
    per_action = stream.sample(lambda f: 0.3 * f["sample"] + 0.002 * f["timestep"][..., None], noise, {})
    plain = sampling.run_sampler(
        lambda f: 0.3 * f["sample"] + 0.002 * f["timestep"][:, None, None], noise, {}, sampling.ddim_timesteps(TRAIN, 8),
        SamplerSpec("ddim", 8, "epsilon", TRAIN, ACP, 1.0), 8,
    )
    np.testing.assert_array_equal(per_action, plain)


def test_sessions_batched_together_get_what_each_gets_alone():
    """A continuing session (a, 1 sample) and a starting one (b, 2 samples) in one batch share the
    step calls while both are due; b's extra restart steps run alone; each gets its own chunks."""
    stream = StreamingSampler(_spec(clip=1.0), 8, 2)
    cond = {"a": np.array([[0.1, -0.2]], np.float32), "b": np.array([[0.3, 0.0], [0.3, 0.0]], np.float32)}
    period = stream.schedule.chunk_size * 10

    def run(batched: bool) -> tuple[dict, dict, list]:
        calls: list[int] = []

        def step(feed: dict) -> np.ndarray:  # depends on the conditioning row, so rows must not mix up
            calls.append(feed["sample"].shape[0])
            return 0.2 * feed["sample"] + 0.01 * feed["timestep"][..., None] + feed["cond"][:, None, :]

        states = {name: StreamState() for name in "ab"}
        stream.prepare(states["a"], 0, 10)
        stream.advance(step, [states["a"]], {"cond": cond["a"]}, [np.random.default_rng(1)], [1])
        stream.prepare(states["a"], period, 10)
        stream.prepare(states["b"], period, 10, num_samples=2)
        calls.clear()
        if batched:
            out = stream.advance(step, [states["a"], states["b"]], {"cond": np.concatenate([cond["a"], cond["b"]])},
                                 [np.random.default_rng(2), np.random.default_rng(3)], [1, 2])
        else:
            out = [stream.advance(step, [states[n]], {"cond": cond[n]}, [np.random.default_rng(seed)], [b])[0]
                   for n, seed, b in (("a", 2, 1), ("b", 3, 2))]
        return dict(zip("ab", out)), states, calls

    alone, alone_states, _ = run(batched=False)
    together, together_states, calls = run(batched=True)
    assert calls == [3, 3, 2, 2, 2, 2, 2, 2]  # 2 steps for both, 6 more for the restart alone
    for name in "ab":
        np.testing.assert_allclose(together[name], alone[name], atol=1e-6)
        np.testing.assert_allclose(together_states[name].buffer, alone_states[name].buffer, atol=1e-6)


def test_buffer_restarts_on_reset_gap_and_sample_count_and_counts_them():
    stream = StreamingSampler(_spec(), 8, 2)
    state, rng = StreamState(), np.random.default_rng(0)
    step = lambda f: 0.1 * f["sample"]  # noqa: E731
    period = stream.schedule.chunk_size * 50
    for stamp, kwargs, expected in [
        (0, {}, "start"), (period, {}, None), (2 * period + 20, {}, None),  # within dt/2 of the cadence
        (2 * period + 20 + period + 30, {}, "gap"), (5000, {"reset": True}, "reset"), (5000 + period, {"num_samples": 3}, "num_samples"),
    ]:
        assert stream.prepare(state, stamp, 50, **kwargs) == expected
        stream.advance(step, [state], {}, [rng], [kwargs.get("num_samples", 1)])
        assert state.info()["restarted"] == expected
    assert state.restarts == 3 and state.calls == 1


# -- torch model, exported graphs, in-process policy ----------------------------------------------


def _torch():
    return pytest.importorskip("torch", reason="a streaming package is exported from torch")


@pytest.fixture(scope="module")
def streaming(tmp_path_factory):
    _torch()
    from policy_packages import tiny_streaming_package

    return tiny_streaming_package(tmp_path_factory.mktemp("stream") / "pkg", seed=3)


def _obs(rng: np.random.Generator) -> dict:
    from policy_packages import random_observation

    return random_observation(rng)


def test_step_graph_with_a_timestep_per_action_matches_torch(streaming):
    torch = _torch()
    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.policies.preprocessing import encoder_feed

    model, package = streaming
    assert package.spec.sampler.type == "streaming_ddim" and package.spec.sampler.chunks == 4
    policy = OnnxPolicy(package)
    rng = np.random.default_rng(0)
    feed = encoder_feed(package.spec, None, [_obs(rng), _obs(rng)])
    cond = np.repeat(policy.encode(feed)["cond"], 3, axis=0)
    sample = rng.standard_normal((3, 8, 8)).astype(np.float32)
    timestep = rng.integers(0, TRAIN, (3, 8)).astype(np.float32)  # every action its own level
    onnx_eps = policy.step.run(["epsilon"], {"sample": sample, "timestep": timestep, "cond": cond})[0]
    with torch.no_grad():
        torch_eps = model.step(torch.from_numpy(sample), torch.from_numpy(timestep), torch.from_numpy(cond)).numpy()
    assert np.abs(onnx_eps - torch_eps).max() <= 1e-4
    moved = timestep.copy()
    moved[:, 5] = 90.0 - moved[:, 5]  # one action's level changes the prediction
    changed = policy.step.run(["epsilon"], {"sample": sample, "timestep": moved, "cond": cond})[0]
    assert np.abs(changed - onnx_eps).max() > 1e-4


def test_streaming_training_uses_chunkwise_levels_with_a_share_of_constant_ones(streaming):
    torch = _torch()
    model, _ = streaming
    t = model.training_timesteps(4000, torch.Generator().manual_seed(0)).numpy()
    constant = (t == t[:, :1]).all(axis=1)
    assert 0.17 < constant.mean() < 0.23  # SDP's 80/20 mix
    chunkwise = t[~constant]
    np.testing.assert_array_equal(np.diff(chunkwise[:, ::2], axis=1), 25)  # chunk i+1 is T/h above chunk i
    np.testing.assert_array_equal(chunkwise[:, 0::2], chunkwise[:, 1::2])  # one level per chunk
    assert chunkwise[:, 0].min() == 0 and chunkwise[:, 0].max() == 24 and chunkwise[:, -1].max() == 99


def test_in_process_policy_streams_chunks_and_restarts_on_reset_and_gaps(streaming):
    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.policies.preprocessing import encoder_feed

    _, package = streaming
    policy = OnnxPolicy(package, seed=0)
    rng = np.random.default_rng(1)
    period = 2 * policy.dt_ns  # 8 actions in 4 chunks
    metas = []
    for k in range(4):
        chunk = policy.act(_obs(rng), k * period)
        assert chunk.actions.shape == (2, 8) and chunk.start_ns == k * period
        metas.append(chunk.meta["stream"])
    assert [m["call"] for m in metas] == [1, 2, 3, 4]
    assert [m["steps"] for m in metas] == [8, 2, 2, 2] and metas[0]["restarted"] == "start"
    assert policy.act(_obs(rng), 10 * period).meta["stream"]["restarted"] == "gap"
    policy.reset()
    assert policy.stream_state.buffer is None
    assert policy.act(_obs(rng), 0).meta["stream"] == {"call": 1, "restarted": "start", "steps": 8}
    with pytest.raises(ValueError, match="takes no frozen prefix"):
        policy.act(_obs(rng), period, prefix=np.zeros((1, 8), np.float32))
    with pytest.raises(ValueError, match="do not split into 4 chunks"):
        OnnxPolicy(package, steps=6)
    whole = policy.sample_actions(encoder_feed(package.spec, None, policy.history()), 3)
    assert whole.shape == (3, 8, 8)  # whole chunks by plain DDIM still work (failure prediction's samples)


# -- the server ---------------------------------------------------------------------------------


def _local_chunk(policy, history, stamp_ns: int, seed: int) -> np.ndarray:
    from robostack.policies.preprocessing import encoder_feed

    feed = encoder_feed(policy.spec, None, history)
    return policy.stream_actions(feed, stamp_ns, 1, rng=np.random.default_rng(seed))[0]


def test_server_sessions_give_the_chunks_of_the_in_process_policy_and_restart_on_request(streaming):
    from robostack import messages
    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.policies.server import PolicyServer, ServerConfig
    from robostack.transport import ServiceClient

    _, package = streaming
    local = {name: OnnxPolicy(package) for name in ("a", "b")}
    rng = np.random.default_rng(2)
    period = 2 * local["a"].dt_ns
    with PolicyServer(ServerConfig(str(package.root), bind="tcp://127.0.0.1:*", batch_window_ms=5)) as server:
        client = ServiceClient(server.endpoint)

        def act(session: str, k: int, seed: int, **meta) -> messages.Message:
            obs = _obs(rng)
            reply = client.call(messages.make("act", {"image/front": obs["image/front"], "state": obs["state"]}, stamp_ns=k * period,
                                              meta={"seed": seed, "session": session, **meta}), timeout_s=10)
            if meta.get("reset"):
                local[session].stream_state.clear()
            np.testing.assert_allclose(reply["actions"], _local_chunk(local[session], [obs, obs], k * period, seed), atol=1e-5)
            assert reply["actions"].shape == (2, 8)
            return reply

        # two sessions of one client, interleaved, each continuing its own buffer
        replies = [act(name, k, seed=10 * k + i) for k in range(3) for i, name in enumerate("ab")]
        assert [r.meta["stream"]["call"] for r in replies] == [1, 1, 2, 2, 3, 3]
        assert [r.meta["stream"]["steps"] for r in replies] == [8, 8, 2, 2, 2, 2]
        assert replies[-1].meta["stream"]["session"] == "b" and replies[-1].meta["start_ns"] == 2 * period
        reset = act("a", 3, seed=7, reset=True)
        assert reset.meta["stream"] == {"session": "a", "call": 1, "restarted": "reset", "steps": 8}
        assert act("b", 3, seed=8).meta["stream"]["restarted"] is None  # the other session went on
        assert act("b", 9, seed=9).meta["stream"]["restarted"] == "gap"
        # a streaming package takes no prefix, and a session name must be a string
        for meta, arrays, match in [({"session": 5}, {}, "meta 'session' must be a string"),
                                    ({}, {"prefix": np.zeros((1, 8), np.float32)}, "takes no 'prefix' array")]:
            obs = _obs(rng)
            with pytest.raises(Exception, match=match):
                client.call(messages.make("act", {"image/front": obs["image/front"], "state": obs["state"], **arrays}, meta=meta), timeout_s=10)
        stats = server.stats()
        assert stats["stream_calls"]["reset"] == 1 and stats["stream_calls"]["gap"] == 1 and stats["stream_sessions"] == 2
        assert stats["package"]["streaming"] == {"chunks": 4, "steps_per_call": 2}
        client.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_requests_of_one_session_run_one_after_the_other_also_with_two_workers(streaming, workers):
    from robostack import messages
    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.policies.server import PolicyServer, ServerConfig
    from robostack.transport import ServiceClient

    _, package = streaming
    local = OnnxPolicy(package)
    rng = np.random.default_rng(3)
    obs = [_obs(rng) for _ in range(3)]
    period = 2 * local.dt_ns
    with PolicyServer(ServerConfig(str(package.root), bind="tcp://127.0.0.1:*", batch_window_ms=50, workers=workers)) as server:
        client = ServiceClient(server.endpoint)
        ids = [client.send(messages.make("act", {"image/front": o["image/front"], "state": o["state"]}, stamp_ns=k * period, meta={"seed": k}))
               for k, o in enumerate(obs)]  # sent together: they queue as one batch
        replies = [client.wait_for(i, 10) for i in ids]
        assert [r.meta["stream"]["call"] for r in replies] == [1, 2, 3]
        for k, (o, r) in enumerate(zip(obs, replies)):
            np.testing.assert_allclose(r["actions"], _local_chunk(local, [o, o], k * period, k), atol=1e-5)
        client.close()


def test_served_policy_streams_and_its_reset_restarts_the_server_buffer(streaming):
    from robostack.policies.client import ServedPolicy
    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.policies.server import PolicyServer, ServerConfig

    _, package = streaming
    local = OnnxPolicy(package)
    rng = np.random.default_rng(4)
    period = 2 * local.dt_ns
    with PolicyServer(ServerConfig(str(package.root), bind="tcp://127.0.0.1:*")) as server, \
            ServedPolicy(server.endpoint, seed=4, session="arm") as served:
        assert served.streaming
        seeds = np.random.default_rng(4)
        for k in range(3):
            obs = _obs(rng)
            chunk = served.act(obs, k * period)
            local.observe(obs, k * period)
            np.testing.assert_allclose(chunk.actions, _local_chunk(local, local.history(), k * period, int(seeds.integers(0, 2**62))), atol=1e-5)
            assert chunk.actions.shape == (2, 8) and chunk.meta["stream"]["call"] == k + 1
        served.reset()
        assert served.act(_obs(rng), 3 * period).meta["stream"]["call"] == 1


def test_a_package_without_streaming_refuses_session_fields(tmp_path):
    pytest.importorskip("onnx")
    from robostack import messages
    from robostack.policies.serving_protocol import RequestError, parse_act_request
    from robostack.policies.server import PolicyServer, ServerConfig
    from robostack.transport import ServiceClient, ServiceError
    from test_package import write_foreign_package

    write_foreign_package(tmp_path / "plain")
    spec = load_package(tmp_path / "plain").spec
    obs = {"image/front": np.zeros((8, 8, 3), np.uint8), "state": np.zeros(3, np.float32)}
    with pytest.raises(RequestError, match=r"meta \['session'\]: sessions belong to streaming-diffusion packages") as err:
        parse_act_request(spec, obs, 0, {"session": "arm"})
    assert err.value.kind == "unsupported"
    with PolicyServer(ServerConfig(str(tmp_path / "plain"), bind="tcp://127.0.0.1:*")) as server:
        client = ServiceClient(server.endpoint)
        with pytest.raises(ServiceError, match=r"unsupported.*\['reset'\].*samples with 'ddim'"):
            client.call(messages.make("act", obs, meta={"reset": True}), timeout_s=10)
        assert client.call(messages.make("act", obs), timeout_s=10)["actions"].shape == (4, 2)  # still serving
        client.close()


# -- package format ---------------------------------------------------------------------------


def test_package_validation_names_what_is_wrong_with_a_streaming_sampler(streaming, tmp_path):
    pytest.importorskip("onnx")
    from test_package import write_foreign_package

    _, package = streaming
    manifest = json.loads((package.root / "policy.json").read_text())
    assert manifest["sampler"]["chunks"] == 4 and manifest["sampler"]["steps"] == 8
    for edit, match in [
        (lambda s: s.pop("chunks"), "sampler: missing required field 'chunks'"),
        (lambda s: s.update(steps=6), "sampler.steps: 6 steps do not split into 4 chunks"),
        (lambda s: s.update(chunks=3, steps=9), "sampler.chunks: action.horizon 8 does not split into 3 chunks"),
        (lambda s: s.update(chunks=0), "sampler.chunks: expected a positive integer"),
    ]:
        broken = json.loads(json.dumps(manifest))
        edit(broken["sampler"])
        with pytest.raises(PolicyPackageError, match=match):
            parse_policy_json(broken)
    plain = json.loads(json.dumps(manifest))
    plain["sampler"].pop("chunks")
    plain["sampler"]["type"] = "ddim"
    with pytest.raises(PolicyPackageError, match="unknown field"):  # chunks belong to streaming only
        parse_policy_json({**plain, "sampler": {**plain["sampler"], "chunks": 4}})
    # a per-chunk-timestep graph declared streaming is refused by the graph contract
    foreign = write_foreign_package(tmp_path / "foreign")
    foreign["sampler"].update(type="streaming_ddim", chunks=2, steps=4)
    (tmp_path / "foreign" / "policy.json").write_text(json.dumps(foreign))
    with pytest.raises(PolicyPackageError, match=r"graph 'step' input 'timestep': shape mismatch, rank 1 \[B\] but policy.json implies \[B, 4\]"):
        load_package(tmp_path / "foreign")


# -- commands -----------------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    from robostack.cli import main

    return main(argv)


@pytest.mark.slow
def test_train_streaming_exports_a_streaming_package_and_bad_chunks_are_refused(tmp_path, capsys):
    _torch()
    from policy_datasets import write_tiny_dataset

    write_tiny_dataset(tmp_path / "data", [20, 20])
    run, pkg = tmp_path / "run", tmp_path / "pkg"
    common = ["train", "--dataset", str(tmp_path / "data"), "--model-size", "tiny", "--image-size", "32", "--action-horizon", "8",
              "--batch-size", "4", "--steps", "2", "--val-fraction", "0", "--no-progress", "--json", "--streaming"]
    assert _cli([*common, "--out", str(tmp_path / "bad"), "--stream-chunks", "3"]) == 2
    assert "horizon 8 does not split into 3 chunks" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before the dataset loads
    assert _cli([*common, "--out", str(run), "--stream-chunks", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 2
    assert _cli(["export", str(run), "--out", str(pkg)]) == 0
    capsys.readouterr()
    assert _cli(["policy", "inspect", str(pkg)]) == 0
    text = capsys.readouterr().out
    assert "sampler streaming_ddim, 16 steps" in text and "streaming: 2 chunks of 4 actions, 8 steps per call" in text
    assert load_package(pkg).spec.sampler.chunks == 2


def test_bench_reports_the_streaming_call_beside_the_full_chunk(streaming, capsys):
    from robostack.policies import bench

    _, package = streaming
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args([str(package.root), "--repeats", "3", "--warmup", "1", "--no-torch", "--json"])) == 0
    report = json.loads(capsys.readouterr().out)
    stream = report["streaming"]
    assert (stream["chunks"], stream["steps_per_call"], stream["actions_per_call"]) == (4, 2, 2)
    assert stream["restarts_while_timing"] == 0  # every timed call continued the buffer
    assert stream["call"]["median_ms"] > 0 and stream["full_chunk_over_call"] > 0
    assert report["onnxruntime"]["step"]["median_ms"] > 0  # the step timing feeds (B, H) timesteps

