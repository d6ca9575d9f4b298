"""Procedurally generated RGB-D-semantic scenes, ray-cast analytically with numpy.

A seed builds one scene (a room, a corridor or a street) from planes, boxes and vertical
cylinders; a pinhole camera (REP 103 optical frame: x right, y down, z forward) looks into
it. Every pixel's ray is intersected with every primitive in closed form, so depth is exact:
``depth[v, u]`` is the z coordinate (metres) of the first surface in the camera's optical
frame, and ``labels[v, u]`` the class of that surface (label set ``synthetic``:
floor, wall, ceiling, box, cylinder, sky).

Depth is learnable from appearance because every surface is textured in *world* coordinates
(floor checker tiles, wall panels, ceiling grid, striped boxes and cylinders: projected
texture frequency grows with distance), lit by a light at the camera with inverse-square
fall-off plus ambient light and fog (far surfaces are darker and hazier), and scene sizes,
camera heights and tilts vary per seed within realistic bounds.

World frame: the camera's optical frame at its start pose with zero tilt (x right, y down,
z forward along the room / corridor / street); the floor is the plane ``y = camera_height``.

Sky pixels (street scenes, no surface) and surfaces farther than ``max_depth`` have depth 0
(invalid), like a range sensor; indoor scenes are sized so that depth stays within about
0.5-10 m.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Iterator

import numpy as np

from synergy_ros.bags.bagio import BagWriter
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.geometry import PinholeIntrinsics
from synergy_ros.core.labels import SYNTHETIC_CLASSES, get_label_set
from synergy_ros.data.base import SampleDataset
from synergy_ros.ros.conversions import array_to_image, intrinsics_to_camera_info

FLOOR, WALL, CEILING, BOX, CYLINDER, SKY = range(6)
assert SYNTHETIC_CLASSES[SKY] == "sky"

SCENE_KINDS = ("indoor", "room", "corridor", "street")
DEFAULT_MAX_DEPTH = {"room": 10.0, "corridor": 10.0, "street": 80.0}
_SKY_RGB = np.array([150.0, 185.0, 225.0])
_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class SyntheticFrame:
    """One rendered view.

    Attributes:
        rgb: (H, W, 3) uint8 image.
        depth: (H, W) float32 depth along the optical z axis in metres, 0 = invalid (sky or
            farther than ``max_depth``).
        labels: (H, W) uint8 class ids of label set ``synthetic``.
        intrinsics: pinhole intrinsics of the H x W image.
        pose: (4, 4) float64 camera-to-world transform (world frame: see module docstring).
    """

    rgb: np.ndarray
    depth: np.ndarray
    labels: np.ndarray
    intrinsics: PinholeIntrinsics
    pose: np.ndarray


# ----------------------------------------------------------------------------- primitives
# Rays share one origin ``o`` (3,) (a pinhole camera) and are stored as structure-of-arrays
# directions ``d = (dx, dy, dz)``, each (N,) float32: numpy reduces fastest that way.
@dataclasses.dataclass
class _Hits:
    """Per-ray shading inputs for the rays a primitive is nearest for (M rays)."""

    albedo: np.ndarray  # (M, 3) 0-255
    normal: np.ndarray  # (M, 3) unit, world frame
    label: np.ndarray   # (M,) uint8


def _stripes(coord: np.ndarray, period: float, duty: float = 0.5) -> np.ndarray:
    """1 inside the first ``duty`` fraction of each ``period`` (metres) of ``coord``, else 0."""
    return (np.mod(coord, period) < duty * period).astype(np.float32)


def _checker(a: np.ndarray, b: np.ndarray, size: float) -> np.ndarray:
    return np.mod(np.floor(a / size) + np.floor(b / size), 2.0)


def _safe(d: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d) < 1e-12, np.float32(1e-12), d)


def _hit_or_inf(ok: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.where(ok, t, np.float32(np.inf))


@dataclasses.dataclass
class _Room:
    """Inside of an axis-aligned box: floor (y max), ceiling (y min), walls.

    ``open_top``: only the floor plane is used (a street's ground).
    """

    lo: np.ndarray
    hi: np.ndarray
    floor_rgb: np.ndarray
    wall_rgb: np.ndarray
    ceiling_rgb: np.ndarray
    tile: float
    panel: float
    open_top: bool = False

    def intersect(self, o: np.ndarray, d: tuple) -> np.ndarray:
        if self.open_top:
            return _hit_or_inf(d[1] > 0, (self.hi[1] - o[1]) / _safe(d[1]))
        t = None
        for axis in range(3):
            da = _safe(d[axis])
            t_axis = np.where(da > 0, (self.hi[axis] - o[axis]) / da,
                              (self.lo[axis] - o[axis]) / da)
            t = t_axis if t is None else np.minimum(t, t_axis)
        return _hit_or_inf(t > _EPS, t)

    def shade(self, p: np.ndarray, d: np.ndarray) -> _Hits:
        if self.open_top:
            axis = np.ones(len(p), np.int64)
        else:
            dist = np.minimum(np.abs(p - self.lo), np.abs(p - self.hi))
            axis = dist.argmin(axis=1)
        normal = np.zeros_like(p)
        rows = np.arange(len(p))
        normal[rows, axis] = -np.sign(d[rows, axis])
        floor = (axis == 1) & (p[:, 1] > 0.5 * (self.lo[1] + self.hi[1]))
        ceiling = (axis == 1) & ~floor
        wall = axis != 1
        label = np.where(floor, FLOOR, np.where(ceiling, CEILING, WALL)).astype(np.uint8)
        albedo = np.empty_like(p)
        if floor.any():
            x, z = p[floor, 0], p[floor, 2]
            grout = np.minimum(_stripes(x + 0.01, self.tile, 0.06)
                               + _stripes(z + 0.01, self.tile, 0.06), 1.0)
            pattern = (0.72 + 0.28 * _checker(x, z, self.tile)) * (1.0 - 0.35 * grout)
            albedo[floor] = self.floor_rgb * pattern[:, None]
        if wall.any():
            pw = p[wall]
            along = np.where(axis[wall] == 0, pw[:, 2], pw[:, 0])  # horizontal on the wall
            skirting = pw[:, 1] > self.hi[1] - 0.12
            panels = 0.75 + 0.25 * _stripes(along, self.panel, 0.9)
            pattern = panels * np.where(skirting, 0.45, 1.0)
            albedo[wall] = self.wall_rgb * pattern[:, None]
        if ceiling.any():
            pc = p[ceiling]
            grid = np.maximum(_stripes(pc[:, 0], 0.6, 0.05), _stripes(pc[:, 2], 0.6, 0.05))
            albedo[ceiling] = self.ceiling_rgb * (1.0 - 0.3 * grid)[:, None]
        return _Hits(albedo, normal, label)


@dataclasses.dataclass
class _Box:
    """A box standing on the floor, rotated by ``yaw`` about the vertical (y) axis."""

    centre: np.ndarray
    half: np.ndarray
    yaw: float
    rgb: np.ndarray
    label: int
    stripe: float
    windows: bool = False

    def _rot(self) -> np.ndarray:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])

    def intersect(self, o: np.ndarray, d: tuple) -> np.ndarray:
        rot = self._rot()
        lo = (o - self.centre) @ rot  # R^T (o - c)
        t_near = t_far = None
        for axis in range(3):
            col = rot[:, axis]
            ld = d[0] * np.float32(col[0]) if col[0] else 0.0
            if col[1]:
                ld = ld + d[1] * np.float32(col[1])
            if col[2]:
                ld = ld + d[2] * np.float32(col[2])
            inv = 1.0 / _safe(np.asarray(ld, dtype=np.float32) + np.zeros_like(d[0]))
            t1 = (-self.half[axis] - lo[axis]) * inv
            t2 = (self.half[axis] - lo[axis]) * inv
            near, far = np.minimum(t1, t2), np.maximum(t1, t2)
            t_near = near if t_near is None else np.maximum(t_near, near)
            t_far = far if t_far is None else np.minimum(t_far, far)
        return _hit_or_inf((t_near <= t_far) & (t_near > _EPS), t_near)

    def shade(self, p: np.ndarray, d: np.ndarray) -> _Hits:
        rot = self._rot()
        lp = (p - self.centre) @ rot
        axis = (np.abs(lp) / self.half).argmax(axis=1)
        rows = np.arange(len(p))
        normal_local = np.zeros_like(p)
        normal_local[rows, axis] = np.sign(lp[rows, axis])
        normal = normal_local @ rot.T
        across = np.where(axis == 0, lp[:, 2], lp[:, 0])
        if self.windows:
            pattern = 1.0 - 0.55 * (_stripes(across, 2.5, 0.5) * _stripes(lp[:, 1], 3.0, 0.45))
        else:
            pattern = 0.7 + 0.3 * _stripes(across + lp[:, 1], self.stripe)
            edge = np.min(self.half[None, :] - np.abs(lp) + (axis[:, None] == np.arange(3)),
                          axis=1)
            pattern = pattern * np.where(edge < 0.03, 0.5, 1.0)
        top = (axis == 1) & (lp[:, 1] < 0)
        pattern = np.where(top, pattern * 1.1, pattern)
        albedo = np.clip(self.rgb * pattern[:, None], 0, 255)
        return _Hits(albedo, normal, np.full(len(p), self.label, np.uint8))


@dataclasses.dataclass
class _Cylinder:
    """A vertical cylinder standing on the floor (``y_bottom``) up to ``y_top`` (< y_bottom)."""

    cx: float
    cz: float
    radius: float
    y_top: float
    y_bottom: float
    rgb: np.ndarray
    label: int = CYLINDER

    def intersect(self, o: np.ndarray, d: tuple) -> np.ndarray:
        dx, dy, dz = d
        ox, oz = float(o[0] - self.cx), float(o[2] - self.cz)
        a = np.maximum(dx * dx + dz * dz, np.float32(1e-12))
        half_b = dx * ox + dz * oz
        c = ox * ox + oz * oz - self.radius ** 2
        disc = half_b * half_b - a * c
        t_side = (-half_b - np.sqrt(np.maximum(disc, 0.0))) / a
        y = o[1] + t_side * dy
        side_ok = (disc >= 0) & (t_side > _EPS) & (y >= self.y_top) & (y <= self.y_bottom)
        t_cap = (self.y_top - o[1]) / _safe(dy)
        px, pz = ox + t_cap * dx, oz + t_cap * dz
        cap_ok = (t_cap > _EPS) & (px * px + pz * pz <= self.radius ** 2)
        return np.minimum(_hit_or_inf(side_ok, t_side), _hit_or_inf(cap_ok, t_cap))

    def shade(self, p: np.ndarray, d: np.ndarray) -> _Hits:
        rx, rz = p[:, 0] - self.cx, p[:, 2] - self.cz
        cap = np.abs(p[:, 1] - self.y_top) < 1e-3
        norm = np.maximum(np.hypot(rx, rz), 1e-9)
        normal = np.stack([rx / norm, np.zeros_like(rx), rz / norm], axis=1)
        normal[cap] = (0.0, -1.0, 0.0)
        arc = np.arctan2(rz, rx) * self.radius
        pattern = (0.7 + 0.3 * _stripes(arc, 0.12)) * (0.85 + 0.15 * _stripes(p[:, 1], 0.25))
        pattern = np.where(cap, 1.1, pattern)
        albedo = np.clip(self.rgb * pattern[:, None], 0, 255)
        return _Hits(albedo, normal, np.full(len(p), self.label, np.uint8))


# ----------------------------------------------------------------------------- scenes
@dataclasses.dataclass
class Scene:
    """A generated scene: primitives, lighting and the camera path.

    The camera moves along the world z axis from ``start`` by up to ``travel`` metres, with
    its height fixed (``start[1] = 0``; the floor is at ``y = camera_height``).
    """

    kind: str
    primitives: list
    camera_height: float
    start: np.ndarray
    travel: float
    tilt: float
    light_range: float
    ambient: float
    fog_distance: float
    fog_rgb: np.ndarray
    max_depth: float


def _colour(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    base = rng.uniform(lo, hi)
    return np.clip(base * (1.0 + rng.uniform(-0.35, 0.35, 3)), 0, 255)


def _clear_of_path(x: float, z: float, radius: float, cam_x: float, z0: float, z1: float
                   ) -> bool:
    """True when a footprint at (x, z) of ``radius`` m keeps 0.6 m off the camera path."""
    dz = max(z0 - z, 0.0, z - z1)
    return math.hypot(abs(x - cam_x), dz) > radius + 0.6


def _place_objects(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, floor_y: float,
                   cam_x: float, z0: float, z1: float, n_boxes: int, n_cyl: int,
                   scale: float = 1.0) -> list:
    objects: list = []
    for _ in range(n_boxes):
        for _attempt in range(20):
            half = np.array([rng.uniform(0.2, 0.75), rng.uniform(0.2, 0.9),
                             rng.uniform(0.2, 0.5)]) * scale
            x = rng.uniform(lo[0] + half[0], hi[0] - half[0])
            z = rng.uniform(lo[2] + half[2], hi[2] - half[2])
            if _clear_of_path(x, z, float(np.hypot(half[0], half[2])), cam_x, z0, z1):
                objects.append(_Box(np.array([x, floor_y - half[1], z]), half,
                                    float(rng.uniform(-0.6, 0.6)), _colour(rng, 60, 220), BOX,
                                    float(rng.uniform(0.08, 0.25))))
                break
    for _ in range(n_cyl):
        for _attempt in range(20):
            radius = rng.uniform(0.08, 0.35) * scale
            x = rng.uniform(lo[0] + radius, hi[0] - radius)
            z = rng.uniform(lo[2] + radius, hi[2] - radius)
            if _clear_of_path(x, z, radius, cam_x, z0, z1):
                full = rng.random() < 0.4
                height = (floor_y - lo[1]) if full else rng.uniform(0.4, 1.3) * scale
                objects.append(_Cylinder(x, z, radius, floor_y - height + (1e-3 if full else 0),
                                         floor_y, _colour(rng, 60, 220)))
                break
    return objects


def build_scene(seed: int, kind: str = "indoor", max_depth: float | None = None) -> Scene:
    """Build the scene for ``seed``; ``kind`` is one of :data:`SCENE_KINDS`.

    ``indoor`` picks ``room`` (2/3) or ``corridor`` (1/3) from the seed. ``max_depth`` (m)
    defaults to 10 indoors and 80 for streets.
    """
    if kind not in SCENE_KINDS:
        raise ValueError(f"scene kind must be one of {SCENE_KINDS}, got {kind!r}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5E7])
    if kind == "indoor":
        kind = "room" if rng.random() < 2.0 / 3.0 else "corridor"
    max_depth = float(max_depth if max_depth is not None else DEFAULT_MAX_DEPTH[kind])
    if kind == "street":
        return _street(rng, max_depth)
    cam_h = rng.uniform(1.0, 1.6)
    ceiling = rng.uniform(2.4, 3.2)
    if kind == "room":
        width, length = rng.uniform(3.0, 6.5), rng.uniform(4.0, 8.0)
    else:
        width, length = rng.uniform(1.6, 2.6), rng.uniform(7.0, 9.5)
    cam_x = rng.uniform(-0.25, 0.25) * width
    z_back = -rng.uniform(0.3, 0.8)
    lo = np.array([-width / 2, cam_h - ceiling, z_back])
    hi = np.array([width / 2, cam_h, z_back + length])
    travel = max(0.0, min(length * 0.4, hi[2] - 2.5))
    room = _Room(lo, hi, _colour(rng, 70, 170), _colour(rng, 130, 230),
                 _colour(rng, 200, 245), float(rng.uniform(0.3, 0.6)),
                 float(rng.uniform(0.5, 1.2)))
    n_boxes = int(rng.integers(2, 6 if kind == "room" else 3))
    n_cyl = int(rng.integers(1, 4 if kind == "room" else 3))
    objects = _place_objects(rng, lo, hi, cam_h, cam_x, 0.0, travel + 0.8, n_boxes, n_cyl)
    return Scene(kind, [room] + objects, cam_h, np.array([cam_x, 0.0, 0.0]), travel,
                 float(rng.uniform(-0.12, 0.25)), float(rng.uniform(2.5, 4.5)),
                 float(rng.uniform(0.18, 0.3)), float(rng.uniform(6.0, 12.0)),
                 _colour(rng, 25, 60), max_depth)


def _street(rng: np.random.Generator, max_depth: float) -> Scene:
    cam_h = rng.uniform(1.4, 1.8)
    width = rng.uniform(10.0, 16.0)
    length = rng.uniform(45.0, 70.0)
    ground = _Room(np.array([-200.0, -200.0, -200.0]), np.array([200.0, cam_h, 200.0]),
                   _colour(rng, 70, 110), _colour(rng, 70, 110), _colour(rng, 70, 110),
                   float(rng.uniform(1.5, 3.0)), 1.0, open_top=True)
    primitives: list = [ground]
    for side in (-1.0, 1.0):
        z = -5.0
        while z < length:
            depth_z = rng.uniform(8.0, 20.0)
            height = rng.uniform(6.0, 22.0)
            half = np.array([5.0, height / 2, depth_z / 2])
            centre = np.array([side * (width / 2 + 5.0), cam_h - height / 2, z + depth_z / 2])
            primitives.append(_Box(centre, half, 0.0, _colour(rng, 90, 210), WALL, 1.0, True))
            z += depth_z + rng.uniform(0.0, 3.0)
    far_h = rng.uniform(8.0, 25.0)
    primitives.append(_Box(np.array([0.0, cam_h - far_h / 2, length + 5.0]),
                           np.array([width, far_h / 2, 5.0]), 0.0, _colour(rng, 90, 210),
                           WALL, 1.0, True))
    lo = np.array([-width / 2 + 1.0, cam_h - 10.0, 3.0])
    hi = np.array([width / 2 - 1.0, cam_h, length - 2.0])
    primitives += _place_objects(rng, lo, hi, cam_h, 0.0, 0.0, 20.0,
                                 int(rng.integers(2, 7)), int(rng.integers(2, 6)), scale=2.5)
    return Scene("street", primitives, cam_h, np.array([rng.uniform(-1.5, 1.5), 0.0, 0.0]),
                 15.0, float(rng.uniform(0.0, 0.12)), 60.0, 0.55, float(rng.uniform(60, 120)),
                 _colour(rng, 170, 210), max_depth)


# ----------------------------------------------------------------------------- rendering
def camera_pose(position: np.ndarray, yaw: float, tilt: float) -> np.ndarray:
    """(4, 4) camera-to-world transform: yaw (rad) about world y, then tilt down (rad)."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    ct, st = math.cos(tilt), math.sin(tilt)
    yaw_m = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    tilt_m = np.array([[1.0, 0.0, 0.0], [0.0, ct, st], [0.0, -st, ct]])  # z axis tips down (+y)
    pose = np.eye(4)
    pose[:3, :3] = yaw_m @ tilt_m
    pose[:3, 3] = position
    return pose


def render_view(scene: Scene, pose: np.ndarray, intrinsics: PinholeIntrinsics,
                noise_seed: int | None = None, noise_std: float = 2.0) -> SyntheticFrame:
    """Ray-cast ``scene`` from camera ``pose`` (4x4 camera-to-world) into an image.

    ``noise_seed`` adds seeded Gaussian pixel noise of ``noise_std`` (0-255 units).
    """
    h, w = intrinsics.height, intrinsics.width
    u = ((np.arange(w) - intrinsics.cx) / intrinsics.fx).astype(np.float32)
    v = ((np.arange(h) - intrinsics.cy) / intrinsics.fy).astype(np.float32)
    rot, origin = pose[:3, :3].astype(np.float32), pose[:3, 3].astype(np.float64)
    # d_world = R d_cam with d_cam = (u, v, 1): the ray parameter t is the optical-frame depth
    d = tuple((rot[i, 0] * u[None, :] + rot[i, 1] * v[:, None] + rot[i, 2]).reshape(-1)
              for i in range(3))
    n = h * w
    best = np.full(n, np.inf, dtype=np.float32)
    owner = np.full(n, -1, dtype=np.int16)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for index, prim in enumerate(scene.primitives):
            t = prim.intersect(origin, d)
            closer = t < best
            best = np.where(closer, t, best)
            owner[closer] = index
    d_all = np.stack(d, axis=1)
    d_len = np.sqrt(np.sum(d_all * d_all, axis=1))
    labels = np.full(n, SKY, dtype=np.uint8)
    elevation = np.clip(-d_all[:, 1] / d_len, -1, 1)
    rgb = (_SKY_RGB * (0.85 + 0.25 * elevation[:, None])).astype(np.float32)
    hit = owner >= 0
    for index, prim in enumerate(scene.primitives):
        sel = np.nonzero(owner == index)[0]
        if sel.size == 0:
            continue
        ds = d_all[sel].astype(np.float64)
        p = origin + best[sel, None].astype(np.float64) * ds
        hits = prim.shade(p, ds)
        ray_len = best[sel] * d_len[sel]
        lambert = np.abs(np.sum(hits.normal * ds, axis=1)) / d_len[sel]
        falloff = 1.0 / (1.0 + (ray_len / scene.light_range) ** 2)
        overhead = 0.25 * np.clip(-hits.normal[:, 1], 0.0, 1.0)
        light = scene.ambient + (1.0 - scene.ambient) * lambert * falloff + overhead
        fog = np.exp(-ray_len / scene.fog_distance)[:, None]
        rgb[sel] = hits.albedo * light[:, None] * fog + scene.fog_rgb * (1.0 - fog)
        labels[sel] = hits.label
    depth = np.where(hit & (best <= scene.max_depth), best, 0.0).astype(np.float32)
    if noise_seed is not None and noise_std > 0:
        rgb += np.random.default_rng(noise_seed).standard_normal(rgb.shape, np.float32) * noise_std
    rgb_u8 = np.clip(rgb + 0.5, 0, 255).astype(np.uint8).reshape(h, w, 3)
    return SyntheticFrame(rgb_u8, depth.reshape(h, w), labels.reshape(h, w), intrinsics, pose)


def default_intrinsics(width: int, height: int, hfov_deg: float = 60.0) -> PinholeIntrinsics:
    """Square-pixel intrinsics with ``hfov_deg`` horizontal field of view."""
    return PinholeIntrinsics.from_fov(math.radians(hfov_deg), int(width), int(height))


def _check_size(height: int, width: int) -> None:
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def render_scene(seed: int, height: int = 240, width: int = 320, *, kind: str = "indoor",
                 hfov_deg: float = 60.0, intrinsics: PinholeIntrinsics | None = None,
                 max_depth: float | None = None, noise_std: float = 2.0) -> SyntheticFrame:
    """Render one view of scene ``seed`` from a seed-chosen camera pose along its path.

    Args:
        seed: scene seed (the same seed always gives the same image).
        height, width: image size in pixels.
        kind: one of :data:`SCENE_KINDS` (``indoor`` = room or corridor).
        hfov_deg: horizontal field of view (degrees) unless ``intrinsics`` is given.
        intrinsics: explicit intrinsics for a ``width`` x ``height`` image.
        max_depth: depth beyond this (m) is marked invalid (0); default 10 indoor, 80 street.
        noise_std: seeded Gaussian pixel noise (0-255 units), 0 to disable.
    """
    _check_size(height, width)
    scene = build_scene(seed, kind, max_depth)
    intr = intrinsics or default_intrinsics(width, height, hfov_deg)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xCA3])
    position = scene.start + np.array([0.0, 0.0, rng.uniform(0.0, 1.0) * scene.travel])
    pose = camera_pose(position, float(rng.uniform(-0.45, 0.45)), scene.tilt)
    return render_view(scene, pose, intr, noise_seed=int(seed) & 0xFFFFFFFF,
                       noise_std=noise_std)


