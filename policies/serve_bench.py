"""``robostack bench serve POLICY_DIR``: what the policy server adds to model compute, and how it
scales with concurrent clients.

For ipc and tcp in turn, a server runs in its own process and this process's clients send
observations at model size: first one client back to back, then ``--clients`` concurrent clients
(threads, each with its own socket). Reported: round trip observation → chunk (p50/p99), the
server's overhead (round trip minus the encoder and sampling time the server measured: transport,
(de)serialization, validation, preprocessing, queueing, the client's own work; p50/p99), the part
of it spent inside the server process, the queueing, aggregate chunks/s, and the batches the
server formed. Only the standard library at import.

Beside each transport's one-client phase runs its baseline, in the same run: bare ZeroMQ (a DEALER
and a ROUTER in two processes, no robostack code on the path) carrying requests and replies of the
same sizes, the ROUTER holding each request on one busy thread for the model compute the server
measured. Its round trip minus the hold is the floor this machine puts under any server overhead:
the socket hand-offs and the wake-ups of the processes and ZeroMQ's I/O threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from typing import Any

from robostack.params import comma_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy_dir", metavar="POLICY_DIR")
    parser.add_argument("--providers", default="cpu", help="execution providers in order of preference")
    parser.add_argument("--transports", default="ipc,tcp", help="comma-separated: ipc, tcp")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients in the second phase")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase (4 phases by default)")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the package's)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads on the server")
    parser.add_argument("--no-spin", action="store_true", help="onnxruntime threads sleep between calls")
    parser.add_argument("--io-binding", action=argparse.BooleanOptionalAction, default=None,
                        help="the server runs its graphs through IOBinding (default: on a GPU provider only)")
    parser.add_argument("--cuda-graphs", action="store_true", help="the server replays CUDA graphs (CUDA provider)")
    parser.add_argument("--fused", action="store_true", help="the server samples with the package's fused sampler graph")
    parser.add_argument("--fp16", action="store_true", help="the server lets TensorRT use half precision")
    parser.add_argument("--workers", type=int, default=2, help="compute threads on the server")
    parser.add_argument("--no-inline", action="store_true", help="the server hands a lone client's requests to its compute thread too")
    parser.add_argument("--batch-window-ms", type=float, default=2.0)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--json", action="store_true")


def _observation(info: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    obs: dict[str, Any] = {}
    for inp in info["inputs"]:
        if inp["kind"] == "image":
            obs[inp["name"]] = rng.integers(0, 256, inp["shape"], dtype=np.uint8)
        elif inp["kind"] == "vector":
            obs[inp["name"]] = rng.uniform(-1, 1, inp["shape"]).astype(np.float32)
        else:
            obs[inp["name"]] = np.array("put the red cube in the bin")
    return obs


def _client_loop(endpoint: str, duration_s: float, out: list, barrier: threading.Barrier, sizes: list | None = None) -> None:
    from robostack.policies.client import ServedPolicy

    with ServedPolicy(endpoint, timeout_s=30.0) as policy:
        obs = _observation(policy.info)
        policy.act(obs, time.monotonic_ns())  # connect and warm the path
        if sizes is not None:
            sizes.extend(_message_sizes(policy, obs))
        barrier.wait()
        deadline = time.perf_counter() + duration_s
        while time.perf_counter() < deadline:
            chunk = policy.act(obs, time.monotonic_ns())
            timing = chunk.meta["timing"]
            rt = policy.last_round_trip_ms
            compute = timing["encode_ms"] + timing["sample_ms"]
            out.append((rt, rt - compute, timing["total_ms"] - compute, timing["queue_ms"], chunk.meta["batch"]["requests"]))


def _message_sizes(policy: Any, obs: dict[str, Any]) -> list[list[int]]:
    """Frame sizes of ``policy``'s act request for ``obs`` and of the reply it got last, as the
    robostack codec puts them on the wire."""
    import numpy as np

    from robostack import messages
    from robostack.policies import serving_protocol as proto

    arrays, instruction = proto.act_arrays(policy.spec, [obs] * policy.observation_horizon)
    meta: dict[str, Any] = {"num_samples": 1, **({"instruction": instruction} if instruction is not None else {})}
    request = messages.encode(messages.make(proto.ACT, arrays, stamp_ns=time.monotonic_ns(), meta=meta))
    info = policy.info
    reply_arrays = {"actions": np.zeros((info["action_horizon"], info["action_dim"]), np.float32)}
    if policy.last_embedding is not None:
        reply_arrays["embedding"] = np.asarray(policy.last_embedding, np.float32)
    reply = messages.encode(messages.make(proto.CHUNK, reply_arrays, stamp_ns=time.monotonic_ns(), meta=policy.last_meta))
    return [[len(memoryview(f).cast("B")) for f in request], [len(memoryview(f).cast("B")) for f in reply]]


def _phase(endpoint: str, clients: int, duration_s: float, sizes: list | None = None) -> dict[str, Any]:
    import numpy as np

    results: list[list] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=_client_loop, args=(endpoint, duration_s, results[i], barrier, sizes)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rows = np.array([r for rs in results for r in rs], dtype=np.float64)
    rt, overhead, inside, queue, batch = rows.T

    def pct(a: Any) -> dict[str, float]:
        return {"p50": round(float(np.percentile(a, 50)), 4), "p99": round(float(np.percentile(a, 99)), 4)}

    return {
        "clients": clients,
        "compute_ms": pct(rt - overhead),
        "chunks": int(len(rows)),
        "chunks_per_s": round(len(rows) / wall, 2),
        "round_trip_ms": pct(rt),
        "server_overhead_ms": pct(overhead),
        "inside_server_overhead_ms": pct(inside),
        "queue_ms": pct(queue),
        "mean_requests_per_batch": round(float(batch.mean()), 3),
    }


def _floor_phase(bind: str, sizes: list[list[int]], hold_ms: float, duration_s: float) -> dict[str, Any]:
    """Round trip minus hold of bare ZeroMQ with these request/reply frame sizes (see the module
    docstring), one client back to back for ``duration_s``."""
    import subprocess
    import sys

    import numpy as np
    import zmq

    request_sizes, reply_sizes = sizes
    cmd = [sys.executable, "-m", "robostack.policies.serve_bench", "echo", bind, f"{hold_ms:.4f}", ",".join(map(str, reply_sizes))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        endpoint = proc.stdout.readline().strip() if proc.stdout else ""
        if not endpoint:
            raise SystemExit(f"the ZeroMQ baseline server did not start (exit code {proc.wait(timeout=10)})")
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.connect(endpoint)
        frames = [b"", b"\0" * 8, *(bytes(n) for n in request_sizes)]
        floors: list[float] = []
        deadline = time.perf_counter() + 0.5 + duration_s  # the first 0.5 s warm the path
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            sock.send_multipart(frames, copy=False)
            sock.recv_multipart()
            if deadline - time.perf_counter() < duration_s:
                floors.append((time.perf_counter() - t0) * 1e3 - hold_ms)
        sock.close(linger=0)
        ctx.term()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    a = np.asarray(floors)
    return {"hold_ms": round(hold_ms, 4), "round_trips": len(floors),
            "floor_ms": {"p50": round(float(np.percentile(a, 50)), 4), "p99": round(float(np.percentile(a, 99)), 4)}}


def _echo(bind: str, hold_ms: float, reply_sizes: list[int]) -> None:
    """The baseline's server: a ROUTER that holds each request on this one thread, busy, for
    ``hold_ms`` (as a compute worker is busy with the model), then replies."""
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(bind)
    print(sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    reply = [bytes(n) for n in reply_sizes]
    hold_ns = int(hold_ms * 1e6)
    while True:
        frames = sock.recv_multipart(copy=False)
        end = time.perf_counter_ns() + hold_ns
        while time.perf_counter_ns() < end:
            pass
        sock.send_multipart([frames[0], frames[1], frames[2], *reply], copy=False)


def _start_server(args: argparse.Namespace, bind: str) -> tuple[Any, dict[str, Any]]:
    """``robostack serve`` in a child process; returns it and its ready report."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "robostack.policies.serve_bench", "serve", args.policy_dir, "--json", "--bind", bind,
           "--providers", args.providers, "--batch-window-ms", str(args.batch_window_ms), "--max-batch", str(args.max_batch)]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    cmd += ["--workers", str(args.workers)]
    if args.no_spin:
        cmd.append("--no-spin")
    if args.io_binding is not None:
        cmd.append("--io-binding" if args.io_binding else "--no-io-binding")
    if args.cuda_graphs:
        cmd.append("--cuda-graphs")
    if args.fused:
        cmd.append("--fused")
    if args.fp16:
        cmd.append("--fp16")
    if args.no_inline:
        cmd.append("--no-inline")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.wait(timeout=10)
        raise SystemExit(f"the policy server did not start (exit code {proc.returncode})")
    return proc, json.loads(line)


