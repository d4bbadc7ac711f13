"""Lesion placement: each planned lesion inside its structure on the CT label map.

``place_lesions`` draws a centre where the location's structure (or, for a node, its station's outline and
the soft tissue beside it) lies, draws an ellipsoid (lobulated for masses), clips it to the tissue it may
occupy, and keeps it whole inside the field of view and ``GAP_VOXELS`` away from every other lesion, so
connected components are instances; ``number_instances`` numbers them as a connected-component labelling of
the mask does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from data_contracts import anatomy, taxonomy
from data_contracts.findings import CTFinding
from data_contracts.taxonomy import Location, System
from tasks.synth import phantom as ph
from tasks.synth.lesions import LesionSpec

F = CTFinding
GAP_VOXELS = 2  # free voxels between two lesions
NODE_REACH_MM = 12.0  # how far outside its station region a node's centre may lie


@dataclass
class Placed:
    """A lesion on the CT grid: its voxels (inside ``box``), the spec and the measured truth."""

    spec: LesionSpec
    box: tuple[slice, slice, slice]
    mask: np.ndarray  # bool, the box's shape
    center_body: np.ndarray
    structure_label: int  # public anatomy label of its location's structure
    instance: int = 0
    suv_max: float = 0.0
    size_mm: float = 0.0
    center_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    activity: float = 0.0  # true activity (SUV) given to its voxels
    extra: dict = field(default_factory=dict)

    @property
    def n_voxels(self) -> int:
        return int(self.mask.sum())


def _internal_of(public_names: list[str]) -> np.ndarray:
    """bool LUT over internal labels: those whose anatomy label is one of ``public_names``."""
    pub = {anatomy.label_of()[n] for n in public_names}
    lut = ph.anatomy_lut()
    return np.isin(lut, list(pub)) & (np.arange(len(lut)) > 0)


def _labels(names: list[str]) -> np.ndarray:
    lut = np.zeros(ph.n_labels(), bool)
    lab = ph.internal_labels()
    lut[[lab[n] for n in names]] = True
    return lut


_SOFT = ["body_fat", "mediastinal_fat", "muscle", "soft", "small_bowel", "vessel"]


def allowed_region(loc: Location) -> tuple[np.ndarray, np.ndarray]:
    """(where the lesion may extend, where its centre may lie) as bool LUTs over internal labels."""
    s = list(loc.structures)
    if loc.system is System.lymph_node:
        stations = s + [f"node_{x}" for x in s]
        return _labels(stations + _SOFT), _labels(stations)
    if loc.system is System.lung:
        side = "right" if loc.laterality is taxonomy.Laterality.right else "left"
        lung = [n for n in anatomy.structures() if (n.startswith("lung_") and n.endswith(side))]
        return _labels(lung + [f"pleura_{side}"]), _internal_of(s)
    if loc.id.startswith("liver_"):
        return _labels([f"liver_segment_{i}" for i in range(1, 9)]), _internal_of(s)
    return _internal_of(s), _internal_of(s)


def _ellipsoid(center: np.ndarray, long_mm: float, ratio: float, rng: np.random.Generator) -> list[ph.Shape]:
    axes = np.array([long_mm / 2, long_mm / 2 * ratio, long_mm / 2 * ratio * rng.uniform(0.85, 1.0)])
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return [ph.Ellipsoid(center, axes, q)]


def _shapes(spec: LesionSpec, center: np.ndarray, rng: np.random.Generator) -> list[ph.Shape]:
    shapes = _ellipsoid(center, spec.size_mm, spec.short_ratio, rng)
    if spec.ct_finding in (F.mass, F.consolidation) or (spec.ct_finding is F.enlarged_lymph_node
                                                       and spec.size_mm > 25):
        for _ in range(int(rng.integers(1, 3))):  # lobulation
            off = rng.normal(size=3)
            off *= spec.size_mm * 0.22 / np.linalg.norm(off)
            shapes += _ellipsoid(center + off, spec.size_mm * rng.uniform(0.45, 0.65), 0.85, rng)
    return shapes


def _box_coords(box, grid: ph.Grid, pose: ph.Pose):
    """Body coordinates (U, V: (1, ny, nx); W: (nz, 1, 1)) of a box's voxel centres."""
    sz, sy, sx = box
    c, s = pose.cs
    tx, ty, tz = pose.shift
    X = (grid.axis(0)[sx] - tx)[None, None, :]
    Y = (grid.axis(1)[sy] - ty)[None, :, None]
    W = np.asarray(pose.body_w(grid.axis(2)[sz] - tz), float)[:, None, None]
    return (c * X + s * Y).astype(np.float32), (-s * X + c * Y).astype(np.float32), W.astype(np.float32)


