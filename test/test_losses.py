"""Joint loss: masking, stage weights and the frequency term against hand-computed values."""

import math

import pytest
import torch
from training.losses import JointLoss


def _gt() -> torch.Tensor:
    gt = torch.full((1, 1, 4, 6), 2.0)
    gt[..., 0, 0] = 0.0  # one invalid ground-truth pixel
    return gt


def test_l1_is_masked_to_valid_ground_truth() -> None:
    gt = _gt()
    pred = gt + 1.0
    pred[..., 0, 0] = 100.0  # invalid pixel: must not count
    loss, parts = JointLoss(freq_weight=0.0)([pred], gt)
    assert loss.item() == pytest.approx(1.0)
    assert parts['l1_final'].item() == pytest.approx(1.0)


def test_stage_weights_default_half_for_early_stages() -> None:
    gt = _gt()
    loss, _ = JointLoss(freq_weight=0.0)([gt + 1.0, gt + 3.0, gt - 2.0], gt)
    assert loss.item() == pytest.approx(0.5 * 1 + 0.5 * 3 + 1.0 * 2)
    loss, _ = JointLoss(stage_weights=[1.0, 1.0], freq_weight=0.0)([gt + 1.0, gt + 3.0], gt)
    assert loss.item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match='stage weights'):
        JointLoss(stage_weights=[1.0])([gt, gt], gt)


def test_frequency_term_of_a_constant_offset_is_its_dc_coefficient() -> None:
    gt = torch.full((1, 1, 4, 6), 2.0)
    c = 0.5
    loss, parts = JointLoss(freq_weight=0.1)([gt + c], gt)
    # Orthonormal rfft2 of a constant c over 4x6: DC = c * sqrt(24), all else 0; the mean is
    # taken over 4 x (6 // 2 + 1) complex bins x 2 (real, imaginary).
    freq = c * math.sqrt(24) / (4 * 4 * 2)
    assert parts['freq'].item() == pytest.approx(freq, rel=1e-5)
    assert loss.item() == pytest.approx(c + 0.1 * freq, rel=1e-5)


def test_perfect_prediction_has_zero_loss_and_gradients_skip_invalid_pixels() -> None:
    gt = _gt()
    loss, _ = JointLoss()([gt.clone(), gt.clone()], gt)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    pred = (gt + torch.randn_like(gt)).requires_grad_(True)
    loss, _ = JointLoss()([pred], gt)
    loss.backward()
    assert pred.grad[..., 0, 0].abs().item() == 0.0
    assert pred.grad.abs().sum() > 0


def test_hole_weight_emphasises_pixels_missing_from_the_raw_input() -> None:
    gt = torch.full((1, 1, 2, 2), 2.0)
    raw = torch.tensor([[[[2.0, 2.0], [2.0, 0.0]]]])  # one hole, bottom right
    pred = gt.clone()
    pred[0, 0, 1, 1] = 3.0  # 1 m wrong in the hole only
    plain, _ = JointLoss(freq_weight=0.0)([pred], gt)
    weighted, _ = JointLoss(freq_weight=0.0, hole_weight=3.0)([pred], gt, raw_depth=raw)
    assert plain.item() == pytest.approx(1.0 / 4)
    assert weighted.item() == pytest.approx(4.0 / 7)  # weights 1, 1, 1, 4
    with pytest.raises(ValueError, match='needs raw_depth'):
        JointLoss(hole_weight=1.0)([pred], gt)
    with pytest.raises(ValueError, match='hole_weight must be >= 0'):
        JointLoss(hole_weight=-1.0)


def test_planted_weight_adds_to_the_hole_weight_on_hidden_measured_pixels() -> None:
    gt = torch.full((1, 1, 2, 2), 2.0)
    raw = torch.tensor([[[[2.0, 0.0], [2.0, 0.0]]]])  # two holes, right column
    planted = torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]])  # the bottom one was hidden
    pred = gt.clone()
    pred[0, 0, 0, 1] = 3.0  # 1 m wrong in the natural hole
    pred[0, 0, 1, 1] = 4.0  # 2 m wrong in the planted one
    loss = JointLoss(freq_weight=0.0, hole_weight=1.0, planted_weight=2.0)
    weighted, _ = loss([pred], gt, raw_depth=raw, planted=planted)
    assert weighted.item() == pytest.approx((2 * 1.0 + 4 * 2.0) / (1 + 1 + 2 + 4))
    # Without the mask (validation batches) only the hole weight applies.
    unmarked, _ = loss([pred], gt, raw_depth=raw)
    assert unmarked.item() == pytest.approx((2 * 1.0 + 2 * 2.0) / 6)
    with pytest.raises(ValueError, match='planted mask'):
        loss([pred], gt, raw_depth=raw, planted=planted[..., :1])
    with pytest.raises(ValueError, match='planted_weight must be >= 0'):
        JointLoss(planted_weight=-0.5)


