"""
Procedural indoor scenes with exact depth, rendered by ray casting analytic primitives.

A scene is a closed room (floor, four walls, ceiling) furnished with boxes (rotated about the
vertical axis), vertical cylinders and spheres. Each pixel ray is intersected with every
primitive in closed form, vectorised over the pixels of the primitive's screen-space bounding
rectangle, and a z-buffer keeps the nearest hit, so the depth is exact up to float32 rounding.
Shading is Lambertian with Phong highlights on specular materials; transparent primitives are
blended over what lies behind them and the depth behind them is kept for the sensor model.

World frame: x, y on the floor, z up, meters. Camera optical frame: x right, y down, z forward.
Pure numpy; no ROS and no torch.
"""

from dataclasses import dataclass, replace
import enum
from typing import List, Optional, Sequence, Tuple

import numpy as np

from s2ml_ros.geometry import Intrinsics, pixel_rays


class Material(enum.IntEnum):
    """Surface material classes, as stored in the per-pixel material map."""

    NONE = 0
    MATTE = 1
    TEXTURED = 2
    DARK = 3
    SPECULAR = 4
    TRANSPARENT = 5


class Label(enum.IntEnum):
    """Semantic classes, as stored in the per-pixel label map."""

    NONE = 0
    FLOOR = 1
    WALL = 2
    CEILING = 3
    FURNITURE = 4
    OBJECT = 5


# Near-infrared albedo per material, used by the sensor model for the return strength.
IR_ALBEDO = {Material.NONE: 0.0, Material.MATTE: 0.7, Material.TEXTURED: 0.6,
             Material.DARK: 0.04, Material.SPECULAR: 0.5, Material.TRANSPARENT: 0.05}


@dataclass(frozen=True)
class Primitive:
    """
    One analytic solid of a scene.

    :param kind: 'box' (half extents ``size``, rotated by ``yaw`` about z), 'cylinder' (vertical
        axis; size = (radius, radius, half height)) or 'sphere' (size = (r, r, r)).
    :param center: Centre in the world frame, meters.
    :param size: Half extents, meters (see ``kind``).
    :param yaw: Rotation about the world z axis, radians (boxes only).
    :param material: A :class:`Material`.
    :param color: Diffuse albedo, RGB in [0, 1].
    :param texture: 'plain', 'stripes', 'checker' or 'noise'.
    :param texture_scale: Spatial period of the texture, meters.
    :param label: A :class:`Label`.
    """

    kind: str
    center: Tuple[float, float, float]
    size: Tuple[float, float, float]
    yaw: float = 0.0
    material: int = Material.MATTE
    color: Tuple[float, float, float] = (0.6, 0.6, 0.6)
    texture: str = 'plain'
    texture_scale: float = 0.2
    label: int = Label.FURNITURE

    def bounding_sphere(self) -> Tuple[np.ndarray, float]:
        """:return: (centre [3], radius) of a sphere that contains the primitive, meters."""
        return np.asarray(self.center, dtype=np.float64), float(np.linalg.norm(self.size))


@dataclass(frozen=True)
class Surface:
    """
    Appearance of a group of room faces (floor, walls or ceiling).

    :param material: A :class:`Material`.
    :param color: Diffuse albedo, RGB in [0, 1].
    :param texture: 'plain', 'stripes', 'checker' or 'noise'.
    :param texture_scale: Spatial period of the texture, meters.
    """

    material: int
    color: Tuple[float, float, float]
    texture: str = 'plain'
    texture_scale: float = 0.3