def trajectory_pose(scene: Scene, time_s: float, speed: float = 0.5) -> np.ndarray:
    """Camera pose at ``time_s`` seconds: back and forth along the path, gently panning."""
    travel = max(scene.travel, 1e-6)
    phase = speed * time_s / travel
    z = travel * 0.5 * (1.0 - math.cos(math.pi * phase))
    yaw = 0.3 * math.sin(2.0 * math.pi * time_s / 8.0)
    return camera_pose(scene.start + np.array([0.0, 0.0, z]), yaw, scene.tilt)


def render_sequence(seed: int, num_frames: int, height: int = 240, width: int = 320, *,
                    fps: float = 10.0, speed: float = 0.5, kind: str = "indoor",
                    hfov_deg: float = 60.0, max_depth: float | None = None,
                    noise_std: float = 2.0) -> Iterator[SyntheticFrame]:
    """Yield ``num_frames`` consecutive views of scene ``seed`` from a camera moving at up to
    ``speed * pi / 2`` m/s (frame i is at time i / fps seconds)."""
    _check_size(height, width)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    scene = build_scene(seed, kind, max_depth)
    intr = default_intrinsics(width, height, hfov_deg)
    for index in range(int(num_frames)):
        pose = trajectory_pose(scene, index / fps, speed)
        yield render_view(scene, pose, intr, noise_seed=(int(seed) * 100003 + index) & 0xFFFFFFFF,
                          noise_std=noise_std)