def test_planted_berhu_squares_only_large_errors_of_planted_pixels() -> None:
    gt = torch.full((1, 1, 2, 2), 2.0)
    raw = torch.tensor([[[[2.0, 0.0], [2.0, 0.0]]]])  # two holes, right column
    planted = torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]])  # the bottom one was hidden
    pred = gt.clone()
    pred[0, 0, 0, 1] = 3.0  # 1 m wrong in the natural hole: stays L1
    pred[0, 0, 1, 1] = 4.0  # 2 m wrong in the planted one: (4 + 0.25) / 1 beyond c = 0.5
    loss = JointLoss(freq_weight=0.0, planted_berhu_m=0.5)
    total, _ = loss([pred], gt, raw_depth=raw, planted=planted)
    assert total.item() == pytest.approx((1.0 + 4.25) / 4)
    # Within the threshold the planted pixel's loss is its absolute error.
    pred[0, 0, 1, 1] = 2.3
    total, _ = loss([pred], gt, raw_depth=raw, planted=planted)
    assert total.item() == pytest.approx((1.0 + 0.3) / 4)
    # Its optimum between two equally likely surfaces 2 m apart is their mean, where L1 has
    # none better than either surface.
    two = torch.tensor([[[[1.0]]], [[[3.0]]]])
    mark = torch.ones_like(two)

    def loss_at(depth: float, **kw) -> float:
        guess = torch.full_like(two, depth)
        return JointLoss(freq_weight=0.0, **kw)([guess], two, planted=mark)[0].item()
    assert loss_at(2.0, planted_berhu_m=0.5) < loss_at(1.2, planted_berhu_m=0.5)
    assert loss_at(2.0) == pytest.approx(loss_at(1.2))
    for bad in (-0.1, float('nan'), float('inf')):
        with pytest.raises(ValueError, match='planted_berhu_m'):
            JointLoss(planted_berhu_m=bad)


def test_berhu_threshold_fixes_the_reverse_huber_threshold() -> None:
    gt = torch.full((1, 1, 1, 2), 2.0)
    pred = torch.tensor([[[[2.1, 4.0]]]])  # 0.1 m and 2 m wrong
    fixed, _ = JointLoss(freq_weight=0.0, pixel_loss='berhu', berhu_threshold_m=0.5)([pred], gt)
    assert fixed.item() == pytest.approx((0.1 + (4.0 + 0.25) / 1.0) / 2)
    # The batch-relative threshold (0.2 x 2 m = 0.4 m) differs.
    relative, _ = JointLoss(freq_weight=0.0, pixel_loss='berhu')([pred], gt)
    assert relative.item() == pytest.approx((0.1 + (4.0 + 0.16) / 0.8) / 2)
    with pytest.raises(ValueError, match="pixel_loss='berhu'"):
        JointLoss(berhu_threshold_m=0.5)
    with pytest.raises(ValueError, match='berhu_threshold_m must be'):
        JointLoss(pixel_loss='berhu', berhu_threshold_m=-1.0)


