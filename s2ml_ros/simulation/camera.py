"""
A simulated RGB-D camera moving smoothly through a procedural room.

``SimulatedRgbdCamera(seed=s).frame_at(i)`` depends only on (s, i, size, sensor), so frames can
be drawn in any order (datasets) or in sequence like a video (``next_frame``, the live demo).
Pure numpy; no ROS and no torch.
"""

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from s2ml_ros.geometry import Intrinsics
from s2ml_ros.simulation.scene import look_at, render_scene, Scene
from s2ml_ros.simulation.sensor import SensorModel


@dataclass
class RgbdFrame:
    """
    One simulated RGB-D frame, depth registered to colour.

    :param rgb: Colour image, uint8 [H, W, 3].
    :param depth_raw_m: Raw sensor depth, float32 [H, W], meters, 0 = hole.
    :param depth_gt_m: Exact depth, float32 [H, W], meters, > 0 on every surface.
    :param intrinsics: Camera model shared by colour and depth.
    :param material: Material class per pixel (see ``Material``), uint8 [H, W].
    :param label: Semantic class per pixel (see ``Label``), uint8 [H, W].
    :param instance: Primitive index per pixel, int16 [H, W].
    :param pose: world_from_camera transform, float64 [4, 4].
    :param index: Frame number in the sequence.
    :param stamp_s: Time of the frame, seconds from the start of the sequence.
    :param sensor: Name of the sensor model that made the raw depth.
    """

    rgb: np.ndarray
    depth_raw_m: np.ndarray
    depth_gt_m: np.ndarray
    intrinsics: Intrinsics
    material: np.ndarray
    label: np.ndarray
    instance: np.ndarray
    pose: np.ndarray
    index: int
    stamp_s: float
    sensor: str

    @property
    def hole_mask(self) -> np.ndarray:
        """:return: bool [H, W], True where raw depth is missing but the scene has a surface."""
        return (self.depth_raw_m <= 0) & (self.depth_gt_m > 0)


def check_share(name: str, value: float) -> float:
    """
    Check a share of rooms or objects given a variation.

    :param name: The setting's name, for the error.
    :param value: The share, 0 (none) to 1 (all).
    :return: ``value`` as a float.
    :raises ValueError: Naming the setting and the value when it is outside [0, 1].
    """
    if not 0.0 <= value <= 1.0:
        raise ValueError(f'{name} must be in [0, 1], got {value}')
    return float(value)