@dataclass(frozen=True)
class Scene:
    """
    A room [0, Lx] x [0, Ly] x [0, Lz] with its furniture and lights.

    :param room_size: (Lx, Ly, Lz), meters.
    :param floor: Appearance of the floor.
    :param walls: Appearance of the four walls.
    :param ceiling: Appearance of the ceiling.
    :param primitives: The furniture and objects.
    :param lights: Point light positions, world frame, meters, shape [L, 3].
    :param camera_zone: (x, y, radius) of the floor disc kept free for the camera, meters.
    """

    room_size: Tuple[float, float, float]
    floor: Surface
    walls: Surface
    ceiling: Surface
    primitives: Tuple[Primitive, ...]
    lights: Tuple[Tuple[float, float, float], ...]
    camera_zone: Tuple[float, float, float]

    @classmethod
    def random(cls, rng: np.random.Generator) -> 'Scene':
        """
        Draw a furnished room.

        :param rng: Random generator; the same state gives the same scene.
        :return: The scene.
        """
        return _random_scene(rng)

    def camouflaged(self, rng: np.random.Generator, probability: float) -> 'Scene':
        """
        Give some objects the colour and texture of a surface they stand against.

        In the drawn rooms almost every depth edge is also a colour edge, so a network learns
        to trust colour for where depth changes. Real rooms have dark tables on dark carpets
        and white cabinets against white walls, where the edge is in depth only (what is left
        in colour is shading). Each matte or textured primitive is given, with
        ``probability``, the appearance of the walls (40%), the floor (30%) or another
        primitive (30%), with the albedo varied by a few percent; the parts of one piece of
        furniture change together. Dark, specular and transparent primitives keep
        theirs, as their appearance is what makes the sensor lose them.

        :param rng: Random generator of the choices.
        :param probability: Share of the eligible primitives to recolour, in [0, 1].
        :return: A new scene (geometry, materials and lights unchanged).
        """
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f'camouflage probability must be in [0, 1], got {probability}')
        floor = (self.floor.color, self.floor.texture, self.floor.texture_scale)
        walls = (self.walls.color, self.walls.texture, self.walls.texture_scale)
        others = [(p.color, p.texture, p.texture_scale) for p in self.primitives
                  if p.material in (Material.MATTE, Material.TEXTURED)]
        # The parts of one piece of furniture (a table's top and legs) share their look, so
        # they are recoloured together.
        new_look = {}
        prims = []
        for prim in self.primitives:
            look = prim.color
            if prim.material in (Material.MATTE, Material.TEXTURED) and look not in new_look:
                new_look[look] = None
                if rng.random() < probability:
                    pick = rng.random()
                    color, texture, scale = (walls if pick < 0.4 else floor if pick < 0.7
                                             else others[int(rng.integers(len(others)))])
                    color = np.clip(np.asarray(color) * rng.uniform(0.92, 1.08)
                                    + rng.normal(0.0, 0.015, 3), 0.02, 0.98)
                    new_look[look] = (tuple(float(c) for c in color), texture, float(scale))
            if new_look.get(look) is not None:
                color, texture, scale = new_look[look]
                # The material stays, so the sensor loses the same pixels as without.
                prim = replace(prim, color=color, texture=texture, texture_scale=scale)
            prims.append(prim)
        return replace(self, primitives=tuple(prims))

    def cluttered(self, rng: np.random.Generator) -> 'Scene':
        """
        Crowd the room with the clutter of a lived-in one.

        The drawn rooms show mostly walls, floor and a few pieces of furniture, so that most
        pixels around a hole continue one large plane. Real kitchens, offices, basements and
        dining rooms are crowded: objects stand close together on every table, cabinet and
        shelf, and boxes, bins and bags on the floor. This adds 3-9 small objects on each
        furniture top between 0.35 and 1.3 m high, 6-15 boxes (some stacked), bins and balls
        on free floor (half of them against a wall, none in the camera's zone), and 1-2 open
        shelves against the walls with 2-6 objects on each board below the top.

        :param rng: Random generator of the additions.
        :return: A new scene: the room, its furniture, materials and lights as they were, with
            the clutter appended to the primitives.
        """
        lx, ly, lz = self.room_size
        plan = _FloorPlan(lx, ly, self.camera_zone, [
            (p.center[0], p.center[1], float(np.hypot(p.size[0], p.size[1])))
            for p in self.primitives if p.center[2] - p.size[2] < 0.05])  # standing on the floor

        added: List[Primitive] = []
        for p in self.primitives:
            top = p.center[2] + p.size[2]
            if (p.kind == 'box' and p.label == Label.FURNITURE and 0.35 < top < 1.3
                    and min(p.size[0], p.size[1]) >= 0.12):
                added += _small_objects(rng, p.center[0], p.center[1], top, p.size[0],
                                        p.size[1], p.yaw, int(rng.integers(3, 10)))
        for _ in range(int(rng.integers(6, 16))):
            mat = _pick_material(rng)
            color, tex = _pick_color(rng, mat), _texture_for(rng, mat)
            kind = rng.choice(['box', 'stack', 'bin', 'ball'], p=[0.4, 0.2, 0.25, 0.15])
            if kind in ('box', 'stack'):
                hw, hd, hh = rng.uniform(0.1, 0.35), rng.uniform(0.1, 0.3), rng.uniform(0.08, 0.3)
                where = plan.place(rng, float(np.hypot(hw, hd)), bool(rng.random() < 0.5),
                                   float(hd))
                if where is None:
                    continue
                x, y, yaw = where
                added.append(Primitive('box', (x, y, hh), (hw, hd, hh), yaw, mat, color, tex,
                                       float(rng.uniform(0.05, 0.3)), Label.OBJECT))
                if kind == 'stack':
                    s2 = rng.uniform(0.6, 1.0, 3) * (hw, hd, hh)
                    mat2 = _pick_material(rng)
                    added.append(Primitive('box', (x, y, 2 * hh + s2[2]),
                                           tuple(float(v) for v in s2),
                                           float(yaw + rng.uniform(-0.3, 0.3)), mat2,
                                           _pick_color(rng, mat2), _texture_for(rng, mat2),
                                           float(rng.uniform(0.05, 0.3)), Label.OBJECT))
            elif kind == 'bin':
                r, hh = rng.uniform(0.05, 0.25), rng.uniform(0.08, 0.45)
                where = plan.place(rng, float(r), bool(rng.random() < 0.5))
                if where is None:
                    continue
                added.append(Primitive('cylinder', (where[0], where[1], hh), (r, r, hh), 0.0,
                                       mat, color, tex, 0.1, Label.OBJECT))
            else:
                r = rng.uniform(0.05, 0.2)
                where = plan.place(rng, float(r), False)
                if where is None:
                    continue
                added.append(Primitive('sphere', (where[0], where[1], r), (r, r, r), 0.0, mat,
                                       color, tex, 0.1, Label.OBJECT))
        for _ in range(int(rng.integers(1, 3))):
            hw, hd = rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.25)
            height = min(rng.uniform(1.0, 2.0), lz - 0.2)
            where = plan.place(rng, float(np.hypot(hw, hd)), True, float(hd))
            if where is None:
                continue
            x, y, yaw = where
            mat = _pick_material(rng)
            if mat == Material.TRANSPARENT:
                mat = Material.MATTE
            color, tex = _pick_color(rng, mat), _texture_for(rng, mat)
            c, s = np.cos(yaw), np.sin(yaw)
            board = 0.01
            for side in (-1, 1):  # the two side panels
                ox = side * (hw - board)
                added.append(Primitive('box', (x + c * ox, y + s * ox, height / 2),
                                       (board, hd, height / 2), yaw, mat, color, tex, 0.2,
                                       Label.FURNITURE))
            levels = int(rng.integers(3, 6))
            gap = height / levels
            for k in range(levels + 1):
                z = max(k * gap, board) if k < levels else height - board
                added.append(Primitive('box', (x, y, z), (hw, hd, board), yaw, mat, color, tex,
                                       0.2, Label.FURNITURE))
                if k < levels:
                    added += _small_objects(rng, x, y, z + board, hw - 2 * board, hd, yaw,
                                            int(rng.integers(2, 7)), max_height=gap - 0.04)
        return replace(self, primitives=self.primitives + tuple(added))


