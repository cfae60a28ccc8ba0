"""``robostack failure fit`` and ``robostack failure calibrate`` (``docs/failure-prediction.md``).

The commands live in the twin's layer because calibration (and fitting on rollouts) runs the
policy in the twin; the scoring itself is ``robostack.policies.failure``. Only the standard
library is imported here.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("failure", help="failure prediction (FIPER): fit RND/ACE, calibrate thresholds")
    sub = p.add_subparsers(dest="failure_command", required=True)
    _add_fit(sub)
    _add_calibrate(sub)


def _add_twin_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="pick_place")
    p.add_argument("--engine", choices=("mujoco", "pybullet"), default="mujoco")
    p.add_argument("--arm", default="panda")
    p.add_argument("--control-hz", type=float, default=20.0)
    p.add_argument("--execute-steps", type=int, default=None, help="actions of each chunk run before the next policy step (default: half the horizon)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_fit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="train RND-OE on the policy's embeddings of successful data and fit the ACE projection (needs torch)")
    p.add_argument("policy_dir", metavar="POLICY_DIR")
    p.add_argument("--dataset", metavar="DIR", default=None, help="recorded LeRobot dataset (e.g. the policy's demonstrations)")
    p.add_argument("--episodes", default=None, help="dataset episodes, e.g. '0-39,45' (default: all)")
    p.add_argument("--rollouts", type=int, default=0, help="also run this many twin rollouts and use the successful ones")
    p.add_argument("--seed-start", type=int, default=None, help="first seed of those rollouts")
    p.add_argument("--steps", type=int, default=1500, help="RND predictor training steps")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=512, help="RND hidden width (target: 2 layers, predictor: 3)")
    p.add_argument("--out-dim", type=int, default=128, help="RND output size")
    p.add_argument("--cell-fraction", type=float, default=0.03, help="ACE grid cell as a fraction of each coordinate's range")
    p.add_argument("--projection", choices=("pca", "fk"), default="pca",
                   help="ACE positions: top-3 principal components of the actions (pca, default; the server can score) "
                        "or the arm's tool point through the twin's forward kinematics (fk)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    _add_twin_arguments(p)
    p.set_defaults(func=run_fit)


def _add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="thresholds at level delta from successful twin rollouts, stored in policy.json")
    p.add_argument("policy_dir", metavar="POLICY_DIR")
    p.add_argument("--rollouts", type=int, required=True, help="calibration rollouts M (only the successful ones count)")
    p.add_argument("--seed-start", type=int, required=True, help="first seed; seeds S … S+M−1 must be disjoint from the fit data")
    p.add_argument("--delta", type=float, default=0.05, help="false-alarm level on successes (default 0.05)")
    p.add_argument("--window", type=int, default=3, help="policy steps each score is summed over (default 3)")
    p.add_argument("--num-samples", type=int, default=32, help="chunks B sampled per step (default 32)")
    p.add_argument("--traces", metavar="FILE", default=None, help="also write the rollouts' score traces as JSON lines")
    p.add_argument("--workers", type=int, default=1,
                   help="rollouts in this many processes, ONNX Runtime on one thread each (the traces depend only on the seeds)")
    _add_twin_arguments(p)
    p.set_defaults(func=run_calibrate)


def parse_episodes(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValueError(f"--episodes: expected indices and ranges like '0-39,45', got {text!r}") from None
        if first < 0 or last < first:
            raise ValueError(f"--episodes: bad range {part!r}")
        out.extend(range(first, last + 1))
    if not out:
        raise ValueError(f"--episodes: no episodes in {text!r}")
    return sorted(set(out))


def _print(result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(lines))


def run_fit(args: argparse.Namespace) -> int:
    try:
        from robostack.policies.failure.rnd_training import RndConfig
    except ModuleNotFoundError as exc:
        print(f"error: failure fit needs torch ({exc}); install the 'train' extra", file=sys.stderr)
        return 2
    import numpy as np

    from robostack.dataset.errors import DatasetError
    from robostack.policies.failure.embeddings import dataset_embeddings
    from robostack.policies.failure.fit import fit_package
    from robostack.policies.package import PolicyPackageError, load_package
    from robostack.policies.training_data import TrainingDataError
    from robostack.sim.failure_rollouts import RolloutConfig, TwinForwardKinematics, recorded_rollouts, with_progress

    progress = not args.no_progress and sys.stderr.isatty()
    try:
        if args.dataset is None and args.rollouts < 1:
            raise ValueError("give the fit data: --dataset DIR and/or --rollouts N --seed-start S")
        if args.rollouts > 0 and args.seed_start is None:
            raise ValueError("--rollouts needs --seed-start (the seeds are recorded so calibration can avoid them)")
        config = RndConfig(target_hidden=(args.hidden,) * 2, predictor_hidden=(args.hidden,) * 3, out_dim=args.out_dim, steps=args.steps,
                           batch_size=args.batch_size, lr=args.lr, seed=args.seed, threads=args.threads)
        package = load_package(args.policy_dir)
        embeddings, actions, sources = [], [], []
        if args.dataset is not None:
            episodes = parse_episodes(args.episodes) if args.episodes else None
            data = dataset_embeddings(package, args.dataset, episodes)
            embeddings.append(data.embeddings)
            actions.append(data.actions)
            sources.append({"kind": "dataset", "root": str(args.dataset), "episodes": data.episodes, "frames": int(len(data.embeddings))})
        if args.rollouts > 0:
            seeds = list(range(args.seed_start, args.seed_start + args.rollouts))
            rollout_config = RolloutConfig(args.policy_dir, args.task, args.engine, args.arm, args.control_hz, execute_steps=args.execute_steps)
            kept = 0
            for r in with_progress(recorded_rollouts(rollout_config, seeds), len(seeds), "fit rollouts", progress):
                if r.result.success and r.embeddings:
                    embeddings.append(np.stack(r.embeddings))
                    actions.append(np.concatenate(r.actions))
                    kept += 1
            sources.append({"kind": "rollouts", "task": args.task, "engine": args.engine, "arm": args.arm,
                            "seeds": [seeds[0], seeds[-1]], "rollouts": len(seeds), "successes": kept})
            if kept == 0 and args.dataset is None:
                raise ValueError(f"none of the {len(seeds)} fit rollouts succeeded; RND must be fitted on successful data")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=config.steps, desc="RND", unit="step")
        fk = TwinForwardKinematics(args.arm) if args.projection == "fk" else None
        package, record = fit_package(package, np.concatenate(embeddings), np.concatenate(actions), sources, config, args.cell_fraction,
                                      progress=bar.update if bar else None, fk=fk)
        if bar:
            bar.close()
    except (ValueError, PolicyPackageError, TrainingDataError, DatasetError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rnd = record["rnd"]
    _print({"package": str(package.root), **record}, args.json, [
        f"{package.root}: RND-OE fitted on {record['frames']} embeddings ({', '.join(s['kind'] for s in sources)}), "
        f"loss {rnd['first_loss']:.4g} -> {rnd['final_loss']:.4g} in {rnd['wall_s']:.1f} s; ACE projection from {record['actions']} actions",
        "next: robostack failure calibrate POLICY_DIR --rollouts M --seed-start S (seeds disjoint from the fit data)",
    ])
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from robostack.policies.failure.calibration import calibrate_package, check_calibration_seeds
    from robostack.policies.failure.config import FailureConfigError
    from robostack.policies.failure.conformal import CalibrationError, conformal_rank, min_rollouts
    from robostack.policies.package import PolicyPackageError, load_package
    from robostack.sim.failure_rollouts import RolloutConfig, monitored_rollouts, trace_file, with_progress

    try:
        if not 0 < args.delta < 1:
            raise ValueError(f"--delta must be in (0, 1), got {args.delta}")
        if args.window < 1 or args.num_samples < 2:
            raise ValueError("--window must be >= 1 and --num-samples >= 2")
        needed = min_rollouts(args.delta)
        if args.rollouts < needed:
            raise ValueError(f"--rollouts {args.rollouts}: a threshold at δ = {args.delta:g} needs at least {needed} successful rollouts")
        package = load_package(args.policy_dir)
        seeds = list(range(args.seed_start, args.seed_start + args.rollouts))
        check_calibration_seeds(package, seeds)  # before any rollout runs
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        config = RolloutConfig(args.policy_dir, args.task, args.engine, args.arm, args.control_hz, args.num_samples, args.execute_steps)
        progress = not args.no_progress and sys.stderr.isatty()
        traces, results = [], []
        for result, trace in with_progress(monitored_rollouts(config, seeds, workers=args.workers), len(seeds), "calibration", progress):
            traces.append(trace)
            results.append(result)
        if args.traces:
            trace_file(args.traces, traces)
        execute = int(traces[0].meta["execute_steps"])
        package, calibration = calibrate_package(
            package, traces, seeds=seeds, window=args.window, delta=args.delta, num_samples=args.num_samples, execute_steps=execute,
            task=args.task, engine=args.engine, arm=args.arm, control_hz=args.control_hz,
        )
    except (ValueError, PolicyPackageError, FailureConfigError, CalibrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cal = calibration.to_dict()
    m = calibration.successes
    _print({"package": str(package.root), "calibration": cal, "traces": args.traces}, args.json, [
        f"{package.root}: calibrated on {m}/{calibration.rollouts} successful rollouts (seeds {seeds[0]}…{seeds[-1]}), "
        f"window {calibration.window}, δ = {calibration.delta:g} (rank {conformal_rank(m, calibration.delta)} of {m})",
        "thresholds: " + ", ".join(f"{k} {v:.4g}" for k, v in calibration.thresholds.items()),
    ])
    return 0