class SimulatedRgbdCamera:
    """
    An RGB-D camera flying through a random furnished room.

    :param width: Image width, pixels.
    :param height: Image height, pixels.
    :param sensor: A preset name ('structured_light', 'active_stereo', 'tof') or a SensorModel.
    :param seed: Chooses the room, the trajectory and the noise; same seed, same frames.
    :param fps: Frame rate of the trajectory, frames per second.
    :param hfov_deg: Horizontal field of view, degrees (Kinect v1 colour camera: about 63).
    :param frames_per_scene: Move to a new room every this many frames; None = one room.
    :param intrinsics: Use this camera model (e.g. a real camera's) instead of ``width``,
        ``height`` and ``hfov_deg``.
    :param camouflage: Share of matte and textured objects given the look of a surface they
        stand against (:meth:`Scene.camouflaged`); 0 = the rooms as drawn.
    :param level_views: Share of rooms in which the camera is held about level, as on a robot
        or in a hand (height 0.4-1.8 m give or take a 0.15 m sway, pitch -11 to +8 degrees, so
        the ceiling and the far walls are often in view); in the other rooms it looks down
        towards furniture height from 1.0-1.6 m (pitch mostly -5 to -30 degrees). 0 = always
        looking down.
    :param clutter: Share of rooms crowded with the clutter of a lived-in room
        (:meth:`Scene.cluttered`); 0 = the rooms as drawn.
    """

    def __init__(self, width: int = 640, height: int = 480,
                 sensor: Union[str, SensorModel] = 'structured_light', seed: int = 0,
                 fps: float = 30.0, hfov_deg: float = 63.0,
                 frames_per_scene: Optional[int] = None,
                 intrinsics: Optional[Intrinsics] = None, camouflage: float = 0.0,
                 level_views: float = 0.0, clutter: float = 0.0) -> None:
        self.sensor = sensor if isinstance(sensor, SensorModel) else SensorModel.from_preset(
            sensor)
        if intrinsics is None:
            fx = (width / 2) / np.tan(np.deg2rad(hfov_deg) / 2)
            intrinsics = Intrinsics(fx, fx, (width - 1) / 2, (height - 1) / 2, width, height)
        self.intrinsics = intrinsics
        self.seed = int(seed)
        self.fps = float(fps)
        self.frames_per_scene = frames_per_scene
        self.camouflage = check_share('camouflage', camouflage)
        self.level_views = check_share('level_views', level_views)
        self.clutter = check_share('clutter', clutter)
        self._index = 0
        self._scene_key: Optional[int] = None
        self._scene: Optional[Scene] = None
        self._traj: Optional[np.ndarray] = None
        # Height and pitch of a level-held camera in the current room, each in [0, 1); None
        # when the camera looks down there.
        self._level: Optional[np.ndarray] = None

    def _scene_for(self, index: int) -> Scene:
        key = 0 if not self.frames_per_scene else index // self.frames_per_scene
        if key != self._scene_key:
            rng = np.random.default_rng([self.seed, key, 1])
            self._scene = Scene.random(rng)
            self._traj = rng.uniform(0, 1, 16)
            if self.camouflage > 0:
                # Own stream, so the room, trajectory and noise match camouflage=0.
                self._scene = self._scene.camouflaged(
                    np.random.default_rng([self.seed, key, 3]), self.camouflage)
            # Own stream as well: the same rooms and trajectories whatever level_views is.
            level_rng = np.random.default_rng([self.seed, key, 4])
            self._level = (level_rng.uniform(0, 1, 2)
                           if level_rng.random() < self.level_views else None)
            if self.clutter > 0:
                # Own stream: the other rooms, and the drawn furniture of this one, match
                # clutter=0 (the camera's first target may be a piece of the clutter).
                clutter_rng = np.random.default_rng([self.seed, key, 5])
                if clutter_rng.random() < self.clutter:
                    self._scene = self._scene.cluttered(clutter_rng)
            self._scene_key = key
        return self._scene

    def pose_at(self, index: int) -> np.ndarray:
        """
        Camera pose of frame ``index`` on the smooth trajectory.

        :param index: Frame number.
        :return: world_from_camera, float64 [4, 4].
        """
        scene = self._scene_for(index)
        p = self._traj
        t = index / self.fps
        zx, zy, zr = scene.camera_zone
        amp = 0.6 * zr
        level = self._level
        height = 1.0 + 0.6 * p[4] if level is None else 0.4 + 1.4 * level[0]
        pos = np.array([
            zx + amp * np.sin(0.21 * t * (0.7 + 0.6 * p[0]) + 6.28 * p[1]),
            zy + amp * np.sin(0.17 * t * (0.7 + 0.6 * p[2]) + 6.28 * p[3]),
            height + 0.15 * np.sin(0.3 * t + 6.28 * p[5]),
        ])
        # Start facing a piece of furniture, then sweep slowly around the room with a
        # side-to-side sway, looking down towards furniture height (about 0.6 m) unless the
        # camera is held level in this room.
        if scene.primitives:
            target = scene.primitives[int(p[6] * len(scene.primitives))].center
            yaw0 = np.arctan2(target[1] - zy, target[0] - zx)
        else:
            yaw0 = 6.28 * p[6]
        yaw = yaw0 + 0.1 * t * (1 if p[7] > 0.5 else -1) + 0.45 * np.sin(
            0.3 * t + 6.28 * p[8])
        if level is None:
            look_down = np.arctan2(pos[2] - 0.6, 2.0)
            pitch = -look_down * (0.6 + 0.6 * p[9]) + 0.12 * np.sin(0.35 * t + 6.28 * p[10])
        else:
            pitch = -0.15 + 0.25 * level[1] + 0.04 * np.sin(0.35 * t + 6.28 * p[10])
        roll = 0.04 * np.sin(0.5 * t + 6.28 * p[11])
        forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch),
                            np.sin(pitch)])
        return look_at(pos, forward, roll)

    def frame_at(self, index: int) -> RgbdFrame:
        """
        Render frame ``index`` (deterministic in seed and index).

        :param index: Frame number, >= 0.
        :return: The frame.
        """
        scene = self._scene_for(index)
        pose = self.pose_at(index)
        rng = np.random.default_rng([self.seed, index, 2])
        view = render_scene(scene, self.intrinsics, pose, rng=rng)
        raw = self.sensor.apply(view.depth_m, view.rgb, self.intrinsics, rng,
                                materials=view.material, depth_behind_m=view.depth_behind_m)
        return RgbdFrame(view.rgb, raw, view.depth_m, self.intrinsics, view.material,
                         view.label, view.instance, pose, index, index / self.fps,
                         self.sensor.name)

    def next_frame(self) -> RgbdFrame:
        """:return: The next frame of the video-like sequence."""
        frame = self.frame_at(self._index)
        self._index += 1
        return frame

    def reset(self, index: int = 0) -> None:
        """Continue the sequence from frame ``index``."""
        self._index = int(index)
