"""DART execution noise for expert demos: offsets on the arm joints only, at the configured
spread and correlation time, reproducible from the seed."""

from __future__ import annotations

import numpy as np
import pytest

from robostack.sim.demo_noise import ExecutionNoise, NoisyExecution


def _offsets(noise: ExecutionNoise, steps: int, seed: int = 0, dt: float = 0.05) -> np.ndarray:
    process = NoisyExecution(noise, arm_joints=7, dt_s=dt, seed=seed)
    target = np.zeros(8, np.float32)
    return np.stack([process.apply(target) for _ in range(steps)])


def test_noise_moves_the_arm_joints_and_never_the_gripper():
    out = _offsets(ExecutionNoise(std_rad=0.05), 200)
    assert out.dtype == np.float32
    assert np.all(out[:, 7] == 0.0)
    assert np.all(np.abs(out[:, :7]).max(axis=0) > 0.01)


def test_noise_has_the_configured_spread_and_correlation_time():
    noise = ExecutionNoise(std_rad=0.03, time_constant_s=0.5)
    out = _offsets(noise, 40_000, dt=0.05)[:, :7]
    assert out.std() == pytest.approx(0.03, rel=0.1)
    lag = 10  # 0.5 s: the autocorrelation of an OU process there is exp(-1)
    corr = np.mean(out[:-lag] * out[lag:]) / out.var()
    assert corr == pytest.approx(np.exp(-1.0), abs=0.06)


def test_noise_is_reproducible_from_the_seed():
    noise = ExecutionNoise()
    assert np.array_equal(_offsets(noise, 50, seed=4), _offsets(noise, 50, seed=4))
    assert not np.array_equal(_offsets(noise, 50, seed=4), _offsets(noise, 50, seed=5))


def test_zero_noise_executes_the_expert_target_exactly():
    out = _offsets(ExecutionNoise(std_rad=0.0), 20)
    assert np.all(out == 0.0)


@pytest.mark.parametrize("field, value", [("std_rad", -0.1), ("std_rad", float("nan")), ("time_constant_s", 0.0)])
def test_bad_noise_settings_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ExecutionNoise(**{field: value})