# ----------------------------------------------------------------------------- bags
CAMERA_FRAME = "camera_optical_frame"
BAG_TOPICS = {"image": "/camera/image_raw", "camera_info": "/camera/camera_info",
              "depth": "/camera/depth_gt", "labels": "/camera/semantic_gt"}
DEFAULT_BAG_START_NS = 1_700_000_000_000_000_000  # fixed, so a seed always gives the same bag


def frame_messages(frame: SyntheticFrame, stamp_ns: int, frame_id: str = CAMERA_FRAME) -> dict:
    """The four ROS messages of one frame, keyed like :data:`BAG_TOPICS`.

    ``image`` rgb8, ``camera_info`` (K, P = [K|0], plumb_bob D = 0), ``depth`` 32FC1 metres
    with NaN where invalid (REP 118), ``labels`` mono8 class ids; all share one header.
    """
    from std_msgs.msg import Header

    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    depth = np.where(frame.depth > 0, frame.depth, np.float32(np.nan)).astype(np.float32)
    return {"image": array_to_image(frame.rgb, "rgb8", header=header),
            "camera_info": intrinsics_to_camera_info(frame.intrinsics, header=header),
            "depth": array_to_image(depth, "32FC1", header=header),
            "labels": array_to_image(frame.labels, "mono8", header=header)}


