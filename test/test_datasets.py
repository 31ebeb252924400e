"""Dataset readers on small files written in each dataset's exact format; transforms' geometry."""

import json
import logging
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from s2ml_ros.geometry import backproject, Intrinsics
import scipy.io
import torch
from training.datasets import (
    DatasetError, NyuDepthV2Labeled, read_depth_png, RgbdFolder, SimulatedRgbd, SunRgbd)
from training.transforms import (BorderHoles, CameraColour, crop, DeadLeavesTexture, hflip,
                                 PaintedDecals,
                                 PlantedHoles, RandomDepthScale, resize, SmoothDepthWarp,
                                 to_tensor,
                                 train_transform)

W, H = 40, 30


def _color(seed: int) -> np.ndarray:
    """Make an RGB image whose red channel encodes the column, green the row."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = np.arange(W)[None, :]
    rgb[..., 1] = np.arange(H)[:, None]
    rgb[..., 2] = seed
    return rgb


def _depth(seed: int) -> np.ndarray:
    return (1.0 + 0.01 * np.arange(W)[None, :] + 0.02 * np.arange(H)[:, None]
            + 0.1 * seed).astype(np.float32)


def _write_nyu(path: Path, n: int = 5) -> None:
    """MATLAB v7.3 layout: HDF5 with a 512-byte user block, column-major arrays."""
    with h5py.File(path, 'w', userblock_size=512) as f:
        images = np.stack([_color(i).transpose(2, 1, 0) for i in range(n)])  # [N, 3, W, H]
        depths = np.stack([_depth(i).T for i in range(n)])                   # [N, W, H]
        raw = depths.copy()
        raw[:, :5, :] = 0  # left columns missing in the raw depth
        f['images'] = images
        f['depths'] = depths
        f['rawDepths'] = raw


def test_nyu_labeled_mat_orientation_split_and_units(tmp_path: Path) -> None:
    mat = tmp_path / 'nyu_depth_v2_labeled.mat'
    _write_nyu(mat)
    splits = {'trainNdxs': np.array([[1], [2], [4]]), 'testNdxs': np.array([[3], [5]])}
    scipy.io.savemat(tmp_path / 'splits.mat', splits)
    train = NyuDepthV2Labeled(mat, 'train')
    test = NyuDepthV2Labeled(mat, 'test')
    assert len(train) == 3 and len(test) == 2
    s = test.sample(0)  # frame 3 (1-based) = index 2
    assert s['rgb'].shape == (H, W, 3)
    np.testing.assert_array_equal(s['rgb'][..., 0], _color(2)[..., 0])
    np.testing.assert_array_equal(s['rgb'][..., 2], 2)
    np.testing.assert_allclose(s['gt'], _depth(2))
    assert np.all(s['depth'][:, :5] == 0) and np.all(s['depth'][:, 5:] > 0)
    item = train[0]
    assert item['rgb'].shape == (3, H, W) and item['depth'].shape == (1, H, W)
    assert item['intrinsics'].shape == (4,)


def test_nyu_fallback_split_and_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                       ) -> None:
    mat = tmp_path / 'labeled.mat'
    _write_nyu(mat, n=10)
    with caplog.at_level(logging.WARNING):
        train = NyuDepthV2Labeled(mat, 'train')
    assert 'not the official split' in caplog.text
    test = NyuDepthV2Labeled(mat, 'test')
    assert len(train) + len(test) == 10
    assert not set(train.indices) & set(test.indices)
    with pytest.raises(DatasetError, match='does not exist'):
        NyuDepthV2Labeled(tmp_path / 'missing.mat')
    bogus = tmp_path / 'bogus.mat'
    bogus.write_text('MATLAB 5.0 MAT-file, not really')
    with pytest.raises(DatasetError, match='bogus.mat.*HDF5'):
        NyuDepthV2Labeled(bogus)
    with h5py.File(tmp_path / 'partial.mat', 'w') as f:
        f['images'] = np.zeros((1, 3, W, H), np.uint8)
    with pytest.raises(DatasetError, match='lacks'):
        NyuDepthV2Labeled(tmp_path / 'partial.mat')


def _sun_encode(depth_m: np.ndarray) -> np.ndarray:
    """Store millimetres with SUN RGB-D's bit rotation (the inverse of the reader's)."""
    v = np.round(depth_m * 1000).astype(np.uint16)
    return (v << np.uint16(3)) | (v >> np.uint16(13))


def _write_sun_frame(folder: Path, seed: int) -> None:
    for sub in ('image', 'depth', 'depth_bfx'):
        (folder / sub).mkdir(parents=True)
    cv2.imwrite(str(folder / 'image' / f'{folder.name}.png'), _color(seed)[..., ::-1])
    raw = _depth(seed)
    raw[10:20, 10:20] = 0
    cv2.imwrite(str(folder / 'depth' / f'{folder.name}.png'), _sun_encode(raw))
    cv2.imwrite(str(folder / 'depth_bfx' / f'{folder.name}.png'), _sun_encode(_depth(seed)))
    np.savetxt(folder / 'intrinsics.txt', [[30.0, 0, 19.5], [0, 30.0, 14.5], [0, 0, 1]])


def test_sun_rgbd_bit_rotation_and_frames(tmp_path: Path) -> None:
    root = tmp_path / 'SUNRGBD'
    _write_sun_frame(root / 'kv1' / 'NYUdata' / 'NYU0001', 0)
    _write_sun_frame(root / 'realsense' / 'lg' / 'f0002', 1)
    ds = SunRgbd(root)
    assert len(ds) == 2
    s = ds.sample(0)
    np.testing.assert_allclose(s['gt'], _depth(0), atol=6e-4)
    assert np.all(s['depth'][10:20, 10:20] == 0)
    np.testing.assert_array_equal(s['rgb'][..., 0], _color(0)[..., 0])
    assert s['intrinsics'].fx == 30.0 and s['intrinsics'].cx == 19.5
    listed = SunRgbd(root, frames=['realsense/lg/f0002'])
    assert len(listed) == 1
    with pytest.raises(DatasetError, match='do not exist'):
        SunRgbd(root, frames=['nope'])
    with pytest.raises(DatasetError, match='no SUN RGB-D frame'):
        SunRgbd(tmp_path / 'SUNRGBD' / 'kv1' / 'NYUdata' / 'NYU0001' / 'image')


def _write_flat_folder(root: Path, n: int = 3) -> None:
    root.mkdir()
    for i in range(n):
        cv2.imwrite(str(root / f'f{i}_color.png'), _color(i)[..., ::-1])
        cv2.imwrite(str(root / f'f{i}_depth_raw.png'),
                    np.round(_depth(i) * 5000).astype(np.uint16))
    (root / 'intrinsics.json').write_text(json.dumps(
        {'fx': 60.0, 'fy': 60.0, 'cx': 39.0, 'cy': 29.0, 'width': 2 * W, 'height': 2 * H,
         'depth_scale': 5000}))


def test_generic_folder_pairs_scale_and_intrinsics(tmp_path: Path) -> None:
    root = tmp_path / 'frames'
    _write_flat_folder(root)
    ds = RgbdFolder(root, on_bad_frame='raise')
    assert len(ds) == 3
    s = ds.sample(1)
    np.testing.assert_allclose(s['depth'], _depth(1), atol=2e-4)
    np.testing.assert_array_equal(s['gt'], s['depth'])  # no ground truth: raw is the target
    # Intrinsics given for 2x the image size are rescaled to the image.
    assert s['intrinsics'].fx == pytest.approx(30.0) and s['intrinsics'].width == W


def test_bad_frames_are_named_or_skipped_and_counted(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / 'frames'
    _write_flat_folder(root)
    cv2.imwrite(str(root / 'f1_depth_raw.png'), np.ones((H + 2, W), np.uint16))
    with pytest.raises(DatasetError, match=r'f1_depth_raw\.png.*depth is 40x32'):
        RgbdFolder(root, on_bad_frame='raise').sample(1)
    ds = RgbdFolder(root)
    with caplog.at_level(logging.WARNING):
        s = ds.sample(1)
    assert s['name'] == 'f2' and ds.bad_frames == 1
    assert 'f1_depth_raw.png' in caplog.text
    cv2.imwrite(str(root / 'f0_depth_raw.png'), np.ones((H, W, 3), np.uint8))
    with pytest.raises(DatasetError, match='16-bit'):
        read_depth_png(root / 'f0_depth_raw.png')
    with pytest.raises(DatasetError, match='neither intrinsics'):
        (root / 'intrinsics.json').unlink()
        RgbdFolder(root)


def test_simulated_dataset_is_deterministic_and_test_seeds_are_separate() -> None:
    a = SimulatedRgbd(2, 48, 36)
    b = SimulatedRgbd(2, 48, 36)
    t = SimulatedRgbd(2, 48, 36, split='test')
    x, y = a[1], b[1]
    for key in ('rgb', 'depth', 'gt'):
        assert torch.equal(x[key], y[key])
    assert not torch.equal(x['gt'], t[1]['gt'])
    assert x['depth'].shape == (1, 36, 48) and float(x['gt'].min()) > 0


def test_simulated_cache_returns_the_rendered_frames(tmp_path: Path) -> None:
    plain = SimulatedRgbd(2, 48, 36, sensors=['tof', 'active_stereo']).sample(1)
    cached = SimulatedRgbd(2, 48, 36, sensors=['tof', 'active_stereo'], cache_dir=tmp_path)
    first = cached.sample(1)
    assert len(list(tmp_path.glob('active_stereo_48x36_*.npz'))) == 1
    again = cached.sample(1)
    for s in (first, again):
        np.testing.assert_array_equal(s['depth'], plain['depth'])
        np.testing.assert_array_equal(s['rgb'], plain['rgb'])
        assert s['intrinsics'] == plain['intrinsics']


def test_sensor_variation_changes_the_holes_not_the_scene_and_caches_apart(
        tmp_path: Path) -> None:
    plain = SimulatedRgbd(6, 64, 48, sensors=['tof'], cache_dir=tmp_path)
    varied = SimulatedRgbd(6, 64, 48, sensors=['tof'], cache_dir=tmp_path, sensor_variation=1)
    again = SimulatedRgbd(6, 64, 48, sensors=['tof'], sensor_variation=1)
    differ = 0
    for i in range(6):
        p, v = plain.sample(i), varied.sample(i)
        np.testing.assert_array_equal(p['gt'], v['gt'])
        np.testing.assert_array_equal(p['rgb'], v['rgb'])
        np.testing.assert_array_equal(v['depth'], again.sample(i)['depth'])
        differ += not np.array_equal(p['depth'], v['depth'])
    assert differ >= 5
    assert len(list(tmp_path.glob('tof_v1_64x48_*.npz'))) == 6
    assert len(list(tmp_path.glob('tof_64x48_*.npz'))) == 6
    # Read back from the cache, each kind of frame is still its own.
    for i in range(6):
        np.testing.assert_array_equal(varied.sample(i)['depth'], again.sample(i)['depth'])
    with pytest.raises(ValueError, match='-1'):
        SimulatedRgbd(2, 64, 48, sensor_variation=-1)


def test_camouflage_changes_the_colour_not_the_depth_and_caches_apart(tmp_path: Path) -> None:
    plain = SimulatedRgbd(4, 64, 48, sensors=['active_stereo'], cache_dir=tmp_path)
    camo = SimulatedRgbd(4, 64, 48, sensors=['active_stereo'], cache_dir=tmp_path,
                         camouflage=1.0)
    recoloured = 0
    for i in range(4):
        p, c = plain.sample(i), camo.sample(i)
        np.testing.assert_array_equal(p['gt'], c['gt'])
        recoloured += not np.array_equal(p['rgb'], c['rgb'])
    assert recoloured >= 3
    assert len(list(tmp_path.glob('active_stereo_c1_64x48_*.npz'))) == 4
    assert len(list(tmp_path.glob('active_stereo_64x48_*.npz'))) == 4
    with pytest.raises(ValueError, match='camouflage must be in \\[0, 1\\], got 2'):
        SimulatedRgbd(2, 64, 48, camouflage=2)


def test_clutter_adds_objects_and_caches_apart(tmp_path: Path) -> None:
    plain = SimulatedRgbd(4, 64, 48, sensors=['tof'], cache_dir=tmp_path)
    crowded = SimulatedRgbd(4, 64, 48, sensors=['tof'], cache_dir=tmp_path, clutter=1.0)
    changed = sum(not np.array_equal(plain.sample(i)['gt'], crowded.sample(i)['gt'])
                  for i in range(4))
    assert changed >= 3
    assert len(list(tmp_path.glob('tof_k1_64x48_*.npz'))) == 4
    assert len(list(tmp_path.glob('tof_64x48_*.npz'))) == 4
    with pytest.raises(ValueError, match='clutter must be in \\[0, 1\\], got 3'):
        SimulatedRgbd(2, 64, 48, clutter=3)


def test_level_views_change_the_view_and_cache_apart(tmp_path: Path) -> None:
    plain = SimulatedRgbd(4, 64, 48, sensors=['tof'], cache_dir=tmp_path)
    level = SimulatedRgbd(4, 64, 48, sensors=['tof'], cache_dir=tmp_path, level_views=1.0)
    moved = sum(not np.array_equal(plain.sample(i)['gt'], level.sample(i)['gt'])
                for i in range(4))
    assert moved == 4  # every item is seen from a level camera instead
    assert len(list(tmp_path.glob('tof_l1_64x48_*.npz'))) == 4
    assert len(list(tmp_path.glob('tof_64x48_*.npz'))) == 4
    with pytest.raises(ValueError, match='level_views must be in \\[0, 1\\], got -1'):
        SimulatedRgbd(2, 64, 48, level_views=-1)


def _sample() -> dict:
    k = Intrinsics(50.0, 52.0, 21.3, 13.7, W, H)
    return {'rgb': _color(0), 'depth': _depth(0), 'gt': _depth(0), 'intrinsics': k}


def test_crop_and_flip_keep_back_projection_consistent() -> None:
    s = _sample()
    pts = backproject(s['gt'], s['intrinsics'])
    c = crop(s, 7, 5, 24, 18)
    pc = backproject(c['gt'], c['intrinsics'])
    np.testing.assert_allclose(pc, pts[5:23, 7:31], atol=1e-5)
    f = hflip(c)
    pf = backproject(f['gt'], f['intrinsics'])
    # A mirrored image sees the mirrored scene: x negated, columns reversed.
    np.testing.assert_allclose(pf[..., 0], -pc[:, ::-1, 0], atol=1e-5)
    np.testing.assert_allclose(pf[..., 1:], pc[:, ::-1, 1:], atol=1e-5)
    r = resize(s, W // 2, H // 2)
    # Pixel (u', v') of the half-size image covers the centre of pixels 2u'..2u'+1.
    pr = backproject(r['gt'], r['intrinsics'])
    u, v = 5, 4
    ray = (2 * u + 0.5 - s['intrinsics'].cx) / s['intrinsics'].fx
    assert pr[v, u, 0] / pr[v, u, 2] == pytest.approx(ray, abs=1e-5)


def test_train_transform_output_size_and_holes_stay_holes() -> None:
    s = _sample()
    s['depth'] = s['depth'].copy()
    s['depth'][:, :10] = 0
    t = train_transform(32, 24, scale=(1.0, 1.5), jitter=0.4)
    out = t(s, np.random.default_rng(0))
    assert out['rgb'].shape == (24, 32, 3) and out['intrinsics'].size == (32, 24)
    vals = np.unique(out['depth'])
    assert vals[0] == 0 or out['depth'].min() > 0
    # Nearest-neighbour resampling: every value is an original depth divided by one factor.
    ratio = out['gt'][out['depth'] > 0] / out['depth'][out['depth'] > 0]
    np.testing.assert_allclose(ratio, 1.0)


def test_exported_simulated_frames_read_back_as_a_folder(tmp_path: Path) -> None:
    from training.export_sim import main as export_main
    out = tmp_path / 'sim'
    export_main(['--out', str(out), '--num', '2', '--size', '48', '36', '--sensor', 'tof'])
    ds = RgbdFolder(out, on_bad_frame='raise')
    ref = SimulatedRgbd(2, 48, 36, ['tof'], 'test').sample(1)
    s = ds.sample(1)
    np.testing.assert_array_equal(s['rgb'], ref['rgb'])
    np.testing.assert_allclose(s['gt'], ref['gt'], atol=5e-4)
    np.testing.assert_allclose(s['depth'], ref['depth'], atol=5e-4)
    assert s['intrinsics'] == ref['intrinsics']


def test_planted_holes_hide_only_measured_pixels_in_the_frames_hole_shape() -> None:
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.5, 4.0, (48, 64)).astype(np.float32)
    depth[10:20, 5:15] = 0  # one square hole, 100 pixels
    gt = depth.copy()
    gt[10:20, 5:15] = 2.0
    sample = {'rgb': np.zeros((48, 64, 3), np.uint8), 'depth': depth, 'gt': gt}
    planted = PlantedHoles(p=1.0, max_shift=0.5)
    hidden_counts = []
    for seed in range(20):
        out = planted(sample, np.random.default_rng(seed))
        assert out['gt'] is gt and out['rgb'] is sample['rgb']
        newly = (out['depth'] == 0) & (depth > 0)
        assert np.array_equal(out['depth'][~newly], depth[~newly])  # the rest is untouched
        assert np.array_equal(out['planted'], newly.astype(np.float32))  # for the loss
        hidden_counts.append(int(newly.sum()))
        if newly.any():
            ys, xs = np.nonzero(newly)  # the moved square, cut by the borders and the hole
            assert ys.max() - ys.min() < 10 and xs.max() - xs.min() < 10
    assert max(hidden_counts) > 50 and np.all(np.array(hidden_counts) <= 100)
    skipped = PlantedHoles(p=0.0)(sample, rng)
    assert skipped['depth'] is depth and not skipped['planted'].any()  # batches still stack
    with pytest.raises(ValueError, match='1.5'):
        PlantedHoles(p=1.5)


def test_planted_holes_zoom_enlarges_the_moved_shape() -> None:
    depth = np.full((48, 64), 2.0, np.float32)
    depth[20:28, 28:36] = 0  # an 8x8 hole at the centre
    sample = {'rgb': np.zeros((48, 64, 3), np.uint8), 'depth': depth, 'gt': depth}
    plain, zoomed = PlantedHoles(p=1.0, max_shift=0.0), PlantedHoles(p=1.0, max_shift=0.0,
                                                                     max_zoom=4.0)
    sizes = []
    for seed in range(20):
        assert plain(sample, np.random.default_rng(seed))['planted'].sum() == 0  # on itself
        hidden = zoomed(sample, np.random.default_rng(seed))['planted'] > 0
        if hidden.any():
            ys, xs = np.nonzero(hidden)  # a larger square about the centre, minus the hole
            assert ys.max() - ys.min() < 32 and xs.max() - xs.min() < 32
            sizes.append(int(hidden.sum()))
    assert len(sizes) >= 15 and max(sizes) > 4 * 64  # most draws grow it, some by > 2x
    with pytest.raises(ValueError, match='zoom must be in \\[1, 8\\], got 0.5'):
        PlantedHoles(max_zoom=0.5)


def test_border_holes_blank_bands_touching_the_border_only() -> None:
    depth = np.full((60, 80), 2.0, np.float32)
    depth[20:30, 30:40] = 0  # an interior hole: bands must not start from it
    sample = {'rgb': np.zeros((60, 80, 3), np.uint8), 'depth': depth, 'gt': depth.copy()}
    blanked = []
    for seed in range(30):
        out = BorderHoles(p=1.0, max_fraction=0.2)(sample, np.random.default_rng(seed))
        assert out['gt'] is sample['gt']
        new = (out['depth'] == 0) & (depth > 0)
        assert np.array_equal(out['depth'][~new], depth[~new])
        if new.any():
            # Every blanked pixel lies in a band that starts at the border of its row or column:
            # the pixels between it and one of the four sides are all blanked too.
            ys, xs = np.nonzero(new)
            hole = out['depth'] == 0
            for y, x in zip(ys[::7], xs[::7]):
                assert (hole[:y + 1, x].all() or hole[y:, x].all() or hole[y, :x + 1].all()
                        or hole[y, x:].all())
            assert not new[15:45, 25:55].any()  # bands <= 20% of a side (+1 px ragged)
        blanked.append(new.mean())
    assert 0.05 < np.mean(blanked) < 0.4  # bands on about 60% of the sides
    assert BorderHoles(p=0.0)(sample, np.random.default_rng(0)) is sample
    with pytest.raises(ValueError, match='0.7'):
        BorderHoles(max_fraction=0.7)
    with pytest.raises(ValueError, match='border hole probability'):
        BorderHoles(p=2.0)


def test_hexagonal_border_bands_widen_from_mid_side_to_the_corners() -> None:
    # An Azure Kinect NFOV view registered to colour: the left band is widest at the top and
    # bottom rows and narrowest in the middle rows.
    depth = np.full((120, 160), 2.0, np.float32)
    sample = {'rgb': np.zeros((120, 160, 3), np.uint8), 'depth': depth, 'gt': depth.copy()}
    hexagon = BorderHoles(p=1.0, max_fraction=0.12, side_p=1.0, hexagon_p=1.0)
    corner_widths = []
    for seed in range(20):
        hole = hexagon(sample, np.random.default_rng(seed))['depth'] == 0
        # Width of the left band per row, counted from column 0 (the top and bottom bands,
        # at most 24% of the height at the corners, are left out by the rows taken).
        left = np.argmin(hole, axis=1)
        middle, ends = left[55:65].mean(), (left[30] + left[89]) / 2
        assert ends >= middle - 2, (seed, left[30], left[60], left[89])
        corner_widths.append(max(left[30], left[89]))
    # Mid-side at most 12% of the width (+1 ragged), toward the corners up to 24%.
    assert max(corner_widths) > 0.12 * 160 + 1
    assert all(left_w <= 0.24 * 160 + 1 for left_w in corner_widths)
    with pytest.raises(ValueError, match='hexagonal border band probability'):
        BorderHoles(hexagon_p=1.5)


def test_planted_mask_moves_with_the_depth_but_is_not_scaled() -> None:
    depth = np.full((40, 60), 2.0, np.float32)
    planted = np.zeros((40, 60), np.float32)
    planted[5:10, 3:8] = 1.0
    sample = {'rgb': np.zeros((40, 60, 3), np.uint8), 'depth': np.where(planted > 0, 0, depth),
              'gt': depth, 'planted': planted,
              'intrinsics': Intrinsics(50.0, 50.0, 30.0, 20.0, 60, 40)}
    augment = train_transform(30, 20, scale=(1.5, 1.5), jitter=0.0)
    out = augment(sample, np.random.default_rng(1))
    assert out['planted'].shape == out['depth'].shape == (20, 30)
    assert set(np.unique(out['planted'])) <= {0.0, 1.0}  # a mask, not a depth divided by 1.5
    assert np.array_equal(out['planted'] > 0, (out['depth'] == 0) & (out['gt'] > 0))
    flipped = hflip(sample)
    assert np.array_equal(flipped['planted'], planted[:, ::-1])
    tensors = to_tensor(resize(crop(sample, 2, 4, 20, 10), 40, 20))
    assert tensors['planted'].shape == (1, 20, 40)
    assert torch.equal(tensors['planted'] > 0, (tensors['depth'] == 0))


def _colour_sample() -> dict:
    rng = np.random.default_rng(5)
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, 32:] = (200, 120, 40)  # one vertical colour edge at column 32
    depth = rng.uniform(0.5, 4.0, (48, 64)).astype(np.float32)
    return {'rgb': rgb, 'depth': depth, 'gt': depth.copy(),
            'intrinsics': Intrinsics(50.0, 50.0, 32.0, 24.0, 64, 48)}


def test_painted_decals_change_colour_only() -> None:
    sample = _colour_sample()
    changed = []
    for seed in range(10):
        out = PaintedDecals(p=1.0)(sample, np.random.default_rng(seed))
        # Depth, ground truth and intrinsics are the same objects: geometry is untouched.
        assert out['depth'] is sample['depth'] and out['gt'] is sample['gt']
        assert out['intrinsics'] is sample['intrinsics']
        assert out['rgb'].shape == sample['rgb'].shape and out['rgb'].dtype == np.uint8
        changed.append(np.mean(np.any(out['rgb'] != sample['rgb'], axis=-1)))
    assert min(changed) > 0 and max(changed) > 0.02  # shapes were painted, some large
    again = PaintedDecals(p=1.0)(sample, np.random.default_rng(3))['rgb']
    assert np.array_equal(again, PaintedDecals(p=1.0)(sample, np.random.default_rng(3))['rgb'])
    assert PaintedDecals(p=0.0)(sample, np.random.default_rng(0)) is sample
    with pytest.raises(ValueError, match='-0.1'):
        PaintedDecals(p=-0.1)


def test_dead_leaves_texture_adds_colour_edges_of_many_sizes_and_keeps_shading() -> None:
    sample = _colour_sample()
    sample['rgb'][:] = 128
    sample['rgb'][:24] = 64  # the top half in shadow
    edges = []
    for seed in range(6):
        out = DeadLeavesTexture(p=1.0, max_patches=1)(sample, np.random.default_rng(seed))
        assert out['depth'] is sample['depth'] and out['gt'] is sample['gt']
        assert out['intrinsics'] is sample['intrinsics']
        assert out['rgb'].shape == sample['rgb'].shape and out['rgb'].dtype == np.uint8
        grey = out['rgb'].astype(np.float32).mean(axis=-1)
        edges.append(np.mean(np.abs(np.diff(grey, axis=1)) > 4))
        # A patch over both halves is darker in the shadow: the texture keeps the shading.
        patch = np.any(out['rgb'] != sample['rgb'], axis=-1)
        top, bottom = patch[:24].copy(), patch[24:].copy()
        if top.sum() > 50 and bottom.sum() > 50:
            assert grey[:24][top].mean() < grey[24:][bottom].mean()
    assert min(edges) > 0.02  # the flat image had no edge but the shadow line
    # Disc radii follow a power law: a large canvas has both small and large regions of one
    # colour (many distinct colours, some covering a large share).
    tex = DeadLeavesTexture.texture(200, 200, np.random.default_rng(0))
    assert tex.shape == (200, 200, 3) and tex.min() >= 0.0 and tex.max() <= 1.0
    _, counts = np.unique(tex.reshape(-1, 3), axis=0, return_counts=True)
    assert len(counts) > 300 and counts.max() > 400
    again = DeadLeavesTexture(p=1.0)(sample, np.random.default_rng(3))['rgb']
    assert np.array_equal(again, DeadLeavesTexture(p=1.0)(sample, np.random.default_rng(3))['rgb'])
    assert DeadLeavesTexture(p=0.0)(sample, np.random.default_rng(0)) is sample
    with pytest.raises(ValueError, match='max_patches'):
        DeadLeavesTexture(max_patches=0)


def test_camera_colour_shifts_colour_against_fixed_depth() -> None:
    sample = _colour_sample()
    # Only the shift can move the edge; find it in one row for many seeds.
    shifts = set()
    for seed in range(30):
        out = CameraColour(p=1.0, max_shift=2)(sample, np.random.default_rng(seed))
        assert out['depth'] is sample['depth'] and out['gt'] is sample['gt']
        assert out['intrinsics'] is sample['intrinsics']
        row = out['rgb'][24, :, 0].astype(np.float32)
        edge = int(np.argmax(np.diff(row))) + 1
        shifts.add(edge - 32)
    assert shifts <= {-3, -2, -1, 0, 1, 2, 3} and len(shifts) >= 3  # blur may move it 1 px
    none = CameraColour(p=0.0)(sample, np.random.default_rng(0))
    assert np.array_equal(none['rgb'], sample['rgb'])
    with pytest.raises(ValueError, match='-1'):
        CameraColour(max_shift=-1)


def test_depth_warp_bends_planes_smoothly_and_keeps_holes() -> None:
    sample = _colour_sample()
    sample['depth'][10:20, 5:40] = 0
    valid = sample['depth'] > 0
    stds = []
    for seed in range(20):
        out = SmoothDepthWarp(p=1.0, amplitude=0.05)(sample, np.random.default_rng(seed))
        factor = out['gt'] / sample['gt']
        # One field for raw and ground truth; holes stay holes; colour and intrinsics stay.
        assert np.allclose(out['depth'][valid] / sample['depth'][valid], factor[valid],
                           rtol=1e-5)
        assert np.array_equal(out['depth'] > 0, valid)
        assert out['rgb'] is sample['rgb'] and out['intrinsics'] is sample['intrinsics']
        # Bounded by the clipped amplitude, and smooth: neighbours differ far less than the
        # field spreads.
        assert np.all(np.abs(factor - 1.0) <= 2 * 0.05 + 1e-6)
        assert np.abs(np.diff(factor, axis=1)).max() < 0.01
        stds.append(float(factor.std()))
    # Most warps bend the surfaces measurably: a plane is no longer a plane.
    assert np.median(stds) > 0.003
    again = SmoothDepthWarp(p=1.0)(sample, np.random.default_rng(3))['gt']
    assert np.array_equal(again, SmoothDepthWarp(p=1.0)(sample, np.random.default_rng(3))['gt'])
    assert SmoothDepthWarp(p=0.0)(sample, np.random.default_rng(0)) is sample
    with pytest.raises(ValueError, match='0.7'):
        SmoothDepthWarp(amplitude=0.7)
    with pytest.raises(ValueError, match='1.0'):
        SmoothDepthWarp(cell_px=(1.0, 8.0))


def test_depth_scale_scales_the_room_about_the_camera() -> None:
    sample = _colour_sample()
    sample['depth'][10:20, 5:40] = 0  # a hole in the raw depth
    factors = []
    for seed in range(40):
        out = RandomDepthScale(1.0, 2.0, p=1.0)(sample, np.random.default_rng(seed))
        valid = sample['depth'] > 0
        s = out['gt'][valid] / sample['gt'][valid]
        # One factor for raw and ground truth depth; holes stay holes; colour and intrinsics
        # stay: the scaled room projects to the same image.
        raw_ratio = out['depth'][valid] / sample['depth'][valid]
        assert np.allclose(s, s[0]) and np.allclose(raw_ratio, s[0])
        assert np.array_equal(out['depth'] > 0, valid)
        assert out['rgb'] is sample['rgb'] and out['intrinsics'] is sample['intrinsics']
        factors.append(float(s[0]))
    assert 1.0 <= min(factors) and max(factors) <= 2.0 and max(factors) - min(factors) > 0.5
    assert RandomDepthScale(1.0, 2.0, p=0.0)(sample, np.random.default_rng(0)) is sample
    with pytest.raises(ValueError, match=r'\[2.0, 1.0\]'):
        RandomDepthScale(2.0, 1.0)
    with pytest.raises(ValueError, match='1.5'):
        RandomDepthScale(p=1.5)
