"""The failure-prediction benchmark behind ``robostack eval --perturb SUITE``.

Runs a perturbation suite's episodes in the twin (plus its unperturbed ones) with the policy
sampling B chunks per step through the failure monitor, labels every episode by its actual
success, and scores FIPER (RND AND ACE), ACE only, RND only and STAC side by side with
:mod:`robostack.policies.failure.metrics`. With ``tune`` it instead re-runs the package's
calibration rollouts, sweeps window and δ on the tuning suite and stores the best choice in the
package's calibration. Raw per-step scores are kept (``traces.json``) so any window and threshold
can be recomputed offline.

Lives in the twin layer (it runs episodes); the scores and metrics it uses are in
``robostack.policies.failure``.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robostack.sim.perturbation_suites import Suite, SuiteError, load_suite
from robostack.sim.perturbations import NoPerturbation, Perturbation

METHOD_LABELS = {"fiper": "FIPER (RND AND ACE)", "ace": "ACE only", "rnd": "RND only", "stac": "STAC", "rnd_or_stac": "RND OR STAC (δ/2 each)"}
DEFAULT_WINDOWS = (1, 2, 3, 4, 6, 8)


@dataclass(frozen=True)
class PerturbConfig:
    policy: str
    suite: str
    task: str = "pick_place"
    arm: str = "panda"
    control_hz: float = 20.0
    episodes_per: int | None = None
    """Run only the first N seeds of every suite entry (default: the counts the suite gives)."""
    workers: int = 1
    tune: bool = False
    windows: tuple[int, ...] = DEFAULT_WINDOWS
    deltas: tuple[float, ...] = (0.05,)
    calibration_traces: str | None = None
    """With ``tune``: the JSON-lines traces ``robostack failure calibrate --traces`` wrote, used
    instead of re-running the calibration rollouts."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if not self.windows or any(w < 1 for w in self.windows):
            raise ValueError(f"windows must be positive step counts, got {list(self.windows)}")
        if not self.deltas or any(not 0 < d < 1 for d in self.deltas):
            raise ValueError(f"deltas must be in (0, 1), got {list(self.deltas)}")


@dataclass
class EpisodeRecord:
    """One episode: what ran, how it ended, and the monitor's raw per-step scores."""

    seed: int
    role: str
    """``suite`` or ``calibration`` (tuning re-runs the calibration rollouts)."""
    label: str
    family: str
    group: str
    success: bool
    sim_time_s: float
    wall_time_s: float
    policy_steps: int
    error: str | None = None
    trace: dict[str, Any] | None = None
    scoring_ms: list[float] = field(default_factory=list)
    sampling_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Job:
    perturbation: Perturbation
    seed: int
    role: str
    label: str
    group: str


class _TimedMonitor:
    """The failure monitor with each ``update`` timed, and the policy's sampling time of the
    same step recorded beside it."""

    def __init__(self, monitor: Any, policy: Any) -> None:
        self._monitor = monitor
        self._policy = policy
        self.scoring_ms: list[float] = []
        self.sampling_ms: list[float] = []

    def update(self, *args: Any, **kwargs: Any) -> Any:
        timing = getattr(self._policy, "last_timing_ms", {})
        self.sampling_ms.append(float(sum(timing.values())))
        t0 = time.perf_counter()
        step = self._monitor.update(*args, **kwargs)
        self.scoring_ms.append(1e3 * (time.perf_counter() - t0))
        return step

    def reset(self, seed: int | None = None) -> None:
        self.scoring_ms, self.sampling_ms = [], []
        self._monitor.reset(seed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._monitor, name)


def load_calibrated_package(policy: str) -> tuple[Any, Any] | None:
    """``(package, failure block)`` when ``policy`` is a package with a failure calibration, else
    None (the benchmark then reports success per perturbation only)."""
    path = Path(policy)
    if not (path / "policy.json").is_file():
        return None
    from robostack.policies.failure.config import read_block
    from robostack.policies.package import load_package

    package = load_package(path)
    block = read_block(package.spec)
    if block is None or block.calibration is None:
        return None
    return package, block


