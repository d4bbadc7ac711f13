"""Lesions: window physics on CT, uptake on PET, placement inside structures, plausible plans."""

from collections import Counter

import numpy as np
import pytest
from scipy import ndimage

from data_contracts import anatomy, taxonomy
from data_contracts.caption import caption_text
from data_contracts.findings import CTFinding, Tracer, Vendor, grade_for_suv
from data_contracts.settings import Settings
from data_contracts.taxonomy import WINDOWS, System, WindowGroup
from tasks.synth import cohort as co
from tasks.synth import lesions as les
from tasks.synth import phantom as ph

F = CTFinding
PINNED = [
    ("lung_rll", F.ground_glass_opacity, 28.0, 0.8),
    ("vertebra_l3", F.osteoblastic, 24.0, 0.8),
    ("vertebra_t9", F.osteolytic, 22.0, 0.8),
    ("liver_s7", F.hypodense_lesion, 32.0, 0.85),
    ("ln_mediastinal_7", F.enlarged_lymph_node, 24.0, 0.75),
    ("lung_lul", F.solid_nodule, 16.0, 0.9),
    ("spleen", F.no_ct_correlate, 16.0, 0.9),
]


@pytest.fixture(scope="module")
def gen():
    plan = next(p for p in co.plan_cohort(10, 11, "demo", Settings())
                if p.vendor is Vendor.united_imaging and p.tracer is Tracer.fdg)
    specs = [les.LesionSpec(loc, f, size, ratio, 8.0, group=i) for i, (loc, f, size, ratio) in enumerate(PINNED)]
    g = co.generate_study(plan, specs=specs)
    assert [p.spec.location_id for p in g.placed] != []
    return g


def _pinned(gen):
    """The placed lesions without the study's benign look-alikes."""
    return [p for p in gen.placed if not p.spec.benign]


def _lesion(gen, location_id):
    found = [p for p in _pinned(gen) if p.spec.location_id == location_id]
    assert found, f"{location_id} was not placed"
    return found[0]


def _voxels(gen, p):
    """(lesion HU, ring HU) -- the ring: voxels within 2 voxels of the lesion in tissue of the same kind."""
    hu = gen.study.ct.array[p.box]
    labels = gen.labels_ct[p.box]
    ring = ndimage.binary_dilation(p.mask, iterations=2) & ~p.mask
    return hu[p.mask].astype(float), hu, labels, ring


def _clip(values, group):
    w = WINDOWS[group]
    return np.clip(values, w.low, w.high)


def test_every_pinned_lesion_is_placed_in_its_structure(gen):
    assert sorted(p.spec.location_id for p in _pinned(gen)) == sorted(x[0] for x in PINNED)
    anat = ph.anatomy_lut()[gen.labels_ct]  # the phantom's structures (the segmenter map has no stations)
    for p in _pinned(gen):
        under = anat[p.box][p.mask]
        want = anatomy.label_of()[p.spec.location.structures[0]]
        if p.spec.location.system.value == "lymph_node" or p.spec.location_id.startswith("pleura"):
            assert want in under, p.spec.location_id  # in or at its station (nodes overlap the fat around it)
        else:
            assert np.bincount(under).argmax() == want, p.spec.location_id


def test_segmenter_map_has_no_station_and_no_lesion_painted_in(gen):
    from data_contracts import segmentation
    from tasks.synth.segmenter import segmenter_labels

    anat = gen.study.anatomy.array
    assert np.array_equal(anat, segmenter_labels(gen.labels_ct))  # a function of the anatomy alone
    assert anat.dtype == np.uint8  # as TotalSegmentator writes it, written as it is
    assert int(anat.max()) <= len(segmentation.CLASSES)
    for p in gen.placed:
        under = anat[p.box][p.mask]
        if p.spec.location.system.value == "lymph_node":
            assert np.bincount(under).argmax() == 0, p.spec.location_id  # a node lies in unlabelled fat