@dataclass
class RenderedView:
    """
    Exact render of a scene from one camera pose.

    :param depth_m: Depth along the optical axis, float32 [H, W], meters, > 0 on every surface.
    :param rgb: Colour image, uint8 [H, W, 3].
    :param material: :class:`Material` per pixel, uint8 [H, W].
    :param label: :class:`Label` per pixel, uint8 [H, W].
    :param instance: Index of the visible primitive per pixel, int16 [H, W]: 0 floor, 1 walls,
        2 ceiling, 3 + i for ``scene.primitives[i]``.
    :param depth_behind_m: For pixels covered by a transparent primitive, the depth of the first
        opaque surface behind it; 0 elsewhere. float32 [H, W], meters.
    :param normals: Unit surface normals in the camera optical frame, facing the camera,
        float32 [H, W, 3].
    """

    depth_m: np.ndarray
    rgb: np.ndarray
    material: np.ndarray
    label: np.ndarray
    instance: np.ndarray
    depth_behind_m: np.ndarray
    normals: np.ndarray


_PALETTE = np.array([
    [0.55, 0.35, 0.20], [0.75, 0.70, 0.60], [0.30, 0.40, 0.55], [0.80, 0.80, 0.78],
    [0.45, 0.50, 0.35], [0.65, 0.25, 0.20], [0.20, 0.30, 0.25], [0.85, 0.75, 0.45],
    [0.50, 0.50, 0.50], [0.60, 0.45, 0.55],
])


def _pick_color(rng: np.random.Generator, material: int) -> Tuple[float, float, float]:
    if material == Material.DARK:
        return tuple(float(c) for c in rng.uniform(0.01, 0.05, 3))
    base = _PALETTE[rng.integers(len(_PALETTE))] * rng.uniform(0.8, 1.15)
    return tuple(float(c) for c in np.clip(base + rng.normal(0, 0.04, 3), 0.02, 0.98))


def _pick_material(rng: np.random.Generator, small: bool = False) -> int:
    if small:
        probs = [0.25, 0.2, 0.2, 0.15, 0.2]
    else:
        probs = [0.4, 0.3, 0.12, 0.13, 0.05]
    return int(rng.choice([Material.MATTE, Material.TEXTURED, Material.DARK, Material.SPECULAR,
                           Material.TRANSPARENT], p=probs))


def _texture_for(rng: np.random.Generator, material: int) -> str:
    if material == Material.TEXTURED:
        return str(rng.choice(['stripes', 'checker', 'noise']))
    return 'plain'


class _FloorPlan:
    """
    Where a piece of furniture may stand on a room's floor.

    A spot is free when it lies inside the walls (2 cm clear), off the camera's zone and clear
    of the footprints (discs) of what already stands there.

    :param lx: Room length along x, meters.
    :param ly: Room length along y, meters.
    :param zone: (x, y, radius) of the floor kept free for the camera, meters.
    :param footprints: (x, y, radius) of what already stands on the floor, meters.
    """

    def __init__(self, lx: float, ly: float, zone: Tuple[float, float, float],
                 footprints: Sequence[Tuple[float, float, float]] = ()) -> None:
        self.lx, self.ly, self.zone = lx, ly, zone
        self.footprints = list(footprints)

    def free(self, x: float, y: float, r: float, half_x: Optional[float] = None,
             half_y: Optional[float] = None) -> bool:
        """
        Tell whether a footprint of radius ``r`` fits at (x, y).

        :param half_x: Extent along x kept clear of the walls, meters; None: ``r``.
        :param half_y: Extent along y kept clear of the walls, meters; None: ``r``.
        """
        hx = r if half_x is None else half_x
        hy = r if half_y is None else half_y
        if np.hypot(x - self.zone[0], y - self.zone[1]) < self.zone[2] + r + 0.1:
            return False
        if x - hx < 0.02 or y - hy < 0.02 or x + hx > self.lx - 0.02 or y + hy > self.ly - 0.02:
            return False
        return all(np.hypot(x - fx, y - fy) > r + fr for fx, fy, fr in self.footprints)

    def place(self, rng: np.random.Generator, r: float, against_wall: bool,
              depth: Optional[float] = None) -> Optional[Tuple[float, float, float]]:
        """
        Find a free spot and reserve it.

        :param r: Footprint radius, meters.
        :param against_wall: Stand against one of the four walls, aligned with it.
        :param depth: Half depth of a wall-aligned box, which then stands that far from the
            wall; None: the footprint's radius.
        :return: (x, y, yaw) or None when 40 tries found no room.
        """
        lx, ly = self.lx, self.ly
        for _ in range(40):
            half_x = half_y = None
            if against_wall:
                side = rng.integers(4)
                t = rng.uniform(r, (lx if side < 2 else ly) - r)
                off = (r if depth is None else depth) + 0.02
                x, y, yaw = [(t, off, 0.0), (t, ly - off, 0.0), (off, t, np.pi / 2),
                             (lx - off, t, np.pi / 2)][side]
                if side < 2:
                    half_y = depth
                else:
                    half_x = depth
            else:
                x, y, yaw = rng.uniform(r, lx - r), rng.uniform(r, ly - r), rng.uniform(0, np.pi)
            if self.free(x, y, r, half_x, half_y):
                self.footprints.append((x, y, r))
                return float(x), float(y), float(yaw)
        return None


