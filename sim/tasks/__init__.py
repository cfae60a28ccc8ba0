"""Task registry. A task is one module in this package defining a
:class:`~robostack.sim.tasks.base.Task` subclass decorated with :func:`register_task`; every
module here is imported on first lookup, so adding a task is adding one file."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from robostack.sim.tasks.base import Task

_REGISTRY: dict[str, type[Task]] = {}
T = TypeVar("T", bound=type)


def register_task(cls: T) -> T:
    """Class decorator: make ``cls`` available as ``get_task(cls.name)``."""
    name = cls.name  # type: ignore[attr-defined]
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"task name {name!r} registered twice")
    _REGISTRY[name] = cls  # type: ignore[assignment]
    return cls


def _load_builtin() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


def task_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_task(name: str) -> Task:
    """A fresh instance of the task called ``name``."""
    _load_builtin()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(_REGISTRY)}") from None


__all__: list[str] = ["get_task", "register_task", "task_names"]