def run(args: argparse.Namespace) -> int:
    transports = comma_list(args.transports)
    for t in transports:
        if t not in ("ipc", "tcp"):
            raise SystemExit(f"unknown transport {t!r}; use ipc, tcp")
    report: dict[str, Any] = {
        "policy_dir": os.path.abspath(args.policy_dir),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "duration_s_per_phase": args.duration,
        "transports": {},
    }
    with tempfile.TemporaryDirectory(prefix="rs-bench-serve-") as tmp:
        for transport in transports:
            bind = f"ipc://{tmp}/policy.sock" if transport == "ipc" else "tcp://127.0.0.1:*"
            proc, started = _start_server(args, bind)
            try:
                report["package"] = {k: v for k, v in started.items() if k not in ("ready", "endpoint")}
                sizes: list[list[int]] = []
                one = _phase(started["endpoint"], 1, args.duration, sizes)
                many = _phase(started["endpoint"], args.clients, args.duration)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            floor_bind = f"ipc://{tmp}/floor.sock" if transport == "ipc" else "tcp://127.0.0.1:*"
            floor = _floor_phase(floor_bind, sizes, one["compute_ms"]["p50"], args.duration)
            floor["overhead_above_floor_ms"] = round(one["server_overhead_ms"]["p50"] - floor["floor_ms"]["p50"], 4)
            report["transports"][transport] = {
                "one_client": one,
                "zeromq_floor": floor,
                f"{args.clients}_clients": many,
                "throughput_ratio": round(many["chunks_per_s"] / one["chunks_per_s"], 3),
            }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        server = report.get("package", {}).get("server", {})
        print(f"server: {server.get('workers')} compute worker(s), {server.get('threads') or 'default'} onnxruntime thread(s) each")
        for transport, r in report["transports"].items():
            one, many, floor = r["one_client"], r[f"{args.clients}_clients"], r["zeromq_floor"]
            print(f"{transport}: 1 client {one['chunks_per_s']} chunks/s, round trip p50 {one['round_trip_ms']['p50']} ms "
                  f"p99 {one['round_trip_ms']['p99']} ms, server overhead p50 {one['server_overhead_ms']['p50']} ms "
                  f"(bare ZeroMQ floor {floor['floor_ms']['p50']} ms); "
                  f"{args.clients} clients {many['chunks_per_s']} chunks/s ({r['throughput_ratio']}x), "
                  f"p99 {many['round_trip_ms']['p99']} ms, {many['mean_requests_per_batch']} requests/batch")
    return 0


if __name__ == "__main__":  # run()'s children: ``python -m robostack.policies.serve_bench serve ...`` or ``... echo ...``
    import sys

    if sys.argv[1:2] == ["echo"]:
        _echo(sys.argv[2], float(sys.argv[3]), [int(n) for n in sys.argv[4].split(",")])
    else:
        from robostack.policies import serve_cli

        parser = argparse.ArgumentParser(prog="robostack")
        serve_cli.register(parser.add_subparsers(dest="command", required=True))
        parsed = parser.parse_args(sys.argv[1:])
        sys.exit(parsed.func(parsed))