def _small_objects(rng: np.random.Generator, x: float, y: float, top: float, hw: float,
                   hd: float, yaw: float, count: int, max_height: float = 0.4) -> List[Primitive]:
    """
    Draw small objects (boxes, cylinders, spheres) standing on a rectangular top.

    :param x: Centre of the top, world x, meters.
    :param y: Centre of the top, world y, meters.
    :param top: Height of the top, meters.
    :param hw: Half width of the top along its own x axis, meters.
    :param hd: Half depth of the top along its own y axis, meters.
    :param yaw: Rotation of the top about z, radians.
    :param count: Objects to draw.
    :param max_height: Tallest object, meters (under a shelf board above).
    :return: The objects.
    """
    out: List[Primitive] = []
    c, s = np.cos(yaw), np.sin(yaw)
    for _ in range(count):
        lx_, ly_ = rng.uniform(-hw * 0.8, hw * 0.8), rng.uniform(-hd * 0.8, hd * 0.8)
        px, py = x + c * lx_ - s * ly_, y + s * lx_ + c * ly_
        mat = _pick_material(rng, small=True)
        kind = rng.choice(['box', 'cylinder', 'sphere'])
        color = _pick_color(rng, mat)
        tex = _texture_for(rng, mat)
        if kind == 'box':
            h = rng.uniform(0.03, 0.2, 3)
            h[:2] = np.minimum(h[:2], [hw * 0.5, hd * 0.5])
            h[2] = min(h[2], max_height / 2)
            out.append(Primitive('box', (px, py, top + h[2]), tuple(h),
                                 float(rng.uniform(0, np.pi)), mat, color, tex, 0.05,
                                 Label.OBJECT))
        elif kind == 'cylinder':
            r = float(rng.uniform(0.03, min(0.12, hw * 0.5, hd * 0.5)))
            hh = min(float(rng.uniform(0.05, 0.2)), max_height / 2)
            out.append(Primitive('cylinder', (px, py, top + hh), (r, r, hh), 0.0, mat, color,
                                 tex, 0.05, Label.OBJECT))
        else:
            r = min(float(rng.uniform(0.04, min(0.15, hw * 0.6, hd * 0.6))), max_height / 2)
            out.append(Primitive('sphere', (px, py, top + r), (r, r, r), 0.0, mat, color, tex,
                                 0.05, Label.OBJECT))
    return out


