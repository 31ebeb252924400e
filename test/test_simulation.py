"""Simulator behaviour: exact render, sensor failure modes, determinism, smooth motion."""

import os
from pathlib import Path

import numpy as np
import pytest

from s2ml_ros.geometry import Intrinsics
from s2ml_ros.simulation import (
    Label, look_at, Material, Primitive, render_scene, Scene, SENSOR_PRESETS, SensorError,
    SensorModel, SimulatedRgbdCamera, Surface)
from s2ml_ros.simulation import second_view_visibility

K = Intrinsics(100.0, 100.0, 49.5, 39.5, 100, 80)


def _step_depth(near: float = 1.0, far: float = 3.0) -> np.ndarray:
    """Background plane at ``far`` with a foreground block at ``near`` in columns 40-59."""
    depth = np.full((80, 100), far, dtype=np.float32)
    depth[20:60, 40:60] = near
    return depth


def _quiet(name: str = 'structured_light', **kw: float) -> SensorModel:
    """Preset with random dropouts and jitter off, to isolate one effect."""
    base = {'lateral_jitter_px': 0.0, 'edge_dropout': 0.0, 'flying_pixels': 0.0,
            'speckle_px': 0, 'disparity_sigma_px': 0.0, 'disparity_step_px': 0.0,
            'depth_sigma_m': 0.0, 'depth_sigma_rel': 0.0, 'multipath_gain': 0.0}
    base.update(kw)
    return SensorModel.from_preset(name, **base)


def test_shadow_falls_on_projector_side_of_occluding_edge() -> None:
    depth = _step_depth()
    vis = second_view_visibility(depth, K.fx, 0.075)
    # Disparity gap 100 * 0.075 * (1/1 - 1/3) = 5 px left of the block.
    rows = slice(25, 55)
    assert not vis[rows, 36:40].any()
    assert vis[rows, 30:34].all()
    assert vis[rows, 40:60].all()      # the occluder itself is seen
    assert vis[rows, 60:95].all()      # nothing on the far side
    mirrored = second_view_visibility(depth, K.fx, -0.075)
    assert not mirrored[rows, 60:64].any() and mirrored[rows, 36:40].all()


def test_sensor_shadow_band_width_follows_baseline_geometry() -> None:
    raw = _quiet().apply(_step_depth(), None, K, np.random.default_rng(0))
    row = raw[40]
    assert np.all(row[36:40] == 0)
    assert np.all(row[42:58] > 0)
    # The invalid band along the left border: columns whose projector ray leaves the image.
    assert np.all(raw[5, :2] == 0) and np.all(raw[5, 5:30] > 0)


def test_dark_material_makes_holes_but_matte_does_not() -> None:
    depth = np.full((80, 100), 2.5, dtype=np.float32)
    rng = np.random.default_rng(1)
    model = _quiet()
    dark = model.apply(depth, None, K, rng, materials=np.full((80, 100), Material.DARK, np.uint8))
    matte = model.apply(depth, None, K, rng,
                        materials=np.full((80, 100), Material.MATTE, np.uint8))
    assert np.mean(dark == 0) > 0.9
    assert np.mean(matte[:, 10:] == 0) < 0.02


def test_holes_from_rgb_when_no_material_map() -> None:
    depth = np.full((80, 100), 2.0, dtype=np.float32)
    rgb = np.full((80, 100, 3), 128, np.uint8)
    rgb[10:40, 50:90] = 2            # near-black patch
    rgb[50:75, 50:90] = 250          # saturated highlight
    raw = _quiet(rgb_dropout=1.0).apply(depth, rgb, K, np.random.default_rng(2))
    assert np.mean(raw[12:38, 52:88] == 0) > 0.95
    assert np.mean(raw[52:73, 52:88] == 0) > 0.95
    assert np.mean(raw[10:75, 10:45] == 0) < 0.02


