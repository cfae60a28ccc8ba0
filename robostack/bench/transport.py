"""``robostack bench transport``: one-way latency and throughput of robostack messages against
bare pyzmq sending the same bytes (the floor) and pickle over pyzmq (what many stacks do), over
ipc and tcp, in one run so the ratios are comparable on a shared machine.

The sender runs in its own process; the receiver (this process) stamps arrival with
``CLOCK_MONOTONIC``, which both processes share. Each round is one sender process holding a socket
per method; robostack and bare pyzmq messages take turns one by one (shuffled order), so the two
numbers whose ratio matters meet the same moments of a shared machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import pickle
import platform
import random
import struct
import tempfile
import time
from typing import Any

import numpy as np
import zmq

from robostack.metrics import percentiles
from robostack.params import comma_list

SIZES = {"64B": (64,), "224x224x3": (224, 224, 3), "640x480x3": (480, 640, 3)}
METHODS = ("robostack", "pyzmq", "pickle")
_STAMP = struct.Struct("<q")
_PACED_WARMUP = 20  # first paced messages of a case: caches and scheduler settle, not measured


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="fewer messages (about 30 s in all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--transports", default="ipc,tcp", help="comma list of ipc,tcp")


# Stamps of messages that are not measured: sent while connecting, and the first paced cycles.
_CONNECTING, _SETTLING = -1, -2
# Latency is measured in paced phases; the methods of one phase take turns message by message, so
# a noisy moment of the shared machine hits them alike. Pickle gets a phase of its own: at 1 MB
# it keeps the receiver busy for longer than the pacing interval, which would delay the others.
_PHASES = (("robostack", "pyzmq"), ("pickle",))


def _phases(methods: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The latency phases among ``methods``."""
    return [p for p in (tuple(m for m in phase if m in methods) for phase in _PHASES) if p]


def _cycle_orders(methods: tuple[str, ...], n_cycles: int) -> list[tuple[str, ...]]:
    """The method order of each paced cycle of a phase, shuffled with a fixed seed (both
    processes derive the same list): each method goes first equally often."""
    rng = random.Random(0)
    orders = []
    for _ in range(n_cycles):
        order = list(methods)
        rng.shuffle(order)
        orders.append(tuple(order))
    return orders


def _make_sender(method: str, endpoint: str, data: np.ndarray) -> tuple[Any, Any]:
    """``(send(stamp), socket)`` for one method, bound to ``endpoint``."""
    from robostack.transport import Publisher

    if method == "robostack":
        pub = Publisher(endpoint, "bench", src="sender", hwm=0)
        return (lambda stamp: pub.publish({"data": data}, stamp_ns=stamp)), pub.socket
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.bind(endpoint)
    if method == "pyzmq":
        def send(stamp: int) -> None:
            sock.send_multipart([_STAMP.pack(stamp), data], copy=False)
    else:
        def send(stamp: int) -> None:
            # The stamp also travels in plain bytes: the receiver never unpickles this frame.
            sock.send_multipart([_STAMP.pack(stamp), pickle.dumps({"stamp_ns": stamp, "data": data}, protocol=pickle.HIGHEST_PROTOCOL)])
    return send, sock


def _sender(endpoints: dict[str, str], shape: tuple[int, ...], n_lat: int, interval_s: float,
            n_tput: int, ctrl) -> None:
    from robostack.clock import Rate

    data = np.random.default_rng(0).integers(0, 255, size=shape, dtype=np.uint8)
    senders = {m: _make_sender(m, ep, data) for m, ep in endpoints.items()}
    ctrl.send({m: sock.getsockopt_string(zmq.LAST_ENDPOINT) for m, (_, sock) in senders.items()})
    gc.freeze()  # as a node does after setup: long-lived objects leave the collector's scans
    # Warm up until the receiver says every method is connected (PUB drops before the SUB joins).
    while not ctrl.poll(0.01):
        for send, _ in senders.values():
            send(_CONNECTING)
    ctrl.recv()
    ctrl.send("go")
    # Paced like a node: sleep, then spin only the last 0.3 ms, so the sender does not hog a
    # core that the ZMQ I/O threads of both processes need on a 2-core machine.
    rate = Rate(1.0 / interval_s, spin_s=0.0003)
    for phase in _phases(tuple(senders)):  # with n_lat 0, only the settling cycles
        for i, order in enumerate(_cycle_orders(phase, n_lat + _PACED_WARMUP)):
            for method in order:
                rate.sleep()
                senders[method][0](time.monotonic_ns() if i >= _PACED_WARMUP else _SETTLING)
    for method in senders if n_tput else ():  # throughput
        ctrl.recv()
        ctrl.send("go")
        send = senders[method][0]
        t0 = time.perf_counter()
        for _ in range(n_tput):
            send(time.monotonic_ns())
        ctrl.send(time.perf_counter() - t0)
    ctrl.recv()
    for _, sock in senders.values():
        sock.close(linger=0)


