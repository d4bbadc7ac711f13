"""An analytic whole-body phantom: a patient as a painter's list of solid shapes in millimetres.

A ``Patient`` (sex, height, girth, pose, organ sizes) becomes a list of ``Paint`` operations in the
*body frame*: u = patient left (mm), v = posterior (mm), w = up from the soles (mm). Shapes are ellipsoids,
capsules (tubes), vertical elliptic cylinders and a few implicit regions (lungs, liver segments, iliac
wings); later operations overwrite earlier ones, optionally only where the current label is in an allowed
set (lymph-node stations only replace fat and muscle). ``rasterize`` evaluates the list on any grid (the CT
grid, the PET grid) through the patient's pose on the table (shift, roll about the long axis), touching
only each shape's bounding box and working in thin z-slabs so temporaries stay in cache.

The map it returns holds *internal* labels: every public structure of ``data_contracts.anatomy`` keeps its
label, and extra tissues the segmenter does not name (airway, marrow, heart chambers, bowel gas, the table,
...) get labels from ``EXTRA_BASE`` on. ``anatomy_lut()`` maps internal to public labels (extras to their
parent structure or 0) and ``TISSUES``/``tissue_of_label()`` give each label its CT and PET tissue class.

Anatomy is laid out for a 1750 mm reference man (``_R`` coordinates) and scaled per patient; the spine,
ribs and vertebrae are one template with slowly varying size so that a small patch cannot tell which level
or side it shows, while a large field of view can count from landmarks (skull, clavicles, pelvis).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Callable, Sequence

import numpy as np

from data_contracts import anatomy

REF_HEIGHT = 1750.0  # mm, the reference anatomy below is laid out for this height
EXTRA_BASE = 200  # first internal label of a tissue the segmenter does not name


# --------------------------------------------------------------------------------------------------
# Tissues: CT and PET properties of each label
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tissue:
    hu: float  # mean CT number
    hu_sd: float  # tissue texture (HU), on top of scanner noise
    fdg: float  # physiological SUV, FDG
    psma: float  # physiological SUV, PSMA
    bone: bool = False  # gets a cortical rim in CT
    suv_sd: float = 0.15  # between-patient log-SD of the SUV


TISSUES: dict[str, Tissue] = {
    "air": Tissue(-1000, 0, 0.0, 0.0, suv_sd=0),
    "gas": Tissue(-950, 20, 0.0, 0.0, suv_sd=0),
    "lung": Tissue(-850, 30, 0.45, 0.3),
    "fat": Tissue(-100, 10, 0.35, 0.2),
    "muscle": Tissue(45, 8, 0.75, 0.6),
    "soft": Tissue(40, 8, 1.0, 0.8),
    "brain": Tissue(33, 5, 7.5, 0.15, suv_sd=0.2),
    "cord": Tissue(35, 5, 1.2, 0.3),
    "csf": Tissue(8, 4, 0.2, 0.1),
    "blood": Tissue(42, 5, 1.6, 1.2),
    "myocardium": Tissue(45, 5, 4.0, 1.6, suv_sd=0.6),
    "liver": Tissue(60, 6, 2.2, 6.0),
    "spleen": Tissue(48, 5, 1.9, 7.0),
    "kidney": Tissue(33, 6, 2.8, 30.0, suv_sd=0.25),
    "urine": Tissue(8, 4, 20.0, 30.0, suv_sd=0.6),
    "adrenal": Tissue(30, 6, 1.6, 2.0),
    "pancreas": Tissue(40, 6, 1.6, 1.8),
    "stomach": Tissue(45, 6, 2.2, 2.5, suv_sd=0.3),
    "bowel": Tissue(32, 10, 2.0, 6.0, suv_sd=0.3),
    "content": Tissue(15, 15, 0.6, 1.0),
    "colon": Tissue(25, 20, 2.0, 1.8, suv_sd=0.35),
    "thyroid": Tissue(95, 8, 1.3, 1.6),
    "salivary": Tissue(15, 8, 1.9, 14.0, suv_sd=0.25),
    "mucosa": Tissue(45, 6, 3.5, 2.5, suv_sd=0.25),
    "node": Tissue(35, 6, 1.1, 0.9),
    "prostate": Tissue(40, 6, 1.9, 2.2),
    "uterus": Tissue(45, 6, 2.6, 1.5),
    "breast": Tissue(-30, 25, 0.9, 0.5),
    "thymus_fat": Tissue(-90, 10, 0.5, 0.3),
    "disc": Tissue(85, 8, 0.6, 0.4),
    "cartilage": Tissue(120, 10, 0.5, 0.4),
    "eye": Tissue(12, 4, 0.4, 0.3),
    "bile": Tissue(10, 4, 0.4, 0.5),
    "marrow_fat": Tissue(-40, 25, 0.8, 0.5),
    "bone_spine": Tissue(330, 45, 1.6, 0.9, bone=True),
    "bone_pelvis": Tissue(300, 45, 1.4, 0.8, bone=True),
    "bone_flat": Tissue(420, 50, 1.1, 0.7, bone=True),
    "bone_long": Tissue(380, 50, 0.9, 0.6, bone=True),
    "bone_dense": Tissue(1250, 80, 0.8, 0.5, bone=True),
    "skull": Tissue(950, 120, 0.9, 0.6, bone=True),
    "table": Tissue(-250, 40, 0.0, 0.0, suv_sd=0),
}

# Public structures -> tissue. Node stations are fat with normal nodes painted inside them.
_PUBLIC_TISSUE: dict[str, str] = {
    "body_fat": "fat", "muscle": "muscle", "brain": "brain", "spinal_cord": "cord", "heart": "myocardium",
    "aorta": "blood", "trachea": "air", "mediastinal_fat": "fat", "small_bowel": "bowel",
    "uterus": "uterus", "intervertebral_disc": "disc", "sacrum": "bone_pelvis", "sternum": "bone_flat",
    "skull": "skull", "spleen": "spleen", "pancreas": "pancreas", "prostate": "prostate",
    "nasopharynx": "mucosa", "thyroid": "thyroid", "esophagus": "soft", "stomach": "stomach",
    "bladder": "urine", "colon": "colon",
}


def _public_tissue(name: str) -> str:
    if name in _PUBLIC_TISSUE:
        return _PUBLIC_TISSUE[name]
    prefix_rules = [
        ("ln_", "fat"), ("lung_", "lung"), ("pleura_", "lung"), ("vertebra_", "bone_spine"),
        ("rib_", "bone_flat"), ("ilium_", "bone_pelvis"), ("pubis_", "bone_pelvis"), ("ischium_", "bone_pelvis"),
        ("femur_", "bone_long"), ("humerus_", "bone_long"), ("tibia_", "bone_long"), ("scapula_", "bone_flat"),
        ("clavicle_", "bone_flat"), ("liver_segment_", "liver"), ("kidney_", "kidney"), ("adrenal_", "adrenal"),
        ("breast_", "breast"), ("parotid_", "salivary"), ("submandibular_", "salivary"),
    ]
    for prefix, tissue in prefix_rules:
        if name.startswith(prefix):
            return tissue
    raise KeyError(f"no tissue for structure {name!r}")


LOBES = ("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "lung_upper_lobe_left",
         "lung_lower_lobe_left")


def _node_station_names() -> list[str]:
    return [s for s in anatomy.structures() if s.startswith("ln_")]


def _extras() -> list[tuple[str, str | None, str]]:
    """Internal tissues beyond the public structures: (name, public parent or None, tissue)."""
    ex: list[tuple[str, str | None, str]] = [
        ("table", None, "table"), ("airway", None, "air"), ("airway_wall", None, "soft"),
        ("sinus_air", None, "air"), ("eye", None, "eye"), ("mandible", None, "bone_dense"),
        ("vessel", None, "blood"), ("heart_blood", "heart", "blood"), ("gallbladder", None, "bile"),
        ("stomach_content", "stomach", "content"), ("stomach_gas", "stomach", "gas"),
        ("bowel_gas", "small_bowel", "gas"), ("colon_gas", "colon", "gas"), ("canal", None, "csf"),
        ("cartilage", None, "cartilage"), ("limb_bone", None, "bone_long"), ("limb_marrow", None, "marrow_fat"),
        ("nasopharynx_air", "nasopharynx", "air"), ("soft", None, "soft"), ("tonsil", None, "mucosa"),
    ]
    for lobe in LOBES:  # pulmonary vessels inside a lobe belong to it
        ex.append((f"vessel_{lobe}", lobe, "blood"))
    for side in ("left", "right"):
        ex.append((f"kidney_pelvis_{side}", f"kidney_{side}", "urine"))
        for bone in ("femur", "humerus", "tibia"):
            ex.append((f"{bone}_cortex_{side}", f"{bone}_{side}", "bone_dense"))
            ex.append((f"{bone}_marrow_{side}", f"{bone}_{side}", "marrow_fat"))
    for st in _node_station_names():
        ex.append((f"node_{st}", st, "node"))
    return ex


@cache
def internal_labels() -> dict[str, int]:
    """Every internal label: public structures keep theirs, extras count up from ``EXTRA_BASE``."""
    out = dict(anatomy.label_of())
    if max(out.values()) >= EXTRA_BASE:
        raise AssertionError("public labels reach EXTRA_BASE; raise it")
    for i, (name, _, _) in enumerate(_extras()):
        out[name] = EXTRA_BASE + i
    return out


@cache
def n_labels() -> int:
    return max(internal_labels().values()) + 1


@cache
def tissue_of_label() -> tuple[str, ...]:
    """Tissue name per internal label (label 0 = air outside the body)."""
    out = ["air"] * n_labels()
    for name in anatomy.structures():
        out[anatomy.label_of()[name]] = _public_tissue(name)
    lab = internal_labels()
    for name, _, tissue in _extras():
        out[lab[name]] = tissue
    return tuple(out)


@cache
def anatomy_lut() -> np.ndarray:
    """uint16 LUT: internal label -> public anatomy label (what a segmenter's label map shows)."""
    lut = np.zeros(n_labels(), np.uint16)
    pub = anatomy.label_of()
    for name, lbl in pub.items():
        lut[lbl] = lbl
    lab = internal_labels()
    for name, parent, _ in _extras():
        lut[lab[name]] = pub[parent] if parent else 0
    return lut


def tissue_lut(values: dict[str, float], dtype=np.float32) -> np.ndarray:
    """A per-label LUT from a per-tissue table (``values[tissue]``)."""
    return np.array([values[t] for t in tissue_of_label()], dtype=dtype)


# --------------------------------------------------------------------------------------------------
# Grids and pose
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """A voxel grid in LPS: array order (z, y, x); spacing/origin in (x, y, z) mm; identity direction."""

    shape: tuple[int, int, int]  # (z, y, x)
    spacing: tuple[float, float, float]  # (x, y, z)
    origin: tuple[float, float, float]  # (x, y, z), centre of voxel (0, 0, 0)

    def axis(self, i: int) -> np.ndarray:
        """Coordinates (mm) of voxel centres along x (0), y (1) or z (2)."""
        n = self.shape[2 - i]
        return (self.origin[i] + self.spacing[i] * np.arange(n)).astype(np.float64)

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape))

    def index_of(self, xyz: Sequence[float]) -> np.ndarray:
        """Continuous (z, y, x) index of an LPS point."""
        return np.array([(xyz[2 - a] - self.origin[2 - a]) / self.spacing[2 - a] for a in range(3)])

    def point_of(self, zyx: Sequence[float]) -> np.ndarray:
        """LPS (x, y, z) of a (z, y, x) index."""
        return np.array([self.origin[a] + self.spacing[a] * zyx[2 - a] for a in range(3)])


