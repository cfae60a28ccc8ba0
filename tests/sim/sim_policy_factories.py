"""A ``module:factory`` policy used by the evaluation tests (loaded by import path)."""

import numpy as np

from robostack.chunks import ActionChunk


class HoldStill:
    def reset(self, seed=None) -> None:
        pass

    def act(self, obs, stamp_ns):
        return ActionChunk(np.tile(obs["state"].astype(np.float64), (4, 1)), stamp_ns, 50_000_000, stamp_ns)


def hold_still(context):
    return HoldStill()


def not_a_policy(context):
    return object()
