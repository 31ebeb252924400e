"""
Synthetic rosbag2 bags in the format realsense-ros and ``ros2 bag record`` produce.

Topics and conventions of realsense-ros with ``align_depth.enable:=true``: color rgb8 on
``/camera/camera/color/image_raw``, aligned depth 16UC1 millimetres on
``/camera/camera/aligned_depth_to_color/image_raw``, both CameraInfos, frame id
``camera_color_optical_frame``, identical header stamps per frameset (``enable_sync``). The bag
(receive) time trails the header stamp by a few milliseconds, and the offered QoS is recorded as
rosbag2 does (version 9 metadata).
"""

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                QosTime)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

NS = '/camera/camera'
COLOR = NS + '/color/image_raw'
COLOR_INFO = NS + '/color/camera_info'
DEPTH = NS + '/aligned_depth_to_color/image_raw'
DEPTH_INFO = NS + '/aligned_depth_to_color/camera_info'
GT = NS + '/depth_gt/image'
FRAME_ID = 'camera_color_optical_frame'
TS = get_typestore(Stores.ROS2_KILTED)
_ZERO = QosTime(0, 0)
IMAGE_QOS = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.VOLATILE,
                _ZERO, _ZERO, QosLiveliness.AUTOMATIC, _ZERO, False)


def synthetic_frames(n: int, width: int = 40, height: int = 30, seed: int = 0):
    """
    Make simple RGB-D frames: a tilted plane with a box, and raw-depth holes that move.

    :return: (rgb list uint8 [H, W, 3], raw depth list float32 m (0 = hole), gt list float32 m,
        (fx, fy, cx, cy)).
    """
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    rgbs, raws, gts = [], [], []
    for i in range(n):
        gt = 1.5 + 0.02 * u + 0.01 * v + 0.05 * i
        box = (u > 10 + i) & (u < 22 + i) & (v > 8) & (v < 20)
        gt = np.where(box, gt - 0.4, gt).astype(np.float32)
        rgb = np.stack([(u * 6) % 256, (v * 8) % 256, np.where(box, 200, 40)], -1)
        rgb = (rgb + rng.integers(0, 10, rgb.shape)).astype(np.uint8)
        raw = gt.copy()
        raw[(u - 5 - 2 * i) ** 2 + (v - 20) ** 2 < 16] = 0  # a round hole that moves
        raw[:, :3] = 0  # invalid band on the left, as active stereo has
        raw[box & (u < 13 + i)] = 0  # occlusion edge
        rgbs.append(rgb)
        raws.append(raw)
        gts.append(gt)
    fx = width * 0.9
    return rgbs, raws, gts, (fx, fx, (width - 1) / 2, (height - 1) / 2)


def boxes_frame(seed: int = 0):
    """Make a 120x160 wall at 3 m with coloured boxes at 1-1.5 m; shadows left of each box."""
    rng = np.random.default_rng(seed)
    h, w = 120, 160
    depth = np.full((h, w), 3.0, np.float32)
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = (150, 160, 170)
    for _ in range(9):
        y, x = int(rng.integers(5, h - 35)), int(rng.integers(10, w - 35))
        bh, bw = (int(v) for v in rng.integers(14, 30, 2))
        near = float(rng.uniform(1.0, 1.5))
        depth[y:y + bh, x:x + bw] = near
        rgb[y:y + bh, x:x + bw] = rng.integers(0, 256, 3)
    raw = depth.copy()
    # Projector shadows: a few pixels of the far wall just left of each near edge.
    left_edge = (depth[:, 1:] < depth[:, :-1] - 0.5)
    for y, x in zip(*np.nonzero(left_edge)):
        raw[y, max(0, x - 3):x + 1] = 0
    return rgb, raw


def _header(stamp_ns: int):
    t = TS.types['builtin_interfaces/msg/Time'](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return TS.types['std_msgs/msg/Header'](stamp=t, frame_id=FRAME_ID)


def image_msg(array: np.ndarray, encoding: str, stamp_ns: int):
    """:return: A rosbags sensor_msgs/msg/Image of ``array`` (no row padding)."""
    array = np.ascontiguousarray(array)
    step = array.shape[1] * array.itemsize * (array.shape[2] if array.ndim == 3 else 1)
    return TS.types['sensor_msgs/msg/Image'](
        header=_header(stamp_ns), height=array.shape[0], width=array.shape[1],
        encoding=encoding, is_bigendian=0, step=step,
        data=array.reshape(-1).view(np.uint8))


def info_msg(width: int, height: int, k4, stamp_ns: int):
    """:return: A rosbags sensor_msgs/msg/CameraInfo as realsense-ros fills it."""
    fx, fy, cx, cy = k4
    roi = TS.types['sensor_msgs/msg/RegionOfInterest'](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return TS.types['sensor_msgs/msg/CameraInfo'](
        header=_header(stamp_ns), height=height, width=width, distortion_model='plumb_bob',
        d=np.zeros(5), k=np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1.0]),
        r=np.eye(3).reshape(-1), p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1.0, 0]),
        binning_x=0, binning_y=0, roi=roi)


