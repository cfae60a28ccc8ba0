"""The ``failure_prediction`` block of ``policy.json``: what ``robostack failure fit`` learned (the
RND graph, the ACE projection, which data it used) and what ``robostack failure calibrate``
measured (thresholds, window, δ, B, the seeds it ran). Numpy and the package module's field checks
at import (the package loader validates the block with :func:`parse_failure_block`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from robostack.policies.package import check_fields, positive_int

BLOCK_VERSION = 1
SCORES = ("rnd", "ace", "stac")
"""Raw per-step scores: RND-OE, action-chunk entropy, chunk consistency (STAC-style)."""


@dataclass(frozen=True)
class AlarmMethod:
    """An alarm rule over windowed scores. ``all``: every score is above its threshold at level
    δ (FIPER's AND; a success alarms with probability ≤ δ because each score alone does).
    ``any``: one score above its threshold is enough; each threshold is then taken at level δ/k
    for k scores, so that by the union bound a success still alarms with probability ≤ δ."""

    scores: tuple[str, ...]
    rule: Literal["all", "any"] = "all"

    def level(self, delta: float) -> float:
        """The level each of this method's thresholds is taken at."""
        return delta / len(self.scores) if self.rule == "any" else delta

    def combine(self, above: Sequence[Any]) -> Any:
        """This rule over its scores' "above threshold" values, in ``scores`` order: bools (one
        step) or bool arrays (every step of a trace)."""
        return np.logical_or.reduce(above) if self.rule == "any" else np.logical_and.reduce(above)


METHODS: dict[str, AlarmMethod] = {
    "fiper": AlarmMethod(("rnd", "ace")),
    "rnd": AlarmMethod(("rnd",)),
    "ace": AlarmMethod(("ace",)),
    "stac": AlarmMethod(("stac",)),
    "rnd_or_stac": AlarmMethod(("rnd", "stac"), "any"),
}
"""The alarm rules the monitor and the benchmark evaluate. ``rnd_or_stac`` joins the embedding's
novelty with chunk inconsistency: the two kinds of failure FIPER's AND misses when the policy
fails confidently (docs/failure-prediction.md)."""


def threshold_key(method: str, score: str) -> str:
    """Where ``score``'s threshold for ``method`` is stored: the score's own name at level δ
    (``all`` methods), ``"<method>.<score>"`` at level δ/k (``any`` methods)."""
    return f"{method}.{score}" if METHODS[method].rule == "any" else score


def method_thresholds(method: str, thresholds: Mapping[str, float]) -> dict[str, float] | None:
    """``method``'s threshold per score from a calibration's ``thresholds``, or None when some
    are missing (e.g. a calibration with too few successes for the δ/k level)."""
    keys = {score: threshold_key(method, score) for score in METHODS[method].scores}
    if not all(k in thresholds for k in keys.values()):
        return None
    return {score: float(thresholds[k]) for score, k in keys.items()}


PROJECTIONS = ("pca", "fk")

_BLOCK_FIELDS = {"version", "rnd", "ace", "fit", "calibration"}
_RND_FIELDS = {"file", "embedding_dim", "target_hidden", "predictor_hidden", "out_dim"}
_ACE_FIELDS = {"projection", "mean", "components", "ranges", "cell_fraction"}
_CAL_FIELDS = {
    "task", "engine", "arm", "control_hz", "seeds", "rollouts", "successes", "num_samples", "execute_steps",
    "window", "delta", "thresholds", "conformal_rank", "created",
}


class FailureConfigError(ValueError):
    """A ``failure_prediction`` block that does not follow the format; names the field at fault."""


_fields = partial(check_fields, error=FailureConfigError)
_pos_int = partial(positive_int, error=FailureConfigError)


def _ints(values: Any, where: str) -> tuple[int, ...]:
    if not isinstance(values, list) or not all(type(v) is int and v > 0 for v in values):
        raise FailureConfigError(f"{where}: expected a list of positive integers, got {values!r}")
    return tuple(values)


def _floats(values: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise FailureConfigError(f"{where}: expected numbers, got {values!r}") from None
    if arr.shape != shape:
        raise FailureConfigError(f"{where}: expected shape {list(shape)}, got {list(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise FailureConfigError(f"{where}: contains NaN or Inf")
    return arr


def seed_range(value: Any, where: str) -> tuple[int, int]:
    """``[first, last]`` (inclusive, like the packages' ``provenance.demo_seeds``)."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(type(v) is int and v >= 0 for v in value) and value[0] <= value[1]):
        raise FailureConfigError(f"{where}: expected [first, last] seeds (non-negative, first <= last), got {value!r}")
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class RndSpec:
    """The exported RND-OE graph: input ``embedding`` ``(B, embedding_dim)``, output ``score`` ``(B,)``."""

    file: str
    embedding_dim: int
    target_hidden: tuple[int, ...] = ()
    predictor_hidden: tuple[int, ...] = ()
    out_dim: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "embedding_dim": self.embedding_dim, "target_hidden": list(self.target_hidden),
                "predictor_hidden": list(self.predictor_hidden), "out_dim": self.out_dim}


@dataclass(frozen=True)
class AceSpec:
    """How sampled chunks are put on the 3-D grid ACE bins them on. ``pca``: the top-3 principal
    components of the fit data's normalized actions (``mean`` ``(A,)``, ``components`` ``(3, A)``);
    ``fk``: end-effector positions from a forward-kinematics callable the caller supplies.
    ``ranges`` ``(3,)``: each coordinate's range over the fit data; a grid cell is
    ``cell_fraction`` of it."""

    projection: str
    ranges: np.ndarray
    mean: np.ndarray | None = None
    components: np.ndarray | None = None
    cell_fraction: float = 0.03

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"projection": self.projection, "ranges": [float(r) for r in self.ranges], "cell_fraction": self.cell_fraction}
        if self.mean is not None and self.components is not None:
            d["mean"] = [float(m) for m in self.mean]
            d["components"] = [[float(c) for c in row] for row in self.components]
        return d


@dataclass(frozen=True)
class FailureCalibration:
    """Thresholds from ``robostack failure calibrate``: the conformal quantile at level ``1 − delta``
    of the per-rollout maximum of each score summed over ``window`` steps, over ``successes`` of
    ``rollouts`` twin rollouts (seeds ``seeds[0] … seeds[1]``), the policy sampling
    ``num_samples`` chunks per step and executing ``execute_steps`` actions of one. An ``any``
    method's scores have their own thresholds at level δ/k (:func:`threshold_key`)."""

    window: int
    delta: float
    thresholds: Mapping[str, float]
    num_samples: int
    execute_steps: int
    seeds: tuple[int, int]
    rollouts: int
    successes: int
    conformal_rank: int
    task: str = ""
    engine: str = "mujoco"
    arm: str = "panda"
    control_hz: float = 20.0
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "engine": self.engine, "arm": self.arm, "control_hz": self.control_hz,
            "seeds": list(self.seeds), "rollouts": self.rollouts, "successes": self.successes,
            "num_samples": self.num_samples, "execute_steps": self.execute_steps, "window": self.window,
            "delta": self.delta, "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "conformal_rank": self.conformal_rank, "created": self.created,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "calibration") -> "FailureCalibration":
        d = _fields(d, _CAL_FIELDS, where, ("window", "delta", "thresholds", "num_samples", "execute_steps", "seeds", "rollouts", "successes", "conformal_rank"))
        delta = d["delta"]
        if not isinstance(delta, (int, float)) or isinstance(delta, bool) or not 0 < delta < 1:
            raise FailureConfigError(f"{where}.delta: expected a number in (0, 1), got {delta!r}")
        thresholds = d["thresholds"]
        if not isinstance(thresholds, dict) or not thresholds:
            raise FailureConfigError(f"{where}.thresholds: expected an object of score -> threshold")
        split_keys = {threshold_key(m, s) for m, spec in METHODS.items() if spec.rule == "any" for s in spec.scores}
        for name, value in thresholds.items():
            if name not in SCORES and name not in split_keys:
                raise FailureConfigError(f"{where}.thresholds: unknown score {name!r} (scores: {list(SCORES)}, "
                                         f"and per 'any' method: {sorted(split_keys)})")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or not np.isfinite(value):
                raise FailureConfigError(f"{where}.thresholds.{name}: expected a positive finite number, got {value!r}")
        successes = _pos_int(d["successes"], f"{where}.successes")
        rollouts = _pos_int(d["rollouts"], f"{where}.rollouts")
        if successes > rollouts:
            raise FailureConfigError(f"{where}: {successes} successes out of {rollouts} rollouts")
        return cls(
            window=_pos_int(d["window"], f"{where}.window"),
            delta=float(delta),
            thresholds={k: float(v) for k, v in thresholds.items()},
            num_samples=_pos_int(d["num_samples"], f"{where}.num_samples"),
            execute_steps=_pos_int(d["execute_steps"], f"{where}.execute_steps"),
            seeds=seed_range(d["seeds"], f"{where}.seeds"),
            rollouts=rollouts,
            successes=successes,
            conformal_rank=_pos_int(d["conformal_rank"], f"{where}.conformal_rank"),
            task=str(d.get("task", "")),
            engine=str(d.get("engine", "mujoco")),
            arm=str(d.get("arm", "panda")),
            control_hz=float(d.get("control_hz", 20.0)),
            created=str(d.get("created", "")),
        )


@dataclass(frozen=True)
class FailureBlock:
    """The whole ``failure_prediction`` block. ``fit`` records the data RND and the projection
    were fitted on (``sources``: dataset episodes and/or rollout seed ranges)."""

    rnd: RndSpec | None = None
    ace: AceSpec | None = None
    fit: Mapping[str, Any] = field(default_factory=dict)
    calibration: FailureCalibration | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": BLOCK_VERSION}
        if self.rnd is not None:
            d["rnd"] = self.rnd.to_dict()
        if self.ace is not None:
            d["ace"] = self.ace.to_dict()
        if self.fit:
            d["fit"] = dict(self.fit)
        if self.calibration is not None:
            d["calibration"] = self.calibration.to_dict()
        return d

    def fit_seed_ranges(self) -> list[tuple[str, tuple[int, int]]]:
        """``(what, [first, last])`` for every seed range the fit data came from."""
        out = []
        for i, source in enumerate(self.fit.get("sources", [])):
            if isinstance(source, dict) and "seeds" in source:
                kind = source.get("kind", "data")
                out.append((f"the {kind} RND was fitted on (failure_prediction.fit.sources[{i}])", seed_range(source["seeds"], f"fit.sources[{i}].seeds")))
        return out


def parse_failure_block(d: Any, action_dim: int | None = None, embedding_dim: int | None = None) -> FailureBlock:
    """Validate a ``failure_prediction`` block (no files are looked at)."""
    d = _fields(d, _BLOCK_FIELDS, "failure_prediction")
    version = d.get("version", BLOCK_VERSION)
    if version != BLOCK_VERSION:
        raise FailureConfigError(f"failure_prediction.version: this loader reads version {BLOCK_VERSION}, got {version!r}")
    rnd = ace = calibration = None
    if d.get("rnd") is not None:
        r = _fields(d["rnd"], _RND_FIELDS, "failure_prediction.rnd", ("file", "embedding_dim"))
        rel = r["file"]
        if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise FailureConfigError(f"failure_prediction.rnd.file: expected a relative path inside the package, got {rel!r}")
        dim = _pos_int(r["embedding_dim"], "failure_prediction.rnd.embedding_dim")
        if embedding_dim is not None and dim != embedding_dim:
            raise FailureConfigError(f"failure_prediction.rnd.embedding_dim: {dim}, the package's embedding.dim is {embedding_dim}")
        if embedding_dim is None and action_dim is not None:
            raise FailureConfigError("failure_prediction.rnd: the package declares no embedding (policy.json 'embedding') to score")
        out_dim = r.get("out_dim")
        rnd = RndSpec(
            rel, dim, _ints(r.get("target_hidden", []), "failure_prediction.rnd.target_hidden"),
            _ints(r.get("predictor_hidden", []), "failure_prediction.rnd.predictor_hidden"),
            None if out_dim is None else _pos_int(out_dim, "failure_prediction.rnd.out_dim"),
        )
    if d.get("ace") is not None:
        a = _fields(d["ace"], _ACE_FIELDS, "failure_prediction.ace", ("projection", "ranges"))
        if a["projection"] not in PROJECTIONS:
            raise FailureConfigError(f"failure_prediction.ace.projection: unknown projection {a['projection']!r}; use one of {list(PROJECTIONS)}")
        ranges = _floats(a["ranges"], (3,), "failure_prediction.ace.ranges")
        if np.any(ranges < 0):
            raise FailureConfigError("failure_prediction.ace.ranges: must be >= 0")
        frac = a.get("cell_fraction", 0.03)
        if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0 < frac <= 1:
            raise FailureConfigError(f"failure_prediction.ace.cell_fraction: expected a number in (0, 1], got {frac!r}")
        mean = components = None
        if a["projection"] == "pca":
            if "mean" not in a or "components" not in a:
                raise FailureConfigError("failure_prediction.ace: the pca projection needs 'mean' and 'components'")
            n = len(a["mean"]) if isinstance(a["mean"], list) else -1
            if action_dim is not None and n != action_dim:
                raise FailureConfigError(f"failure_prediction.ace.mean: {n} values, action.dim is {action_dim}")
            mean = _floats(a["mean"], (n,), "failure_prediction.ace.mean")
            components = _floats(a["components"], (3, n), "failure_prediction.ace.components")
        ace = AceSpec(a["projection"], ranges, mean, components, float(frac))
    fit = d.get("fit") or {}
    if not isinstance(fit, dict):
        raise FailureConfigError("failure_prediction.fit: expected an object")
    if d.get("calibration") is not None:
        calibration = FailureCalibration.from_dict(d["calibration"], "failure_prediction.calibration")
    block = FailureBlock(rnd, ace, fit, calibration)
    block.fit_seed_ranges()  # validates the recorded seed ranges
    return block


def check_seeds_disjoint(block: FailureBlock, seeds: Sequence[int], purpose: str, provenance: Mapping[str, Any] | None = None,
                         include_calibration: bool = True) -> None:
    """Refuse ``seeds`` used for ``purpose`` (``calibration``, ``reporting``) when they overlap the
    seeds RND was fitted on, the calibration rollouts (``include_calibration``), or the policy's
    own demonstrations (``provenance.demo_seeds``). Raises :class:`FailureConfigError`."""
    wanted = set(int(s) for s in seeds)
    used = list(block.fit_seed_ranges())
    if include_calibration and block.calibration is not None:
        used.append(("the failure calibration rollouts (failure_prediction.calibration)", block.calibration.seeds))
    demo = (provenance or {}).get("demo_seeds")
    if demo is not None:
        used.append(("the policy's training demonstrations (provenance.demo_seeds)", seed_range(demo, "provenance.demo_seeds")))
    for what, (first, last) in used:
        clash = sorted(s for s in wanted if first <= s <= last)
        if clash:
            shown = ", ".join(str(s) for s in clash[:5]) + (" …" if len(clash) > 5 else "")
            raise FailureConfigError(
                f"{purpose} seeds {shown} overlap {what}, seeds {first}…{last}; "
                f"pick seeds outside {first}…{last} (e.g. --seed-start {last + 1})"
            )


def read_block(spec: Any) -> FailureBlock | None:
    """The parsed ``failure_prediction`` block of a :class:`~robostack.policies.package.PolicySpec`,
    or None when the package has none."""
    if spec.failure_prediction is None:
        return None
    return parse_failure_block(dict(spec.failure_prediction), spec.action_dim, spec.embedding_dim)


def write_block(package: Any, block: FailureBlock) -> Any:
    """Store ``block`` in the package's ``policy.json`` and return the package reloaded (validated)."""
    from dataclasses import replace

    from robostack.policies.package import load_package, write_policy_json

    write_policy_json(package.root, replace(package.spec, failure_prediction=block.to_dict()))
    return load_package(package.root)
