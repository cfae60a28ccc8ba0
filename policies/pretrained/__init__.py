"""The trained policy packages robostack ships, and the recipes that reproduce them.

:mod:`robostack.policies.pretrained.make_pick_place` records expert demonstrations in the twin,
trains the diffusion (or VLA-style) policy, exports it and evaluates it on held-out seeds, writing
the result into the package's provenance. :data:`PICK_PLACE_DIFFUSION` is the committed package
that ``robostack demo`` runs: 87/100 held-out successes in lockstep evaluation (docs/policies.md
has the command that reproduces it).
"""

from __future__ import annotations

from pathlib import Path

PICK_PLACE_DIFFUSION = Path(__file__).resolve().parent / "pick_place_diffusion"
