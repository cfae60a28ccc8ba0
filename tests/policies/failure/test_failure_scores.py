"""FIPER's scores and decision rule on hand-made inputs: ACE, STAC-style consistency, RND-OE,
windows, the finite-sample conformal threshold and the AND alarm."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robostack.policies.failure.ace import ActionProjection, fit_pca_projection, grid_entropy, pca_basis
from robostack.policies.failure.config import AceSpec, FailureCalibration, FailureConfigError
from robostack.policies.failure.conformal import (
    CalibrationError,
    alarm_steps,
    conformal_quantile,
    conformal_rank,
    first_alarm,
    min_rollouts,
    thresholds_from_traces,
    windowed,
)
from robostack.policies.failure.monitor import FailureMonitor, alarm_message
from robostack.policies.failure.scorer import FailureScorer
from robostack.policies.failure.stac import chunk_consistency
from robostack.policies.failure.trace import EpisodeTrace
from robostack.policies.normalization import Normalization

CELL = np.full(3, 0.03)  # 3% of a unit range


# -- ACE -----------------------------------------------------------------------------------------

def test_ace_is_zero_for_identical_samples_and_log_cells_for_samples_in_distinct_cells():
    same = np.tile(np.array([0.2, -0.1, 0.4]), (32, 8, 1))
    assert grid_entropy(same, CELL) == 0.0
    # 32 samples, each in its own cell at every horizon step: log(32)
    spread = np.zeros((32, 8, 3))
    spread[:, :, 0] = (np.arange(32) * 0.1)[:, None] + 0.015
    assert grid_entropy(spread, CELL) == pytest.approx(math.log(32))
    # 4 cells with 8 samples each: log(4)
    four = np.zeros((32, 8, 3))
    four[:, :, 1] = (np.repeat(np.arange(4), 8) * 0.1)[:, None] + 0.015
    assert grid_entropy(four, CELL) == pytest.approx(math.log(4))


def test_ace_scores_a_sharp_multimodal_sample_set_below_a_diffuse_one():
    rng = np.random.default_rng(0)
    modes = np.array([[0.015, 0.015, 0.015], [0.495, 0.495, 0.015]])  # cell centres
    sharp = modes[rng.integers(0, 2, 64)][:, None, :] + rng.normal(0, 0.003, (64, 8, 3))  # two tight modes
    diffuse = rng.normal(0, 0.25, (64, 8, 3))  # same overall spread, no modes
    assert np.std(sharp[:, 0, 0]) > 0.2 and np.std(diffuse[:, 0, 0]) > 0.2  # variance would not tell them apart
    sharp_ace, diffuse_ace = grid_entropy(sharp, CELL), grid_entropy(diffuse, CELL)
    assert sharp_ace < 1.2 < 3.5 < diffuse_ace


def test_pca_projection_maps_joint_chunks_to_their_top_three_directions_with_calibration_ranges():
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(500, 3)) * np.array([6.0, 3.0, 1.0])
    mixing = np.linalg.qr(rng.normal(size=(8, 8)))[0][:, :3]
    actions = latent @ mixing.T  # 8-D joint targets living on a 3-D subspace
    spec = fit_pca_projection(actions)
    mean, comps = pca_basis(actions)
    np.testing.assert_allclose(np.abs(comps @ mixing), np.eye(3), atol=0.08)  # recovers the subspace
    np.testing.assert_allclose(spec.ranges, np.ptp((actions - mean) @ comps.T, axis=0))
    projection = ActionProjection(spec)
    chunks = actions[:64].reshape(8, 8, 8)
    assert projection.points(chunks).shape == (8, 8, 3)
    identical = np.repeat(actions[:1][None], 16, axis=0).repeat(8, axis=1)
    assert projection.entropy(identical) == 0.0


def test_forward_kinematics_projection_needs_the_callable_and_checks_its_output():
    spec = AceSpec("fk", np.ones(3))
    with pytest.raises(ValueError, match="fk callable"):
        ActionProjection(spec)
    projection = ActionProjection(spec, fk=lambda q: q[:, :3] * 2.0)
    assert projection.points(np.ones((4, 5, 8))).shape == (4, 5, 3)
    bad = ActionProjection(spec, fk=lambda q: q)
    with pytest.raises(ValueError, match="fk callable returned shape"):
        bad.points(np.ones((4, 5, 8)))


# -- STAC ----------------------------------------------------------------------------------------

def test_chunk_consistency_compares_the_time_aligned_overlap_only():
    rng = np.random.default_rng(2)
    traj = 0.1 * np.arange(24)[None, :, None] + rng.normal(0, 0.02, (32, 24, 4))  # a ramp, slightly spread
    previous, current = traj[:, :16], traj[:, 4:20]  # the same samples, 4 steps later
    assert chunk_consistency(previous, current, shift=4) == pytest.approx(0.0, abs=1e-12)
    assert chunk_consistency(previous, current, shift=0) > 0.05  # misaligned: they disagree
    other = current + rng.normal(0, 0.3, (32, 16, 4))  # a different, diffuse distribution
    assert chunk_consistency(previous, other, shift=4) > 0.2
    assert chunk_consistency(previous, current, shift=16) == 0.0  # no overlap: nothing to compare


# -- windows and conformal thresholds ------------------------------------------------------------

def test_window_sums_the_last_w_steps():
    np.testing.assert_allclose(windowed([1, 2, 3, 4], 2), [1, 3, 5, 7])
    np.testing.assert_allclose(windowed([1, 2, 3, 4], 1), [1, 2, 3, 4])
    np.testing.assert_allclose(windowed([1, 2, 3, 4], 10), [1, 3, 6, 10])


def test_conformal_threshold_is_the_finite_sample_corrected_order_statistic():
    values = np.arange(1.0, 20.0)[::-1]  # M = 19, unsorted
    assert conformal_rank(19, 0.05) == 19  # ceil(20 * 0.95) = 19, not 20 (floating point)
    assert conformal_quantile(values, 0.05) == 19.0
    assert conformal_rank(10, 0.2) == 9  # ceil(11 * 0.8) = ceil(8.8)
    assert conformal_quantile(np.arange(10.0), 0.2) == 8.0  # the 9th smallest of 0..9
    assert conformal_rank(50, 0.05) == 49  # ceil(51 * 0.95) = ceil(48.45)
    assert min_rollouts(0.05) == 19 and min_rollouts(0.2) == 4
    with pytest.raises(CalibrationError, match="needs at least 19"):
        conformal_quantile(np.arange(18.0), 0.05)


def _trace(success, rnd, ace, stac=None, seed=0):
    t = EpisodeTrace(seed=seed, success=success)
    for k, (r, a) in enumerate(zip(rnd, ace)):
        t.append({"rnd": r, "ace": a, "stac": 0.0 if stac is None else stac[k]}, k * 100)
    return t


def test_thresholds_come_from_successful_rollouts_only():
    good = [_trace(True, [0.1 * i, 0.2 * i, 0.0], [1.0, 1.0, float(i)], seed=i) for i in range(1, 5)]
    bad = _trace(False, [100.0] * 3, [100.0] * 3, seed=99)
    thresholds, rank = thresholds_from_traces([*good, bad], window=2, delta=0.2)
    # M = 4 successes, rank ceil(5 * 0.8) = 4: the largest per-rollout max windowed score
    assert rank == 4
    assert thresholds["rnd"] == pytest.approx(0.3 * 4)  # max over steps of (0.1i + 0.2i) for i = 4
    assert thresholds["ace"] == pytest.approx(1.0 + 4.0)
    assert thresholds["stac"] > 0  # all zero: floored, so any rise alarms
    with pytest.raises(CalibrationError, match="no successful rollout"):
        thresholds_from_traces([bad], 2, 0.2)


def test_fiper_alarm_needs_both_scores_above_threshold_at_the_same_step():
    th = {"rnd": 1.0, "ace": 1.0, "stac": 1.0}
    only_rnd = _trace(None, [2, 2, 2, 0.1], [0.1, 0.1, 0.1, 0.1])
    assert first_alarm(only_rnd, th, window=1, method="fiper") is None
    assert first_alarm(only_rnd, th, window=1, method="rnd") == 0
    staggered = _trace(None, [2, 0.1, 0.1, 0.1], [0.1, 2, 0.1, 0.1])  # never both at one step
    assert not alarm_steps(staggered, th, 1, "fiper").any()
    both = _trace(None, [0.1, 0.6, 0.6, 0.6], [0.1, 0.6, 0.6, 0.6])
    assert first_alarm(both, th, window=1) is None
    assert first_alarm(both, th, window=2) == 2  # windowed 1.2 from step 2


def test_an_any_method_takes_each_score_at_delta_over_k_and_alarms_on_either():
    # 40 successes: δ = 0.05 is rank ceil(41 · 0.95) = 39, δ/2 rank ceil(41 · 0.975) = 40 (the largest)
    good = [_trace(True, [float(i)], [0.0], stac=[float(100 - i)], seed=i) for i in range(1, 41)]
    th, rank = thresholds_from_traces(good, window=1, delta=0.05)
    assert rank == 39
    assert (th["rnd"], th["stac"]) == (39.0, 98.0)
    assert (th["rnd_or_stac.rnd"], th["rnd_or_stac.stac"]) == (40.0, 99.0)
    only_stac = _trace(None, [1.0, 1.0], [0.0, 0.0], stac=[50.0, 99.5])
    only_rnd = _trace(None, [41.0, 1.0], [0.0, 0.0], stac=[1.0, 1.0])
    assert first_alarm(only_stac, th, 1, "rnd_or_stac") == 1 and first_alarm(only_rnd, th, 1, "rnd_or_stac") == 0
    assert first_alarm(_trace(None, [39.5], [0.0], stac=[98.5]), th, 1, "rnd_or_stac") is None  # above δ, below δ/2
    # 20 successes carry δ = 0.05 (rank 20) but not δ/2 (needs 39): the method is left out, by name
    few, _ = thresholds_from_traces(good[:20], window=1, delta=0.05)
    assert "rnd_or_stac.rnd" not in few
    with pytest.raises(ValueError, match=r"no threshold for \['rnd_or_stac.rnd', 'rnd_or_stac.stac'\]"):
        alarm_steps(only_stac, few, 1, "rnd_or_stac")


def test_calibration_keys_name_a_score_or_a_score_of_an_any_method():
    base = {"window": 1, "delta": 0.05, "num_samples": 8, "execute_steps": 2, "seeds": [1, 40], "rollouts": 40,
            "successes": 40, "conformal_rank": 39}
    cal = FailureCalibration.from_dict({**base, "thresholds": {"rnd": 1.0, "rnd_or_stac.rnd": 2.0, "rnd_or_stac.stac": 3.0}})
    assert cal.thresholds["rnd_or_stac.stac"] == 3.0
    with pytest.raises(FailureConfigError, match=r"calibration.thresholds: unknown score 'fiper.rnd'"):
        FailureCalibration.from_dict({**base, "thresholds": {"rnd": 1.0, "fiper.rnd": 2.0}})


# -- RND-OE (torch) -------------------------------------------------------------------------------

def test_rnd_scores_in_distribution_embeddings_below_shifted_ones_and_the_graph_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from robostack.policies.failure.rnd import RndScorer
    from robostack.policies.failure.rnd_training import RndConfig, export_rnd, fit_rnd

    rng = np.random.default_rng(3)
    basis = rng.normal(size=(4, 24))
    fit = rng.normal(size=(600, 4)) @ basis  # embeddings on a 4-D subspace of R^24
    held_out = rng.normal(size=(200, 4)) @ basis
    shifted = held_out + 3.0 * rng.normal(size=(200, 24))  # off the subspace
    model, summary = fit_rnd(fit, RndConfig(target_hidden=(64, 64), predictor_hidden=(64, 64, 64), out_dim=32, steps=400, threads=1))
    assert summary["final_loss"] < 0.5 * summary["first_loss"]
    path = export_rnd(model, tmp_path / "rnd.onnx")
    scorer = RndScorer(path)
    in_dist, ood = scorer(held_out), scorer(shifted)
    assert np.median(ood) > 2.0 * np.median(in_dist)
    with torch.no_grad():
        expected = model(torch.from_numpy(held_out.astype(np.float32))).numpy()
    np.testing.assert_allclose(in_dist, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="RND expects embeddings of shape"):
        scorer(np.zeros((2, 5)))


# -- the monitor ---------------------------------------------------------------------------------

def _monitor(thresholds, window=1, rnd=None, alarm_method="fiper"):
    spec = AceSpec("pca", np.ones(3), np.zeros(3), np.eye(3))
    scorer = FailureScorer(ActionProjection(spec), Normalization("identity", {}), rnd=rnd)
    cal = FailureCalibration(window=window, delta=0.05, thresholds=thresholds, num_samples=8, execute_steps=2,
                             seeds=(100, 119), rollouts=20, successes=19, conformal_rank=19)
    return FailureMonitor(scorer, cal, alarm_method=alarm_method)


def test_monitor_windows_scores_latches_the_fiper_alarm_and_resets_per_episode():
    rng = np.random.default_rng(4)
    monitor = _monitor({"ace": 1.5, "stac": 0.5, "rnd": 1.0}, window=2)
    tight = np.tile(rng.normal(size=(1, 6, 3)), (8, 1, 1))
    diffuse = rng.normal(0, 1.0, (8, 6, 3))
    s0 = monitor.update(None, tight, t_ns=0)
    assert s0.raw["ace"] == 0.0 and s0.raw["stac"] == 0.0 and not s0.alarm
    s1 = monitor.update(None, diffuse, shift=2, t_ns=100)  # log(8) = 2.08 > 1.5 but no RND: no FIPER alarm
    assert s1.alarms["ace"] and not s1.alarms["fiper"] and not s1.alarm
    assert s1.windowed["ace"] == pytest.approx(s0.raw["ace"] + s1.raw["ace"])
    assert s1.raw["stac"] > 0
    assert math.isnan(s1.raw["rnd"])
    assert monitor.trace.steps == 2 and monitor.trace.times_ns == [0, 100]
    msg = alarm_message(s1, 100)
    assert msg.topic == "alarm" and msg.meta["alarm"] is False and msg.meta["scores"]["rnd"] is None


def test_monitor_alarm_stays_raised_until_reset():
    # RND here is the embedding's first value, so each step's OOD score is chosen by the test
    monitor = _monitor({"ace": 0.5, "stac": 1.0, "rnd": 1.0}, rnd=lambda e: e[:, 0])
    rng = np.random.default_rng(5)
    assert not monitor.update(np.array([0.2]), rng.normal(size=(8, 6, 3))).alarm  # ace high, rnd low
    step = monitor.update(np.array([3.0]), rng.normal(size=(8, 6, 3)))
    assert step.alarms["fiper"] and step.alarm and monitor.first_alarm_step == 1
    calm = monitor.update(np.array([0.0]), np.zeros((8, 6, 3)))
    assert not calm.alarms["fiper"] and calm.alarm  # latched
    assert alarm_message(calm, 5).meta["alarm"] is True
    monitor.reset(seed=7)
    assert not monitor.alarm and monitor.trace.steps == 0 and monitor.trace.seed == 7


def test_monitor_latches_the_configured_alarm_method_and_refuses_one_it_has_no_thresholds_for():
    th = {"ace": 100.0, "stac": 0.5, "rnd": 1.0, "rnd_or_stac.rnd": 1.5, "rnd_or_stac.stac": 0.8}
    rng = np.random.default_rng(6)
    for method, latched in (("fiper", False), ("rnd_or_stac", True)):
        monitor = _monitor(th, rnd=lambda e: e[:, 0], alarm_method=method)
        monitor.update(np.array([0.1]), np.tile(rng.normal(size=(1, 6, 3)), (8, 1, 1)))
        # the next chunks jump away from the previous ones: STAC alone rises
        step = monitor.update(np.array([0.1]), np.tile(rng.normal(5.0, 1.0, size=(1, 6, 3)), (8, 1, 1)), shift=2)
        assert step.raw["stac"] > 0.8 and step.raw["rnd"] < 1.0
        assert step.alarms["rnd_or_stac"] and step.alarms["stac"] and not step.alarms["fiper"]
        assert step.alarm is latched and monitor.alarm_method == method
    with pytest.raises(ValueError, match="unknown alarm method 'both'"):
        _monitor(th, alarm_method="both")
    with pytest.raises(FailureConfigError, match="no thresholds for alarm method 'rnd_or_stac'"):
        _monitor({"ace": 1.0, "stac": 1.0, "rnd": 1.0}, alarm_method="rnd_or_stac")