class _Worker:
    """One process's environment and policy, reused across its episodes."""

    def __init__(self, config: PerturbConfig) -> None:
        from robostack.sim.engines import make_env
        from robostack.sim.perturbations import PerturbedEnv
        from robostack.sim.policy_loader import PolicyContext, load_policy

        self.monitor: _TimedMonitor | None = None
        calibrated = load_calibrated_package(config.policy)
        if calibrated is not None:
            from robostack.policies.failure.monitor import FailureMonitor
            from robostack.policies.failure.monitored_policy import MonitoredPolicy
            from robostack.policies.onnx_policy import OnnxPolicy

            package, block = calibrated
            inner = OnnxPolicy(package)
            self.monitor = _TimedMonitor(FailureMonitor.from_package(package), inner)
            cal = block.calibration
            self.policy: Any = MonitoredPolicy(inner, self.monitor, cal.num_samples, cal.execute_steps)  # type: ignore[arg-type]
        else:
            self.policy = load_policy(config.policy, PolicyContext(config.task, config.arm, "mujoco", config.control_hz))
        cameras = self.policy.camera_requests() if hasattr(self.policy, "camera_requests") else None
        self.env = PerturbedEnv(make_env("mujoco", config.task, config.arm, config.control_hz, cameras or None))  # type: ignore[arg-type]

    def run(self, job: _Job) -> EpisodeRecord:
        from robostack.sim.episode import run_episode

        self.env.set_perturbation(job.perturbation)
        start = time.perf_counter()
        error = None
        try:
            result = run_episode(self.env, self.policy, job.seed)
            success, sim_time, steps = result.success, result.sim_time_s, result.policy_calls
        except Exception as exc:  # one broken episode must not lose the suite; it counts as a failure
            success, sim_time, steps = False, self.env.time_ns * 1e-9, 0
            error = f"{type(exc).__name__}: {exc}"
        record = EpisodeRecord(
            job.seed, job.role, job.label, job.perturbation.family, job.group, success, sim_time,
            time.perf_counter() - start, steps, error,
        )
        if self.monitor is not None:
            trace = self.policy.trace
            trace.success = success
            record.trace = trace.to_dict()
            record.scoring_ms, record.sampling_ms = list(self.monitor.scoring_ms), list(self.monitor.sampling_ms)
        return record

    def sampling_cost_ms(self, num_samples: int, repeats: int = 3) -> dict[str, float]:
        """Time one step's sampling with 1 chunk and with B chunks on a real first observation:
        the extra sampling failure prediction costs."""
        from robostack.policies.preprocessing import encoder_feed

        inner = self.policy.policy
        self.env.set_perturbation(NoPerturbation())
        inner.reset(0)
        inner.observe(self.env.reset(0), 0)
        feed = encoder_feed(inner.spec, inner.package.tokenizer, inner.history())
        out = {}
        for b in (1, num_samples):
            inner.sample_actions(feed, num_samples=b)  # warm-up
            t0 = time.perf_counter()
            for _ in range(repeats):
                inner.sample_actions(feed, num_samples=b)
            out[f"sampling_{'1' if b == 1 else 'B'}_ms"] = 1e3 * (time.perf_counter() - t0) / repeats
        return out


_worker: _Worker | None = None


def _init_worker(config: PerturbConfig) -> None:
    global _worker
    _worker = _Worker(config)


def _run_job(job: _Job) -> EpisodeRecord:
    assert _worker is not None
    return _worker.run(job)


def _jobs(suite: Suite, episodes_per: int | None, calibration_seeds: list[int]) -> list[_Job]:
    jobs = [_Job(NoPerturbation(), s, "calibration", "calibration", "unperturbed") for s in calibration_seeds]
    jobs += [_Job(entry.perturbation, seed, "suite", entry.label(), entry.group) for entry, seed in suite.episodes(episodes_per)]
    return jobs


def _check_seeds(suite: Suite, block: Any, package: Any, seeds: list[int], config: PerturbConfig) -> None:
    from robostack.policies.failure.config import check_seeds_disjoint

    if config.tune and suite.purpose != "tune":
        raise ValueError(f"--tune chooses window/δ on a tuning suite; {suite.name!r} is a {suite.purpose} suite")
    purpose = "tuning" if config.tune else "reporting"
    check_seeds_disjoint(block, seeds, purpose, package.spec.provenance, include_calibration=True)


