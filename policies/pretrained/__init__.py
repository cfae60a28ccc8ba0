"""Trained policy packages that ship with robostack, and the scripts that reproduce them.

``pick_place_diffusion/`` is an exported policy package (see ``docs/policy-package.md``) made by
:mod:`robostack.policies.pretrained.make_pick_place_diffusion`; :data:`PICK_PLACE_DIFFUSION` is
its directory.
"""

from __future__ import annotations

from pathlib import Path

PICK_PLACE_DIFFUSION = Path(__file__).resolve().parent / "pick_place_diffusion"