def _local_pickle(shape: tuple[int, ...]) -> bytes:
    """A pickle made in this process of what the pickle baseline's sender pickles. Nothing that
    comes off a socket is unpickled, not even here: the receiver decodes this instead of the
    received frame of the same size, which is the same work."""
    data = np.zeros(shape, np.uint8)
    return pickle.dumps({"stamp_ns": time.monotonic_ns(), "data": data}, protocol=pickle.HIGHEST_PROTOCOL)


def _receive_one(method: str, sub: Any, shape: tuple[int, ...], local_pickle: bytes) -> int:
    """Receive one message, as a numpy array of ``shape``, and return its send stamp (blocking).
    The pickle baseline decodes ``local_pickle`` (see :func:`_local_pickle`)."""
    if method == "robostack":
        msg = sub.receive(timeout_ms=5000)
        if msg is None:
            raise TimeoutError("bench: no message within 5 s")
        _ = msg.arrays["data"]
        return msg.stamp_ns
    if not sub.poll(5000):
        raise TimeoutError("bench: no message within 5 s")
    if method == "pyzmq":
        frames = sub.recv_multipart(copy=False)
        _ = np.ndarray(shape, np.uint8, frames[1].buffer)  # a view, as robostack's decode makes
        return _STAMP.unpack(frames[0].bytes)[0]
    stamp, _received = sub.recv_multipart()
    _ = pickle.loads(local_pickle)["data"]
    return _STAMP.unpack(stamp)[0]


def _make_receiver(method: str, endpoint: str) -> Any:
    from robostack.transport import Subscriber

    if method == "robostack":
        sub = Subscriber(endpoint, "bench", mode="queue", queue_size=1_000_000)
        sub.socket.setsockopt(zmq.RCVHWM, 0)
        return sub
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    return sock


def run_case(transport: str, size: str, methods: tuple[str, ...], n_lat: int, n_tput: int,
             tmpdir: str) -> dict[str, dict[str, Any]]:
    """One sender process holding a socket per method, and this receiver: ``n_lat`` paced
    latency samples per method (``latency_us``, raw ``_latencies``), then ``n_tput`` messages
    per method as fast as they go (``msgs_per_s``). ``{method: result}``."""
    shape = SIZES[size]
    nbytes = int(np.prod(shape))
    endpoints = {m: f"ipc://{tmpdir}/{m}-{size}.sock" if transport == "ipc" else "tcp://127.0.0.1:*" for m in methods}
    interval = 0.001 if nbytes < 200_000 else 0.004
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_sender, args=(endpoints, shape, n_lat, interval, n_tput, there), daemon=True)
    proc.start()
    bound = here.recv()
    subs = {m: _make_receiver(m, bound[m]) for m in methods}
    reference = _local_pickle(shape)
    gc.freeze()
    for m in methods:
        _receive_one(m, subs[m], shape, reference)  # connected
    here.send("connected")
    here.recv()
    out: dict[str, dict[str, Any]] = {m: {} for m in methods}
    lat: dict[str, list[float]] = {m: [] for m in methods}
    for phase in _phases(methods):
        for i, order in enumerate(_cycle_orders(phase, n_lat + _PACED_WARMUP)):
            for m in order:
                stamp = _receive_one(m, subs[m], shape, reference)
                while stamp == _CONNECTING:  # left from connecting: all come before the paced ones
                    stamp = _receive_one(m, subs[m], shape, reference)
                if i >= _PACED_WARMUP:
                    lat[m].append((time.monotonic_ns() - stamp) / 1e3)
    for m in methods if n_lat else ():
        stats = percentiles(lat[m])
        out[m]["_latencies"] = lat[m]
        out[m]["latency_us"] = {k: round(v, 1) for k, v in stats.items() if k != "n"}
    for m in methods if n_tput else ():
        here.send("ready")
        here.recv()  # go: the sender is awake and about to send
        t0 = time.perf_counter()
        for _ in range(n_tput):
            _receive_one(m, subs[m], shape, reference)
        elapsed = time.perf_counter() - t0
        here.recv()
        out[m]["msgs_per_s"] = round(n_tput / elapsed, 1)
        out[m]["mbytes_per_s"] = round(n_tput * nbytes / elapsed / 1e6, 1)
    here.send("done")
    proc.join(5)
    for m, sub in subs.items():
        (sub.close() if m == "robostack" else sub.close(linger=0))
    return out