def run_benchmark(config: PerturbConfig, progress: bool = True) -> dict[str, Any]:
    """Run the suite (and, when tuning, the calibration rollouts) and build the report dict."""
    suite = load_suite(config.suite)
    if suite.task != config.task:
        raise ValueError(f"suite {suite.name!r} is for task {suite.task!r}, not {config.task!r}")
    calibrated = load_calibrated_package(config.policy)
    calibration_seeds: list[int] = []
    if calibrated is not None:
        package, block = calibrated
        _check_seeds(suite, block, package, [s for _, s in suite.episodes(config.episodes_per)], config)
        if config.tune and config.calibration_traces is None:
            first, last = block.calibration.seeds
            calibration_seeds = list(range(first, last + 1))[: block.calibration.rollouts]
    elif config.tune:
        raise ValueError(f"{config.policy}: --tune needs a policy package with a failure calibration (robostack failure fit / calibrate)")
    jobs = _jobs(suite, config.episodes_per, calibration_seeds)
    start = time.perf_counter()
    records: list[EpisodeRecord] = []
    if config.tune and config.calibration_traces is not None:
        records = load_calibration_records(config.calibration_traces, block.calibration)
    # Built here in any case: a policy or scene that cannot load fails once, before any worker
    # starts (a pool would respawn a failing worker forever), and it times the sampling cost.
    worker = _Worker(config)
    extra = worker.sampling_cost_ms(block.calibration.num_samples) if worker.monitor is not None else {}
    iterator: Any
    if config.workers == 1:
        iterator = map(worker.run, jobs)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(config.workers, initializer=_init_worker, initargs=(config,))
        iterator = pool.imap(_run_job, jobs)
    try:
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, total=len(jobs), desc=f"perturb {suite.name}", unit="ep")
        for record in iterator:
            records.append(record)
            if progress:
                iterator.set_postfix(success=f"{sum(r.success for r in records)}/{len(records)}")
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    wall = time.perf_counter() - start
    return build_report(config, suite, records, calibrated[1] if calibrated else None, wall, extra)


def load_calibration_records(path: str | Path, calibration: Any) -> list[EpisodeRecord]:
    """The package's calibration rollouts from a ``failure calibrate --traces`` file; refuses a
    file that is not the rollouts this calibration ran (other seeds or another count)."""
    from robostack.policies.failure.trace import EpisodeTrace

    first, last = calibration.seeds
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
        traces = [EpisodeTrace.from_dict(json.loads(line)) for line in lines]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a calibration traces file (JSON lines of traces): {error}") from None
    seeds = sorted(t.seed for t in traces if t.seed is not None)
    if len(seeds) != len(traces) or len(traces) != calibration.rollouts or not all(first <= s <= last for s in seeds):
        raise ValueError(f"{path}: holds {len(traces)} traces with seeds {seeds[:3]}…; the package was calibrated on "
                         f"{calibration.rollouts} rollouts with seeds {first}…{last}")
    return [
        EpisodeRecord(int(t.seed), "calibration", "calibration", "none", "unperturbed", bool(t.success),
                      float(t.meta.get("sim_time_s", 0.0)), 0.0, t.steps, trace=t.to_dict())
        for t in traces
        if t.seed is not None
    ]


# -- analysis --------------------------------------------------------------------------------
def _outcomes(records: list[EpisodeRecord], thresholds: dict[str, float], window: int, method: str, time_limit_s: float) -> list[Any]:
    from robostack.policies.failure.conformal import first_alarm
    from robostack.policies.failure.metrics import RolloutOutcome
    from robostack.policies.failure.trace import EpisodeTrace

    out = []
    for r in records:
        trace = EpisodeTrace.from_dict(r.trace) if r.trace is not None else EpisodeTrace()
        step = first_alarm(trace, thresholds, window, method) if trace.steps else None
        alarm_s = None if step is None else trace.times_ns[step] * 1e-9
        out.append(RolloutOutcome(r.success, alarm_s, r.sim_time_s, time_limit_s, r.group))
    return out


def _available_methods(thresholds: dict[str, float]) -> list[str]:
    from robostack.policies.failure.config import METHODS, method_thresholds

    return [m for m in METHODS if method_thresholds(m, thresholds) is not None]