def test_ground_glass_is_visible_in_the_lung_window_only(gen):
    p = _lesion(gen, "lung_rll")
    lesion, hu, labels, ring = _voxels(gen, p)
    lung = ring & np.isin(labels, [ph.internal_labels()[n] for n in ("lung_lower_lobe_right",
                                                                    "lung_middle_lobe_right",
                                                                    "lung_upper_lobe_right")])
    background = hu[lung].astype(float)
    lesion = hu[ndimage.binary_erosion(p.mask)].astype(float)  # inside; the edge blends with the lung
    assert -580 <= lesion.mean() <= -420
    assert -900 <= background.mean() <= -800
    soft = _clip(lesion, WindowGroup.soft_tissue).mean() - _clip(background, WindowGroup.soft_tissue).mean()
    lung_w = _clip(lesion, WindowGroup.lung).mean() - _clip(background, WindowGroup.lung).mean()
    assert abs(soft) < 1.0  # both clipped to the window floor: invisible
    assert lung_w > 250  # a third of the lung window's width: obvious


def test_osteoblastic_lesion_is_visible_in_the_bone_window_only(gen):
    p = _lesion(gen, "vertebra_l3")
    lesion, hu, labels, ring = _voxels(gen, p)
    bone = ring & (labels == ph.internal_labels()["vertebra_L3"])
    background = hu[bone].astype(float)
    # a demo-scale vertebral lesion is mostly edge, partial-volumed with the bone and soft tissue around it
    assert np.median(lesion) > 800 and lesion.max() > 1100
    soft = _clip(lesion, WindowGroup.soft_tissue).mean() - _clip(background, WindowGroup.soft_tissue).mean()
    bone_w = _clip(lesion, WindowGroup.bone).mean() - _clip(background, WindowGroup.bone).mean()
    assert abs(soft) < 5.0  # both above the soft-tissue window's ceiling
    assert bone_w > 400


def test_osteolytic_lowers_bone_and_hypodense_lowers_parenchyma(gen):
    lytic = _lesion(gen, "vertebra_t9")
    values, hu, labels, ring = _voxels(gen, lytic)
    assert 0 <= np.median(values) <= 160 and values.min() < 100  # 10-90 HU, blurred with the bone around
    assert hu[ring & (labels == ph.internal_labels()["vertebra_T9"])].mean() > np.median(values) + 60
    liver = _lesion(gen, "liver_s7")
    values, hu, labels, ring = _voxels(gen, liver)
    parenchyma = hu[ring & np.isin(labels, [ph.internal_labels()[f"liver_segment_{i}"] for i in range(1, 9)])]
    drop = parenchyma.mean() - values.mean()
    assert 8 <= drop <= 35


def test_enlarged_node_is_a_soft_tissue_ellipsoid_over_10mm(gen):
    p = _lesion(gen, "ln_mediastinal_7")
    values, hu, *_ = _voxels(gen, p)
    assert 20 <= hu[ndimage.binary_erosion(p.mask)].mean() <= 60  # inside; the edge blends with the fat
    assert values.mean() < hu[ndimage.binary_erosion(p.mask)].mean()
    pts = np.argwhere(p.mask) * np.array(gen.ct_grid.spacing)[::-1]
    c = pts - pts.mean(axis=0)
    ev = np.sqrt(np.linalg.eigvalsh(np.cov(c.T)))
    short_axis = 4 * ev[0]  # full width of a uniform ellipsoid is 2 * sqrt(5) * sd; 4 sd is conservative
    assert short_axis > 10.0


def test_uptake_grade_caption_and_pet_only_lesion(gen):
    pet = gen.study.pet.array
    for t in gen.study.truth:
        assert t.suv_max >= 1.5
        assert t.pet_finding.grade == grade_for_suv(t.suv_max)
        assert t.caption == caption_text(t.location_id, t.ct_finding, t.pet_finding)
    spleen = _lesion(gen, "spleen")
    values, hu, labels, ring = _voxels(gen, spleen)
    assert abs(values.mean() - hu[ring & (labels == anatomy.label_of()["spleen"])].mean()) < 15  # no CT change
    assert spleen.suv_max > 1.3 * np.median(pet[gen.labels_pet == anatomy.label_of()["spleen"]])