def test_noise_grows_with_depth_and_disparity_is_quantized() -> None:
    model = _quiet(disparity_sigma_px=0.07, disparity_step_px=1 / 8)
    errs = []
    for z in (1.0, 4.0):
        depth = np.full((80, 100), z, dtype=np.float32)
        raw = model.apply(depth, None, K, np.random.default_rng(3))
        ok = raw > 0
        errs.append(float(np.sqrt(np.mean((raw[ok] - z) ** 2))))
        fb = K.fx * (640 / 100) * 0.075
        steps = fb / raw[ok] * 8
        assert np.allclose(steps, np.round(steps), atol=1e-2)
    assert errs[1] > 8 * errs[0] > 0


def test_range_limits() -> None:
    depth = np.full((80, 100), 2.0, dtype=np.float32)
    depth[:, 60:] = 12.0
    depth[:, 20:30] = 0.2
    raw = _quiet().apply(depth, None, K, np.random.default_rng(4))
    assert np.all(raw[:, 60:] == 0) and np.all(raw[:, 20:30] == 0)
    assert np.mean(raw[:, 45:55] > 0) > 0.95


def test_varied_sensor_stays_in_its_documented_ranges_and_keeps_its_geometry() -> None:
    preset = SENSOR_PRESETS['tof']
    assert preset.varied(np.random.default_rng(0), 0.0) is preset
    with pytest.raises(SensorError, match='-0.5'):
        preset.varied(np.random.default_rng(0), -0.5)
    draws = [preset.varied(np.random.default_rng(seed)) for seed in range(200)]
    assert draws[7] == preset.varied(np.random.default_rng(7))  # deterministic in the draw
    ranges = np.array([d.max_range_m for d in draws]) / preset.max_range_m
    thresholds = np.array([d.return_threshold for d in draws]) / preset.return_threshold
    assert 0.85 < ranges.min() < 0.95 and 1.4 < ranges.max() < 1.5
    assert 0.4 < thresholds.min() < 0.5 and 2.2 < thresholds.max() < 2.5
    for d in draws:
        assert (d.name, d.kind, d.baseline_m, d.registration_offset_m, d.native_width,
                d.min_range_m, d.disparity_step_px) == (
            preset.name, preset.kind, preset.baseline_m, preset.registration_offset_m,
            preset.native_width, preset.min_range_m, preset.disparity_step_px)
        assert d.range_falloff_m < d.max_range_m - d.min_range_m
        assert 0 <= d.flying_pixels <= 1 and 0 <= d.edge_dropout <= 1
        assert abs(d.grazing_deg - preset.grazing_deg) <= 5
    # A surface just past the preset's range is measured by some units and lost by others.
    depth = np.full((80, 100), preset.max_range_m + 0.3, dtype=np.float32)
    seen = [np.mean(d.apply(depth, None, K, np.random.default_rng(1)) > 0) for d in draws[:20]]
    assert min(seen) == 0 and max(seen) > 0.5


def test_flying_pixels_lie_between_foreground_and_background() -> None:
    model = _quiet('tof', flying_pixels=1.0)
    raw = model.apply(_step_depth(1.0, 3.0), None, K, np.random.default_rng(5))
    between = (raw > 1.05) & (raw < 2.9)
    assert between[25:55].sum() > 20
    assert not between[25:55, 5:35].any()


def test_grazing_surface_drops_out() -> None:
    # A floor 0.5 m below the camera: depth = 0.5 / y_over_z in the lower half.
    yo = (np.arange(80) - K.cy) / K.fy
    depth = np.where(yo[:, None] > 0.02, 0.5 / np.maximum(yo[:, None], 1e-3), 1.0)
    depth = np.broadcast_to(depth, (80, 100)).astype(np.float32)
    raw = _quiet(max_range_m=100.0, return_threshold=0.0).apply(
        depth, None, K, np.random.default_rng(6))
    # Rows just below the horizon view the plane at > 85 degrees.
    assert np.mean(raw[42:45, 10:] == 0) > 0.9
    assert np.mean(raw[75:, 10:] == 0) < 0.05


def test_unknown_preset_and_mismatched_shapes_are_named() -> None:
    with pytest.raises(SensorError, match='lidar'):
        SensorModel.from_preset('lidar')
    with pytest.raises(SensorError, match='does not match'):
        SENSOR_PRESETS['tof'].apply(np.ones((10, 10), np.float32), None, K,
                                    np.random.default_rng(0))