def place_lesions(specs: list[LesionSpec], labels: np.ndarray, grid: ph.Grid, pose: ph.Pose,
                  bounds: dict[int, tuple[np.ndarray, np.ndarray]], rng: np.random.Generator,
                  min_voxels: int = 3, attempts: int = 25, why: Counter | None = None) -> list[Placed]:
    """Put every spec inside its structure on the CT label map; specs that find no room are dropped.

    ``bounds``: internal label -> body-frame bounding box (``phantom.structure_bounds``), to search only
    near the structure. Lesions keep ``GAP_VOXELS`` free voxels between each other. ``why`` counts the
    reasons attempts failed (diagnostics).
    """
    why = Counter() if why is None else why
    occupied = np.zeros(labels.shape, bool)
    placed: list[Placed] = []
    lab = ph.internal_labels()
    nmin = max(min_voxels, 4)
    vox_mm = np.array(grid.spacing)[::-1]  # z, y, x
    for spec in specs:
        loc = spec.location
        extend, centre_ok = allowed_region(loc)
        # search box: union of the bounds of every internal label that may hold the centre
        boxes = [bounds[i] for i in np.flatnonzero(centre_ok) if i in bounds]
        if not boxes:
            why["no structure bounds"] += 1
            continue
        lo = np.min([b[0] for b in boxes], axis=0)
        hi = np.max([b[1] for b in boxes], axis=0)
        node = loc.system is System.lymph_node
        reach = NODE_REACH_MM if node else 0.0  # a node may sit just beside its station's outline
        sbox = ph.index_box(lo - reach, hi + reach, grid, pose)
        if sbox is None:
            why["outside the field of view"] += 1
            continue
        sub = labels[sbox]
        ok = centre_ok[sub]
        if node and ok.any():
            steps = max(1, int(round(reach / min(grid.spacing))))
            ok = ndimage.binary_dilation(ok, iterations=steps) & extend[sub]
        cand = np.flatnonzero(ok)
        if cand.size == 0:
            why["structure not on the grid"] += 1
            continue
        sub_shape = tuple(s.stop - s.start for s in sbox)
        done = None
        for attempt in range(attempts):
            idx = np.unravel_index(int(cand[rng.integers(cand.size)]), sub_shape)
            zyx = np.array([idx[i] + sbox[i].start for i in range(3)], float)
            center = pose.to_body(grid.point_of(zyx)[None])[0]
            size = spec.size_mm * (0.85 ** (attempt // 4))
            trial = LesionSpec(**{**spec.__dict__, "size_mm": size})
            shapes = _shapes(trial, center, rng)
            los, his = zip(*(s.bounds() for s in shapes))
            box = ph.index_box(np.min(los, axis=0), np.max(his, axis=0), grid, pose)
            if box is None:
                continue
            # pad the box so the gap check sees neighbours
            box = tuple(slice(max(b.start - GAP_VOXELS - 1, 0), min(b.stop + GAP_VOXELS + 1, n))
                        for b, n in zip(box, labels.shape))
            U, V, W = _box_coords(box, grid, pose)
            m = np.zeros(tuple(b.stop - b.start for b in box), bool)
            for s in shapes:
                m |= np.broadcast_to(s.inside(U, V, W, 0.0), m.shape)
            m &= extend[labels[box]]
            m = _largest_component(m)
            if m.sum() < nmin:
                m = _grow(m, extend[labels[box]], nmin)
            if m is None or m.sum() < nmin:
                why["too few voxels"] += 1
                continue
            if _touches_edge(m, box, labels.shape):  # keep every lesion whole inside the field of view
                why["cut by the field of view"] += 1
                continue
            if occupied[box][ndimage.binary_dilation(m, iterations=GAP_VOXELS, structure=np.ones((3, 3, 3)))].any():
                why["too close to another lesion"] += 1
                continue
            under = labels[box][m]
            if loc.system in (System.organ, System.bone) or loc.id.startswith("lung_"):
                # most of the lesion must lie in the location's own structure
                if np.isin(under, [lab[s] for s in loc.structures] + _children(loc)).mean() < 0.5:
                    why["mostly outside its structure"] += 1
                    continue
            done = Placed(spec=trial, box=box, mask=m, center_body=center,
                          structure_label=anatomy.label_of()[loc.structures[0]])
            break
        if done is None:
            why[f"dropped {loc.id}"] += 1
            continue
        occupied[done.box] |= done.mask
        pts = np.argwhere(done.mask) + np.array([b.start for b in done.box])
        done.center_mm = tuple(float(x) for x in grid.point_of(pts.mean(axis=0)))
        # the lesion's long axis: what its voxels span, but never more than the shape drawn (a coarse grid
        # grows a small node to a few voxels that span more than the node)
        done.size_mm = min(long_axis_mm(pts, vox_mm), _drawn_long_axis(shapes))
        placed.append(done)
    return placed


def _drawn_long_axis(shapes: list[ph.Shape]) -> float:
    """Long axis (mm) of a lesion's drawn ellipsoids: the largest extent of their bounding union."""
    lo = np.min([s.center - np.max(s.axes) for s in shapes], axis=0)
    hi = np.max([s.center + np.max(s.axes) for s in shapes], axis=0)
    return float(max(2 * np.max(shapes[0].axes), np.max(hi - lo) if len(shapes) > 1 else 0.0))


def _touches_edge(m: np.ndarray, box: tuple[slice, slice, slice], shape: tuple[int, ...]) -> bool:
    for ax, (b, n) in enumerate(zip(box, shape)):
        if b.start == 0 and np.take(m, 0, axis=ax).any():
            return True
        if b.stop == n and np.take(m, m.shape[ax] - 1, axis=ax).any():
            return True
    return False


def _children(loc: Location) -> list[int]:
    """Internal labels that belong to the location's structures (marrow, cortex, nodes, ...)."""
    return list(np.flatnonzero(_internal_of(list(loc.structures))))


def _largest_component(m: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(m)
    if n <= 1:
        return m
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (1 + int(np.argmax(sizes)))


def _grow(m: np.ndarray, ok: np.ndarray, nmin: int) -> np.ndarray | None:
    """Dilate a too-small lesion inside its allowed tissue until it has ``nmin`` voxels (coarse grids)."""
    if not m.any():
        return None
    for _ in range(4):
        m = ndimage.binary_dilation(m) & ok
        if m.sum() >= nmin:
            return m
    return m


def long_axis_mm(points_zyx: np.ndarray, vox_mm: np.ndarray) -> float:
    """Extent of a voxel set along its principal axis, plus one voxel (mm)."""
    p = points_zyx * vox_mm
    if len(p) < 2:
        return float(vox_mm.max())
    c = p - p.mean(axis=0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    proj = c @ vt[0]
    step = float(np.abs(vt[0]) @ vox_mm)
    return float(proj.max() - proj.min() + step)


def number_instances(placed: list[Placed]) -> None:
    """Instances 1..n: lesions in the mask first, in raster order of their first voxel (as a connected-
    component labelling of the mask numbers them), then the ones the segmenter missed; benign look-alikes
    keep instance 0."""
    def first_voxel(p: Placed) -> tuple[int, int, int]:
        z, y, x = np.argwhere(p.mask)[0]
        return (z + p.box[0].start, y + p.box[1].start, x + p.box[2].start)

    lesions = [p for p in placed if not p.spec.benign]
    ordered = sorted((p for p in lesions if p.spec.in_mask), key=first_voxel)
    ordered += sorted((p for p in lesions if not p.spec.in_mask), key=first_voxel)
    for i, p in enumerate(ordered, start=1):
        p.instance = i
    placed.sort(key=lambda p: (p.instance == 0, p.instance))  # benign look-alikes (instance 0) last