@dataclass(frozen=True)
class Pose:
    """Where the patient lies: body frame (u, v, w) -> LPS (x, y, z) by a roll about z and a shift."""

    roll_deg: float = 0.0
    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)  # LPS position of the body-frame origin

    @property
    def cs(self) -> tuple[float, float]:
        t = np.deg2rad(self.roll_deg)
        return float(np.cos(t)), float(np.sin(t))

    def to_lps(self, uvw: np.ndarray) -> np.ndarray:
        """(..., 3) body points -> (..., 3) LPS points."""
        c, s = self.cs
        u, v, w = uvw[..., 0], uvw[..., 1], uvw[..., 2]
        tx, ty, tz = self.shift
        return np.stack([c * u - s * v + tx, s * u + c * v + ty, w + tz], axis=-1)

    def to_body(self, xyz: np.ndarray) -> np.ndarray:
        c, s = self.cs
        tx, ty, tz = self.shift
        x, y, z = xyz[..., 0] - tx, xyz[..., 1] - ty, xyz[..., 2] - tz
        return np.stack([c * x + s * y, -s * x + c * y, z], axis=-1)


# --------------------------------------------------------------------------------------------------
# Shapes. ``inside(U, V, W, rmin)`` takes body coordinates broadcastable as U, V: (1, ny, nx) and
# W: (nz, 1, 1) and returns a boolean (nz, ny, nx) mask, or uint16 labels (0 = outside) for a region
# split into several structures. Convex shapes instead give ``rows(X, Y, W, c, s, rmin)``: for every
# grid row (fixed z, y) the interval [lo, hi] of X it covers, solved in closed form, so their cost is
# per row, not per voxel (X, Y: LPS minus the pose shift; c, s: cosine and sine of the roll).
# ``rmin`` (mm) is the smallest radius a thin shape may take on this grid so it still holds voxels.
# --------------------------------------------------------------------------------------------------


class Shape:
    thin: bool = False
    rows = None  # convex shapes override with a row-interval solver

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def inside(self, U, V, W, rmin: float) -> np.ndarray:
        raise NotImplementedError

    def _r(self, r: np.ndarray | float, rmin: float):
        return np.maximum(r, rmin) if self.thin else r


