"""Which policy an evaluation runs: ``expert``, ``module:factory``, or a policy directory.

Later components plug in with :func:`register_policy_loader` (a named kind) or
:func:`register_policy_dir_loader` (recognises a directory, e.g. an exported ONNX package).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

from robostack.chunks import Policy


@dataclass(frozen=True)
class PolicyContext:
    """What a loader may need to build a policy for an evaluation."""

    task: str
    arm: str
    engine: str
    control_hz: float


PolicyFactory = Callable[[PolicyContext], Policy]
DirLoader = Callable[[Path, PolicyContext], "Policy | None"]

_NAMED: dict[str, PolicyFactory] = {}
_DIR_LOADERS: list[DirLoader] = []


def register_policy_loader(name: str, factory: PolicyFactory) -> None:
    """Make ``--policy NAME`` build a policy with ``factory``."""
    _NAMED[name] = factory


def register_policy_dir_loader(loader: DirLoader) -> None:
    """Add a loader tried for ``--policy DIR``; it returns None for directories it does not own."""
    _DIR_LOADERS.append(loader)


def _expert(context: PolicyContext) -> Policy:
    from robostack.sim.experts import ScriptedExpert

    return ScriptedExpert(context.task, arm=context.arm, control_hz=context.control_hz)


register_policy_loader("expert", _expert)


def _onnx_package(path: Path, context: PolicyContext) -> "Policy | None":
    """Exported policy packages (``policy.json`` + ONNX graphs), run in-process."""
    try:
        from robostack.policies.onnx_policy import policy_from_directory
    except ModuleNotFoundError as error:  # a sim-only install without the serve extra
        if (path / "policy.json").is_file():
            raise ValueError(f"{path} is a policy package but onnxruntime is missing: {error}") from error
        return None
    return policy_from_directory(path, context)


register_policy_dir_loader(_onnx_package)


def load_policy(spec: str, context: PolicyContext) -> Policy:
    """Build the policy named by ``spec`` (see module docstring)."""
    if spec in _NAMED:
        return _NAMED[spec](context)
    path = Path(spec)
    if path.is_dir():
        for loader in _DIR_LOADERS:
            policy = loader(path, context)
            if policy is not None:
                return policy
        raise ValueError(f"no registered loader recognises the policy directory {spec!r}")
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"cannot import policy factory {spec!r}: {error}") from error
        policy = factory(context)
        if not isinstance(policy, Policy):
            raise ValueError(f"policy factory {spec!r} returned {type(policy).__name__}, not a Policy")
        return policy
    raise ValueError(
        f"unknown policy {spec!r}: use one of {sorted(_NAMED)}, a policy directory, or 'module:factory'"
    )