def write_bag(path: Path, n: int = 4, storage: str = 'mcap', width: int = 40, height: int = 30,
              with_gt: bool = False, depth_encoding: str = '16UC1',
              skip: Optional[Dict[str, Sequence[int]]] = None,
              overrides: Optional[Dict[str, Dict[int, object]]] = None,
              extra_topics: Sequence[str] = (), seed: int = 0,
              version: int = 9) -> Dict[str, List]:
    """
    Write a realsense-ros-like bag.

    :param path: Bag folder to create.
    :param n: Framesets.
    :param storage: 'mcap' or 'sqlite3'.
    :param with_gt: Also write ground-truth depth (32FC1) on :data:`GT`.
    :param depth_encoding: '16UC1' (mm) or '32FC1' (m).
    :param skip: topic -> frame indices not to write.
    :param overrides: topic -> {frame index: message to write instead}.
    :param extra_topics: Topics given a std_msgs/String each frame (unrelated traffic).
    :param version: rosbag2 metadata version (8 = Humble, 9 = Jazzy and later).
    :return: {'rgb', 'raw', 'gt', 'k', 'stamps'} of what was written.
    """
    rgbs, raws, gts, k4 = synthetic_frames(n, width, height, seed)
    skip = skip or {}
    overrides = overrides or {}
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    stamps = [1_700_000_000 * 10**9 + i * 33_333_333 for i in range(n)]
    with Writer(path, version=version, storage_plugin=plugin) as writer:
        conns = {}
        topics = [(COLOR, 'sensor_msgs/msg/Image'), (DEPTH, 'sensor_msgs/msg/Image'),
                  (COLOR_INFO, 'sensor_msgs/msg/CameraInfo'),
                  (DEPTH_INFO, 'sensor_msgs/msg/CameraInfo')]
        if with_gt:
            topics.append((GT, 'sensor_msgs/msg/Image'))
        topics += [(t, 'std_msgs/msg/String') for t in extra_topics]
        for topic, msgtype in topics:
            conns[topic] = writer.add_connection(topic, msgtype, typestore=TS,
                                                 offered_qos_profiles=[IMAGE_QOS])
        for i, stamp in enumerate(stamps):
            if depth_encoding == '16UC1':
                depth = image_msg(np.rint(raws[i] * 1000).astype(np.uint16), '16UC1', stamp)
            else:
                depth = image_msg(raws[i].astype(np.float32), '32FC1', stamp)
            msgs = {
                COLOR: image_msg(rgbs[i], 'rgb8', stamp),
                DEPTH: depth,
                COLOR_INFO: info_msg(width, height, k4, stamp),
                DEPTH_INFO: info_msg(width, height, k4, stamp),
            }
            if with_gt:
                msgs[GT] = image_msg(gts[i], '32FC1', stamp)
            for t in extra_topics:
                msgs[t] = TS.types['std_msgs/msg/String'](data=f'frame {i}')
            for j, (topic, msgtype) in enumerate(topics):
                if i in skip.get(topic, ()):
                    continue
                msg = overrides.get(topic, {}).get(i, msgs[topic])
                raw = msg if isinstance(msg, (bytes, bytearray)) else TS.serialize_cdr(
                    msg, msgtype)
                # Receive time: a few ms after the stamp, one topic after the other.
                writer.write(conns[topic], stamp + 4_000_000 + j * 100_000, raw)
    return {'rgb': rgbs, 'raw': raws, 'gt': gts, 'k': k4, 'stamps': stamps}


def recompress_mcap(src: Path, dst: Path) -> Path:
    """
    Copy a bag's MCAP file with zstd chunks via the ``mcap`` library (no rosbag2 metadata).

    :param src: Bag folder with one .mcap file.
    :param dst: Output .mcap file.
    :return: ``dst``.
    """
    from mcap.reader import make_reader
    from mcap.writer import CompressionType, Writer as McapWriter
    with open(next(Path(src).glob('*.mcap')), 'rb') as stream, open(dst, 'wb') as out:
        reader = make_reader(stream)
        summary = reader.get_summary()
        writer = McapWriter(out, compression=CompressionType.ZSTD)
        writer.start(profile=reader.get_header().profile, library='test')
        schemas = {s.id: writer.register_schema(s.name, s.encoding, s.data)
                   for s in summary.schemas.values()}
        channels = {c.id: writer.register_channel(c.topic, c.message_encoding,
                                                  schemas[c.schema_id], c.metadata)
                    for c in summary.channels.values()}
        for _, channel, message in reader.iter_messages():
            writer.add_message(channels[channel.id], message.log_time, message.data,
                               message.publish_time)
        writer.finish()
    return dst