def score_methods(records: list[EpisodeRecord], thresholds: dict[str, float], window: int, time_limit_s: float) -> dict[str, Any]:
    """Metrics per method (FIPER, ACE, RND, STAC) of ``records`` for one window/threshold set."""
    from robostack.policies.failure.metrics import detection_metrics

    return {m: detection_metrics(_outcomes(records, thresholds, window, m, time_limit_s)) for m in _available_methods(thresholds)}


def _per_entry(records: list[EpisodeRecord], alarms: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(records):
        row = rows.setdefault(r.label, {"label": r.label, "family": r.family, "group": r.group, "episodes": 0, "successes": 0, "alarms": {}})
        row["episodes"] += 1
        row["successes"] += int(r.success)
        for method, outcomes in (alarms or {}).items():
            row["alarms"][method] = row["alarms"].get(method, 0) + int(outcomes[i].alarmed)
    for row in rows.values():
        row["success_rate"] = row["successes"] / row["episodes"]
    return list(rows.values())


def _overhead(records: list[EpisodeRecord], extra: dict[str, float]) -> dict[str, Any] | None:
    scoring = [v for r in records for v in r.scoring_ms]
    sampling = [v for r in records for v in r.sampling_ms]
    if not scoring:
        return None
    out: dict[str, Any] = {
        "steps": len(scoring),
        "scoring_ms_mean": float(np.mean(scoring)),
        "scoring_ms_p50": float(np.percentile(scoring, 50)),
        "scoring_ms_p95": float(np.percentile(scoring, 95)),
        "sampling_B_ms_mean": float(np.mean(sampling)),
    }
    out.update(extra)
    if "sampling_1_ms" in extra and "sampling_B_ms" in extra:
        # What failure prediction adds per step: scoring plus drawing B chunks instead of one.
        out["monitor_overhead_ms_per_step"] = out["scoring_ms_mean"] + max(0.0, extra["sampling_B_ms"] - extra["sampling_1_ms"])
    return out


def tune_window(calibration: list[EpisodeRecord], suite_records: list[EpisodeRecord], windows: tuple[int, ...], deltas: tuple[float, ...],
                time_limit_s: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Thresholds from the calibration rollouts for every (window, δ); the one with the best
    FIPER TWA on the tuning suite (ties: balanced accuracy, then the smaller window)."""
    from robostack.policies.failure.conformal import CalibrationError, thresholds_from_traces
    from robostack.policies.failure.trace import EpisodeTrace

    traces = [EpisodeTrace.from_dict(r.trace) for r in calibration if r.trace is not None]
    table = []
    for window in windows:
        for delta in deltas:
            try:
                thresholds, rank = thresholds_from_traces(traces, window, delta)
            except CalibrationError as error:
                table.append({"window": window, "delta": delta, "error": str(error)})
                continue
            methods = score_methods(suite_records, thresholds, window, time_limit_s)
            table.append({"window": window, "delta": delta, "thresholds": thresholds, "conformal_rank": rank, "methods": methods})
    ok = [row for row in table if "methods" in row]
    if not ok:
        raise ValueError(f"no (window, δ) could be calibrated: {table[0]['error']}")

    def key(row: dict[str, Any]) -> tuple[float, float, int]:
        fiper = row["methods"]["fiper"]
        return (fiper["twa"] if fiper["twa"] is not None else -1.0, fiper["balanced_accuracy"] or -1.0, -row["window"])

    return max(ok, key=key), table


def build_report(config: PerturbConfig, suite: Suite, records: list[EpisodeRecord], block: Any, wall_time_s: float,
                 extra: dict[str, float]) -> dict[str, Any]:
    from robostack.sim.tasks import get_task

    time_limit = get_task(config.task).time_limit_s
    suite_records = [r for r in records if r.role == "suite"]
    report: dict[str, Any] = {
        "config": asdict(config),
        "suite": {"name": suite.name, "purpose": suite.purpose, "path": suite.path, "seed_range": list(suite.seed_range),
                  "reportable": suite.purpose == "report" and not config.tune},
        "time_limit_s": time_limit,
        "wall_time_s": wall_time_s,
        "episodes": len(suite_records),
        "successes": sum(r.success for r in suite_records),
        "errors": sum(r.error is not None for r in records),
        "failure_prediction": None,
    }
    alarms = None
    if block is not None:
        cal = block.calibration
        thresholds, window, delta = dict(cal.thresholds), cal.window, cal.delta
        if config.tune:
            best, table = tune_window([r for r in records if r.role == "calibration"], suite_records, config.windows, config.deltas, time_limit)
            thresholds, window, delta = best["thresholds"], best["window"], best["delta"]
            report["tuning"] = {"chosen": {k: best[k] for k in ("window", "delta", "thresholds", "conformal_rank")}, "sweep": table,
                                "calibration_rollouts": sum(r.role == "calibration" for r in records),
                                "calibration_successes": sum(r.success for r in records if r.role == "calibration")}
        methods = score_methods(suite_records, thresholds, window, time_limit)
        alarms = {m: _outcomes(suite_records, thresholds, window, m, time_limit) for m in methods}
        report["failure_prediction"] = {
            "window": window,
            "delta": delta,
            "thresholds": thresholds,
            "num_samples": cal.num_samples,
            "execute_steps": cal.execute_steps,
            "calibration_seeds": list(cal.seeds),
            "methods": methods,
            "overhead": _overhead(suite_records, extra),
        }
    report["per_entry"] = _per_entry(suite_records, alarms)
    report["records"] = [asdict(r) for r in records]
    return report


def store_tuning(policy: str, report: dict[str, Any]) -> Any:
    """Recalibrate the package on the same calibration rollouts with the tuned window and δ
    (``robostack failure calibrate``'s storage); returns the new calibration."""
    from robostack.policies.failure.calibration import calibrate_package
    from robostack.policies.failure.trace import EpisodeTrace

    calibrated = load_calibrated_package(policy)
    if calibrated is None or "tuning" not in report:
        raise ValueError("store_tuning needs a --tune report of a calibrated policy package")
    package, block = calibrated
    old = block.calibration
    chosen = report["tuning"]["chosen"]
    records = [r for r in report["records"] if r["role"] == "calibration"]
    traces = [EpisodeTrace.from_dict(r["trace"]) for r in records]
    _, calibration = calibrate_package(
        package, traces, seeds=list(range(old.seeds[0], old.seeds[1] + 1)), window=int(chosen["window"]), delta=float(chosen["delta"]),
        num_samples=old.num_samples, execute_steps=old.execute_steps, task=old.task or report["config"]["task"],
        engine=old.engine, arm=old.arm, control_hz=old.control_hz,
    )
    return calibration


def write_report(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path, Path]:
    """``report.json`` (everything but the per-step traces), ``traces.json`` and ``failure.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    traces = [{k: r[k] for k in ("seed", "role", "label", "group", "success", "sim_time_s", "trace")} for r in report["records"]]
    summary = dict(report)
    summary["records"] = [{k: v for k, v in r.items() if k not in ("trace", "scoring_ms", "sampling_ms")} for r in report["records"]]
    report_path = out / "report.json"
    report_path.write_text(json.dumps(summary, indent=2))
    traces_path = out / "traces.json"
    traces_path.write_text(json.dumps(traces))
    plot_path = out / "failure.png"
    plot_report(report, plot_path)
    return report_path, traces_path, plot_path


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Per-method metrics side by side, and success (and FIPER alarm) rate per suite entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fp = report["failure_prediction"]
    fig, axes = plt.subplots(1, 2 if fp else 1, figsize=(13 if fp else 7, 4.5), squeeze=False)
    ax_entries = axes[0][-1]
    if fp:
        ax = axes[0][0]
        metrics = [("balanced_accuracy", "BA"), ("tpr", "TPR"), ("fpr_unperturbed_successes", "FPR unpert."),
                   ("fpr_harmless_successes", "FPR harmless"), ("twa", "TWA")]
        methods = list(fp["methods"])
        width = 0.8 / max(1, len(methods))
        for i, method in enumerate(methods):
            values = [fp["methods"][method][k] for k, _ in metrics]
            xs = np.arange(len(metrics)) + i * width
            ax.bar(xs, [v if v is not None else 0 for v in values], width, label=METHOD_LABELS.get(method, method))
            for x, v in zip(xs, values):
                if v is None:
                    ax.text(x, 0.02, "n/a", rotation=90, ha="center", fontsize=7)
        ax.set_xticks(np.arange(len(metrics)) + 0.4 - width / 2)
        ax.set_xticklabels([label for _, label in metrics])
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=8)
        ax.set_title(f"failure prediction · window {fp['window']} · δ {fp['delta']} · B {fp['num_samples']}")
    rows = report["per_entry"]
    ys = np.arange(len(rows))
    colors = {"unperturbed": "tab:gray", "harmless": "tab:blue", "harmful": "tab:red"}
    ax_entries.barh(ys, [r["success_rate"] for r in rows], color=[colors[r["group"]] for r in rows], alpha=0.8, label="success rate")
    if fp:
        ax_entries.scatter([r["alarms"].get("fiper", 0) / r["episodes"] for r in rows], ys, color="k", marker="x", label="FIPER alarm rate", zorder=3)
    ax_entries.set_yticks(ys)
    ax_entries.set_yticklabels([f"{r['label']} ({r['episodes']})" for r in rows], fontsize=7)
    ax_entries.invert_yaxis()
    ax_entries.set_xlim(0, 1.05)
    ax_entries.legend(fontsize=8, loc="lower right")
    suite = report["suite"]
    ax_entries.set_title(f"suite {suite['name']} ({suite['purpose']}) · {report['successes']}/{report['episodes']} succeeded")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def format_summary(report: dict[str, Any]) -> str:
    """Human-readable lines for the CLI."""
    suite = report["suite"]
    lines = [f"suite {suite['name']} ({suite['purpose']}, seeds {suite['seed_range'][0]}…{suite['seed_range'][1]}): "
             f"{report['successes']}/{report['episodes']} episodes succeeded, {report['errors']} errors, {report['wall_time_s']:.0f}s wall"]
    width = max((len(row["label"]) for row in report["per_entry"]), default=0)
    for row in report["per_entry"]:
        alarm = f"  FIPER alarms {row['alarms']['fiper']}/{row['episodes']}" if "fiper" in row["alarms"] else ""
        lines.append(f"  {row['label']:<{width}}  {row['group']:<11} success {row['successes']}/{row['episodes']}{alarm}")
    fp = report["failure_prediction"]
    if fp is None:
        lines.append("no failure-prediction calibration in the policy: success per perturbation only "
                     "(run `robostack failure fit` and `robostack failure calibrate` on a policy package)")
        return "\n".join(lines)
    if "tuning" in report:
        lines.append(f"tuned on this suite: window {fp['window']}, δ {fp['delta']} (best FIPER TWA over windows {report['config']['windows']})")
    elif not suite["reportable"]:
        lines.append("note: this is not a reporting suite; do not report these numbers")

    def f(v: Any) -> str:
        return "  n/a" if v is None else f"{v:5.2f}"

    lines.append(f"window {fp['window']} steps, δ {fp['delta']}, B {fp['num_samples']}, execute {fp['execute_steps']} steps")
    lines.append(f"  {'method':<20}   BA   TPR   FPR  FPR-unp FPR-harmless  TWA  DT   lead[s]")
    for method, m in fp["methods"].items():
        lines.append(f"  {METHOD_LABELS.get(method, method):<20} {f(m['balanced_accuracy'])} {f(m['tpr'])} {f(m['fpr'])}  {f(m['fpr_unperturbed_successes'])}"
                     f"     {f(m['fpr_harmless_successes'])}     {f(m['twa'])} {f(m['detection_time_mean'])} {f(m['lead_time_s_mean'])}")
    overhead = fp["overhead"]
    if overhead:
        lines.append(f"monitor: scoring {overhead['scoring_ms_mean']:.2f} ms/step (p95 {overhead['scoring_ms_p95']:.2f}), "
                     f"sampling B chunks {overhead['sampling_B_ms_mean']:.1f} ms/step"
                     + (f", overhead vs one chunk {overhead['monitor_overhead_ms_per_step']:.1f} ms/step" if "monitor_overhead_ms_per_step" in overhead else ""))
    return "\n".join(lines)


__all__ = ["PerturbConfig", "EpisodeRecord", "run_benchmark", "build_report", "score_methods", "tune_window", "store_tuning",
           "write_report", "format_summary", "SuiteError"]