def test_render_is_exact_for_known_geometry() -> None:
    wall = Surface(Material.MATTE, (0.5, 0.5, 0.5))
    sphere = Primitive('sphere', (2.0, 1.0, 1.0), (0.3, 0.3, 0.3), material=Material.MATTE)
    scene = Scene((4.0, 2.0, 2.5), wall, wall, wall, (sphere,), ((2.0, 1.0, 2.4),),
                  (0.5, 1.0, 0.2))
    intr = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)
    pose = look_at(np.array([0.5, 1.0, 1.0]), np.array([1.0, 0.0, 0.0]))
    view = render_scene(scene, intr, pose)
    assert view.depth_m.shape == (48, 64) and np.all(view.depth_m > 0)
    # The optical axis passes just off the sphere centre (pixel centres are at half pixels).
    assert view.depth_m[23, 31] == pytest.approx(1.2, abs=2e-3)
    # The far wall at x = 4 m is 3.5 m ahead; corners of the image see it or the side walls.
    assert view.depth_m[2, 2] <= 3.5 + 1e-4
    far = view.instance == 1
    assert np.allclose(view.depth_m[far & (np.abs(view.normals[..., 2]) > 0.99)], 3.5,
                       atol=1e-3)
    assert view.rgb.dtype == np.uint8 and view.rgb.shape == (48, 64, 3)


@pytest.mark.parametrize('sensor', sorted(SENSOR_PRESETS))
def test_camera_frames_are_complete_and_deterministic(sensor: str) -> None:
    a = SimulatedRgbdCamera(80, 60, sensor, seed=7).frame_at(3)
    b = SimulatedRgbdCamera(80, 60, sensor, seed=7).frame_at(3)
    c = SimulatedRgbdCamera(80, 60, sensor, seed=8).frame_at(3)
    assert a.rgb.shape == (60, 80, 3) and a.rgb.dtype == np.uint8
    assert a.depth_raw_m.dtype == np.float32 and a.depth_gt_m.dtype == np.float32
    assert np.all(a.depth_gt_m > 0)
    np.testing.assert_array_equal(a.depth_raw_m, b.depth_raw_m)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert not np.array_equal(a.depth_gt_m, c.depth_gt_m)
    ok = a.depth_raw_m > 0
    assert 0.3 < ok.mean() < 1.0
    rel = np.abs(a.depth_raw_m[ok] - a.depth_gt_m[ok]) / a.depth_gt_m[ok]
    assert np.median(rel) < 0.02
    assert a.intrinsics.size == (80, 60)


def test_next_frame_moves_smoothly() -> None:
    cam = SimulatedRgbdCamera(64, 48, seed=3)
    frames = [cam.next_frame() for _ in range(3)]
    assert [f.index for f in frames] == [0, 1, 2]
    step = np.linalg.norm(frames[1].pose[:3, 3] - frames[0].pose[:3, 3])
    assert 0 < step < 0.05
    cos = (np.trace(frames[1].pose[:3, :3].T @ frames[0].pose[:3, :3]) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))) < 3.0
    # The camera stays inside the room.
    lx, ly, lz = cam._scene_for(0).room_size
    assert all(0 < f.pose[0, 3] < lx and 0 < f.pose[1, 3] < ly and 0 < f.pose[2, 3] < lz
               for f in frames)


def test_registration_to_colour_leaves_holes_on_the_other_side() -> None:
    model = _quiet(registration_offset_m=-0.05)
    raw = model.apply(_step_depth(), None, K, np.random.default_rng(7))
    # Depth camera 5 cm to the left of the colour camera: 100 * 0.05 * (2/3) = 3.3 px right
    # of the block are hidden from it, besides the projector shadow on the left.
    assert np.all(raw[25:55, 60:63] == 0)
    assert np.all(raw[25:55, 65:90] > 0)
    assert np.all(raw[25:55, 36:40] == 0)