def _interp(x, xp, fp) -> np.ndarray:
    """``np.interp`` for increasing or decreasing keyframes, in x's float dtype."""
    xp, fp = np.asarray(xp, float), np.asarray(fp, float)
    if xp[0] > xp[-1]:
        xp, fp = xp[::-1], fp[::-1]
    x = np.asarray(x)
    return np.interp(x, xp, fp).astype(x.dtype if x.dtype.kind == "f" else np.float64)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross is slow for single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _rotation(axis: str, deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    i, j = {"u": (1, 2), "v": (0, 2), "w": (0, 1)}[axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _solve_rows(A, B, C):
    """Interval of X with A X^2 + B X + C <= 0 (A > 0); empty rows get lo = +inf, hi = -inf."""
    disc = B * B - 4.0 * A * C
    ok = disc >= 0
    root = np.sqrt(np.where(ok, disc, 0.0))
    lo = np.where(ok, (-B - root) / (2.0 * A), np.inf)
    hi = np.where(ok, (-B + root) / (2.0 * A), -np.inf)
    return lo, hi


def _quadric_rows(M: np.ndarray, center: np.ndarray, Y, W, c: float, s: float):
    """Row intervals of the ellipsoid (p - center)^T M (p - center) <= 1; Y: (1, ny), W: (nz, 1)."""
    # body point along a row: p(X) = X e + f with e = (c, -s, 0)
    e = np.array([c, -s, 0.0])
    f0, f1, f2 = s * Y - center[0], c * Y - center[1], W - center[2]
    Me = M @ e
    A = float(e @ Me)
    B = 2.0 * (Me[0] * f0 + Me[1] * f1 + Me[2] * f2)
    C = (M[0, 0] * f0 * f0 + M[1, 1] * f1 * f1 + M[2, 2] * f2 * f2 + 2 * M[0, 1] * f0 * f1
         + 2 * M[0, 2] * f0 * f2 + 2 * M[1, 2] * f1 * f2 - 1.0)
    return _solve_rows(A, B, C)


@dataclass
class Ellipsoid(Shape):
    center: np.ndarray
    axes: np.ndarray
    rot: np.ndarray | None = None  # columns = the ellipsoid's axes in the body frame
    thin: bool = False

    def bounds(self):
        a = np.asarray(self.axes, float)
        ext = a if self.rot is None else np.sqrt((np.asarray(self.rot) ** 2) @ (a**2))
        ext = np.maximum(ext, 12.0) if self.thin else ext  # room for rmin growth on coarse grids
        return self.center - ext, self.center + ext

    def matrix(self, rmin: float = 0.0) -> np.ndarray:
        a = self._r(np.asarray(self.axes, float), rmin)
        r = np.eye(3) if self.rot is None else np.asarray(self.rot)
        return r @ np.diag(1.0 / a**2) @ r.T

    def inside(self, U, V, W, rmin):
        m = self.matrix(rmin)
        du, dv, dw = U - self.center[0], V - self.center[1], W - self.center[2]
        q2 = m[0, 0] * du * du + m[1, 1] * dv * dv + 2 * m[0, 1] * du * dv
        lin = 2 * (m[0, 2] * du + m[1, 2] * dv)
        return q2 + dw * lin <= 1.0 - m[2, 2] * dw * dw

    def rows(self, X, Y, W, c, s, rmin):
        return _quadric_rows(self.matrix(rmin), self.center, Y, W, c, s)


@dataclass
class Capsule(Shape):
    """A tube from p0 to p1 with radius r0 -> r1 (linear taper), round ends."""

    p0: np.ndarray
    p1: np.ndarray
    r0: float
    r1: float
    thin: bool = False

    def bounds(self):
        r = max(self.r0, self.r1, 12.0 if self.thin else 0.0)
        return np.minimum(self.p0, self.p1) - r, np.maximum(self.p0, self.p1) + r

    def inside(self, U, V, W, rmin):
        d = self.p1 - self.p0
        ll = float(d @ d) or 1e-9
        du, dv, dw = U - self.p0[0], V - self.p0[1], W - self.p0[2]
        dot = (du * d[0] + dv * d[1]) + dw * d[2]
        t = np.clip(dot * (1.0 / ll), 0.0, 1.0)
        dist2 = (du * du + dv * dv) + dw * dw - t * (2 * dot - t * ll)
        if self.r0 == self.r1:
            r = max(self.r0, rmin) if self.thin else self.r0
            return dist2 <= r * r
        r = self.r0 + (self.r1 - self.r0) * t
        r = np.maximum(r, rmin) if self.thin else r
        return dist2 <= r * r


@dataclass
class Cylinder(Shape):
    """A vertical elliptic cylinder: (u, v) ellipse, w in [w0, w1] (vertebral bodies, discs)."""

    center: np.ndarray  # (u, v)
    axes: np.ndarray  # (au, av)
    w0: float
    w1: float
    thin: bool = False

    def bounds(self):
        a = np.asarray(self.axes)
        return (np.array([self.center[0] - a[0], self.center[1] - a[1], self.w0]),
                np.array([self.center[0] + a[0], self.center[1] + a[1], self.w1]))

    def inside(self, U, V, W, rmin):
        a = self._r(np.asarray(self.axes, float), rmin)
        half = (self.w1 - self.w0) / 2
        wc = (self.w1 + self.w0) / 2
        half = max(half, rmin * 0.9) if self.thin else half
        inplane = ((U - self.center[0]) / a[0]) ** 2 + ((V - self.center[1]) / a[1]) ** 2 <= 1.0
        return inplane & (np.abs(W - wc) <= half)


@dataclass
class Profile:
    """Cross-section keyframes along w: half-width a, half-depth b, centre (cu, cv) of an ellipse."""

    w: np.ndarray
    a: np.ndarray
    b: np.ndarray
    cv: np.ndarray
    cu: np.ndarray | None = None

    def __post_init__(self):
        order = np.argsort(self.w)  # np.interp needs increasing keyframes
        for name in ("w", "a", "b", "cv", "cu"):
            if getattr(self, name) is not None:
                setattr(self, name, np.asarray(getattr(self, name), float)[order])

    def at(self, W):
        """(a, b, cu, cv) at heights W, float32 like W (float64 would double every voxel operation)."""
        f = lambda y: _interp(W, self.w, y)  # noqa: E731
        cu = f(self.cu) if self.cu is not None else np.zeros_like(W)
        return f(self.a), f(self.b), cu, f(self.cv)

    def grown(self, da, db_front, db_back) -> "Profile":
        """The same outline grown by a thickness (a fat layer), front and back separately."""
        db_front, db_back = np.broadcast_to(db_front, self.w.shape), np.broadcast_to(db_back, self.w.shape)
        return Profile(self.w, self.a + da, self.b + (db_front + db_back) / 2, self.cv + (db_back - db_front) / 2,
                       self.cu)


@dataclass
class Slab(Shape):
    """A tube whose elliptic cross-section follows a ``Profile`` (trunk, limbs).

    ``flat_back``: the posterior contour is cut flat at ``cv + flat_back * b`` (a supine patient's back).
    """

    profile: Profile
    w0: float
    w1: float
    flat_back: float | None = None

    def bounds(self):
        p = self.profile
        cu = p.cu if p.cu is not None else np.zeros_like(p.w)
        return (np.array([float(np.min(cu - p.a)), float(np.min(p.cv - p.b)), self.w0]),
                np.array([float(np.max(cu + p.a)), float(np.max(p.cv + p.b)), self.w1]))

    def inside(self, U, V, W, rmin):
        a, b, cu, cv = self.profile.at(W)
        q = ((U - cu) / a) ** 2 + ((V - cv) / b) ** 2 <= 1.0
        if self.flat_back is not None:
            q &= V <= cv + self.flat_back * b
        return q & (W >= self.w0) & (W <= self.w1)

    def rows(self, X, Y, W, c, s, rmin):
        a, b, cu, cv = self.profile.at(W)
        ia2, ib2 = 1.0 / (a * a), 1.0 / (b * b)
        p, q = s * Y - cu, c * Y - cv  # u - cu = c X + p ; v - cv = -s X + q
        A = c * c * ia2 + s * s * ib2
        B = 2.0 * (c * p * ia2 - s * q * ib2)
        C = p * p * ia2 + q * q * ib2 - 1.0
        lo, hi = _solve_rows(A, B, C)
        if self.flat_back is not None:  # -s X + c Y <= cv + f b
            lim = c * Y - cv - self.flat_back * b
            if s > 1e-9:
                lo = np.maximum(lo, lim / s)
            elif s < -1e-9:
                hi = np.minimum(hi, lim / s)
            else:
                hi = np.where(lim <= 0, hi, -np.inf)
        out = (W < self.w0) | (W > self.w1)
        return np.where(out, np.inf, lo), np.where(out, -np.inf, hi)


@dataclass
class Implicit(Shape):
    """Any region given by a function of body coordinates, with explicit bounds."""

    lo: np.ndarray
    hi: np.ndarray
    fn: Callable[..., np.ndarray]

    def bounds(self):
        return np.asarray(self.lo, float), np.asarray(self.hi, float)

    def inside(self, U, V, W, rmin):
        return self.fn(U, V, W, rmin)


@dataclass
class Paint:
    """Paint ``label`` (or the labels a label-valued shape returns) into ``shape``, only over ``allowed``."""

    shape: Shape
    label: int
    allowed: frozenset[int] | None = None
    name: str = ""
    labels: tuple[int, ...] = ()  # the labels a label-valued shape can return
    remap: np.ndarray | None = None  # instead of ``label``: current label -> new label (0 = leave)


# --------------------------------------------------------------------------------------------------
# Rasterisation
# --------------------------------------------------------------------------------------------------

SLAB_VOXELS = 2_000_000  # voxels evaluated together: temporaries stay small, Python overhead stays low


def min_radius(grid: Grid) -> float:
    """Half a voxel diagonal: a sphere this big always contains a voxel centre."""
    return 0.5 * float(np.sqrt(np.sum(np.square(grid.spacing)))) * 1.02


def index_box(lo: np.ndarray, hi: np.ndarray, grid: Grid, pose: Pose) -> tuple[slice, slice, slice] | None:
    """Voxel-index slices (z, y, x) of the grid region that holds a body-frame box; None if outside."""
    c, s = pose.cs
    tx, ty, tz = pose.shift
    u0, v0, w0 = (float(x) for x in lo)
    u1, v1, w1 = (float(x) for x in hi)
    # interval arithmetic of the roll: x = c u - s v + tx, y = s u + c v + ty
    x0 = tx + min(c * u0, c * u1) + min(-s * v0, -s * v1)
    x1 = tx + max(c * u0, c * u1) + max(-s * v0, -s * v1)
    y0 = ty + min(s * u0, s * u1) + min(c * v0, c * v1)
    y1 = ty + max(s * u0, s * u1) + max(c * v0, c * v1)
    out = []
    for ax, (a, b) in ((2, (w0 + tz, w1 + tz)), (1, (y0, y1)), (0, (x0, x1))):
        n = grid.shape[2 - ax]
        i0 = max(int(np.floor((a - grid.origin[ax]) / grid.spacing[ax])), 0)
        i1 = min(int(np.ceil((b - grid.origin[ax]) / grid.spacing[ax])) + 1, n)
        if i1 <= i0:
            return None
        out.append(slice(i0, i1))
    return tuple(out)  # type: ignore[return-value]


def rasterize(paints: Sequence[Paint], grid: Grid, pose: Pose, table_y: float | None = None) -> np.ndarray:
    """The internal label map (uint16, (z, y, x)) of a painter's list on ``grid``.

    ``table_y``: LPS y of the table top; a 10 mm carbon plate is drawn below it before the patient.
    """
    out = np.zeros(grid.shape, np.uint16)
    xs, ys, zs = grid.axis(0), grid.axis(1), grid.axis(2)
    if table_y is not None:
        j0, j1 = np.searchsorted(ys, [table_y, table_y + 10.0])
        i0, i1 = np.searchsorted(xs, [-230.0, 230.0])
        out[:, j0:j1, i0:i1] = internal_labels()["table"]
    rmin = min_radius(grid)
    c, s = pose.cs
    tx, ty, tz = pose.shift
    nlab = n_labels()

    # Per paint: its index box and in-plane coordinates (computed once).
    prepared = []
    for p in paints:
        lo, hi = p.shape.bounds()
        box = index_box(lo, hi, grid, pose)
        if box is None:
            continue
        sz, sy, sx = box
        X = (xs[sx] - tx).astype(np.float32)
        Y = (ys[sy] - ty).astype(np.float32)
        if p.shape.rows is not None:
            U = V = None
        else:
            U = (c * X[None, None, :] + s * Y[None, :, None]).astype(np.float32)
            V = (-s * X[None, None, :] + c * Y[None, :, None]).astype(np.float32)
        allowed = None
        if p.allowed is not None:
            allowed = np.zeros(nlab, bool)
            allowed[list(p.allowed)] = True
        prepared.append((p, box, X, Y, U, V, allowed))

    slab = max(4, SLAB_VOXELS // (grid.shape[1] * grid.shape[2]))
    for k0 in range(0, grid.shape[0], slab):
        k1 = min(k0 + slab, grid.shape[0])
        for p, (sz, sy, sx), X, Y, U, V, allowed in prepared:
            a, b = max(sz.start, k0), min(sz.stop, k1)
            if a >= b:
                continue
            W = (zs[a:b] - tz).astype(np.float32)
            target = out[a:b, sy, sx]
            if U is None:
                lo, hi = p.shape.rows(X, Y[None, :], W[:, None], c, s, rmin)
                m = (X >= lo[..., None]) & (X <= hi[..., None])
            else:
                m = p.shape.inside(U, V, W[:, None, None], rmin)
            if m.dtype != bool:  # a label-valued region
                lab = np.broadcast_to(m, target.shape)
                m = lab > 0
            else:
                lab = None
                m = np.broadcast_to(m, target.shape)
            if allowed is not None:
                m = m & allowed[target]
            if p.remap is not None:
                lab = p.remap[target]
                m = m & (lab > 0)
            if lab is None:
                np.copyto(target, p.label, where=m, casting="unsafe")
            else:
                np.copyto(target, lab, where=m, casting="unsafe")
    return out


# --------------------------------------------------------------------------------------------------
# Patients
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    sex: str  # "M" | "F"
    height_mm: float
    girth: float  # 0.85 (lean) .. 1.35 (obese): subcutaneous and visceral fat
    build: float  # skeletal width factor, ~0.94 .. 1.06
    roll_deg: float  # rotation about the long axis on the table
    organ_scale: dict[str, float] = field(default_factory=dict)  # liver, spleen, kidney, heart, bladder
    bowel_seed: int = 0  # layout of small-bowel loops and gas

    @property
    def weight_kg(self) -> float:
        bmi = 23.5 * self.girth**1.5 * (0.96 if self.sex == "F" else 1.0)
        return round(float(bmi * (self.height_mm / 1000) ** 2), 1)

    @property
    def vscale(self) -> float:
        return self.height_mm / REF_HEIGHT

    @property
    def lscale(self) -> float:
        return self.build * self.vscale**0.8


def sample_patient(rng: np.random.Generator, sex: str | None = None) -> Patient:
    """A plausible adult: height 1.5-1.95 m by sex, girth, build, a few degrees of roll, organ sizes."""
    sex = sex or ("M" if rng.random() < 0.5 else "F")
    mean = 1760.0 if sex == "M" else 1630.0
    height = float(np.clip(rng.normal(mean, 70.0), 1500.0, 1950.0))
    girth = float(np.clip(rng.lognormal(np.log(1.02), 0.11), 0.85, 1.35))
    build = float(np.clip(rng.normal(1.0, 0.025), 0.94, 1.06))
    roll = float(rng.uniform(-4.0, 4.0))
    organs = {k: float(np.clip(rng.normal(1.0, sd), 0.75, 1.35)) for k, sd in
              (("liver", 0.08), ("spleen", 0.12), ("kidney", 0.06), ("heart", 0.06))}
    organs["bladder"] = float(rng.uniform(0.5, 1.4))
    return Patient(sex, height, girth, build, roll, organs, int(rng.integers(0, 2**31)))


def reference_patient(sex: str = "M") -> Patient:
    """The reference adult without variation (tests, previews)."""
    return Patient(sex, REF_HEIGHT if sex == "M" else 1650.0, 1.0, 1.0, 0.0,
                   {"liver": 1.0, "spleen": 1.0, "kidney": 1.0, "heart": 1.0, "bladder": 1.0}, 0)


# --------------------------------------------------------------------------------------------------
# The anatomy program
# --------------------------------------------------------------------------------------------------

SPINE_LEVELS = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
_SEG_LEN = np.array([15, 15, 15.5, 16, 16.5, 17, 18, 19, 20, 20.5, 21, 21.5, 22, 22.5, 23.5, 24.5, 26, 27.5, 29,
                     31, 33, 35, 36, 36.0])
_SEG_LEN = _SEG_LEN * 590.0 / _SEG_LEN.sum()  # C1 top (1575) to L5 bottom (985) in the reference man
_SPINE_TOP = 1575.0
# Vertebral-body centre depth (v) along the spine: cervical and lumbar lordosis, thoracic kyphosis.
_SPINE_V = ([1590, 1500, 1460, 1420, 1380, 1280, 1180, 1110, 1050, 985, 960],
            [14, 6, 12, 30, 45, 57, 52, 40, 24, 30, 36])


@dataclass
class Level:
    name: str
    top: float  # w of the top endplate
    bottom: float  # w of the bottom endplate
    disc_bottom: float  # w of the bottom of the disc below
    v: float  # body centre depth
    au: float  # body half-width
    av: float  # body half-depth
    canal_r: float
    canal_v: float

    @property
    def mid(self) -> float:
        return (self.top + self.bottom) / 2


class Builder:
    """Turns a ``Patient`` into the painter's list. Reference coordinates ``_R`` are scaled on the way."""

    def __init__(self, patient: Patient):
        self.pt = patient
        self.sv = patient.vscale
        self.sl = patient.lscale
        self.lab = internal_labels()
        self.ops: list[Paint] = []
        self.female = patient.sex == "F"
        g = patient.girth
        self.fat_mm = float(np.clip(4.0 + 32.0 * (g - 0.85), 3.0, 22.0))  # subcutaneous fat, chest
        self.levels = self._spine_levels()

    # -- helpers -----------------------------------------------------------------------------------
    def P(self, u: float, v: float, w: float) -> np.ndarray:
        return np.array([u * self.sl, v * self.sl, w * self.sv])

    def A(self, au: float, av: float, aw: float, k: float = 1.0) -> np.ndarray:
        return np.array([au * self.sl, av * self.sl, aw * self.sv]) * k

    def r(self, r: float) -> float:
        return r * self.sl

    def add(self, shape: Shape, name: str, allowed: Sequence[str] | None = None, labels: Sequence[str] = ()):
        """Append a paint; ``labels``: the structures a label-valued shape may return (for bounds)."""
        allowed_ids = None if allowed is None else frozenset(0 if a == "outside" else self.lab[a] for a in allowed)
        self.ops.append(Paint(shape, self.lab[name], allowed_ids, name, tuple(self.lab[n] for n in labels)))

    def ellipsoid(self, name, c, a, rot=None, thin=False, allowed=None, k=1.0):
        self.add(Ellipsoid(self.P(*c), self.A(*a, k=k), rot, thin), name, allowed)

    def tube(self, name, pts, radii, thin=False, allowed=None):
        pts = [self.P(*p) for p in pts]
        radii = np.broadcast_to(np.asarray(radii, float), (len(pts),)) * self.sl
        for i in range(len(pts) - 1):
            self.add(Capsule(pts[i], pts[i + 1], float(radii[i]), float(radii[i + 1]), thin), name, allowed)

    def sided(self, u: float, side: str) -> float:
        return u if side == "left" else -u

    # -- spine -------------------------------------------------------------------------------------
    def _spine_levels(self) -> list[Level]:
        out = []
        top = _SPINE_TOP
        for i, name in enumerate(SPINE_LEVELS):
            ln = _SEG_LEN[i]
            f = i / 23.0
            bottom = top - 0.78 * ln
            mid = (top + bottom) / 2
            v = float(np.interp(mid, _SPINE_V[0][::-1], _SPINE_V[1][::-1]))
            au, av = 12.0 + 14.0 * f**1.1, 8.5 + 8.5 * f
            canal_r = 9.5 - 2.0 * np.sin(np.pi * min(f * 1.25, 1.0))  # narrower in the thoracic spine
            canal_v = v + av + canal_r + 1.5
            out.append(Level(name, top, bottom, top - ln, v, au, av, canal_r, canal_v))
            top -= ln
        return out

    def level(self, name: str) -> Level:
        return self.levels[SPINE_LEVELS.index(name)]

    # -- the whole body ------------------------------------------------------------------------------
    def build(self) -> list[Paint]:
        self.body_outline()
        self.head()
        self.neck()
        self.thorax()
        self.abdomen()
        self.pelvis_organs()
        self.spine()
        self.ribs_and_shoulder()
        self.pelvis_and_legs()
        self.node_stations()
        self.lung_vessels()
        return self.ops

    # Trunk lean (muscle) outline keyframes: w, half-width, half-depth, centre depth.
    TRUNK = np.array([
        [1575, 52, 57, 5], [1500, 53, 58, 5], [1462, 60, 60, 6], [1445, 105, 80, 6], [1425, 150, 95, 4],
        [1395, 158, 100, 2], [1350, 150, 105, 0], [1250, 146, 108, 0], [1170, 138, 107, 0], [1100, 126, 103, 0],
        [1050, 124, 98, 2], [1010, 138, 99, 4], [940, 154, 99, 8], [890, 156, 96, 10], [862, 132, 92, 12],
        [835, 70, 72, 14],
    ], float)

    def trunk_profile(self) -> Profile:
        t = self.TRUNK
        hips = np.where(t[:, 0] < 1060, 1.06 if self.female else 1.0, 1.0)
        return Profile(t[:, 0] * self.sv, t[:, 1] * self.sl * hips, t[:, 2] * self.sl, t[:, 3] * self.sl)

    def fat_profile(self, lean: Profile) -> Profile:
        """Subcutaneous fat over the lean outline: thin on the neck, thick over the belly and hips."""
        w = lean.w / self.sv
        f = self.fat_mm
        region = np.interp(w, [850, 960, 1060, 1150, 1300, 1440, 1480, 1575],
                           [1.4, 1.5, 1.7, 1.3, 1.0, 0.9, 0.55, 0.45])
        if self.female:
            region = region * np.interp(w, [850, 1000, 1100], [1.35, 1.25, 1.0])
        lateral = f * region
        front = f * region * np.interp(w, [850, 1000, 1100, 1200, 1300], [1.2, 1.6, 1.5, 1.1, 1.0])
        back = f * region * 0.8
        return lean.grown(lateral, front, back)

    def body_outline(self):
        lean = self.trunk_profile()
        w_lo, w_hi = 830 * self.sv, 1575 * self.sv
        self.add(Slab(self.fat_profile(lean), w_lo, w_hi, flat_back=0.9), "body_fat")
        # Head and face (skin), arms and legs with their fat.
        self.limbs(fat=True)
        self.ellipsoid("body_fat", (0, 8, 1650), (79, 99, 104))
        self.ellipsoid("body_fat", (0, -30, 1578), (63, 68, 66))
        self.add(Slab(lean, w_lo, w_hi, flat_back=0.9), "muscle")
        self.limbs(fat=False)
        self.ellipsoid("muscle", (0, 8, 1650), (75, 95, 100))
        self.ellipsoid("muscle", (0, -30, 1578), (60, 65, 62))

    def limb(self, name: str, pts, radii):
        """A limb: a tube whose circular cross-section follows a polyline (nearly vertical), capped."""
        pts = np.array([self.P(*p) for p in pts])
        r = np.asarray(radii, float) * self.sl
        prof = Profile(pts[:, 2], r, r, pts[:, 1], pts[:, 0])
        self.add(Slab(prof, float(pts[:, 2].min()), float(pts[:, 2].max())), name)

    def limbs(self, fat: bool):
        f = self.fat_mm * (0.8 if not self.female else 1.0) / self.sl if fat else 0.0
        thigh = 1.3 if (fat and self.female) else 1.0
        name = "body_fat" if fat else "muscle"
        for side in ("left", "right"):
            s = 1 if side == "left" else -1
            # arm: shoulder -> elbow -> wrist, then the hand
            self.limb(name, [(s * 178, 14, 1412), (s * 196, 20, 1120), (s * 203, 8, 870)],
                      [44 + f, 36 + f, 26 + f * 0.6])
            self.ellipsoid(name, (s * 178, 14, 1412), (44 + f, 44 + f, 30 + f))
            self.ellipsoid(name, (s * 204, 0, 795), (20 + f * 0.3, 42, 78))
            # leg: hip -> knee -> ankle, then the foot (pointing anterior, supine)
            self.limb(name, [(s * 88, 6, 905), (s * 91, 5, 720), (s * 94, 4, 520), (s * 95, 10, 380),
                             (s * 95, 10, 250), (s * 95, 8, 80)],
                      [82 + f * 1.1 * thigh, 72 + f * thigh, 50 + f * 0.8, 55 + f * 0.8, 44 + f * 0.6,
                       30 + f * 0.3])
            self.ellipsoid(name, (s * 95, 8, 80), (30 + f * 0.3, 30 + f * 0.3, 20))
            self.ellipsoid(name, (s * 95, -45, 48), (38 + f * 0.3, 110, 40 + f * 0.2))

    # -- head --------------------------------------------------------------------------------------
    def head(self):
        skull_base = 1590.0
        sb = skull_base * self.sv
        outer = Ellipsoid(self.P(0, 8, 1650), self.A(70, 90, 95))
        inner = Ellipsoid(self.P(0, 8, 1650), self.A(63, 83, 88))

        def skull(U, V, W, rmin):
            return outer.inside(U, V, W, rmin) & ~inner.inside(U, V, W, rmin) & (W > sb)

        lo, hi = outer.bounds()
        self.add(Implicit(lo, hi, skull), "skull")
        self.ellipsoid("skull", (0, 10, skull_base + 2), (60, 78, 9))  # skull base plate
        brain_in = Ellipsoid(self.P(0, 8, 1652), self.A(62, 82, 86))
        self.add(Implicit(*brain_in.bounds(), lambda U, V, W, r: brain_in.inside(U, V, W, r) & (W > sb + 10)),
                 "brain")
        self.ellipsoid("brain", (0, 45, 1612), (45, 32, 20))  # cerebellum
        self.tube("brain", [(0, 25, 1612), (0, 28, 1588)], 11)  # brainstem
        for s in (1, -1):
            self.ellipsoid("eye", (s * 32, -68, 1625), (12, 12, 12))
            self.ellipsoid("sinus_air", (s * 27, -48, 1585), (14, 18, 17))
            self.tube("mandible", [(s * 48, -2, 1565), (s * 47, -12, 1525), (s * 25, -70, 1512), (0, -82, 1510)],
                      7, thin=True)
        self.ellipsoid("sinus_air", (0, -62, 1592), (9, 26, 22))  # nasal cavity
        self.ellipsoid("nasopharynx", (0, -30, 1572), (20, 12, 12), thin=True)
        self.ellipsoid("nasopharynx_air", (0, -34, 1574), (9, 5, 8))
        self.ellipsoid("tonsil", (0, -22, 1548), (16, 9, 10))
        self.tube("airway", [(0, -34, 1566), (0, -22, 1545), (0, -25, 1515), (0, -28, 1490)], [6, 7, 7, 8])
        for side in ("left", "right"):
            s = 1 if side == "left" else -1
            self.ellipsoid(f"parotid_{side}", (s * 55, 18, 1562), (12, 16, 22), thin=True)
            self.ellipsoid(f"submandibular_{side}", (s * 33, -28, 1516), (11, 11, 9), thin=True)

    # -- neck --------------------------------------------------------------------------------------
    def neck(self):
        self.tube("airway_wall", [(0, -28, 1492), (0, -24, 1420), (0, -8, 1368)], 11)
        self.tube("trachea", [(0, -28, 1492), (0, -24, 1420), (0, -8, 1368)], 8.5, thin=True)
        for s in (1, -1):
            self.tube("airway_wall", [(0, -8, 1368), (s * 34, -2, 1348), (s * 56, 4, 1322)], 7.5)
            self.tube("trachea", [(0, -8, 1368), (s * 34, -2, 1348), (s * 56, 4, 1322)], 5.5)
        self.tube("esophagus", [(0, -10, 1495), (2, -4, 1430), (6, 22, 1350), (10, 28, 1260), (20, 20, 1200),
                                (38, 5, 1178)], 7, thin=True)
        for s in (1, -1):
            self.ellipsoid("thyroid", (s * 17, -27, 1462), (8, 9, 20), thin=True)
            # carotid artery and jugular vein
            self.tube("vessel", [(s * 22, -12, 1440), (s * 26, -8, 1555)], 4)
            self.tube("vessel", [(s * 32, -6, 1440), (s * 38, 0, 1555)], 6)
        self.ellipsoid("thyroid", (0, -37, 1455), (10, 4, 6))

    # -- thorax ------------------------------------------------------------------------------------
    # Rib-cage (rib centre line) keyframes: w, half-width A, half-depth B, centre depth.
    CAGE = np.array([[1478, 28, 28, 32], [1455, 62, 52, 22], [1420, 95, 70, 12], [1370, 118, 82, 6],
                     [1300, 128, 88, 2], [1250, 131, 89, 0], [1200, 129, 88, 0], [1150, 124, 85, 0],
                     [1100, 115, 80, 0]], float)

    def cage(self) -> Profile:
        c = self.CAGE
        return Profile(c[:, 0] * self.sv, c[:, 1] * self.sl, c[:, 2] * self.sl, c[:, 3] * self.sl)

    def diaphragm(self, U, V):
        """w of the diaphragm surface under (u, v): two domes, right higher, recesses low at the back."""
        sl, sv = self.sl, self.sv
        right = 1255 * sv - 95 * sv * (((U + 60 * sl) / (115 * sl)) ** 2 + ((V - 0 * sl) / (105 * sl)) ** 2)
        left = 1238 * sv - 95 * sv * (((U - 62 * sl) / (115 * sl)) ** 2 + ((V - 5 * sl) / (105 * sl)) ** 2)
        return np.maximum(right, left)

    def heart_frame(self):
        d = np.array([0.55, -0.45, -0.70])
        d /= np.linalg.norm(d)
        e1 = np.cross(d, [0, 0, 1.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(d, e1)
        return np.stack([d, e1, e2], axis=1)  # columns: long axis, two short axes

    def thorax(self):
        cage = self.cage()
        inset = 7.0 * self.sl
        cavity_prof = Profile(cage.w, cage.a - inset, cage.b - inset, cage.cv)
        apex = 1480 * self.sv
        hs = self.pt.organ_scale.get("heart", 1.0)
        rot = self.heart_frame()
        heart_c = self.P(24, -22, 1284)
        heart_ax = self.A(66, 52, 46) * hs
        heart = Ellipsoid(heart_c, heart_ax, rot)
        heart_pad = Ellipsoid(heart_c, heart_ax + 7 * self.sl, rot)
        levels = self.levels
        sv, sl = self.sv, self.sl
        med_w = np.array([1480, 1420, 1380, 1340, 1280, 1200]) * sv
        med_half = np.array([20, 27, 32, 30, 26, 24]) * sl
        med_cu = np.array([0, 2, 4, 4, 4, 4]) * sl
        sp_w = np.array([lv.mid for lv in levels]) * sv
        sp_v = np.array([lv.v - lv.av for lv in levels]) * sl
        sp_au = np.array([lv.au + 7 for lv in levels]) * sl

        def cavity(U, V, W, rmin):
            a, b, cu, cv = cavity_prof.at(W)
            inside = ((U / a) ** 2 + ((V - cv) / b) ** 2 <= 1.0) & (W < apex)
            return inside & (W > self.diaphragm(U, V))

        def mediastinum(U, V, W):
            half = _interp(W, med_w, med_half)
            cu = _interp(W, med_w, med_cu)
            spine_front = _interp(W, sp_w, sp_v)
            band = (np.abs(U - cu) < half) & (V < spine_front + 8 * sl)
            spine_au = _interp(W, sp_w, sp_au)
            paravertebral = (np.abs(U) < spine_au) & (V >= spine_front - 2 * sl)
            return band | paravertebral | heart_pad.inside(U, V, W, 0.0)

        lo = np.array([-140 * sl, -100 * sl, 1120 * sv])
        hi = np.array([140 * sl, 100 * sl, apex])
        self.add(Implicit(lo, hi, cavity), "mediastinal_fat")
        pleura_t = 4.0 * sl
        # Fissures: oblique (both lungs) high at the back, low at the front; horizontal (right).
        w_obl = lambda V: (1305 + 0.75 * V / sl) * sv  # noqa: E731
        w_hor = 1318 * sv
        lab = self.lab

        pleura_lut = np.array([lab["pleura_right"], lab["pleura_left"]], np.uint16)
        lobe_lut = np.array([lab[n] for n in ("lung_lower_lobe_right", "lung_middle_lobe_right",
                                              "lung_upper_lobe_right", "lung_lower_lobe_left",
                                              "lung_upper_lobe_left")], np.uint16)

        def lungs(U, V, W, rmin):
            """Pleural shell and lobes: labels over the thoracic cavity outside the mediastinum."""
            a, b, cu, cv = cavity_prof.at(W)
            t = max(pleura_t, rmin * 1.1)
            dia = self.diaphragm(U, V)
            rel = (U / a) ** 2 + ((V - cv) / b) ** 2
            lung = (rel <= 1.0) & (W < apex) & (W > dia) & ~mediastinum(U, V, W)
            inner = (((U / (a - t)) ** 2 + ((V - cv) / (b - t)) ** 2) <= 1.0) & (W < apex - t * 0.5) & (
                W > dia + t * 0.3)
            left = U >= 0
            upper = W > w_obl(V)
            lobe = np.where(left, 3 + upper, np.where(upper, 1 + (W > w_hor), 0))
            out = np.where(inner, lobe_lut[lobe], pleura_lut[left.astype(np.intp)])
            return np.where(lung, out, 0).astype(np.uint16)

        lung_names = ["pleura_right", "pleura_left"] + [n for n in anatomy.structures() if n.startswith("lung_")]
        self.add(Implicit(lo, hi, lungs), "pleura_right", allowed=["mediastinal_fat"], labels=lung_names)

        # Heart on the diaphragm: blood pool, left-ventricular wall, LV cavity.
        above = lambda U, V, W, r: W > self.diaphragm(U, V) + 3 * sv  # noqa: E731
        self.add(Implicit(*heart.bounds(), lambda U, V, W, r: heart.inside(U, V, W, r) & above(U, V, W, r)),
                 "heart_blood")
        lv_c = heart_c + rot[:, 0] * 14 * sl + rot[:, 1] * 16 * sl
        lv_wall = Ellipsoid(lv_c, np.array([50, 30, 30]) * sl * hs, rot)
        lv_cav = Ellipsoid(lv_c + rot[:, 0] * -4 * sl, np.array([36, 18, 18]) * sl * hs, rot)
        self.add(Implicit(*lv_wall.bounds(), lambda U, V, W, r: lv_wall.inside(U, V, W, r) & heart.inside(
            U, V, W, r) & above(U, V, W, r)), "heart")
        self.add(lv_cav, "heart_blood")
        # Great vessels.
        self.tube("aorta", [(-6, -22, 1300), (-6, -26, 1368), (4, -12, 1394), (20, 14, 1386), (26, 34, 1360),
                            (25, 38, 1300), (18, 38, 1220), (8, 30, 1175), (4, 20, 1110), (3, 17, 1045)],
                  [14, 14, 12.5, 12, 11.5, 11.5, 11, 10.5, 10, 9.5], thin=True)
        self.tube("vessel", [(-24, -20, 1400), (-20, -12, 1320)], 9)  # SVC
        self.tube("vessel", [(10, -44, 1312), (10, -20, 1352), (-38, -2, 1346)], [12, 11, 8])  # pulmonary
        self.tube("vessel", [(10, -20, 1350), (40, 4, 1344)], [10, 8])
        # Breasts over the pectoral muscles: centred on the skin line in front of the nipple line.
        fat = self.fat_profile(self.trunk_profile())
        for side in ("left", "right"):
            s = 1 if side == "left" else -1
            w = (1322 if self.female else 1345) * sv
            a_f, b_f, _, cv_f = (float(x) for x in fat.at(np.float64(w)))
            u = 88 * sl
            front = (cv_f - b_f * np.sqrt(max(1 - (u / a_f) ** 2, 0.05))) / sl
            if self.female:
                size = 1.0 + 0.6 * (self.pt.girth - 0.85)
                self.ellipsoid(f"breast_{side}", (s * 88, front - 12 * size, 1322), (58 * size, 40 * size, 55 * size),
                               allowed=["outside", "body_fat", "muscle"])
                self.ellipsoid("body_fat", (s * 88, front - 30 * size, 1322), (45 * size, 24 * size, 42 * size),
                               allowed=[f"breast_{side}"])
            else:
                self.ellipsoid(f"breast_{side}", (s * 88, front + 5, 1345), (22, 6, 20), thin=True,
                               allowed=["body_fat", "muscle"])

    # -- abdomen -----------------------------------------------------------------------------------
    def abdomen(self):
        sv, sl = self.sv, self.sl
        lean = self.trunk_profile()
        cav = Profile(lean.w, lean.a - 16 * sl, lean.b - 17 * sl, lean.cv - 6 * sl)
        sp_w = np.array([lv.mid for lv in self.levels]) * sv
        sp_v = np.array([lv.v - lv.av for lv in self.levels]) * sl

        def cavity(U, V, W, rmin):
            a, b, cu, cv = cav.at(W)
            spine_front = _interp(W, sp_w, sp_v)
            ok = (U / a) ** 2 + ((V - cv) / b) ** 2 <= 1.0
            ok &= ~((np.abs(U) < 48 * sl) & (V > spine_front - 4 * sl))
            return ok & (W < self.diaphragm(U, V) - 3 * sv) & (W > 870 * sv)

        self.add(Implicit(np.array([-150 * sl, -120 * sl, 860 * sv]), np.array([150 * sl, 110 * sl, 1260 * sv]),
                          cavity), "body_fat")
        below = lambda U, V: self.diaphragm(U, V) - 4 * sv  # noqa: E731

        # Psoas muscles beside the lumbar spine.
        for s in (1, -1):
            self.tube("muscle", [(s * 24, 38, 1160), (s * 42, 36, 1040), (s * 58, 10, 950), (s * 70, -10, 890)],
                      [9, 22, 20, 14])
        # Small-bowel loops: a persistent random walk in the lower abdomen.
        self.small_bowel()

        # Liver under the right dome, with Couinaud-like segments cut by planes.
        ls = self.pt.organ_scale.get("liver", 1.0)
        e1 = Ellipsoid(self.P(-48, 4, 1172), self.A(98, 88, 82, ls), _rotation("w", -10))
        e2 = Ellipsoid(self.P(18, -38, 1192), self.A(68, 40, 36, ls), _rotation("w", -15))
        caudate = Ellipsoid(self.P(-8, 30, 1168), self.A(16, 14, 26))
        lab = self.lab
        w_p = 1172 * sv

        def liver(U, V, W, rmin):
            """Couinaud-like segments inside the liver envelope (labels; 0 outside)."""
            inside = (e1.inside(U, V, W, rmin) | e2.inside(U, V, W, rmin)) & (W < below(U, V))
            inside &= ~((U > -14 * sl) & (V > -6 * sl)) | caudate.inside(U, V, W, 0.0)  # aorta, celiac axis
            falciform = U > (8 + 0.25 * V / sl) * sl
            cantlie = U > (-20 + 0.12 * V / sl) * sl
            # right hepatic vein plane: through the IVC (-20, 30) towards the lateral edge (-130, -25)
            posterior = (V - 30 * sl) * (-110) - (U + 20 * sl) * (-55) < 0
            sup = W > w_p
            seg = np.where(falciform, np.where(sup, 2, 3),
                           np.where(cantlie, 4, np.where(posterior, np.where(sup, 7, 6), np.where(sup, 8, 5))))
            seg = np.where(caudate.inside(U, V, W, 0.0), 1, seg)
            table = np.array([0] + [lab[f"liver_segment_{i}"] for i in range(1, 9)], np.uint16)
            return np.where(inside, table[seg], 0).astype(np.uint16)

        lo = np.minimum(e1.bounds()[0], e2.bounds()[0])
        hi = np.maximum(e1.bounds()[1], e2.bounds()[1])
        self.add(Implicit(lo, hi, liver), "liver_segment_5", labels=[f"liver_segment_{i}" for i in range(1, 9)])
        self.ellipsoid("gallbladder", (-42, -50, 1118), (14, 14, 32), _rotation("u", 25))
        self.tube("vessel", [(-26, 18, 1000), (-26, 20, 1100), (-22, 28, 1180), (-18, 4, 1252)], [11, 12, 12, 13])

        # Spleen, kidneys, adrenals.
        ss = self.pt.organ_scale.get("spleen", 1.0)
        sp = Ellipsoid(self.P(92, 48, 1196), self.A(26, 45, 52, ss), _rotation("w", 35))
        self.add(Implicit(*sp.bounds(), lambda U, V, W, r: sp.inside(U, V, W, r) & (W < below(U, V))), "spleen")
        ks = self.pt.organ_scale.get("kidney", 1.0)
        for side, w_c in (("left", 1136), ("right", 1120)):
            s = 1 if side == "left" else -1
            rot = _rotation("w", s * 30) @ _rotation("v", s * -12)
            self.ellipsoid(f"kidney_{side}", (s * 70, 52, w_c), (27, 22, 52), rot, k=ks)
            self.ellipsoid(f"kidney_pelvis_{side}", (s * 56, 45, w_c - 4), (10, 8, 18), rot)
        near = ["body_fat", "muscle"] + [f"liver_segment_{i}" for i in range(1, 9)] + ["spleen"]
        self.ellipsoid("adrenal_left", (40, 36, 1186), (5, 13, 19), _rotation("w", 30), thin=True, allowed=near)
        self.ellipsoid("adrenal_right", (-36, 40, 1192), (5, 13, 19), _rotation("w", -30), thin=True, allowed=near)

        # Stomach: wall, content, a gas cap anteriorly (supine).
        st_pts = [(62, 12, 1215), (58, -22, 1168), (22, -52, 1130), (-14, -36, 1124)]
        st_r = [36, 32, 22, 13]
        self.tube("stomach", st_pts, st_r)
        self.tube("stomach_content", st_pts, [r - 5 for r in st_r])
        gas_v = -20 * sl
        stc = [Capsule(self.P(*st_pts[i]), self.P(*st_pts[i + 1]), (st_r[i] - 5) * sl, (st_r[i + 1] - 5) * sl)
               for i in range(len(st_pts) - 1)]
        for c in stc:
            self.add(Implicit(*c.bounds(), lambda U, V, W, r, c=c: c.inside(U, V, W, r) & (V < gas_v)),
                     "stomach_gas")
        # Duodenum (small bowel) and pancreas.
        self.tube("small_bowel", [(-14, -36, 1124), (-38, -14, 1118), (-42, 8, 1092), (-20, 10, 1072),
                                  (20, 2, 1082)], 12)
        self.tube("pancreas", [(-26, -8, 1116), (-2, -22, 1130), (36, -10, 1142), (78, 32, 1160)],
                  [15, 11, 11, 9], thin=True)

        # Colon frame: cecum, ascending, transverse, descending, sigmoid, rectum; some segments gas-filled.
        rng = np.random.default_rng(self.pt.bowel_seed + 1)
        col = [(-80, -8, 985), (-90, 14, 1030), (-88, 14, 1108), (-72, -22, 1128), (-28, -62, 1078),
               (30, -62, 1082), (84, -2, 1152), (94, 22, 1100), (90, 22, 1010), (58, -8, 962), (18, -12, 950),
               (2, 40, 925), (0, 46, 880), (0, 52, 848)]
        rad = [25, 24, 23, 21, 20, 20, 19, 18, 18, 16, 16, 18, 17, 12]
        self.tube("colon", col, rad)
        for i in range(len(col) - 1):
            if rng.random() < (0.8 if 3 <= i <= 6 else 0.35):
                c = Capsule(self.P(*col[i]), self.P(*col[i + 1]), (rad[i] - 4) * sl, (rad[i + 1] - 4) * sl)
                self.add(c, "colon_gas")
        # Abdominal vessels to the legs (iliac, femoral).
        for s in (1, -1):
            self.tube("vessel", [(3, 17, 1045), (s * 38, 16, 995), (s * 56, -8, 955), (s * 72, -35, 905),
                                 (s * 82, -40, 870), (s * 88, -25, 800)], [8, 7, 6.5, 6, 6, 6])

    def small_bowel(self):
        rng = np.random.default_rng(self.pt.bowel_seed)
        sl = self.sl
        lo, hi = np.array([-85.0, -75.0, 955.0]), np.array([85.0, 5.0, 1090.0])
        p = np.array([rng.uniform(-50, 50), -30.0, rng.uniform(980, 1060)])
        d = rng.normal(size=3)
        d[2] *= 0.5
        pts = [p.copy()]
        for _ in range(70):
            d = 0.75 * d / np.linalg.norm(d) + 0.55 * rng.normal(size=3)
            d /= np.linalg.norm(d)
            q = p + 18.0 * d
            bounce = (q < lo) | (q > hi)
            d[bounce] *= -1
            p = np.clip(p + 18.0 * d, lo, hi)
            pts.append(p.copy())
        self.tube("small_bowel", [tuple(x) for x in pts], 12.5, allowed=["body_fat"])
        for i in range(0, len(pts) - 1, 9):
            self.add(Capsule(self.P(*pts[i]), self.P(*pts[i + 1]), 6.5 * sl, 6.5 * sl), "bowel_gas",
                     allowed=["small_bowel"])

    def pelvis_organs(self):
        bs = self.pt.organ_scale.get("bladder", 1.0) ** (1 / 3)
        self.ellipsoid("bladder", (0, -46, 902 + 8 * bs), (44 * bs, 34 * bs, 36 * bs))
        if self.female:
            self.ellipsoid("uterus", (0, 2, 935), (30, 22, 40), _rotation("u", -35))
        else:
            self.ellipsoid("prostate", (0, -30, 862), (20, 16, 17), thin=True)

    # -- skeleton ----------------------------------------------------------------------------------
    def spine(self):
        sl, sv = self.sl, self.sv
        for i, lv in enumerate(self.levels):
            name = f"vertebra_{lv.name}"
            f = i / 23.0
            h = lv.top - lv.bottom
            # disc below the body
            self.add(Cylinder(self.P(0, lv.v, 0)[:2], np.array([lv.au, lv.av]) * sl * 0.96,
                              lv.disc_bottom * sv, lv.bottom * sv, thin=True), "intervertebral_disc")
            self.add(Cylinder(self.P(0, lv.v, 0)[:2], np.array([lv.au, lv.av]) * sl, lv.bottom * sv, lv.top * sv,
                              thin=True), name)
            # posterior arch: a ring around the canal, spinous and transverse processes
            t = 5.0 + 2.0 * f
            wc = lv.top - 0.45 * h
            ring = Cylinder(self.P(0, lv.canal_v, 0)[:2], np.array([lv.canal_r + t] * 2) * sl, (wc - 0.35 * h) * sv,
                            (wc + 0.35 * h) * sv)
            self.add(ring, name)
            sp_len = 18 + 18 * np.sin(np.pi * min(f * 1.3, 1.0)) + 6 * f
            back = lv.canal_v + lv.canal_r + t - 2
            self.tube(name, [(0, back, wc), (0, back + sp_len, wc - 0.4 * sp_len)], [4.5 + 1.5 * f, 3.5 + 1.5 * f],
                      thin=True)
            tp = 16 + 16 * f
            for s in (1, -1):
                self.tube(name, [(s * (lv.canal_r + 2), lv.canal_v - 2, wc), (s * (lv.canal_r + t + tp),
                                                                              lv.canal_v + 6, wc + 1)],
                          [5.0, 4.0], thin=True)
        # Canal and cord along the spine.
        canal = [(0, self.levels[0].canal_v, 1590)] + [(0, lv.canal_v, lv.mid) for lv in self.levels]
        canal += [(0, self.levels[-1].canal_v + 10, 960)]
        radii = [9.5] + [lv.canal_r for lv in self.levels] + [7]
        self.tube("canal", canal, radii)
        l1 = self.level("L1").mid
        cord = [p for p in canal if p[2] >= l1]
        self.tube("spinal_cord", cord, [6 if p[2] > self.level("T1").top else 5 for p in cord], thin=True)
        self.tube("spinal_cord", [(0, 28, 1590), (0, self.levels[0].canal_v, self.levels[0].mid)], 6)
        # Sacrum and coccyx below L5.
        l5 = self.levels[-1]
        sac = [(0, l5.v + 4, 970, 42, 17, 13), (0, l5.v + 16, 947, 36, 15, 12), (0, l5.v + 28, 926, 28, 13, 11),
               (0, l5.v + 36, 907, 20, 11, 10), (0, l5.v + 40, 889, 13, 9, 9), (0, l5.v + 38, 870, 8, 7, 9)]
        for u, v, w, au, av, aw in sac:
            self.ellipsoid("sacrum", (u, v, w), (au, av, aw), _rotation("u", -25), thin=True)
        for s in (1, -1):  # sacral ala
            self.ellipsoid("sacrum", (s * 34, l5.v + 12, 962), (20, 14, 16), thin=True)

    def rib_path(self, k: int, side: str) -> tuple[list[tuple[float, float, float]], int]:
        """Centre line of rib k (reference coordinates) and the index where its cartilage starts."""
        lv = self.level(f"T{k}")
        s = 1 if side == "left" else -1
        w0 = lv.top - 0.3 * (lv.top - lv.bottom)
        tp = 16 + 16 * (SPINE_LEVELS.index(lv.name) / 23.0)
        pts = [(s * (lv.au + 3), lv.v + 2, w0), (s * (lv.canal_r + 6 + tp * 0.8), lv.canal_v + 5, w0 - 2)]
        phi_end = [2.78, 2.62, 2.6, 2.6, 2.58, 2.55, 2.5, 2.35, 2.2, 2.05, 1.7, 1.35][k - 1]
        drop = [30, 52, 66, 76, 84, 90, 94, 94, 90, 80, 62, 46][k - 1]
        c = self.CAGE
        u1 = abs(pts[1][0]) + 16
        n = 11
        w_prev = w0 - 3
        a0 = np.interp(w0, c[::-1, 0], c[::-1, 1])
        phi1 = float(np.arcsin(min(u1 / a0, 0.95)))
        for j in range(n):
            phi = phi1 + (phi_end - phi1) * j / (n - 1)
            w = w_prev - (drop * (((j + 1) / n) ** 1.25 - (j / n) ** 1.25))
            a = np.interp(w, c[::-1, 0], c[::-1, 1])
            b = np.interp(w, c[::-1, 0], c[::-1, 2])
            cv = np.interp(w, c[::-1, 0], c[::-1, 3])
            pts.append((s * a * np.sin(phi), cv + b * np.cos(phi), w))
            w_prev = w
        bone_end = len(pts)
        if k <= 7:  # costal cartilage to the sternal edge
            w_st = 1415 - (1415 - 1272) * (k - 1) / 6
            pts.append((s * 16, -94 if k > 1 else -86, w_st))
        return pts, bone_end

    def ribs_and_shoulder(self):
        for side in ("left", "right"):
            s = 1 if side == "left" else -1
            for k in range(1, 13):
                pts, bone_end = self.rib_path(k, side)
                self.tube(f"rib_{side}_{k}", pts[:bone_end], [5.5] + [5.0] * (bone_end - 1), thin=True)
                if bone_end < len(pts):
                    self.tube("cartilage", pts[bone_end - 1:], 4.5)
            # clavicle, scapula, humerus
            self.tube(f"clavicle_{side}", [(s * 22, -74, 1432), (s * 70, -74, 1442), (s * 118, -48, 1447),
                                           (s * 152, -8, 1440)], [9, 8, 7.5, 8], thin=True)
            rot = _rotation("w", s * -32)
            self.ellipsoid(f"scapula_{side}", (s * 98, 78, 1372), (42, 5, 62), rot, thin=True)
            self.ellipsoid(f"scapula_{side}", (s * 148, 32, 1408), (10, 15, 18), thin=True)  # glenoid
            self.tube(f"scapula_{side}", [(s * 66, 90, 1418), (s * 140, 62, 1436), (s * 160, 24, 1436)], 6,
                      thin=True)  # spine of scapula and acromion
            self.ellipsoid(f"humerus_{side}", (s * 172, 14, 1408), (23, 23, 24))
            self.tube(f"humerus_cortex_{side}", [(s * 176, 16, 1392), (s * 196, 21, 1140)], 11, thin=True)
            self.tube(f"humerus_marrow_{side}", [(s * 177, 16, 1370), (s * 195, 21, 1165)], 6)
            self.ellipsoid(f"humerus_{side}", (s * 198, 20, 1128), (28, 14, 14))
            # forearm bones (not segmented)
            for du in (-10, 10):
                self.tube("limb_bone", [(s * (198 + du), 16, 1110), (s * (204 + du), 6, 880)], 6)
        # sternum: manubrium, body, xiphoid
        self.ellipsoid("sternum", (0, -80, 1405), (26, 8, 22), thin=True)
        self.tube("sternum", [(0, -86, 1382), (0, -94, 1280)], 9, thin=True)
        self.ellipsoid("sternum", (0, -95, 1262), (8, 5, 12))

    def pelvis_and_legs(self):
        sl, sv = self.sl, self.sv
        wide = 1.06 if self.female else 1.0
        for side in ("left", "right"):
            s = (1 if side == "left" else -1) * wide
            cx = s * 48 * sl

            # Iliac wing: a curved plate (part of a widening cylinder) from the SI joint round to the ASIS.
            def wing(U, V, W, rmin, cx=cx, s=s):
                w = W / sv
                R = (50 + 0.28 * (w - 930)) * sl
                du, dv = (U - cx) * np.sign(s), V - 8 * sl
                rr = np.sqrt(du * du + dv * dv)
                ang = np.arctan2(-dv, du)  # 0 = lateral, +pi/2 = anterior
                half_t = np.maximum(4.5 * sl + 0.12 * np.maximum(960 - w, 0) * sl, rmin * 0.8)
                crest = 1036 - 20 * (np.abs(ang - 0.2)) ** 2  # highest laterally (iliac crest at L4)
                return (np.abs(rr - R) < half_t) & (ang > -1.85) & (ang < 0.7) & (w > 915) & (w < crest)

            lo = np.array([cx - 110 * sl, -110 * sl, 910 * sv])
            hi = np.array([cx + 110 * sl, 110 * sl, 1050 * sv])
            self.add(Implicit(lo, hi, wing), f"ilium_{side}")
            self.ellipsoid(f"ilium_{side}", (s * 88, -2, 928), (24, 26, 20))  # acetabular roof
            self.tube(f"pubis_{side}", [(s * 78, -22, 905), (s * 14, -66, 878)], [12, 10], thin=True)
            self.ellipsoid(f"pubis_{side}", (s * 11, -68, 868), (10, 11, 20), thin=True)
            self.tube(f"pubis_{side}", [(s * 14, -64, 858), (s * 36, -42, 845)], 8, thin=True)
            self.tube(f"ischium_{side}", [(s * 82, 6, 898), (s * 58, 20, 852)], [15, 13], thin=True)
            self.ellipsoid(f"ischium_{side}", (s * 55, 24, 846), (14, 17, 14), thin=True)
            self.tube(f"ischium_{side}", [(s * 36, -42, 845), (s * 52, 12, 843)], 8, thin=True)
            # femur: head, neck, trochanter, shaft (cortex + marrow), condyles; tibia and fibula
            sd = 1 if side == "left" else -1
            self.ellipsoid(f"femur_{side}", (s * 88, -6, 912), (24, 24, 24))
            self.tube(f"femur_{side}", [(s * 88, -6, 912), (s * 118, 2, 890)], 15)
            self.ellipsoid(f"femur_{side}", (s * 126, 8, 892), (18, 20, 24))
            self.tube(f"femur_cortex_{side}", [(s * 120, 2, 878), (sd * 98, -4, 545)], [14, 13], thin=True)
            self.tube(f"femur_marrow_{side}", [(s * 119, 2, 850), (sd * 98, -4, 580)], [8, 7.5])
            self.ellipsoid(f"femur_{side}", (sd * 96, 2, 522), (40, 30, 30))
            self.ellipsoid(f"tibia_{side}", (sd * 96, 6, 470), (38, 28, 22))
            self.tube(f"tibia_cortex_{side}", [(sd * 96, 2, 455), (sd * 96, 0, 95)], [12, 11], thin=True)
            self.tube(f"tibia_marrow_{side}", [(sd * 96, 2, 430), (sd * 96, 0, 120)], 6)
            self.ellipsoid(f"tibia_{side}", (sd * 96, 0, 78), (20, 20, 15))
            self.tube("limb_bone", [(sd * 124, 14, 455), (sd * 120, 14, 75)], 6)  # fibula
            self.ellipsoid("limb_bone", (sd * 95, -30, 42), (24, 60, 22))  # foot

    # -- lymph-node stations -----------------------------------------------------------------------
    STATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
        # (u for the left side; mirrored for the right), v, w ; half-axes
        "ln_cervical_i": ((18, -46, 1526), (9, 8, 8)),
        "ln_cervical_ii": ((42, -6, 1530), (10, 11, 17)),
        "ln_cervical_iii": ((40, -8, 1492), (10, 11, 13)),
        "ln_cervical_iv": ((38, -8, 1462), (10, 11, 11)),
        "ln_cervical_v": ((48, 30, 1500), (9, 11, 28)),
        "ln_cervical_vi": ((9, -44, 1482), (6, 5, 13)),
        "ln_supraclavicular": ((66, -22, 1452), (12, 12, 9)),
        "ln_axillary": ((140, 0, 1362), (12, 16, 16)),
        "ln_hilar": ((58, 6, 1330), (10, 12, 14)),
        "ln_common_iliac": ((32, 4, 1005), (9, 8, 16)),
        "ln_external_iliac": ((58, -22, 950), (9, 9, 16)),
        "ln_internal_iliac": ((50, 30, 948), (9, 9, 14)),
        "ln_inguinal": ((82, -56, 866), (14, 10, 12)),
    }
    MIDLINE_STATIONS = {
        "ln_mediastinal_2r": ((-18, -14, 1405), (8, 8, 12)),
        "ln_mediastinal_2l": ((16, -14, 1405), (8, 8, 12)),
        "ln_mediastinal_4r": ((-18, -4, 1372), (8, 8, 10)),
        "ln_mediastinal_4l": ((15, -2, 1366), (7, 7, 9)),
        "ln_mediastinal_5": ((30, -10, 1366), (8, 8, 6)),
        "ln_mediastinal_6": ((10, -46, 1380), (9, 8, 12)),
        "ln_mediastinal_7": ((0, 12, 1345), (10, 9, 10)),
        "ln_mediastinal_8": ((-6, 36, 1290), (8, 8, 14)),
        "ln_retroperitoneal_paraaortic": ((24, 22, 1072), (9, 9, 40)),
        "ln_retroperitoneal_aortocaval": ((-12, 4, 1080), (6, 7, 25)),
        "ln_mesenteric": ((6, -40, 1062), (12, 10, 15)),
        "ln_porta_hepatis": ((-28, 4, 1140), (10, 10, 10)),
        "ln_celiac": ((5, 0, 1156), (9, 8, 8)),
    }
    NODE_ALLOWED = ("body_fat", "mediastinal_fat", "muscle", "small_bowel", "soft")
    NODE_ALLOWED_EXTRA = {
        "ln_hilar": ("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right",
                     "lung_upper_lobe_left", "lung_lower_lobe_left", "vessel"),
        "ln_porta_hepatis": tuple(f"liver_segment_{i}" for i in range(1, 9)),
    }

    def station_geometry(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Station structure -> (centre, half-axes) in the body frame (mm)."""
        out = {}
        for key, (c, a) in self.STATIONS.items():
            for side in ("left", "right"):
                u = c[0] if side == "left" else -c[0]
                out[f"{key}_{side}"] = (self.P(u, c[1], c[2]), self.A(*a))
        for key, (c, a) in self.MIDLINE_STATIONS.items():
            out[key] = (self.P(*c), self.A(*a))
        return out

    def lung_vessels(self):
        """Pulmonary vessel trees from each hilum, painted only over lung (as the vessel of that lobe)."""
        rng = np.random.default_rng(self.pt.bowel_seed + 11)
        remap = np.zeros(n_labels(), np.uint16)
        for lobe in LOBES:
            remap[self.lab[lobe]] = self.lab[f"vessel_{lobe}"]
        sl = self.sl
        for s in (1, -1):
            root = np.array([s * 50.0, 6.0, 1326.0])
            primaries = [(s * 0.35, -0.15, 0.92), (s * 0.55, -0.75, -0.1), (s * 0.3, 0.5, -0.8),
                         (s * 0.85, 0.05, -0.5), (s * 0.6, 0.45, 0.35)]
            stack = [(root, np.array(d) / np.linalg.norm(d), 42.0, 4.5, 0) for d in primaries]
            while stack:
                p0, d, length, r, depth = stack.pop()
                p1 = p0 + d * length
                self.ops.append(Paint(Capsule(self.P(*p0), self.P(*p1), r * sl, r * 0.8 * sl), 0, name="vessel",
                                      remap=remap))
                if depth < 5:
                    for sign in (1, -1):
                        axis = _cross(d, rng.normal(size=3))
                        axis /= np.linalg.norm(axis)
                        ang = np.deg2rad(rng.uniform(22, 38)) * sign
                        # Rodrigues rotation of d about the axis (perpendicular to d)
                        nd = d * np.cos(ang) + _cross(axis, d) * np.sin(ang)
                        stack.append((p1, nd, length * rng.uniform(0.68, 0.82), r * 0.72, depth + 1))

    def node_stations(self):
        rng = np.random.default_rng(self.pt.bowel_seed + 7)
        for s in (1, -1):  # axillary fat pockets
            self.ellipsoid("body_fat", (s * 140, 0, 1362), (20, 28, 30), allowed=["muscle"])
        for name, (c, a) in self.station_geometry().items():
            base = name.rsplit("_", 1)[0] if name.endswith(("_left", "_right")) else name
            allowed = list(self.NODE_ALLOWED) + list(self.NODE_ALLOWED_EXTRA.get(base, ()))
            self.add(Ellipsoid(c, a, None, thin=True), name, allowed=allowed)
            # one or two normal nodes (4-7 mm) inside the station
            for _ in range(int(rng.integers(1, 3))):
                off = rng.uniform(-0.4, 0.4, 3) * a
                r = rng.uniform(2.0, 3.5) * self.sl
                self.add(Ellipsoid(c + off, np.array([r, r, r * 1.5])), f"node_{name}", allowed=[name])


def build_phantom(patient: Patient) -> list[Paint]:
    """The painter's list of one patient (body frame, mm)."""
    return Builder(patient).build()


def body_extent(patient: Patient) -> tuple[float, float]:
    """(w_min, w_max) of the patient in the body frame: soles to vertex."""
    return 0.0, patient.height_mm


def structure_bounds(paints: Sequence[Paint]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Internal label -> body-frame bounding box of everything painted with it (for lesion placement)."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for p in paints:
        lo, hi = p.shape.bounds()
        for lab in p.labels or (p.label,):
            if lab in out:
                out[lab] = (np.minimum(out[lab][0], lo), np.maximum(out[lab][1], hi))
            else:
                out[lab] = (lo, hi)
    return out
