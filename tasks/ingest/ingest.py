"""Ingest raw studies into the volume store: one study (``ingest_study``) and a whole delivery (``ingest_all``).

Per study: read CT (HU) and PET (-> SUVbw), cross-check patient and geometry, write ``ct`` on the CT grid (or
the configured CT spacing) and ``pet`` on the PET's own grid (or the configured PET spacing over the PET's field
of view), label the lesion mask's connected components (26-connectivity, components under
``min_lesion_voxels`` dropped) and write the instance map, write the anatomy labels, compute per-lesion
statistics, and commit the group with its completion marker. IDs become pseudonyms before anything is written.
Any defect raises ``IngestError(reason, source, detail)``.

Memory and speed (full scale: ~150 M voxel CT, ~25 M voxel PET): the four files are read concurrently (each
NIfTI inflated once, straight into its SimpleITK image, by zlib-ng without the GIL: its input is refilled 16 MiB
at a time, so the inflate rarely waits on zarr's Python threads). The PET is scaled to SUV in place and stored as read,
with its own origin, spacing and direction: patch extraction interpolates it straight onto each patch grid
(one interpolation, not two), and no 600 MB float32 PET on the CT grid is ever made. A NIfTI CT is compressed
into the store slab by slab while it is inflated; the lesion mask and the anatomy map are checked, labelled
and written on their own threads meanwhile (lesions are labelled and measured before the anatomy map is
stored; only the label under each lesion waits for it). A volume on another grid than its source (configured spacings)
is resampled slab by slab, the next slab on a helper thread while zarr compresses the last. Lesions are
labelled inside the bounding box of the mask's foreground only, and measured inside each lesion's own box
(their SUV statistics on the stored CT grid, interpolated from the PET there). ``benchmarks/ingest.py``
measures the whole against SimpleITK's read of the same files.

For a delivery: the manifest is validated, each study is skipped when its group is complete and was made from
the same raw bytes (content hash) with the same recipe, ingested otherwise, or quarantined with its reason; the
``studies``, ``lesions`` and ``quarantine`` tables are then rewritten atomically, replacing the rows of this
run's studies and keeping everyone else's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import SimpleITK as sitk
from tqdm import tqdm

from data_contracts.records import Acquisition, Lesion
from data_contracts.settings import RawLayout, Settings
from data_contracts.tables import (
    LESIONS,
    QUARANTINE,
    STUDIES,
    ManifestRow,
    QuarantineRow,
    StudyRow,
)
from data_contracts.errors import PrerequisiteError
from tasks.ingest import store
from data_contracts.geometry import Geometry
from tasks.ingest.manifest import read_manifest
from tasks.ingest.integrity import check_anatomy_sidecar, check_known_labels
from tasks.ingest.naming import redact, shown_sources
from tasks.ingest.plausibility import (
    body_dice,
    axial_offset_mm,
    check_body,
    check_fov,
    check_acquisition,
    check_grid,
    check_pet_values,
    check_reference,
    check_volumes,
    reference_uptake,
)
from tasks.ingest.lesion_instances import label_lesions
from tasks.ingest.pseudonym import patient_pseudonym, study_pseudonym
from tasks.ingest.volume_writes import SlabWriter, write_volume
from tasks.ingest.readers import (
    IngestError,
    PetQuant,
    Series,
    read_ct,
    read_grid,
    read_mask,
    read_pet,
)

log = logging.getLogger(__name__)

INGEST_VERSION = "4"  # bump when the same input and settings would give a different group (3: native PET,
#                       4: anatomy stored uint8)
STAGE = "ingest"


@dataclass(frozen=True)
class IngestedStudy:
    study: StudyRow
    lesions: list[Lesion]


@dataclass(frozen=True)
class IngestSummary:
    ingested: int
    skipped: int
    quarantined: int
    seconds: float  # wall clock of the whole run
    study_seconds: dict[str, float] = field(default_factory=dict)  # per ingested study pseudonym
    quarantine: list[QuarantineRow] = field(default_factory=list)  # this run's records

    def __str__(self) -> str:
        per = sorted(self.study_seconds.values())
        median = f", median {per[len(per) // 2]:.1f} s/study" if per else ""
        lines = [f"ingest: {self.ingested} ingested, {self.skipped} unchanged (skipped), "
                 f"{self.quarantined} quarantined in {self.seconds:.1f} s{median}"]
        lines += [f"  quarantined {q.item}: {q.reason} ({q.source}): {q.detail}" for q in self.quarantine]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ hashing
def raw_files(row: ManifestRow, raw_root: Path) -> list[Path]:
    """Every input file of a study (DICOM slices, NIfTI images, sidecars), sorted; missing ones omitted."""
    paths = []
    for rel in (row.ct_path, row.pet_path, row.lesions_path, row.anatomy_path):
        if rel is None:
            continue
        p = raw_root / rel
        if p.is_dir():
            paths += [f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")]
        elif p.is_file():
            paths.append(p)
            if RawLayout.sidecar(p).is_file():
                paths.append(RawLayout.sidecar(p))
    return sorted(set(paths))


def content_hash(row: ManifestRow, raw_root: Path) -> str:
    """SHA-256 over the manifest row and every raw input file (relative name, size, bytes).

    Unkeyed but not a pseudonym risk: the digest covers the image bytes, which no one could guess to
    confirm a patient ID.
    """
    h = hashlib.sha256(row.model_dump_json().encode())
    for p in raw_files(row, raw_root):
        h.update(f"\x00{p.relative_to(raw_root).as_posix()}\x00{p.stat().st_size}\x00".encode())
        with open(p, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


def recipe_hash(settings: Settings) -> str:
    """What shapes a group besides the raw bytes: ingestion settings (not the worker count) and code version."""
    shaping = settings.ingest.model_dump(mode="json", exclude={"max_workers"})
    text = json.dumps({"version": INGEST_VERSION, "ingest": shaping}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ one study
def ingest_study(row: ManifestRow, settings: Settings) -> IngestedStudy:
    """Read one raw study (paths relative to ``settings.raw_dir``) and write its group to ``settings.store_url``.

    Always does the work (``ingest_all`` decides what to skip). Raises ``IngestError`` for a bad study; a
    partly written group is removed.
    """
    return _ingest(row, settings, None, recipe_hash(settings))


def _ingest(row: ManifestRow, settings: Settings, digest: str | None, recipe: str) -> IngestedStudy:
    """``_build`` on a private thread pool; on any failure the pool is drained, then the group removed."""
    study_id = study_pseudonym(row.study_key, settings.pseudonym_key)
    pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="ingest-study")
    try:
        return _build(row, settings, digest, recipe, study_id, pool)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # no thread may write into the group after it is removed
        store.discard(settings.store_url, study_id)
        raise
    finally:
        pool.shutdown(wait=True)


def _build(row: ManifestRow, settings: Settings, digest: str | None, recipe: str, study_id: str,
           pool: ThreadPoolExecutor) -> IngestedStudy:
    """The per-study pipeline. Threads: CT read | PET read, then PET write | mask read, then lesions labelled
    and written | anatomy read, checked and written | content hash; the caller's thread writes the CT, runs
    the PET/CT plausibility checks and commits."""
    root, cfg, bands = settings.raw.root, settings.ingest, settings.ingest.plausibility
    src = shown_sources(row, study_id)
    writer = store.StudyWriter(settings.store_url, study_id, cfg)
    # The CT grid from the NIfTI header alone lets the CT be written while it is inflated, and the PET start
    # meanwhile; a DICOM series must be read (and its patient checked) first. (A truncated CT fails in
    # ``read_ct``, and what was written meanwhile is discarded with the group.)
    header_grid = read_grid(root / row.ct_path)
    stream = (SlabWriter(writer.create("ct", header_grid), pool)
              if header_grid is not None and cfg.ct_spacing_mm is None else None)
    f_ct = pool.submit(read_ct, root / row.ct_path, src["ct"], stream,
                       stream.rows if stream is not None else 64)
    f_pet = pool.submit(read_pet, root / row.pet_path, src["pet"])
    f_mask = pool.submit(read_mask, root / row.lesions_path, src["lesions"], "missing_mask", sitk.sitkUInt8,
                         binary=True)
    f_anatomy = (pool.submit(read_mask, root / row.anatomy_path, src["anatomy"], "missing_anatomy",
                             sitk.sitkUInt16) if row.anatomy_path else None)
    f_digest = pool.submit(content_hash, row, root) if digest is None else None

    ct: Series | None = None if header_grid is not None else f_ct.result()
    ct_grid = header_grid or Geometry.of(ct.image)
    check_grid(ct_grid, src["ct"], bands)
    pet, quant = f_pet.result()
    native_pet = Geometry.of(pet.image)
    check_acquisition(quant.weight_kg, quant.uptake_minutes, quant.injected_dose_mbq, row.tracer.value,
                      src["pet_sidecar"] if pet.fmt == "nifti" else src["pet"], bands)
    check_grid(native_pet, src["pet"], bands)
    check_pet_values(sitk.GetArrayViewFromImage(pet.image), src["pet"], bands)
    _check_pair(row, ct_grid, pet, ct, src)
    grid = ct_grid if cfg.ct_spacing_mm is None else ct_grid.with_spacing(cfg.ct_spacing_mm)
    pet_grid = native_pet if cfg.pet_spacing_mm is None else native_pet.with_spacing(cfg.pet_spacing_mm)

    pet_array = writer.create("pet", pet_grid)
    f_pet_written = pool.submit(write_volume, pet_array, pet.image, pet_grid, sitk.sitkLinear, 0.0)
    # Anatomy and lesions are checked, labelled and written as soon as their files are read, while the CT
    # is still being inflated: each task waits only on futures submitted before it (no deadlock).
    f_anatomy_stored = (pool.submit(_store_anatomy, writer, f_anatomy, ct_grid, grid, root, row, src["anatomy"])
                        if f_anatomy is not None else None)
    f_lesions = pool.submit(_store_lesions, writer, f_mask, f_anatomy_stored, pet.image, ct_grid, grid, study_id,
                            cfg.min_lesion_voxels, src["lesions"])
    ct = f_ct.result()
    _check_pair(row, ct_grid, pet, ct, src)
    if not Geometry.of(ct.image).same_grid(ct_grid):  # header and pixels read by the same reader: cannot differ
        raise IngestError("unreadable_file", src["ct"], "CT header and image disagree on the grid")
    if stream is None or not stream.complete():  # DICOM, another CT spacing, or a CT converted after reading
        write_volume(stream.array if stream is not None else writer.create("ct", grid), ct.image, grid,
                     sitk.sitkLinear, -1024.0)

    mask, lesions = f_lesions.result()  # a bad mask is reported before a bad anatomy map, as it always was
    anatomy = f_anatomy_stored.result() if f_anatomy_stored is not None else None
    check_fov(axial_offset_mm(native_pet, ct_grid), src["pet"], bands)  # the CT's pixels are on ct_grid
    volumes = check_volumes(pet.image, ct.image, anatomy, mask)  # on the PET grid, >= 6 mm
    check_body(body_dice(volumes), src["pet"], bands)
    reference = reference_uptake(volumes, bands)
    check_reference(reference, row.tracer.value, src["pet"], bands)
    f_pet_written.result()

    acquisition = Acquisition(
        vendor=row.vendor, tracer=row.tracer,
        ct_spacing_mm=ct_grid.spacing, ct_shape=ct_grid.shape,
        pet_spacing_mm=native_pet.spacing, pet_shape=native_pet.shape,
        injected_dose_mbq=quant.injected_dose_mbq, uptake_minutes=quant.uptake_minutes,
        patient_weight_kg=quant.weight_kg, source_format=ct.fmt,
    )
    study = StudyRow(patient_id=patient_pseudonym(row.patient_id, settings.pseudonym_key), study_id=study_id,
                     acquisition=acquisition, content_hash=digest or f_digest.result(), store_path=study_id,
                     lesion_count=len(lesions), ingested_at=datetime.now(timezone.utc))
    attrs = _group_attrs(study, lesions, recipe, grid, pet_grid, quant)
    attrs["reference_uptake"] = dict(zip(("region", "suv_mean", "ml"), reference)) if reference else None
    writer.commit(attrs)
    return IngestedStudy(study, lesions)


def _check_pair(row: ManifestRow, ct_grid: Geometry, pet: Series, ct: Series | None, src: dict[str, str]) -> None:
    """CT and PET belong to the manifest's patient, share a frame of reference and overlap in space.

    Patient IDs and frames of reference exist in DICOM headers only; ``ct`` is None until the CT is read.
    """
    if ct is not None and ct.patient_id is not None and ct.patient_id != row.patient_id:
        raise IngestError("patient_mismatch", src["ct"], "CT PatientID differs from the manifest's patient")
    if ct is not None and None not in (ct.patient_id, pet.patient_id) and pet.patient_id != ct.patient_id:
        raise IngestError("patient_mismatch", src["pet"], "PET PatientID differs from the CT series' PatientID")
    if pet.patient_id is not None and pet.patient_id != row.patient_id:
        raise IngestError("patient_mismatch", src["pet"], "PET PatientID differs from the manifest's patient")
    if ct is not None and ct.frame_of_reference and pet.frame_of_reference \
            and ct.frame_of_reference != pet.frame_of_reference:
        raise IngestError("geometry_mismatch", src["pet"], "PET and CT have different FrameOfReferenceUIDs")
    if not ct_grid.overlaps(Geometry.of(pet.image)):
        raise IngestError("geometry_mismatch", src["pet"], "PET and CT fields of view do not overlap")


def _store_anatomy(writer: store.StudyWriter, f_read: Future, ct_grid: Geometry, grid: Geometry, root: Path,
                   row: ManifestRow, source: str) -> sitk.Image:
    """The anatomy label map (read by ``f_read``) checked on the CT grid, its sidecar and labels checked, written
    (as uint8: every label the table knows fits)."""
    anatomy = _on_grid(f_read.result(), ct_grid, grid)
    check_anatomy_sidecar(root, row, source)
    check_known_labels(anatomy, source)
    write_volume(writer.create("anatomy", grid), anatomy, grid, sitk.sitkNearestNeighbor, 0)
    return anatomy


def _store_lesions(writer: store.StudyWriter, f_mask: Future, f_anatomy: Future | None, pet_suv: sitk.Image,
                   ct_grid: Geometry, grid: Geometry, study_id: str, min_voxels: int,
                   source: str) -> tuple[sitk.Image, list[Lesion]]:
    """The lesion mask (read by ``f_mask``) checked on the CT grid, then labelled, written and measured."""
    mask = _on_grid(f_mask.result(), ct_grid, grid)
    anatomy = f_anatomy.result if f_anatomy is not None else (lambda: None)
    return mask, label_lesions(writer, mask, anatomy, pet_suv, grid, study_id, min_voxels, source)


def _on_grid(series: Series, ct_grid: Geometry, grid: Geometry) -> sitk.Image:
    """A label image that must lie on the CT grid, moved (nearest neighbour) onto the stored grid."""
    geometry = Geometry.of(series.image)
    if not geometry.same_grid(ct_grid):
        raise IngestError("geometry_mismatch", series.source,
                          f"not on the CT grid: {geometry.describe_difference(ct_grid)}")
    if grid is ct_grid:
        return series.image
    return grid.resample(series.image, sitk.sitkNearestNeighbor, series.image.GetPixelID(), 0)


def _group_attrs(study: StudyRow, lesions: list[Lesion], recipe: str, grid: Geometry, pet_grid: Geometry,
                 quant: PetQuant) -> dict:
    return {
        "study": study.model_dump(mode="json"),
        "lesions": [lesion.model_dump(mode="json") for lesion in lesions],
        "content_hash": study.content_hash,
        "recipe": recipe,
        "vendor": study.vendor.value,
        "tracer": study.tracer.value,
        "units": store.UNITS,
        "geometry": grid.to_attrs(),
        "pet_geometry": pet_grid.to_attrs(),
        "geometry_convention": "ITK/LPS: arrays (z, y, x); spacing, origin (x, y, z) mm; "
                               "direction row-major 3x3; origin = centre of voxel (0, 0, 0)",
        "suv": {"kind": "SUVbw", "source_units": quant.units, "suv_per_source_unit": quant.suv_per_unit},
        "taxonomy_version": store.taxonomy_version(),
        "anatomy_version": store.anatomy_version(),
    }


# -------------------------------------------------------------------------------------- a delivery
@dataclass(frozen=True)
class _Outcome:
    kind: str  # ingested | skipped | quarantined
    study_id: str
    result: IngestedStudy | None = None
    quarantine: QuarantineRow | None = None
    seconds: float = 0.0


def _process(row: ManifestRow, settings: Settings, recipe: str) -> _Outcome:
    study_id = study_pseudonym(row.study_key, settings.pseudonym_key)
    t0 = time.perf_counter()
    try:
        digest = content_hash(row, settings.raw.root)
        attrs = store.completed(settings.store_url, study_id)
        if attrs and attrs.get("content_hash") == digest and attrs.get("recipe") == recipe:
            kept = IngestedStudy(StudyRow.model_validate(attrs["study"]),
                                 [Lesion.model_validate(r) for r in attrs["lesions"]])
            return _Outcome("skipped", study_id, kept)
        result = _ingest(row, settings, digest, recipe)
        seconds = time.perf_counter() - t0
        log.info("ingested %s: %d lesions in %.1f s", study_id, len(result.lesions), seconds)
        return _Outcome("ingested", study_id, result, seconds=seconds)
    except IngestError as e:
        reason, source, detail = e.reason, e.source, e.detail
    except Exception as e:  # a defect nobody anticipated must not stop the delivery either
        # No traceback in the log: its messages may carry raw paths; the line below names the error.
        reason, source = "unexpected_error", study_id
        detail = redact(f"{type(e).__name__}: {e}", row, study_id, settings.raw.root)[:300]
    store.discard(settings.store_url, study_id)
    log.warning("quarantined %s: %s (%s): %s", study_id, reason, source, detail)
    record = QuarantineRow(stage=STAGE, item=study_id, source=source, reason=reason, detail=detail,
                           at=datetime.now(timezone.utc))
    return _Outcome("quarantined", study_id, quarantine=record)


def ingest_all(settings: Settings, raw_dir: Path | None = None, store_url: str | None = None,
               progress: bool = True) -> IngestSummary:
    """Ingest every study of the manifest in ``raw_dir`` (default ``settings.raw_dir``) into ``store_url``."""
    overrides = {k: v for k, v in (("raw_dir", Path(raw_dir) if raw_dir else None),
                                   ("store_url", str(store_url) if store_url else None)) if v is not None}
    settings = settings.model_copy(update=overrides) if overrides else settings
    manifest_path = settings.raw.manifest
    if not manifest_path.is_file():
        raise PrerequisiteError("no manifest.csv in the drop folder", path=str(manifest_path),
                                reason="missing_manifest", hint="point --raw at a delivery (petcap synth writes one)")
    checked = read_manifest(manifest_path, settings.pseudonym_key)  # bad rows rejected, the rest go on
    rows = checked.rows
    for q in checked.rejected:
        log.warning("rejected manifest row %s: %s: %s", q.source, q.reason, q.detail)
    recipe = recipe_hash(settings)
    t0 = time.perf_counter()
    store.open_root(settings.store_url, writable=True)  # create the root once, before workers race to
    outcomes: list[_Outcome] = []
    with ThreadPoolExecutor(max_workers=settings.ingest.max_workers, thread_name_prefix="ingest") as pool:
        futures = [pool.submit(_process, row, settings, recipe) for row in rows]
        for future in tqdm(as_completed(futures), total=len(futures), desc="ingest", unit="study",
                           disable=not progress):
            outcomes.append(future.result())
    _write_tables(settings, outcomes, checked.rejected)
    kinds = [o.kind for o in outcomes]
    return IngestSummary(
        ingested=kinds.count("ingested"), skipped=kinds.count("skipped"),
        quarantined=kinds.count("quarantined") + len(checked.rejected),
        seconds=time.perf_counter() - t0,
        study_seconds={o.study_id: o.seconds for o in outcomes if o.kind == "ingested"},
        quarantine=sorted([*(o.quarantine for o in outcomes if o.quarantine), *checked.rejected],
                          key=lambda q: q.item),
    )


def _write_tables(settings: Settings, outcomes: list[_Outcome], rejected: list[QuarantineRow]) -> None:
    """Replace this run's studies' rows in the three tables; keep all other rows (other deliveries, stages)."""
    done = {o.study_id for o in outcomes}
    results = [o.result for o in outcomes if o.result is not None]

    def keep(schema, path, drop) -> list:
        return [r for r in schema.records(schema.read(path), source=str(path)) if not drop(r)]

    path = settings.table_path("studies")
    studies = keep(STUDIES, path, lambda r: r.study_id in done) + [r.study for r in results]
    STUDIES.write(STUDIES.frame(sorted(studies, key=lambda r: r.study_id)), path)

    path = settings.table_path("lesions")
    lesions = keep(LESIONS, path, lambda r: r.study_id in done) + [les for r in results for les in r.lesions]
    LESIONS.write(LESIONS.frame(sorted(lesions, key=lambda r: (r.study_id, r.instance))), path)

    path = settings.table_path("quarantine")
    quarantine = keep(QUARANTINE, path, lambda r: r.stage == STAGE and r.item in done)
    # A rejected manifest row replaces its own earlier record (a rerun adds no duplicate); a study already in
    # the store under a now-rejected key stays there and in the tables.
    again = {(q.item, q.source) for q in rejected}
    quarantine = [q for q in quarantine if not (q.stage == STAGE and (q.item, q.source) in again)]
    quarantine += [o.quarantine for o in outcomes if o.quarantine is not None] + rejected
    QUARANTINE.write(QUARANTINE.frame(sorted(quarantine, key=lambda r: (r.stage, r.item, r.at))), path)