def _random_scene(rng: np.random.Generator) -> Scene:
    lx, ly = rng.uniform(3.5, 7.0, 2)
    lz = rng.uniform(2.4, 3.1)
    zone = (lx / 2 + rng.uniform(-0.3, 0.3), ly / 2 + rng.uniform(-0.3, 0.3), 0.7)
    floor_tex = str(rng.choice(['stripes', 'checker', 'noise', 'plain']))
    floor = Surface(Material.TEXTURED if floor_tex != 'plain' else Material.MATTE,
                    _pick_color(rng, Material.MATTE), floor_tex, float(rng.uniform(0.15, 0.6)))
    wall_tex = str(rng.choice(['plain', 'plain', 'noise', 'stripes']))
    walls = Surface(Material.TEXTURED if wall_tex != 'plain' else Material.MATTE,
                    tuple(float(c) for c in rng.uniform(0.55, 0.92, 3)), wall_tex,
                    float(rng.uniform(0.3, 1.0)))
    ceiling = Surface(Material.MATTE, (0.9, 0.9, 0.88))
    prims: List[Primitive] = []
    plan = _FloorPlan(lx, ly, zone)

    def box(cx: float, cy: float, cz: float, hw: float, hd: float, hh: float, yaw: float,
            mat: int, color: Tuple[float, float, float], tex: str = 'plain',
            label: int = Label.FURNITURE) -> None:
        prims.append(Primitive('box', (cx, cy, cz), (hw, hd, hh), yaw, mat, color, tex,
                               float(rng.uniform(0.05, 0.3)), label))

    n_items = int(rng.integers(8, 16))
    for _ in range(n_items):
        kind = rng.choice(['table', 'cabinet', 'chair', 'bin', 'ball', 'panel', 'lamp'],
                          p=[0.25, 0.22, 0.15, 0.12, 0.08, 0.1, 0.08])
        mat = _pick_material(rng)
        if mat == Material.TRANSPARENT and kind not in ('bin', 'ball', 'panel'):
            mat = Material.MATTE
        color = _pick_color(rng, mat)
        tex = _texture_for(rng, mat)
        if kind == 'table':
            hw, hd = rng.uniform(0.35, 0.8), rng.uniform(0.3, 0.5)
            spot = plan.place(rng, float(np.hypot(hw, hd)), against_wall=bool(rng.random() < 0.3))
            if spot is None:
                continue
            x, y, yaw = spot
            height, top_t, leg = rng.uniform(0.65, 0.78), 0.025, 0.025
            box(x, y, height - top_t, hw, hd, top_t, yaw, mat, color, tex)
            c, s = np.cos(yaw), np.sin(yaw)
            for sx in (-1, 1):
                for sy in (-1, 1):
                    ox, oy = sx * (hw - 2 * leg), sy * (hd - 2 * leg)
                    box(x + c * ox - s * oy, y + s * ox + c * oy, (height - 2 * top_t) / 2,
                        leg, leg, (height - 2 * top_t) / 2, yaw, mat, color)
            prims.extend(_small_objects(rng, x, y, height, hw, hd, yaw,
                                        int(rng.integers(2, 7))))
            if rng.random() < 0.4:
                # A monitor: a thin dark screen on a stand.
                ox = rng.uniform(-hw * 0.4, hw * 0.4)
                c, s = np.cos(yaw), np.sin(yaw)
                box(x + c * ox, y + s * ox, height + 0.2, 0.25, 0.02, 0.17, yaw, Material.DARK,
                    _pick_color(rng, Material.DARK), 'plain', Label.OBJECT)
        elif kind == 'cabinet':
            hw, hd, hh = rng.uniform(0.3, 0.8), rng.uniform(0.18, 0.3), rng.uniform(0.4, 1.0)
            spot = plan.place(rng, float(np.hypot(hw, hd)), against_wall=True)
            if spot is None:
                continue
            x, y, yaw = spot
            box(x, y, hh, hw, hd, hh, yaw, mat, color, tex)
            if rng.random() < 0.5:
                prims.extend(_small_objects(rng, x, y, 2 * hh, hw, hd, yaw,
                                            int(rng.integers(1, 3))))
        elif kind == 'chair':
            hw = rng.uniform(0.2, 0.26)
            spot = plan.place(rng, hw * 1.5, against_wall=False)
            if spot is None:
                continue
            x, y, yaw = spot
            seat = rng.uniform(0.42, 0.5)
            box(x, y, seat / 2, hw, hw, seat / 2, yaw, mat, color, tex)
            c, s = np.cos(yaw), np.sin(yaw)
            box(x - s * (hw - 0.02), y + c * (hw - 0.02), seat + 0.22, hw, 0.02, 0.22, yaw,
                mat, color, tex)
        elif kind == 'bin':
            r, hh = rng.uniform(0.1, 0.25), rng.uniform(0.15, 0.45)
            spot = plan.place(rng, r, against_wall=bool(rng.random() < 0.5))
            if spot is None:
                continue
            x, y, _ = spot
            prims.append(Primitive('cylinder', (x, y, hh), (r, r, hh), 0.0, mat, color, tex,
                                   0.1, Label.FURNITURE))
        elif kind == 'ball':
            r = rng.uniform(0.1, 0.3)
            spot = plan.place(rng, r, against_wall=False)
            if spot is None:
                continue
            x, y, _ = spot
            prims.append(Primitive('sphere', (x, y, r), (r, r, r), 0.0, mat, color, tex, 0.1,
                                   Label.OBJECT))
        elif kind == 'panel':
            # A picture, whiteboard or window pane hanging on a wall.
            hw, hh = rng.uniform(0.3, 0.8), rng.uniform(0.25, 0.6)
            side = rng.integers(4)
            t = rng.uniform(hw + 0.05, (lx if side < 2 else ly) - hw - 0.05)
            z = rng.uniform(1.0, lz - hh - 0.2)
            d = 0.015
            x, y, yaw = [(t, d + 0.001, 0.0), (t, ly - d - 0.001, 0.0),
                         (d + 0.001, t, np.pi / 2), (lx - d - 0.001, t, np.pi / 2)][side]
            pmat = mat if mat != Material.MATTE else Material.SPECULAR
            box(x, y, z, hw, d, hh, yaw, pmat, _pick_color(rng, pmat), tex, Label.OBJECT)
        else:
            spot = plan.place(rng, 0.2, against_wall=False)
            if spot is None:
                continue
            x, y, _ = spot
            hh = rng.uniform(0.6, 0.85)
            prims.append(Primitive('cylinder', (x, y, hh), (0.015, 0.015, hh), 0.0,
                                   Material.MATTE, color, 'plain', 0.1, Label.FURNITURE))
            prims.append(Primitive('sphere', (x, y, 2 * hh + 0.12), (0.12, 0.12, 0.12), 0.0,
                                   Material.MATTE, (0.95, 0.92, 0.8), 'plain', 0.1,
                                   Label.OBJECT))
    lights = [(lx * rng.uniform(0.3, 0.7), ly * rng.uniform(0.3, 0.7), lz - 0.05)]
    if rng.random() < 0.6:
        lights.append((lx * rng.uniform(0.1, 0.9), ly * rng.uniform(0.1, 0.9), lz - 0.05))
    return Scene((float(lx), float(ly), float(lz)), floor, walls, ceiling, tuple(prims),
                 tuple(tuple(float(v) for v in p) for p in lights), zone)


