"""The trained policy packages robostack ships, and the recipes that reproduce them.

:mod:`robostack.policies.pretrained.make_pick_place` records expert demonstrations in the twin,
trains the diffusion (or VLA-style) policy, exports it and evaluates it on held-out seeds, writing
the result into the package's provenance. :data:`PICK_PLACE_DIFFUSION` is the committed package
that ``robostack demo`` runs: 87/100 held-out successes in lockstep evaluation.
:data:`PICK_PLACE_VLA` is the VLA-style policy trained on the same demos: 90/100
(``robostack demo --policy`` takes it). docs/policies.md has the commands that reproduce both.
"""

from __future__ import annotations

from pathlib import Path

PICK_PLACE_DIFFUSION = Path(__file__).resolve().parent / "pick_place_diffusion"
PICK_PLACE_VLA = Path(__file__).resolve().parent / "pick_place_vla"
