"""``robostack serve POLICY_DIR``: run the policy server until Ctrl-C / SIGTERM.

Only the standard library at import; the server loads in :func:`_run_serve`.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve a policy package over ZeroMQ (docs/serving.md)")
    add_server_arguments(p)
    p.add_argument("--json", action="store_true", help="print the ready report as one JSON line")
    p.set_defaults(func=_run_serve)


def add_server_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``serve`` and ``bench serve``."""
    p.add_argument("policy_dir", metavar="POLICY_DIR")
    p.add_argument("--providers", default="cpu", help="execution providers in order of preference: cpu, cuda, tensorrt (comma-separated)")
    p.add_argument("--bind", default="tcp://127.0.0.1:5555", help="endpoint to bind (tcp://HOST:PORT or ipc:///path)")
    p.add_argument("--curve-secret", metavar="FILE", default=None, help="the server's CURVE secret key file (tcp)")
    p.add_argument("--authorized-keys", metavar="DIR", default=None, help="admit only clients whose public keys are here")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the package's)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads per session (default: cores / workers)")
    p.add_argument("--no-spin", action="store_true", help="onnxruntime threads sleep between calls (for shared cores)")
    p.add_argument("--workers", type=int, default=2,
                   help="compute threads running batches side by side; unless --threads is given, each gets its share of the cores")
    p.add_argument("--fp16", action="store_true", help="let TensorRT use half precision")
    p.add_argument("--io-binding", action=argparse.BooleanOptionalAction, default=None,
                   help="run the graphs through IOBinding on fixed buffers (default: on a GPU provider only)")
    p.add_argument("--cuda-graphs", action="store_true", help="capture and replay each batch size's kernels as CUDA graphs (CUDA provider)")
    p.add_argument("--fused", action="store_true", help="sample with the package's fused sampler graph (one call per chunk)")
    p.add_argument("--batch-window-ms", type=float, default=2.0, help="how long a request may wait for concurrent ones")
    p.add_argument("--max-batch", type=int, default=32, help="samples per ONNX call")
    p.add_argument("--max-obs-age-ms", type=float, default=None, help="refuse older observations (same-host clocks)")
    p.add_argument("--no-inline", action="store_true",
                   help="hand every request to the compute thread, also a lone client's (the baseline of bench serve)")


def server_config(args: argparse.Namespace, bind: str | None = None):
    """A ``ServerConfig`` from parsed options (raises ``ValueError`` naming a bad option)."""
    from robostack.policies.server import ServerConfig
    from robostack.policies.serving_engine import EngineConfig, parse_providers
    from robostack.transport import CurveConfig

    curve = None
    if args.curve_secret:
        curve = CurveConfig(secret_key_file=args.curve_secret, authorized_keys_dir=args.authorized_keys)
    elif args.authorized_keys:
        raise ValueError("--authorized-keys needs --curve-secret")
    engine = EngineConfig(providers=parse_providers(args.providers), threads=args.threads, steps=args.steps, fp16=args.fp16,
                          spin=not args.no_spin, io_binding=args.io_binding, cuda_graphs=args.cuda_graphs, fused=args.fused)
    return ServerConfig(
        package=args.policy_dir,
        bind=bind or args.bind,
        engine=engine,
        batch_window_ms=args.batch_window_ms,
        max_batch=args.max_batch,
        max_obs_age_ms=args.max_obs_age_ms,
        workers=args.workers,
        curve=curve,
        inline_lone_requests=not args.no_inline,
    )


def _run_serve(args: argparse.Namespace) -> int:
    import json
    import signal
    import sys
    import threading

    from robostack.policies.package import PolicyPackageError
    from robostack.policies.server import serve

    try:
        config = server_config(args)
    except ValueError as exc:
        print(f"robostack serve: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def ready(server) -> None:
        c = server.config
        report = {"ready": True, "endpoint": server.endpoint, **server.engine.describe(), "warmup_ms": server.warmup_ms,
                  "server": {"workers": c.workers, "threads": server.engine.config.threads, "spin": c.engine.spin, "inline": c.inline_lone_requests}}
        if args.json:
            print(json.dumps(report), flush=True)
        else:
            graphs = ", ".join(f"{g}: {p[0]}" for g, p in report["providers"]["graphs"].items())
            print(f"serving {report['name'] or config.package} at {server.endpoint} ({graphs}; batching {report['batching']})", flush=True)

    try:
        return serve(config, stop, on_ready=ready)
    except (PolicyPackageError, RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"robostack serve: {exc}", file=sys.stderr)
        return 1