def write_synthetic_bag(path, num_frames: int, height: int = 240, width: int = 320,
                        seed: int = 0, fps: float = 10.0, storage: str = "mcap", *,
                        kind: str = "indoor", speed: float = 0.5,
                        start_ns: int = DEFAULT_BAG_START_NS, show_progress: bool = False
                        ) -> dict:
    """Write a rosbag2 of a camera moving through synthetic scene ``seed``.

    Topics (:data:`BAG_TOPICS`): ``/camera/image_raw`` (rgb8), ``/camera/camera_info``,
    ``/camera/depth_gt`` (32FC1 m, NaN invalid), ``/camera/semantic_gt`` (mono8, label set
    ``synthetic``), frame ``camera_optical_frame``; frame ``i`` is stamped (header and bag
    time) ``start_ns + i / fps`` seconds. The bag is written under a temporary name and renamed
    into place when complete, so ``path`` never holds a partial bag; an existing ``path`` is
    an error (never overwritten).

    Returns:
        {"path", "frames", "topics", "seconds"} summary.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from tqdm import tqdm

    target = Path(path)
    if target.exists():
        raise SynergyError(f"{target} already exists; choose a new bag path or delete it")
    if int(num_frames) < 1:
        raise SynergyError(f"a synthetic bag needs at least 1 frame, got {num_frames}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp_bag = tmp_dir / target.name
    try:
        frames = render_sequence(seed, num_frames, height, width, fps=fps, speed=speed,
                                 kind=kind)
        with BagWriter(tmp_bag, storage=storage) as bag:
            for index, frame in enumerate(tqdm(frames, total=int(num_frames), unit="frame",
                                               desc=f"synthetic bag {target.name}",
                                               disable=not show_progress)):
                stamp = int(start_ns) + round(index * 1e9 / fps)
                for key, msg in frame_messages(frame, stamp).items():
                    bag.write(BAG_TOPICS[key], msg, stamp)
        os.replace(tmp_bag, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return {"path": str(target), "frames": int(num_frames), "topics": dict(BAG_TOPICS),
            "seconds": (int(num_frames) - 1) / fps}


# ----------------------------------------------------------------------------- dataset
SPLIT_SEED_OFFSETS = {"train": 0, "val": 10_000_000, "test": 20_000_000}


class SyntheticDataset(SampleDataset):
    """Synthetic scenes as a dataset, rendered on the fly at ``height`` x ``width``.

    Sample ``i`` of ``split`` is scene seed ``SPLIT_SEED_OFFSETS[split] + first_seed + i``, so
    train / val / test never share a scene (for fewer than 10 million samples). Every sample
    has depth and labels (label set ``synthetic``).
    """

    name = "synthetic"

    def __init__(self, split: str = "train", num_samples: int = 1000, height: int = 240,
                 width: int = 320, *, kind: str = "indoor", first_seed: int = 0,
                 transform=None, seed: int = 0, hfov_deg: float = 60.0) -> None:
        super().__init__(transform, seed)
        if split not in SPLIT_SEED_OFFSETS:
            raise SynergyError(f"synthetic split must be one of {list(SPLIT_SEED_OFFSETS)}, "
                               f"got {split!r}")
        if not 0 < int(num_samples) <= 10_000_000:
            raise SynergyError(f"synthetic num_samples must be 1..10000000, got {num_samples}")
        if kind not in SCENE_KINDS:
            raise SynergyError(f"synthetic kind must be one of {SCENE_KINDS}, got {kind!r}")
        if int(height) < 1 or int(width) < 1:
            raise SynergyError(f"synthetic image size must be positive, got {width}x{height}")
        self.split, self.num_samples = split, int(num_samples)
        self.height, self.width, self.kind = int(height), int(width), kind
        self.first_seed, self.hfov_deg = int(first_seed), float(hfov_deg)
        self.label_set = get_label_set("synthetic")

    def __len__(self) -> int:
        """Number of scenes in the split."""
        return self.num_samples

    def scene_seed(self, index: int) -> int:
        """Scene seed of sample ``index``."""
        return SPLIT_SEED_OFFSETS[self.split] + self.first_seed + int(index)

    def describe(self, index: int) -> str:
        """Name the sample and its scene seed."""
        return f"synthetic {self.split} sample {index} (scene seed {self.scene_seed(index)})"

    def load(self, index: int) -> dict:
        """Render the scene of sample ``index``."""
        frame = render_scene(self.scene_seed(index), self.height, self.width,
                             kind=self.kind, hfov_deg=self.hfov_deg)
        return {"image": frame.rgb, "depth": frame.depth, "labels": frame.labels,
                "has_depth": True, "has_labels": True}