def _merge(parts: list[dict[str, Any]], lat_pools: list[list[float]]) -> dict[str, Any]:
    lat = [x for pool in lat_pools for x in pool]
    stats = percentiles(lat)
    first = parts[0]
    return {
        **{k: first[k] for k in ("method", "transport", "size", "bytes")},
        "latency_us": {k: round(v, 1) for k, v in stats.items() if k != "n"},
        "n_latency": int(stats["n"]),
        "msgs_per_s": round(float(np.median([p["msgs_per_s"] for p in parts])), 1),
        "mbytes_per_s": round(float(np.median([p["mbytes_per_s"] for p in parts])), 1),
        "rounds": len(parts),
    }


def run(args: argparse.Namespace) -> int:
    rounds = 3 if args.quick else 5
    n_lat = (300 if args.quick else 2000) // rounds
    transports = comma_list(args.transports)
    results = []
    with tempfile.TemporaryDirectory(prefix="rs-bench-") as tmpdir:
        for transport in transports:
            for size in SIZES:
                n_tput = (3000 if size == "64B" else 300) if args.quick else (20000 if size == "64B" else 1500)
                n_tput //= rounds
                # Each round: one pair of processes for latency, where the methods take turns
                # message by message (see _PHASES), then a fresh pair per method for throughput:
                # a burst measured right after another method's burst in the same processes
                # came out up to 2x slower.
                parts: dict[str, list] = {m: [] for m in METHODS}
                pools: dict[str, list] = {m: [] for m in METHODS}
                for _ in range(rounds):
                    lat = run_case(transport, size, METHODS, n_lat, 0, tmpdir)
                    for method in METHODS:
                        tput = run_case(transport, size, (method,), 0, n_tput, tmpdir)[method]
                        pools[method].append(lat[method].pop("_latencies"))
                        parts[method].append({"method": method, "transport": transport, "size": size,
                                              "bytes": int(np.prod(SIZES[size])), **lat[method], **tput})
                for method in METHODS:
                    results.append(_merge(parts[method], pools[method]))
                    if not args.json:
                        r = results[-1]
                        print(f"{transport:>4} {size:>10} {method:>9}: p50 {r['latency_us']['p50']:8.1f} µs  "
                              f"p99 {r['latency_us']['p99']:8.1f} µs  {r['msgs_per_s']:10.1f} msg/s  "
                              f"{r['mbytes_per_s']:8.1f} MB/s", flush=True)
    ratios: dict[str, Any] = {}
    for transport in transports:
        for size in SIZES:
            by = {r["method"]: r for r in results if r["transport"] == transport and r["size"] == size}
            base = by["pyzmq"]
            ratios[f"{transport}/{size}"] = {
                f"{m}_p50_vs_pyzmq": round(by[m]["latency_us"]["p50"] / base["latency_us"]["p50"], 3)
                for m in ("robostack", "pickle")
            } | {
                f"{m}_p99_vs_pyzmq": round(by[m]["latency_us"]["p99"] / base["latency_us"]["p99"], 3)
                for m in ("robostack", "pickle")
            } | {
                f"{m}_throughput_vs_pyzmq": round(by[m]["msgs_per_s"] / base["msgs_per_s"], 3)
                for m in ("robostack", "pickle")
            }
    report = {
        "benchmark": "transport",
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "quick": bool(args.quick),
        "results": results,
        "ratios": ratios,
    }
    key = "ipc/640x480x3"
    if key in ratios:
        ours = next(r for r in results if r["transport"] == "ipc" and r["size"] == "640x480x3" and r["method"] == "robostack")
        report["targets"] = {
            "ipc_640x480x3_p50_within_1.2x_pyzmq": ratios[key]["robostack_p50_vs_pyzmq"] <= 1.2,
            "ipc_640x480x3_p99_le_1.5ms": ours["latency_us"]["p99"] <= 1500,
        }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(json.dumps({"ratios": ratios, "targets": report.get("targets")}, indent=2))
    return 0
