"""Shape primitives in the body frame (u = patient left, v = posterior, w = up from the soles; mm).

``inside(U, V, W, rmin)`` takes body coordinates broadcastable as U, V: (1, ny, nx) and W: (nz, 1, 1) and
returns a boolean (nz, ny, nx) mask, or uint16 labels (0 = outside) for a region split into several
structures. Convex shapes instead give ``rows(X, Y, W, c, s, rmin)``: for every grid row (fixed z, y) the
interval [lo, hi] of X it covers, solved in closed form, so their cost is per row, not per voxel (X, Y: LPS
minus the pose shift; c, s: cosine and sine of the roll). ``rmin`` (mm) is the smallest radius a thin shape
may take on this grid so it still holds voxels. A ``Paint`` puts a shape's label into the map, optionally
only over an allowed set of labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


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

