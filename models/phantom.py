"""Procedural left-hand PA radiograph phantoms whose skeletal maturity follows age and sex.

No real labelled hand radiographs can be had on the machines this project runs on, so the demo
weights are trained on these. They are a stand-in, and everything trained on them says so. The
anatomy is simplified, but the features bone-age assessment reads are driven by age and sex:
- carpal bones appear in the published order: capitate and hamate, triquetrum, lunate,
  trapezium and trapezoid, scaphoid, pisiform;
- epiphyses appear, widen to the width of their metaphysis, cap it, and fuse: distal
  phalanges, then proximal and middle phalanges, then metacarpals, then ulna and radius;
- the adductor sesamoid of the thumb appears near puberty;
- girls reach each stage about 1.5-2 years earlier, and hands grow with age.
Timing tables below are approximate: Greulich-Pyle-style textbook values, rounded.

Geometry is defined in millimetres in a canonical frame (wrist at the origin, fingers towards
-y, thumb towards +x as on a left-hand PA image). It is posed by one similarity transform and
rasterized primitive by primitive inside each bounding box, so a 1024-pixel image takes tens of
milliseconds on one core. The same (age, sex, seed) always gives the same image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.phantom_exposure import expose

MAX_VALUE = 4095  # 12-bit stored values
# Every file and data set made from phantoms carries this line (the trainer looks for it).
SYNTHETIC_NOTE = "SYNTHETIC PHANTOM - NOT A PATIENT IMAGE"

# Hand length (wrist crease to middle fingertip, mm) by age in months: piecewise linear.
_HAND_LENGTH_AGES = (0, 12, 36, 60, 120, 156, 180, 216, 240)
_HAND_LENGTH_BOYS = (62, 85, 108, 122, 150, 165, 180, 190, 191)
_HAND_LENGTH_GIRLS = (61, 84, 106, 120, 148, 162, 170, 172, 172)

# Ossification onset of the carpals (months), boys / girls.
CARPAL_ONSET = {
    "capitate": (3, 2),
    "hamate": (4, 3),
    "triquetrum": (30, 21),
    "lunate": (48, 36),
    "trapezium": (66, 48),
    "trapezoid": (72, 54),
    "scaphoid": (72, 54),
    "pisiform": (144, 108),
}
# Canonical adult carpal ellipses: centre x, y and semi-axes (mm).
_CARPALS = {
    "scaphoid": (14.0, -12.0, 7.0, 5.0),
    "lunate": (2.5, -10.0, 6.0, 5.0),
    "triquetrum": (-8.5, -12.5, 5.0, 5.0),
    "pisiform": (-12.5, -8.5, 3.8, 3.8),
    "trapezium": (18.5, -24.0, 6.0, 5.0),
    "trapezoid": (10.5, -26.0, 4.8, 4.5),
    "capitate": (1.5, -25.0, 6.0, 8.0),
    "hamate": (-9.0, -25.0, 6.0, 7.0),
}

# Epiphyses: onset and complete fusion (months), boys / girls.
EPIPHYSIS_ONSET = {
    "radius": (12, 10),
    "proximal": (18, 12),
    "metacarpal": (22, 15),
    "middle": (30, 20),
    "distal": (30, 20),
    "metacarpal1": (36, 24),
    "ulna": (84, 72),
}
FUSION = {
    "distal": (192, 162),
    "proximal": (204, 174),
    "middle": (204, 174),
    "metacarpal": (204, 180),
    "metacarpal1": (204, 180),
    "ulna": (216, 192),
    "radius": (222, 198),
}
SESAMOID_ONSET = (156, 132)

# Rays: (metacarpal base x, base y, angle deg towards the ulna, MC length, MC width,
#        phalanx lengths proximal..distal, phalanx widths)
_RAYS = {
    "thumb": (17.0, -28.0, -42.0, 45.0, 10.0, (32.0, 24.0), (9.5, 7.5)),
    "index": (9.0, -31.0, -11.0, 66.0, 9.0, (40.0, 24.0, 18.0), (9.0, 8.0, 6.5)),
    "middle": (1.0, -32.0, -3.0, 63.0, 9.0, (44.0, 27.0, 19.0), (9.0, 8.0, 6.5)),
    "ring": (-7.0, -31.0, 4.0, 57.0, 8.5, (41.0, 26.0, 18.0), (8.5, 7.5, 6.0)),
    "little": (-14.0, -28.0, 12.0, 52.0, 7.5, (33.0, 19.0, 17.0), (8.0, 6.5, 5.5)),
}
_JOINT_GAP = 2.5  # mm of joint space between consecutive bones (adult)


@dataclass(frozen=True)
class Phantom:
    """One rendered radiograph and the skeletal facts it was drawn from."""

    pixels: np.ndarray  # uint16, stored values 0..4095 in the stated photometric interpretation
    photometric: str  # "MONOCHROME2" (bone bright) or "MONOCHROME1" (bone dark as stored)
    pixel_spacing_mm: float
    age_months: float
    male: bool
    seed: int
    carpals_ossified: tuple[str, ...]
    epiphyses_present: int
    physes_open: int  # epiphyses present and not yet fused
    sesamoid: bool
    carpal_box: tuple[int, int, int, int]  # row0, row1, col0, col1 of the carpal region


def hand_length_mm(age_months: float, male: bool) -> float:
    lengths = _HAND_LENGTH_BOYS if male else _HAND_LENGTH_GIRLS
    return float(np.interp(age_months, _HAND_LENGTH_AGES, lengths))


def _timing(table: dict[str, tuple[int, int]], key: str, male: bool) -> float:
    boys, girls = table[key]
    return float(boys if male else girls)


class _Canvas:
    """Accumulates soft-tissue and bone thickness maps in pixel space."""

    def __init__(self, size: int, transform: np.ndarray) -> None:
        self.size = size
        self.soft = np.zeros((size, size), np.float32)
        self.bone = np.zeros((size, size), np.float32)
        self._t = transform  # 2x3: mm (canonical) -> pixel (col, row)
        self.scale = float(math.hypot(transform[0, 0], transform[1, 0]))  # px per mm

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        t = self._t
        return (t[0, 0] * x + t[0, 1] * y + t[0, 2], t[1, 0] * x + t[1, 1] * y + t[1, 2])

    def _window(self, cx: float, cy: float, reach: float):  # type: ignore[no-untyped-def]
        c0, c1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, self.size)
        r0, r1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, self.size)
        if c0 >= c1 or r0 >= r1:
            return None
        cols = np.arange(c0, c1, dtype=np.float32)[None, :]
        rows = np.arange(r0, r1, dtype=np.float32)[:, None]
        return (slice(r0, r1), slice(c0, c1)), cols, rows

    def capsule(
        self, a: tuple[float, float], b: tuple[float, float], radius_mm: float, *,
        layer: str, density: float = 1.0, cortex: float = 0.0,
    ) -> None:
        """A cylinder seen side-on: chord length through it, optionally with a hollow core."""
        ax, ay = self.to_px(*a)
        bx, by = self.to_px(*b)
        r = radius_mm * self.scale
        window = self._window((ax + bx) / 2, (ay + by) / 2, math.hypot(bx - ax, by - ay) / 2 + r)
        if window is None:
            return
        where, cols, rows = window
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy or 1e-6
        t = np.clip(((cols - ax) * dx + (rows - ay) * dy) / length2, 0.0, 1.0)
        d2 = (cols - ax - t * dx) ** 2 + (rows - ay - t * dy) ** 2
        chord = 2.0 * np.sqrt(np.maximum(r * r - d2, 0.0))
        if cortex > 0:  # medullary cavity: less bone along the axis, bright cortical walls
            inner = r * (1.0 - cortex)
            chord = chord - 0.65 * 2.0 * np.sqrt(np.maximum(inner * inner - d2, 0.0))
        self._add(layer, where, chord * (density / self.scale))

    def ellipse(
        self, centre: tuple[float, float], semi_axes: tuple[float, float], angle_deg: float,
        *, layer: str, density: float = 1.0, depth_mm: float | None = None,
    ) -> None:
        """An ellipsoid seen from above; `depth_mm` is its full thickness (default: round)."""
        cx, cy = self.to_px(*centre)
        a, b = semi_axes[0] * self.scale, semi_axes[1] * self.scale
        window = self._window(cx, cy, max(a, b) + 1)
        if window is None:
            return
        where, cols, rows = window
        theta = math.radians(angle_deg) + math.atan2(self._t[1, 0], self._t[0, 0])
        u = (cols - cx) * math.cos(theta) + (rows - cy) * math.sin(theta)
        v = -(cols - cx) * math.sin(theta) + (rows - cy) * math.cos(theta)
        q = (u / max(a, 1e-3)) ** 2 + (v / max(b, 1e-3)) ** 2
        depth = depth_mm * self.scale if depth_mm is not None else 2.0 * min(a, b)
        chord = depth * np.sqrt(np.maximum(1.0 - q, 0.0))
        self._add(layer, where, chord * (density / self.scale))

    def _add(self, layer: str, where, values: np.ndarray) -> None:  # type: ignore[no-untyped-def]
        target = self.soft if layer == "soft" else self.bone
        if layer == "soft":
            np.maximum(target[where], values, out=target[where])
        else:
            target[where] += values


def _ray_direction(angle_deg: float) -> tuple[float, float]:
    angle = math.radians(angle_deg)
    return (-math.sin(angle), -math.cos(angle))  # 0 deg points to -y (fingers up)


def _epiphysis_stage(age: float, onset: float, fusion: float) -> tuple[float, float] | None:
    """(relative size 0..1, physis gap 0..1) of an epiphysis, or None before it ossifies."""
    if age < onset:
        return None
    size = 0.3 + 0.7 * min((age - onset) / max(fusion - 24 - onset, 12.0), 1.0)
    gap = float(np.clip((fusion - age) / 24.0, 0.0, 1.0))
    return size, gap


def render(
    age_months: float,
    male: bool,
    seed: int,
    *,
    size: int = 1024,
    augment: bool = True,
) -> Phantom:
    """Render one phantom. `augment` adds pose, exposure, noise, collimation and the marker."""
    rng = np.random.default_rng(seed)
    age = float(np.clip(age_months, 0.0, 240.0))
    scale_mm = hand_length_mm(age, male) / 190.0  # canonical geometry is an adult boy's

    # Pose: the field of view shows the hand and the distal forearm. Anatomy is drawn at half
    # resolution (it is blurred anyway) and upsampled; noise and the marker are full-size.
    work = size // 2
    fov_mm = 1.6 * 190.0 * scale_mm
    px_per_mm = work / fov_mm
    if augment:
        rotation = math.radians(rng.uniform(-20, 20))
        zoom = rng.uniform(0.88, 1.08)
        shift = rng.uniform(-0.05, 0.05, size=2) * work
        spread = rng.uniform(-4, 8)  # finger abduction, degrees
    else:
        rotation, zoom, shift, spread = 0.0, 1.0, np.zeros(2), 0.0
    k = px_per_mm * zoom * scale_mm  # canonical mm -> px
    cos, sin = math.cos(rotation), math.sin(rotation)
    centre = np.array([work / 2, work * 0.74]) + shift  # wrist in the lower quarter
    transform = np.array([[k * cos, -k * sin, centre[0]], [k * sin, k * cos, centre[1]]])
    canvas = _Canvas(work, transform)

    # Soft tissue: forearm, palm, fingers (thickness in canonical mm).
    canvas.capsule((0, 5), (0, 140), 29, layer="soft")
    canvas.ellipse((3, -48), (40, 52), 0, layer="soft", depth_mm=34)
    canvas.ellipse((0, -10), (32, 22), 0, layer="soft", depth_mm=40)

    sesamoid_onset = float(SESAMOID_ONSET[0] if male else SESAMOID_ONSET[1])
    epiphyses, open_physes = 0, 0
    for ray, (bx, by, angle, mc_len, mc_w, ph_lens, ph_ws) in _RAYS.items():
        ray_angle = angle + (spread * angle / 12.0 if ray != "thumb" else -spread * 0.6)
        dx, dy = _ray_direction(ray_angle)
        # Metacarpal: epiphysis at the head (distal), except the thumb's at its base.
        mc_key = "metacarpal1" if ray == "thumb" else "metacarpal"
        stage = _epiphysis_stage(age, _timing(EPIPHYSIS_ONSET, mc_key, male),
                                 _timing(FUSION, mc_key, male))
        start = (bx, by)
        end = (bx + dx * mc_len, by + dy * mc_len)
        canvas.capsule(start, end, mc_w / 2, layer="bone", cortex=0.35)
        if stage is not None:
            epiphyses += 1
            open_physes += stage[1] > 0
            at = end if ray != "thumb" else start
            sign = 1.0 if ray != "thumb" else -1.0
            _draw_epiphysis(canvas, at, (dx * sign, dy * sign), mc_w, stage)
        # Phalanges, each with its epiphysis at the proximal end.
        tip = end
        kinds = ("proximal", "distal") if ray == "thumb" else ("proximal", "middle", "distal")
        for kind, length, width in zip(kinds, ph_lens, ph_ws, strict=True):
            base = (tip[0] + dx * _JOINT_GAP, tip[1] + dy * _JOINT_GAP)
            stage = _epiphysis_stage(age, _timing(EPIPHYSIS_ONSET, kind, male),
                                     _timing(FUSION, kind, male))
            shaft_start = base
            if stage is not None:
                epiphyses += 1
                open_physes += stage[1] > 0
            tip = (base[0] + dx * length, base[1] + dy * length)
            canvas.capsule(shaft_start, tip, width / 2 * (0.8 if kind == "distal" else 1.0),
                           layer="bone", cortex=0.3 if kind != "distal" else 0.0)
            if stage is not None:
                _draw_epiphysis(canvas, base, (-dx, -dy), width, stage)
        # Finger soft tissue from the MCP joint to beyond the tip.
        finger_r = (ph_ws[0] / 2 + 4.5)
        canvas.capsule((bx + dx * mc_len * 0.55, by + dy * mc_len * 0.55),
                       (tip[0] + dx * 3, tip[1] + dy * 3), finger_r, layer="soft")
        if ray == "thumb" and age >= sesamoid_onset:
            grow = min((age - sesamoid_onset) / 24.0, 1.0)
            canvas.ellipse((end[0] - 4.0, end[1] - 1.0), (2.2 * (0.5 + 0.5 * grow),) * 2, 0,
                           layer="bone", density=1.1)

    # Radius and ulna with their distal epiphyses.
    for bone, x, top, width in (("radius", 11.0, 2.0, 21.0), ("ulna", -13.0, 7.0, 13.0)):
        stage = _epiphysis_stage(age, _timing(EPIPHYSIS_ONSET, bone, male),
                                 _timing(FUSION, bone, male))
        canvas.capsule((x, top + 4.0), (x * 1.1, 150.0), width / 2, layer="bone", cortex=0.3)
        if stage is not None:
            epiphyses += 1
            open_physes += stage[1] > 0
            _draw_epiphysis(canvas, (x, top + 4.0), (0.0, -1.0), width, stage)

    # Carpals: appear in order, grow, crowd together with maturity.
    ossified = []
    for name, (cx, cy, ax, ay) in _CARPALS.items():
        onset = _timing(CARPAL_ONSET, name, male)
        if age < onset:
            continue
        ossified.append(name)
        grow = 0.25 + 0.75 * min((age - onset) / 96.0, 1.0)
        spacing = 1.0 + 0.25 * (1.0 - grow)  # small carpals sit apart in the soft tissue
        canvas.ellipse((cx * spacing, cy * spacing), (ax * grow, ay * grow), 10.0, layer="bone")

    box_a = canvas.to_px(-16, -31)
    box_b = canvas.to_px(22, -5)
    rows = sorted((int(2 * box_a[1]), int(2 * box_b[1])))
    cols = sorted((int(2 * box_a[0]), int(2 * box_b[0])))
    carpal_box = (max(rows[0], 0), min(rows[1], size), max(cols[0], 0), min(cols[1], size))

    image = expose(canvas.soft, canvas.bone, rng, augment)
    photometric = "MONOCHROME2"
    if augment and rng.random() < 0.2:
        image = 1.0 - image
        photometric = "MONOCHROME1"
    pixels = np.round(image * MAX_VALUE).astype(np.uint16)
    return Phantom(
        pixels=pixels,
        photometric=photometric,
        pixel_spacing_mm=scale_mm / (2.0 * k),
        age_months=age,
        male=male,
        seed=seed,
        carpals_ossified=tuple(ossified),
        epiphyses_present=epiphyses,
        physes_open=open_physes,
        sesamoid=age >= sesamoid_onset,
        carpal_box=carpal_box,
    )


def _draw_epiphysis(
    canvas: _Canvas, joint: tuple[float, float], towards_joint: tuple[float, float],
    width: float, stage: tuple[float, float],
) -> None:
    """An epiphysis beside the bone end at `joint`; the physis gap closes as fusion nears."""
    relative, gap = stage
    w = width * (0.45 + 0.6 * relative) / 2  # widens, then caps the metaphysis
    h = max(width * 0.22 * (0.5 + 0.5 * relative), 0.8)
    offset = h + 0.4 + 1.6 * gap  # gap in mm between metaphysis and epiphysis
    centre = (joint[0] + towards_joint[0] * offset, joint[1] + towards_joint[1] * offset)
    angle = math.degrees(math.atan2(towards_joint[0], -towards_joint[1]))
    canvas.ellipse(centre, (min(w, width * 0.55), h), angle, layer="bone", density=1.05)
    if gap == 0.0:  # fused: bridge the physis with bone
        half = offset / 2
        bridge = (joint[0] + towards_joint[0] * half, joint[1] + towards_joint[1] * half)
        canvas.ellipse(bridge, (width * 0.45, offset / 2 + 0.3), angle, layer="bone", density=0.9)