def test_camera_accepts_a_real_camera_model_and_changes_rooms() -> None:
    k = Intrinsics(61.3, 61.3, 32.2, 24.8, 64, 48)
    cam = SimulatedRgbdCamera(sensor='active_stereo', seed=2, intrinsics=k, frames_per_scene=2)
    a, b, c = cam.frame_at(0), cam.frame_at(1), cam.frame_at(2)
    assert a.intrinsics == k and a.depth_raw_m.shape == (48, 64)
    # Frames 0 and 1 share a room; frame 2 is in another one.
    assert np.linalg.norm(a.pose[:3, 3] - b.pose[:3, 3]) < 0.05
    assert cam._scene_for(1).room_size == cam._scene_for(0).room_size
    assert cam._scene_for(2).room_size != cam._scene_for(0).room_size
    assert not np.array_equal(b.depth_gt_m, c.depth_gt_m)


def test_camouflage_recolours_objects_like_their_surroundings_and_keeps_geometry() -> None:
    scene = Scene.random(np.random.default_rng(4))
    same = scene.camouflaged(np.random.default_rng(0), 0.0)
    assert same == scene
    all_ = scene.camouflaged(np.random.default_rng(0), 1.0)
    surroundings = {scene.floor.color, scene.walls.color}
    surroundings |= {p.color for p in scene.primitives}
    eligible = (Material.MATTE, Material.TEXTURED)
    new_look = {}
    for old, new in zip(scene.primitives, all_.primitives):
        # Geometry, material and label are kept: the sensor loses the same pixels.
        assert (new.kind, new.center, new.size, new.yaw, new.material, new.label) == \
            (old.kind, old.center, old.size, old.yaw, old.material, old.label)
        if old.material not in eligible:
            assert new == old
            continue
        # Within a few percent of the look of the walls, the floor or another object.
        assert min(np.abs(np.subtract(new.color, c)).max() for c in surroundings) < 0.2
        # The parts of one piece of furniture change together.
        assert new_look.setdefault(old.color, new.color) == new.color
    assert sum(a != b for a, b in zip(scene.primitives, all_.primitives)) > 0
    with pytest.raises(ValueError, match='camouflage probability must be in \\[0, 1\\], got 1.5'):
        scene.camouflaged(np.random.default_rng(0), 1.5)


def test_clutter_crowds_the_room_and_keeps_what_was_drawn() -> None:
    for seed in range(6):
        scene = Scene.random(np.random.default_rng(seed))
        crowded = scene.cluttered(np.random.default_rng(100 + seed))
        assert crowded == scene.cluttered(np.random.default_rng(100 + seed))  # by seed
        n = len(scene.primitives)
        # The room, its furniture and lights stay; the clutter comes after them.
        assert crowded.primitives[:n] == scene.primitives
        assert (crowded.room_size, crowded.lights, crowded.camera_zone) == \
            (scene.room_size, scene.lights, scene.camera_zone)
        added = crowded.primitives[n:]
        assert len(added) >= 15
        lx, ly, lz = scene.room_size
        zx, zy, zr = scene.camera_zone
        for p in added:
            x, y, z = p.center
            # Inside the room, above the floor, under the ceiling.
            assert 0 < x < lx and 0 < y < ly
            assert z - p.size[2] > -1e-9 and z + p.size[2] < lz
            # The camera's zone stays free to stand in.
            if z - p.size[2] < 0.05:
                assert np.hypot(x - zx, y - zy) > zr
        # Open shelves: boards and side panels are furniture, the rest objects.
        assert {p.label for p in added} <= {Label.OBJECT, Label.FURNITURE}


def test_cluttered_camera_sees_more_objects_in_the_same_rooms() -> None:
    plain = [SimulatedRgbdCamera(64, 48, 'tof', seed=s) for s in range(8)]
    crowded = [SimulatedRgbdCamera(64, 48, 'tof', seed=s, clutter=1.0) for s in range(8)]
    zero = SimulatedRgbdCamera(64, 48, 'tof', seed=0, clutter=0.0).frame_at(3)
    np.testing.assert_array_equal(zero.depth_gt_m, plain[0].frame_at(3).depth_gt_m)
    share = {}
    for name, cams in (('plain', plain), ('crowded', crowded)):
        share[name] = np.mean([(c.frame_at(i).label == Label.OBJECT).mean()
                               for c in cams for i in (0, 200)])
    for a, b in zip(plain, crowded):
        assert a._scene_for(0).room_size == b._scene_for(0).room_size
    assert share['crowded'] > 1.5 * share['plain']
    with pytest.raises(ValueError, match='clutter must be in'):
        SimulatedRgbdCamera(64, 48, clutter=1.5)