def look_at(position: np.ndarray, forward: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """
    Camera pose from a position and a viewing direction (world z up).

    :param position: Camera centre, world frame, meters, shape [3].
    :param forward: Viewing direction (optical z axis), world frame, shape [3]; not vertical.
    :param roll: Rotation about the optical axis, radians.
    :return: world_from_camera transform, float64 [4, 4] (camera optical frame x right,
        y down, z forward).
    """
    f = np.asarray(forward, dtype=np.float64)
    f = f / np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    c, s = np.cos(roll), np.sin(roll)
    r, d = c * r + s * d, -s * r + c * d
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = r, d, f, position
    return pose


def _screen_rect(center_w: np.ndarray, radius: float, rot_cw: np.ndarray, origin: np.ndarray,
                 intr: Intrinsics) -> Optional[Tuple[int, int, int, int]]:
    """Conservative pixel rectangle (v0, v1, u0, u1) covering a sphere, or None if behind."""
    c = rot_cw @ (center_w - origin)
    if c[2] + radius <= 1e-3:
        return None
    if c[2] - radius < 0.05:
        return 0, intr.height, 0, intr.width
    zs = np.array([c[2] - radius, c[2] + radius])
    xs = np.array([c[0] - radius, c[0] + radius])
    ys = np.array([c[1] - radius, c[1] + radius])
    us = intr.fx * (xs[:, None] / zs[None, :]) + intr.cx
    vs = intr.fy * (ys[:, None] / zs[None, :]) + intr.cy
    u0, u1 = int(np.floor(us.min())), int(np.ceil(us.max())) + 1
    v0, v1 = int(np.floor(vs.min())), int(np.ceil(vs.max())) + 1
    u0, u1 = max(u0, 0), min(u1, intr.width)
    v0, v1 = max(v0, 0), min(v1, intr.height)
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


def _intersect(prim: Primitive, o: np.ndarray, dx: np.ndarray, dy: np.ndarray,
               dz: np.ndarray) -> np.ndarray:
    """Ray parameter t of the first hit (inf = miss); rays are o + t * d."""
    ox, oy, oz = (o - np.asarray(prim.center)).astype(np.float32)
    hx, hy, hz = (np.float32(v) for v in prim.size)
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        if prim.kind == 'box':
            c, s = np.float32(np.cos(prim.yaw)), np.float32(np.sin(prim.yaw))
            lox, loy = c * ox + s * oy, -s * ox + c * oy
            ldx, ldy = c * dx + s * dy, -s * dx + c * dy
            t1, t2 = (-hx - lox) / ldx, (hx - lox) / ldx
            tn, tf = np.fmin(t1, t2), np.fmax(t1, t2)
            t1, t2 = (-hy - loy) / ldy, (hy - loy) / ldy
            tn, tf = np.fmax(tn, np.fmin(t1, t2)), np.fmin(tf, np.fmax(t1, t2))
            t1, t2 = (-hz - oz) / dz, (hz - oz) / dz
            tn, tf = np.fmax(tn, np.fmin(t1, t2)), np.fmin(tf, np.fmax(t1, t2))
            return np.where((tn <= tf) & (tn > 1e-4), tn, np.float32(np.inf))
        if prim.kind == 'sphere':
            b = ox * dx + oy * dy + oz * dz
            a = dx * dx + dy * dy + dz * dz
            cc = ox * ox + oy * oy + oz * oz - hx * hx
            disc = b * b - a * cc
            t = (-b - np.sqrt(disc)) / a
            return np.where((disc >= 0) & (t > 1e-4), t, np.float32(np.inf))
        if prim.kind == 'cylinder':
            a = dx * dx + dy * dy
            b = ox * dx + oy * dy
            cc = ox * ox + oy * oy - hx * hx
            disc = b * b - a * cc
            t = (-b - np.sqrt(disc)) / a
            zt = oz + t * dz
            side = (disc >= 0) & (t > 1e-4) & (np.abs(zt) <= hz)
            out = np.where(side, t, np.float32(np.inf))
            if abs(oz) > hz:
                cap = np.float32(hz if oz > 0 else -hz)
                tc = (cap - oz) / dz
                xc, yc = ox + tc * dx, oy + tc * dy
                hit = (tc > 1e-4) & (xc * xc + yc * yc <= hx * hx)
                out = np.where(hit, np.fmin(out, tc), out)
            return out
    raise ValueError(f'unknown primitive kind {prim.kind!r}')


def _normals_at(prim: Primitive, px: np.ndarray, py: np.ndarray,
                pz: np.ndarray) -> np.ndarray:
    """World-frame unit normals [N, 3] of points [N] on the primitive's surface."""
    x, y, z = (px - prim.center[0], py - prim.center[1], pz - prim.center[2])
    n = np.zeros((px.size, 3), dtype=np.float32)
    hx, hy, hz = prim.size
    if prim.kind == 'box':
        c, s = np.cos(prim.yaw), np.sin(prim.yaw)
        lx, ly = c * x + s * y, -s * x + c * y
        rel = np.stack([np.abs(lx) / hx, np.abs(ly) / hy, np.abs(z) / hz], axis=1)
        axis = np.argmax(rel, axis=1)
        sign = np.sign(np.choose(axis, [lx, ly, z])).astype(np.float32)
        # Local axis -> world: x_l = (c, s, 0), y_l = (-s, c, 0), z_l = (0, 0, 1).
        n[:, 0] = np.where(axis == 0, c, np.where(axis == 1, -s, 0.0)) * sign
        n[:, 1] = np.where(axis == 0, s, np.where(axis == 1, c, 0.0)) * sign
        n[:, 2] = np.where(axis == 2, 1.0, 0.0) * sign
    elif prim.kind == 'sphere':
        n[:, 0], n[:, 1], n[:, 2] = x / hx, y / hx, z / hx
    else:
        rad = np.sqrt(x * x + y * y)
        cap = np.abs(z) / hz > rad / hx
        n[:, 0] = np.where(cap, 0.0, x / np.maximum(rad, 1e-9))
        n[:, 1] = np.where(cap, 0.0, y / np.maximum(rad, 1e-9))
        n[:, 2] = np.where(cap, np.sign(z), 0.0)
    return n


def _texture(kind: str, scale: float, px: np.ndarray, py: np.ndarray, pz: np.ndarray,
             key: int) -> np.ndarray:
    """Multiplicative albedo pattern in about [0.55, 1.1] at world points."""
    if kind == 'plain':
        return np.ones_like(px)
    k = 2 * np.pi / max(scale, 1e-3)
    if kind == 'checker':
        q = (np.floor(px / scale) + np.floor(py / scale) + np.floor(pz / scale)) % 2
        return (0.6 + 0.45 * q).astype(np.float32)
    # Deterministic per-primitive directions so the pattern sticks to the surface.
    g = np.random.default_rng(key)
    if kind == 'stripes':
        a = g.normal(size=3)
        a /= np.linalg.norm(a)
        phase = k * (a[0] * px + a[1] * py + a[2] * pz)
        return (0.8 + 0.15 * np.sin(phase) + 0.07 * np.sin(7.3 * phase)).astype(np.float32)
    out = np.full_like(px, 0.82)
    for octave in range(4):
        a = g.normal(size=3)
        a /= np.linalg.norm(a)
        f = k * (1.9 ** octave)
        phase = f * (a[0] * px + a[1] * py + a[2] * pz) + g.uniform(0, 6.3)
        out += (0.12 / (octave + 1)) * np.sin(phase)
    return out.astype(np.float32)


def render_scene(scene: Scene, intrinsics: Intrinsics, pose: np.ndarray,
                 rgb_noise: float = 2.0,
                 rng: Optional[np.random.Generator] = None) -> RenderedView:
    """
    Ray-cast a scene: exact depth, shaded colour, material, label and instance maps.

    :param scene: What to render.
    :param intrinsics: Pinhole model of the (depth-registered) colour camera.
    :param pose: world_from_camera transform, float [4, 4], camera optical frame.
    :param rgb_noise: Standard deviation of the colour sensor noise, in 8-bit levels.
    :param rng: Generator for the colour noise; None for noise-free colour.
    :return: The rendered view (see :class:`RenderedView`).
    """
    h, w = intrinsics.height, intrinsics.width
    pose = np.asarray(pose, dtype=np.float64)
    rot = pose[:3, :3]
    origin = pose[:3, 3]
    rot_cw = rot.T
    xo, yo = pixel_rays(intrinsics)
    # Ray directions in the world frame with unit optical-axis component, so t = depth.
    dx = (rot[0, 0] * xo[None, :] + rot[0, 1] * yo[:, None] + rot[0, 2]).astype(np.float32)
    dy = (rot[1, 0] * xo[None, :] + rot[1, 1] * yo[:, None] + rot[1, 2]).astype(np.float32)
    dz = (rot[2, 0] * xo[None, :] + rot[2, 1] * yo[:, None] + rot[2, 2]).astype(np.float32)
    lx, ly, lz = scene.room_size
    o32 = origin.astype(np.float32)

    # Room: the camera is inside, so the hit is the nearest exit of each slab.
    with np.errstate(divide='ignore', invalid='ignore'):
        tx = (np.where(dx > 0, np.float32(lx), np.float32(0)) - o32[0]) / dx
        ty = (np.where(dy > 0, np.float32(ly), np.float32(0)) - o32[1]) / dy
        tz = (np.where(dz > 0, np.float32(lz), np.float32(0)) - o32[2]) / dz
    tx = np.where(np.isfinite(tx) & (tx > 0), tx, np.float32(np.inf))
    ty = np.where(np.isfinite(ty) & (ty > 0), ty, np.float32(np.inf))
    tz = np.where(np.isfinite(tz) & (tz > 0), tz, np.float32(np.inf))
    zbuf = np.minimum(np.minimum(tx, ty), tz)
    inst = np.where(tz <= np.minimum(tx, ty), np.where(dz > 0, 2, 0), 1).astype(np.int16)

    trans_z = np.full((h, w), np.inf, dtype=np.float32)
    trans_i = np.full((h, w), -1, dtype=np.int16)
    prims = scene.primitives
    for i, prim in enumerate(prims):
        c, r = prim.bounding_sphere()
        rect = _screen_rect(c, r, rot_cw, origin, intrinsics)
        if rect is None:
            continue
        v0, v1, u0, u1 = rect
        win = (slice(v0, v1), slice(u0, u1))
        t = _intersect(prim, origin, dx[win], dy[win], dz[win])
        if prim.material == Material.TRANSPARENT:
            zb, ib = trans_z[win], trans_i[win]
        else:
            zb, ib = zbuf[win], inst[win]
        closer = t < zb
        zb[closer] = t[closer]
        ib[closer] = 3 + i
    # Transparent surfaces only count in front of the nearest opaque one.
    front = trans_z < zbuf
    depth_behind = np.where(front, zbuf, np.float32(0)).astype(np.float32)

    def shade(depth: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> Tuple[np.ndarray, ...]:
        """Colour, material, label, normals for the pixels in ``mask`` owned by ``ids``."""
        rows, cols = np.nonzero(mask)
        z = depth[rows, cols]
        ddx, ddy, ddz = dx[rows, cols], dy[rows, cols], dz[rows, cols]
        px, py, pz = o32[0] + z * ddx, o32[1] + z * ddy, o32[2] + z * ddz
        ids_m = ids[rows, cols]
        n = np.zeros((z.size, 3), dtype=np.float32)
        albedo = np.zeros((z.size, 3), dtype=np.float32)
        mat = np.zeros(z.size, dtype=np.uint8)
        lab = np.zeros(z.size, dtype=np.uint8)
        shininess = np.zeros(z.size, dtype=np.float32)
        for key in np.unique(ids_m):
            sel = ids_m == key
            sx, sy, sz = px[sel], py[sel], pz[sel]
            if key < 3:
                surf = (scene.floor, scene.walls, scene.ceiling)[key]
                if key == 1:
                    dist = np.stack([sx, lx - sx, sy, ly - sy], axis=1)
                    face = np.argmin(dist, axis=1)
                    nn = np.zeros((sx.size, 3), dtype=np.float32)
                    nn[:, 0] = np.select([face == 0, face == 1], [1.0, -1.0], 0.0)
                    nn[:, 1] = np.select([face == 2, face == 3], [1.0, -1.0], 0.0)
                else:
                    nn = np.zeros((sx.size, 3), dtype=np.float32)
                    nn[:, 2] = 1.0 if key == 0 else -1.0
                material, color, tex, scale = (surf.material, surf.color, surf.texture,
                                               surf.texture_scale)
                label = (Label.FLOOR, Label.WALL, Label.CEILING)[key]
            else:
                prim = prims[key - 3]
                nn = _normals_at(prim, sx, sy, sz)
                material, color, tex, scale = (prim.material, prim.color, prim.texture,
                                               prim.texture_scale)
                label = prim.label
            n[sel] = nn
            albedo[sel] = np.asarray(color, dtype=np.float32)[None, :] * _texture(
                tex, scale, sx, sy, sz, int(key) * 7919 + 17)[:, None]
            mat[sel] = material
            lab[sel] = label
            shininess[sel] = 40.0 if material == Material.SPECULAR else (
                60.0 if material == Material.TRANSPARENT else 0.0)
        ray = np.stack([ddx, ddy, ddz], axis=1)
        ray /= np.linalg.norm(ray, axis=1, keepdims=True)
        flip = np.sum(n * ray, axis=1) > 0
        n[flip] *= -1
        light_sum = np.full(z.size, 0.3, dtype=np.float32)
        spec = np.zeros(z.size, dtype=np.float32)
        pts = np.stack([px, py, pz], axis=1)
        for lp in scene.lights:
            to_l = np.asarray(lp, dtype=np.float32)[None, :] - pts
            dist2 = np.sum(to_l * to_l, axis=1)
            to_l /= np.sqrt(dist2)[:, None]
            ndl = np.clip(np.sum(n * to_l, axis=1), 0, None)
            light_sum += 0.9 * ndl * 6.0 / (4.0 + dist2)
            refl = to_l - 2 * np.sum(to_l * n, axis=1, keepdims=True) * n
            rv = np.clip(np.sum(refl * ray, axis=1), 0, None)
            has = shininess > 0
            spec[has] += 1.6 * rv[has] ** shininess[has]
        color = albedo * light_sum[:, None] + spec[:, None]
        return rows, cols, color, mat, lab, n

    everything = np.ones((h, w), dtype=bool)
    rows, cols, color, mat, lab, n = shade(zbuf, inst, everything)
    rgb_f = np.zeros((h, w, 3), dtype=np.float32)
    rgb_f[rows, cols] = color
    material = np.zeros((h, w), dtype=np.uint8)
    material[rows, cols] = mat
    label = np.zeros((h, w), dtype=np.uint8)
    label[rows, cols] = lab
    normals_w = np.zeros((h, w, 3), dtype=np.float32)
    normals_w[rows, cols] = n
    depth = zbuf.copy()
    instance = inst.copy()
    if front.any():
        rows, cols, color, mat, lab, n = shade(trans_z, trans_i, front)
        # Glass: a faint tint of its own colour plus what lies behind, and its highlights.
        rgb_f[rows, cols] = 0.25 * color + 0.75 * rgb_f[rows, cols]
        material[rows, cols] = mat
        label[rows, cols] = lab
        normals_w[rows, cols] = n
        depth[front] = trans_z[front]
        instance[front] = trans_i[front]
    # Display gamma 2 (a square root: much cheaper than 1 / 2.2 and visually the same here).
    rgb = np.float32(255.0) * np.sqrt(np.clip(rgb_f, 0, 1))
    if rng is not None and rgb_noise > 0:
        rgb += np.float32(rgb_noise) * rng.standard_normal(rgb.shape, dtype=np.float32)
    rgb = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    normals_c = (normals_w.reshape(-1, 3) @ rot.astype(np.float32)).reshape(h, w, 3)
    return RenderedView(depth.astype(np.float32), rgb, material, label, instance,
                        depth_behind, normals_c)
