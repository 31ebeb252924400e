"""Depth metrics against hand-computed values."""

import math

import numpy as np
import pytest
from s2ml_ros.metrics import compute_depth_metrics, DepthMetricAccumulator
import torch

# Image A: errors 0, 1, 1, -4 on four valid pixels.
PRED_A = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
GT_A = np.array([[1.0, 1.0], [2.0, 8.0]], dtype=np.float32)
RAW_A = np.array([[1.0, 0.0], [3.0, 0.0]], dtype=np.float32)
# Image B: one invalid ground-truth pixel, errors 0, 0, 1 on the other three.
PRED_B = np.array([[2.0, 2.0], [2.0, 3.0]], dtype=np.float32)
GT_B = np.array([[0.0, 2.0], [2.0, 2.0]], dtype=np.float32)


def test_single_image_against_hand_computed_values() -> None:
    m = compute_depth_metrics(PRED_A, GT_A)
    assert m['rmse'] == pytest.approx(math.sqrt(18 / 4))
    assert m['mae'] == pytest.approx(1.5)
    assert m['rel'] == pytest.approx((0 + 1 / 1 + 1 / 2 + 4 / 8) / 4)
    # Ratios 1, 2, 1.5, 2 against thresholds 1.25, 1.5625, 1.953.
    assert m['delta1'] == pytest.approx(0.25)
    assert m['delta2'] == pytest.approx(0.5)
    assert m['delta3'] == pytest.approx(0.5)
    assert m['psnr'] == pytest.approx(10 * math.log10(100 / 4.5))
    assert m['psnr_pooled'] == pytest.approx(m['psnr'])
    assert 'hole_rmse' not in m


def test_dataset_figure_is_mean_of_per_image_values_and_pooled_is_separate() -> None:
    acc = DepthMetricAccumulator()
    acc.update(torch.from_numpy(np.stack([PRED_A, PRED_B]))[:, None],
               torch.from_numpy(np.stack([GT_A, GT_B]))[:, None])
    m = acc.compute()
    assert m['images'] == 2 and m['pixels'] == 7
    assert m['rmse'] == pytest.approx((math.sqrt(4.5) + math.sqrt(1 / 3)) / 2)
    assert m['psnr'] == pytest.approx((10 * math.log10(100 / 4.5) + 10 * math.log10(300)) / 2)
    assert m['rmse_pooled'] == pytest.approx(math.sqrt(19 / 7))
    assert m['mae_pooled'] == pytest.approx(7 / 7)
    assert m['psnr_pooled'] == pytest.approx(10 * math.log10(100 * 7 / 19))


def test_hole_subset_and_valid_mask() -> None:
    m = compute_depth_metrics(PRED_A, GT_A, raw=RAW_A)
    assert m['hole_rmse'] == pytest.approx(math.sqrt(17 / 2))
    assert m['hole_mae'] == pytest.approx(2.5)
    assert m['hole_pixels'] == 2
    mask = np.array([[True, False], [True, True]])
    m = compute_depth_metrics(PRED_A, GT_A, valid_mask=mask)
    assert m['rmse'] == pytest.approx(math.sqrt(17 / 3))
    # Raw given but without holes: hole figures exist and are NaN.
    m = compute_depth_metrics(PRED_A, GT_A, raw=np.ones_like(RAW_A))
    assert m['hole_pixels'] == 0 and math.isnan(m['hole_rmse'])


def test_sums_add_up_across_batches_like_an_all_reduce() -> None:
    whole = DepthMetricAccumulator()
    whole.update(np.stack([PRED_A, PRED_B]), np.stack([GT_A, GT_B]),
                 raw=np.stack([RAW_A, RAW_A]))
    part1, part2 = DepthMetricAccumulator(), DepthMetricAccumulator()
    part1.update(PRED_A, GT_A, raw=RAW_A)
    part2.update(PRED_B, GT_B, raw=RAW_A)
    part1.totals += part2.totals
    a, b = whole.compute(), part1.compute()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], nan_ok=True)


def test_perfect_prediction_has_finite_psnr_and_bad_shapes_fail() -> None:
    m = compute_depth_metrics(GT_A, GT_A)
    assert m['rmse'] == 0 and math.isfinite(m['psnr']) and m['delta1'] == 1
    with pytest.raises(ValueError, match='shape'):
        compute_depth_metrics(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match='one channel'):
        compute_depth_metrics(np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 3, 3)))