def test_camouflaged_camera_changes_colour_only() -> None:
    plain = SimulatedRgbdCamera(80, 60, 'structured_light', seed=5).frame_at(2)
    zero = SimulatedRgbdCamera(80, 60, 'structured_light', seed=5, camouflage=0.0).frame_at(2)
    camo = SimulatedRgbdCamera(80, 60, 'structured_light', seed=5, camouflage=1.0).frame_at(2)
    np.testing.assert_array_equal(zero.rgb, plain.rgb)
    np.testing.assert_array_equal(camo.depth_gt_m, plain.depth_gt_m)
    np.testing.assert_array_equal(camo.material, plain.material)
    np.testing.assert_array_equal(camo.pose, plain.pose)
    assert not np.array_equal(camo.rgb, plain.rgb)
    with pytest.raises(ValueError, match='camouflage must be in'):
        SimulatedRgbdCamera(80, 60, camouflage=-0.1)


def _pitch_deg(pose: np.ndarray) -> float:
    # look_at's camera z axis (third column) is the viewing direction; world z is up.
    return float(np.degrees(np.arcsin(pose[2, 2])))


def test_level_views_hold_the_camera_level_in_the_same_rooms() -> None:
    down = [SimulatedRgbdCamera(64, 48, seed=s) for s in range(12)]
    level = [SimulatedRgbdCamera(64, 48, seed=s, level_views=1.0) for s in range(12)]
    down_pitch = [_pitch_deg(c.pose_at(i)) for c in down for i in (0, 50, 300)]
    level_pitch = [_pitch_deg(c.pose_at(i)) for c in level for i in (0, 50, 300)]
    assert np.median(down_pitch) < -10.0  # the default camera looks down at furniture
    assert -12.0 < min(level_pitch) and max(level_pitch) < 9.0
    assert max(level_pitch) > 0.0  # some level views look up, at the ceiling
    heights = [c.pose_at(0)[2, 3] for c in level]
    assert 0.25 < min(heights) and max(heights) < 1.95
    # Same rooms and trajectories: the camera moves over the same floor positions.
    for d, lv in zip(down, level):
        np.testing.assert_allclose(lv.pose_at(50)[:2, 3], d.pose_at(50)[:2, 3])
    with pytest.raises(ValueError, match=r'level_views must be in \[0, 1\], got 1.5'):
        SimulatedRgbdCamera(64, 48, level_views=1.5)


# Real evaluation frames (never training data) when S2ML_REAL_FRAMES points at them.
REAL = Path(os.environ.get('S2ML_REAL_FRAMES', '/nonexistent')) / 'tum_slambook'


@pytest.mark.skipif(not REAL.is_dir(), reason='S2ML_REAL_FRAMES not set')
def test_sensor_model_on_real_filled_depth_without_material_maps() -> None:
    import cv2
    from s2ml_ros.baselines import fill_nearest
    rgb = cv2.imread(str(REAL / 'tum_fr2desk_1_color.png'))[..., ::-1].copy()
    raw = cv2.imread(str(REAL / 'tum_fr2desk_1_depth_raw.png'), cv2.IMREAD_UNCHANGED) / 5000
    filled = fill_nearest(rgb, raw.astype(np.float32))
    k = Intrinsics(520.9, 521.0, 325.1, 249.7, 640, 480)
    model = SensorModel.from_preset('structured_light')
    sim = model.apply(filled, rgb, k, np.random.default_rng(0))
    holes = sim == 0
    assert 0.02 < holes.mean() < 0.6
    dark = np.all(rgb <= 18, axis=2) & (filled < 5.0)
    if dark.sum() > 500:
        assert holes[dark].mean() > holes.mean()