def test_mask_components_are_the_instances(gen):
    mask = gen.study.lesions.array
    comp, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    in_mask = [p for p in gen.placed if p.spec.in_mask]
    assert n == len(in_mask)
    for p in in_mask:  # instance k is connected component k (raster order)
        z, y, x = np.argwhere(p.mask)[0] + np.array([b.start for b in p.box])
        assert comp[z, y, x] == p.instance


def test_measured_suv_is_read_off_the_final_pet(gen):
    """SUVmax is what the PSF leaves of the true uptake: never much above it, lower for smaller lesions."""
    pet = gen.study.pet.array
    for p in _pinned(gen):
        assert p.suv_max < 1.6 * p.activity, p.spec.location_id
        pts = np.argwhere(p.mask) + np.array([b.start for b in p.box])
        idx = gen.pet_grid.continuous_index(gen.ct_grid.index_to_mm(pts))
        assert p.suv_max == pytest.approx(ndimage.map_coordinates(pet, idx.T, order=1).max(), abs=0.01)
    by_size = sorted(_pinned(gen), key=lambda p: p.size_mm)
    recovered = [p.suv_max / p.activity for p in by_size]
    assert np.mean(recovered[-3:]) > np.mean(recovered[:3])  # partial volume: small lesions read lower
    assert max(recovered) > 0.6


# ------------------------------------------------------------------------------------------ plans


def _plans(tracer, sex, n=400, seed=0):
    rng = np.random.default_rng(seed)
    return [les.plan_lesions(tracer, sex, int(rng.integers(3, 9)), rng) for _ in range(n)]


def test_flags_about_five_percent_each_never_both():
    specs = [s for _, sp in _plans(Tracer.fdg, "F") for s in sp]
    missed = np.mean([not s.in_mask for s in specs])
    unreported = np.mean([not s.reported for s in specs])
    assert 0.025 < missed < 0.08 and 0.025 < unreported < 0.08
    assert not any(not s.in_mask and not s.reported for s in specs)


def test_plans_fit_the_tracer():
    psma = [s for _, sp in _plans(Tracer.psma, "M") for s in sp]
    fdg = [s for _, sp in _plans(Tracer.fdg, "F") for s in sp]
    pelvic = ("ln_common_iliac", "ln_external_iliac", "ln_internal_iliac", "prostate")
    psma_share = np.mean([s.location.system is System.bone or s.location_id.startswith(pelvic) for s in psma])
    assert psma_share > 0.55
    fdg_share = np.mean([s.location.system in (System.lung, System.lymph_node) or s.location_id.startswith(
        ("liver_", "nasopharynx", "breast_")) for s in fdg])
    assert fdg_share > 0.65
    assert not any(s.location_id == "prostate" for s in fdg)
    psma_bone = Counter(s.ct_finding for s in psma if s.location.system is System.bone)
    assert psma_bone[F.osteoblastic] > psma_bone[F.osteolytic] * 3


def test_findings_fit_the_location_and_sizes_and_suv_stay_in_range():
    specs = [s for tr, sex in ((Tracer.fdg, "M"), (Tracer.psma, "M")) for _, sp in _plans(tr, sex, 200)
             for s in sp]
    for s in specs:
        loc = taxonomy.get(s.location_id)
        assert s.ct_finding in les.ct_findings_for(loc.system)
        assert 4.0 <= s.size_mm <= 60.0
        assert 1.5 <= s.target_suv <= 60.0
        if s.ct_finding is F.enlarged_lymph_node:
            assert s.size_mm * s.short_ratio > 10.0
        if s.ct_finding is F.non_enlarged_lymph_node:
            assert s.size_mm * s.short_ratio < 10.0
    groups = Counter((id(sp), s.group) for _, sp in _plans(Tracer.fdg, "M", 200) for s in sp)
    assert np.mean([n >= 2 for n in groups.values()]) > 0.15  # several lesions at one station/region
    assert any(n >= 3 for n in groups.values())  # "multiple ..."
    locations = {s.location_id for s in specs}
    assert len(locations) > 100  # rare categories get drawn too
