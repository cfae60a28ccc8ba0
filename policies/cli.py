"""Command-line entry points of the policies layer: ``train``, ``export``, ``policy inspect``,
``policy random``.

Only the standard library (and the stdlib-only ``robostack.params``) is imported here; each command imports torch / onnxruntime when it
runs, so ``robostack --help`` works on a box without them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from robostack.params import comma_list


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``export`` and ``policy {inspect,random}`` to the core CLI."""
    _add_train(subparsers)
    _add_export(subparsers)
    policy = subparsers.add_parser("policy", help="policy packages: inspect and validate, random ones for benchmarks")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    inspect = policy_sub.add_parser("inspect", help="validate a policy package and print what it declares")
    inspect.add_argument("policy_dir", metavar="POLICY_DIR")
    inspect.add_argument("--json", action="store_true", help="print policy.json plus graph signatures as JSON")
    inspect.add_argument("--no-graphs", action="store_true", help="skip loading the graphs with onnxruntime")
    inspect.set_defaults(func=_run_inspect)
    _add_random(policy_sub)


def _image_size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size must be N or HxW, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 8:
        raise argparse.ArgumentTypeError(f"image size must be N or HxW with sides >= 8, got {text!r}")
    return parts[0], parts[1]


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a diffusion or VLA-style policy on a dataset (needs torch)")
    p.add_argument("--dataset", required=True, metavar="DIR", help="dataset in the LeRobot v3 layout")
    p.add_argument("--policy", choices=("diffusion", "vla"), default="diffusion")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (checkpoints, metrics, loss plot)")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--steps", type=int, default=6000, help="total optimizer steps (default 6000)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=500)
    p.add_argument("--image-size", type=_image_size, default=(64, 64), help="model image size, N or HxW (default 64)")
    p.add_argument("--cameras", default=None, help="comma-separated camera names (default: every camera)")
    p.add_argument("--obs-horizon", type=int, default=None, help="observations per sample (default 2 diffusion, 1 vla)")
    p.add_argument("--action-horizon", type=int, default=16)
    p.add_argument("--val-fraction", type=float, default=0.1, help="fraction of episodes held out for validation")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--model-size", choices=("default", "tiny"), default="default", help="tiny: for smoke tests")
    p.add_argument("--instruction", action="store_true",
                   help="diffusion: also condition on the episode's instruction (vla always does)")
    p.add_argument("--streaming", action="store_true",
                   help="diffusion: streaming diffusion (SDP): a noise level per action, served from a rolling buffer")
    p.add_argument("--stream-chunks", type=int, default=None, metavar="H",
                   help="streaming: chunks of the rolling buffer (default 4; divides the action horizon and the steps)")
    p.add_argument("--max-episodes", type=int, default=None)
    p.add_argument("--layout-views", default=None, metavar="FILE",
                   help="also train the policy to locate the objects of these rendered layouts (.npz)")
    p.add_argument("--layout-targets", default=None, metavar="PATTERNS",
                   help="with --layout-views: comma-separated target names or patterns to learn (e.g. '*.x,*.y'; default all)")
    p.add_argument("--layout-condition", action="store_true",
                   help="with --layout-views: the action head sees the object poses the policy locates, not the cameras' features")
    p.add_argument("--layout-condition-cameras", default=None, metavar="NAMES",
                   help="with --layout-condition: cameras (e.g. wrist) whose features the action head still sees beside the poses")
    p.add_argument("--device", default="cpu", help="cpu or cuda (when torch sees a GPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    try:
        from robostack.policies.training import TrainConfig, train
    except ModuleNotFoundError as exc:
        print(f"error: training needs torch ({exc}); install the 'train' extra", file=sys.stderr)
        return 2
    from robostack.policies.run_store import RunError
    from robostack.policies.training_data import TrainingDataError
    from robostack.dataset.errors import DatasetError

    try:
        config = TrainConfig(
            dataset=args.dataset,
            out=args.out,
            policy=args.policy,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup_steps=args.warmup_steps,
            image_size=args.image_size,
            cameras=comma_list(args.cameras) if args.cameras else None,
            obs_horizon=args.obs_horizon,
            action_horizon=args.action_horizon,
            val_fraction=args.val_fraction,
            val_every=args.val_every,
            checkpoint_every=args.checkpoint_every,
            log_every=args.log_every,
            ema_decay=args.ema_decay,
            model_size=args.model_size,
            instruction=True if args.instruction else None,
            model_overrides=_model_overrides(args),
            max_episodes=args.max_episodes,
            layout_views=args.layout_views,
            layout_target_names=None if args.layout_targets is None else comma_list(args.layout_targets),
            device=args.device,
            threads=args.threads,
            seed=args.seed,
            progress=not args.no_progress,
        )
        result = train(config, resume=args.resume)
    except (ValueError, RunError, TrainingDataError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {
        "run_dir": str(result.run_dir),
        "step": result.step,
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "train_time_s": round(result.train_time_s, 3),
        "seconds_per_step": None if result.seconds_per_step is None else round(result.seconds_per_step, 4),
        "loss_plot": str(result.run_dir / "loss.png"),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"trained {args.policy} to step {result.step}: loss {summary['train_loss']}, val {summary['val_loss']}, "
            f"{summary['seconds_per_step']} s/step; run in {result.run_dir} (loss plot {summary['loss_plot']})"
        )
    return 0


def _model_overrides(args: argparse.Namespace) -> dict[str, Any] | None:
    """Model fields for ``--streaming`` / ``--stream-chunks`` / ``--layout-condition[-cameras]``
    (None: the model's own)."""
    if args.stream_chunks is not None and not args.streaming:
        raise ValueError("--stream-chunks needs --streaming")
    if args.layout_condition and not args.layout_views:
        raise ValueError("--layout-condition needs --layout-views")
    if args.layout_condition_cameras is not None and not args.layout_condition:
        raise ValueError("--layout-condition-cameras needs --layout-condition")
    overrides: dict[str, Any] = {}
    if args.streaming:
        overrides["streaming"] = True
        if args.stream_chunks is not None:
            overrides["stream_chunks"] = args.stream_chunks
    if args.layout_condition:
        overrides["layout_condition"] = True
    if args.layout_condition_cameras is not None:
        names = comma_list(args.layout_condition_cameras)
        overrides["layout_condition_cameras"] = [c if c.startswith("image/") else f"image/{c}" for c in names]
    return overrides or None


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a training run to a policy package (ONNX + policy.json)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", required=True, metavar="POLICY_DIR")
    p.add_argument("--steps", type=int, default=None, help="sampler steps written to policy.json (default: the model's)")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA weights")
    p.add_argument("--fused-sampler", action="store_true", help="also write sampler.onnx: the whole loop in one graph")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    try:
        from robostack.policies.export import export_run
    except ModuleNotFoundError as exc:
        print(f"error: export needs torch and onnx ({exc}); install the 'train' extra", file=sys.stderr)
        return 2
    from robostack.policies.package import PolicyPackageError
    from robostack.policies.run_store import RunError

    try:
        package = export_run(args.run_dir, args.out, steps=args.steps, use_ema=not args.no_ema, fused_sampler=args.fused_sampler)
    except (RunError, PolicyPackageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in Path(args.out).iterdir() if f.is_file())
    print(f"exported {package.spec.policy_type} policy to {args.out} ({size / 1e6:.2f} MB): {', '.join(sorted(package.spec.graphs.values()))}")
    return 0


RANDOM_PRESETS = ("dp", "tiny")


def _add_random(policy_sub: argparse._SubParsersAction) -> None:
    # Defaults: the shipped pick_place_diffusion package's interface without its instruction
    # (2 cameras 48x64, state 8, action 8, 1 observation, 16-action chunks, 16 DDIM steps), so the
    # numbers compare with that package's on the same server. DP's own: --cameras 1 --image-size 96
    # --obs-horizon 2 --state-dim 2 --action-dim 2.
    p = policy_sub.add_parser(
        "random",
        help="write a package of an untrained diffusion model with random weights, for serving benchmarks only (needs torch)",
    )
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--preset", choices=RANDOM_PRESETS, default="dp",
                   help="dp: Diffusion Policy's image model size (about 267M parameters, about 1 GB of graphs); tiny: for tests")
    p.add_argument("--image-size", type=_image_size, default=(48, 64), help="camera image size, N or HxW (default 48x64)")
    p.add_argument("--cameras", type=int, default=2, help="camera inputs: image/front, image/wrist, image/cam2, ... (default 2)")
    p.add_argument("--state-dim", type=int, default=8)
    p.add_argument("--action-dim", type=int, default=8)
    p.add_argument("--horizon", type=int, default=16, help="actions per chunk, a multiple of 4 (default 16)")
    p.add_argument("--obs-horizon", type=int, default=1, help="observations per request (default 1)")
    p.add_argument("--steps", type=int, default=16, help="DDIM steps per chunk written to policy.json (default 16)")
    p.add_argument("--fused-sampler", action="store_true", help="also write sampler.onnx: the whole loop in one graph")
    p.add_argument("--fps", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--force", action="store_true", help="write into OUT_DIR even if it is not empty")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_run_random)


def _run_random(args: argparse.Namespace) -> int:
    import time

    try:
        from robostack.policies.diffusion_model import DP_DIFFUSION, TINY_DIFFUSION
        from robostack.policies.random_package import camera_names, write_random_package
    except ModuleNotFoundError as exc:
        print(f"error: writing a package needs torch and onnx ({exc}); install the 'train' extra", file=sys.stderr)
        return 2
    from robostack.policies.model_inputs import ModelInputs
    from robostack.policies.package import PolicyPackageError

    out = Path(args.out_dir)
    # A random package must never replace a trained one by accident.
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        print(f"error: {out} exists and is not empty; pass --force to write into it", file=sys.stderr)
        return 2
    if args.cameras < 1:
        print(f"error: --cameras must be >= 1, got {args.cameras}", file=sys.stderr)
        return 2
    config = {"dp": DP_DIFFUSION, "tiny": TINY_DIFFUSION}[args.preset]
    t0 = time.perf_counter()
    try:
        inputs = ModelInputs(
            camera_names(args.cameras), args.image_size, args.state_dim, args.action_dim, args.obs_horizon, args.horizon
        )
        package = write_random_package(
            out, config, inputs, steps=args.steps, fused_sampler=args.fused_sampler, seed=args.seed, fps=args.fps,
            name=f"random-{args.preset}-diffusion",
        )
    except (PolicyPackageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = {f.name: f.stat().st_size for f in sorted(out.iterdir()) if f.is_file()}
    summary = {
        "policy_dir": str(out),
        "preset": args.preset,
        "parameters": package.spec.provenance["parameters"],
        "files": files,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"wrote an UNTRAINED {args.preset} diffusion package (random weights, for benchmarks only) to {out} "
          f"in {summary['seconds']} s")
    print(f"  parameters: {summary['parameters']:,}")
    print(f"  interface: {', '.join(inputs.cameras)} {args.image_size[0]}x{args.image_size[1]}, state {args.state_dim}, "
          f"{args.obs_horizon} observation(s) -> chunk {args.horizon} x {args.action_dim}, {args.steps} DDIM steps")
    for name, size in files.items():
        print(f"  {name:<14} {size / 1e6:10.2f} MB")
    return 0


def describe_package(root: Path, check_graphs: bool = True) -> dict[str, Any]:
    """policy.json content plus each graph's inputs/outputs and file size."""
    from robostack.policies.package import POLICY_JSON, load_package, open_session

    package = load_package(root, check_graphs_with_onnxruntime=check_graphs)
    graphs = {}
    for name, rel in package.spec.graphs.items():
        entry: dict[str, Any] = {"file": rel, "bytes": (root / rel).stat().st_size}
        if check_graphs:
            session = open_session(root / rel)
            # symbolic dimensions keep their names (``batch``); fixed ones are integers
            entry["inputs"] = {a.name: {"dtype": a.type, "shape": list(a.shape)} for a in session.get_inputs()}
            entry["outputs"] = {a.name: {"dtype": a.type, "shape": list(a.shape)} for a in session.get_outputs()}
        graphs[name] = entry
    return {"policy": json.loads((root / POLICY_JSON).read_text()), "graphs": graphs}


def _run_inspect(args: argparse.Namespace) -> int:
    from robostack.policies.package import PolicyPackageError

    root = Path(args.policy_dir)
    try:
        desc = describe_package(root, check_graphs=not args.no_graphs)
    except PolicyPackageError as exc:
        print(f"error: {root}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(desc, indent=2))
        return 0
    p = desc["policy"]
    sampler = p["sampler"]
    print(f"{root}: {p.get('policy_type') or 'policy'} {p.get('name', '')!r}  (format {p['format']} v{p['format_version']}) — valid")
    print(f"  rate {p['fps']} Hz, observation horizon {p['observation_horizon']}, action chunk {p['action']['horizon']} x {p['action']['dim']}")
    print(f"  sampler {sampler['type']}, {sampler['steps']} steps" + (f" (trained with {sampler['train_timesteps']})" if "train_timesteps" in sampler else ""))
    if "chunks" in sampler:
        print(f"  streaming: {sampler['chunks']} chunks of {p['action']['horizon'] // sampler['chunks']} actions, "
              f"{sampler['steps'] // sampler['chunks']} steps per call")
    print("  inputs:")
    for i in p["inputs"]:
        norm = (i.get("normalization") or {}).get("type", "-")
        extra = f" max_length {i['max_length']}" if "max_length" in i else ""
        print(f"    {i['name']:<20} {i['kind']:<7} {i['dtype']:<8} {i['shape']}  normalization {norm}{extra}")
    if p.get("embedding"):
        print(f"  embedding for failure prediction: encoder output {p['embedding']['output']!r} ({p['embedding']['dim']} dims)")
    if p.get("tokenizer"):
        print(f"  tokenizer: {p['tokenizer']['file']}")
    print("  graphs:")
    for name, g in desc["graphs"].items():
        print(f"    {name:<8} {g['file']} ({g['bytes'] / 1e6:.2f} MB)")
        for kind in ("inputs", "outputs"):
            for n, s in g.get(kind, {}).items():
                print(f"      {kind[:-1]:<6} {n:<16} {s['dtype']:<8} {s['shape']}")
    prov = p.get("provenance") or {}
    if prov:
        print("  provenance:")
        for key in ("description", "dataset", "commit", "created", "metrics"):
            if key in prov:
                value = prov[key]
                if isinstance(value, dict):
                    value = ", ".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, (dict, list)))
                print(f"    {key}: {value}")
    return 0