def test_change_weight_penalises_leaving_the_initial_fill_on_holes_only() -> None:
    gt = torch.full((1, 1, 2, 2), 2.0)
    raw = torch.tensor([[[[2.0, 2.0], [2.0, 0.0]]]])  # one hole, bottom right
    initial = torch.full((1, 1, 2, 2), 2.5)  # D_0 0.5 m off everywhere
    pred = gt.clone()
    pred[0, 0, 0, 0] = 1.0  # a measured pixel 1 m off, away from D_0: no penalty
    loss = JointLoss(freq_weight=0.0, hole_weight=1.0, change_weight=0.25)
    total, parts = loss([pred], gt, raw_depth=raw, initial=initial)
    # Weights 1, 1, 1, 2 (count 5); the hole pixel is right, 0.5 m from D_0.
    assert total.item() == pytest.approx((1.0 + 0.25 * 2 * 0.5) / 5)
    assert parts['change'].item() == pytest.approx(0.25 * 2 * 0.5 / 5)
    with pytest.raises(ValueError, match='needs initial'):
        loss([pred], gt, raw_depth=raw)
    with pytest.raises(ValueError, match='change_weight > 0 needs raw_depth'):
        JointLoss(change_weight=0.25)([pred], gt, initial=initial)
    with pytest.raises(ValueError, match=r'initial fill \(1, 1, 1, 2\)'):
        loss([pred], gt, raw_depth=raw, initial=initial[..., :1, :])
    with pytest.raises(ValueError, match=r'change_weight must be in \[0, 1\)'):
        JointLoss(change_weight=1.0)


def test_change_weight_keeps_d0_unless_the_likely_depths_lean_one_way_by_more() -> None:
    # One hole pixel seen in four frames: its true depth is 3 m in three of them and 1 m in
    # one, D_0 says 2 m. Plain L1 goes to the median (3 m); the penalty keeps D_0 when the
    # lean, (3 - 1) / 4 = 0.5, is below it, and lets the move happen when it is above.
    gt = torch.tensor([3.0, 3.0, 3.0, 1.0]).view(4, 1, 1, 1)
    raw = torch.zeros_like(gt)
    initial = torch.full_like(gt, 2.0)

    def fit(change_weight: float) -> float:
        value = torch.full((1, 1, 1, 1), 2.0, requires_grad=True)
        opt = torch.optim.SGD([value], lr=0.02)
        loss = JointLoss(freq_weight=0.0, change_weight=change_weight)
        for _ in range(400):
            opt.zero_grad()
            loss([value.expand_as(gt)], gt, raw_depth=raw, initial=initial)[0].backward()
            opt.step()
        return value.item()

    assert fit(0.0) == pytest.approx(3.0, abs=0.05)
    assert fit(0.3) == pytest.approx(3.0, abs=0.05)
    assert fit(0.7) == pytest.approx(2.0, abs=0.05)


def test_berhu_equals_l1_for_small_errors_and_is_quadratic_beyond() -> None:
    gt = torch.full((1, 1, 1, 5), 2.0)
    pred = gt + torch.tensor([0.0, 0.1, 0.2, 0.5, 1.0]).view(1, 1, 1, 5)
    l1 = JointLoss(freq_weight=0.0)
    berhu = JointLoss(freq_weight=0.0, pixel_loss='berhu')
    # c = 0.2 x the largest error = 0.2: errors 0, 0.1 and 0.2 count as in L1, 0.5 as
    # (0.25 + 0.04) / 0.4 and 1.0 as (1 + 0.04) / 0.4.
    expected = (0.0 + 0.1 + 0.2 + 0.29 / 0.4 + 1.04 / 0.4) / 5
    assert berhu([pred], gt)[0].item() == pytest.approx(expected, rel=1e-5)
    assert l1([pred], gt)[0].item() == pytest.approx(1.8 / 5, rel=1e-5)
    with pytest.raises(ValueError, match="pixel_loss must be one of .*'berhu'.*got 'l3'"):
        JointLoss(pixel_loss='l3')


def test_berhu_and_l2_move_an_ambiguous_fill_from_the_median_towards_the_mean() -> None:
    # One hole, four equally likely truths: 1 m three times, 3 m once. L1 settles on the
    # median (1 m; RMSE 1.0 m), the mean (1.5 m) has the lowest RMSE (0.87 m).
    gt = torch.tensor([1.0, 1.0, 1.0, 3.0]).view(4, 1, 1, 1)
    fills = {}
    for kind in ('l1', 'berhu', 'l2'):
        fill = torch.tensor(1.2, requires_grad=True)
        criterion = JointLoss(freq_weight=0.0, pixel_loss=kind)
        optimiser = torch.optim.SGD([fill], lr=0.05)
        for _ in range(300):
            optimiser.zero_grad()
            criterion([fill.expand(4, 1, 1, 1)], gt)[0].backward()
            optimiser.step()
        fills[kind] = fill.item()
    assert abs(fills['l1'] - 1.0) < 0.06
    assert fills['berhu'] > 1.3
    assert fills['l2'] == pytest.approx(1.5, abs=0.01)
