"""Stage 10: caption one new study (a radiologist's, outside the training data) — ``petcap caption STUDY_DIR``.

study folder (ct/ or ct.nii.gz, pet/ or pet.nii.gz (+ pet.json), lesions.nii.gz, anatomy.nii.gz optional)
  -> ``describe_study``: a manifest row (vendor and tracer from the PET header: DICOM tags or BIDS sidecar)
  -> ``ingest_new_study``: ``tasks.ingest.ingest_study`` into a private volume store under the output folder
     (never the training store: a served study must not leak into the dataset), so the same HU / SUVbw
     conversion, pseudonymisation and lesion instances as training
  -> ``study_patches``: both fields of view per lesion, cut in memory by the training extractor
     (``tasks.patches.resample.compute_study``: the same kernel, so inputs match the training patches)
  -> ``CaptionModels.caption``: localizer top-5 -> DWS window (top-1 >= threshold) -> CGLP prompt -> caption
  -> ``write_outputs``: ``captions.json`` (per lesion: top-5 locations and confidences, window, prompt, caption)
     and ``report.png`` (per lesion: CT, PET and fused axial slices through the lesion, its caption and top-5).

The model input transforms are the training pipeline's own (``models.training``), so a served patch is
normalised exactly as the patches the models were trained on.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from data_contracts import taxonomy
from data_contracts.findings import Tracer, Vendor
from data_contracts.records import Lesion
from data_contracts.settings import RawLayout, Settings
from data_contracts.tables import ManifestRow
from tasks.ingest import IngestedStudy, IngestError, ingest_study
from tasks.ingest import store as volumes
from tasks.ingest.geometry import Geometry
from tasks.patches.resample import Request, StudyJob, compute_study
from tasks.patches.store import fields_of_view

log = logging.getLogger(__name__)

STORE_NAME = "volumes.zarr"  # the private volume store inside a caption output folder
JSON_NAME = "captions.json"
REPORT_NAME = "report.png"


# ------------------------------------------------------------------------------------------ the study
def _vendor(text: str | None) -> Vendor | None:
    t = (text or "").lower()
    if "siemens" in t:
        return Vendor.siemens
    if "united" in t or t.startswith("uih") or "uimaging" in t:
        return Vendor.united_imaging
    if t.split()[:1] == ["ge"] or "general electric" in t or t.startswith("ge "):
        return Vendor.ge
    return None


def _tracer(text: str | None) -> Tracer | None:
    t = (text or "").lower()
    if "psma" in t:
        return Tracer.psma
    if "fdg" in t or "fluorodeoxyglucose" in t:
        return Tracer.fdg
    return None


def _pet_header(study_dir: Path, pet: str) -> tuple[str | None, str | None, str | None]:
    """(manufacturer, tracer name, DICOM PatientID) from the PET's first DICOM slice or its BIDS sidecar."""
    path = study_dir / pet
    if path.is_dir():
        slices = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
        if not slices:
            raise IngestError("missing_pet", pet, "the PET folder is empty")
        try:
            ds = pydicom.dcmread(slices[0], stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError) as e:
            raise IngestError("corrupt_dicom", f"{pet}/{slices[0].name}", str(e)[:200]) from None
        info = ds.get("RadiopharmaceuticalInformationSequence")
        tracer = str(info[0].get("Radiopharmaceutical", "")) if info else None
        return str(ds.get("Manufacturer", "")) or None, tracer, str(ds.get("PatientID", "")) or None
    sidecar = RawLayout.sidecar(path)
    if not sidecar.is_file():
        return None, None, None
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except ValueError:
        raise IngestError("unreadable_file", sidecar.name, "PET sidecar is not JSON") from None
    return meta.get("Manufacturer"), meta.get("TracerName"), None


def describe_study(study_dir: Path | str, vendor: str | None = None, tracer: str | None = None) -> ManifestRow:
    """A manifest row for one study folder (paths relative to it); vendor and tracer from the PET header
    unless given. Raises ``IngestError`` naming the missing file or the header that could not be read."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise FileNotFoundError(f"study folder {study_dir} does not exist")

    def pick(name: str, reason: str) -> str:
        for rel in (name, f"{name}.nii.gz", f"{name}.nii"):
            if (study_dir / rel).exists():
                return rel
        raise IngestError(reason, f"{study_dir.name}/{name}", f"no {name}/ DICOM folder or {name}.nii.gz")

    ct, pet, lesions = pick("ct", "missing_ct"), pick("pet", "missing_pet"), pick("lesions", "missing_mask")
    anatomy = next((r for r in ("anatomy.nii.gz", "anatomy.nii") if (study_dir / r).exists()), None)
    manufacturer, tracer_name, patient_id = _pet_header(study_dir, pet)
    v = Vendor(vendor) if vendor else _vendor(manufacturer)
    t = Tracer(tracer) if tracer else _tracer(tracer_name)
    if v is None:
        raise IngestError("unknown_vendor", pet, f"PET Manufacturer {manufacturer!r} is not one of "
                                                 f"{[x.value for x in Vendor]}; pass the vendor explicitly")
    if t is None:
        raise IngestError("unknown_tracer", pet, f"PET tracer {tracer_name!r} is neither FDG nor PSMA; "
                                                 f"pass the tracer explicitly")
    # A DICOM study's PatientID lets ingestion check that CT and PET belong together; it only feeds the
    # pseudonym of this private store and is written nowhere. NIfTI has none: the folder name stands in.
    return ManifestRow(study_key=study_dir.name, patient_id=patient_id or study_dir.name, vendor=v, tracer=t, ct_path=ct,
                       pet_path=pet, lesions_path=lesions, anatomy_path=anatomy)


def serving_settings(settings: Settings, study_dir: Path, out_dir: Path) -> Settings:
    """The settings of a served study: its folder as the raw root, a private volume store in ``out_dir``."""
    return settings.model_copy(update={"raw_dir": Path(study_dir), "store_url": str(Path(out_dir) / STORE_NAME),
                                       "tables_dir": Path(out_dir) / "tables"})


def ingest_new_study(study_dir: Path | str, out_dir: Path | str, settings: Settings,
                     vendor: str | None = None, tracer: str | None = None) -> tuple[IngestedStudy, Settings]:
    """Ingest one study folder into ``out_dir``'s private store; returns it and the settings that read it."""
    row = describe_study(study_dir, vendor, tracer)
    local = serving_settings(settings, Path(study_dir), Path(out_dir))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return ingest_study(row, local), local


def study_patches(local: Settings, ingested: IngestedStudy) -> dict[int, dict[str, np.ndarray]]:
    """Both fields of view of every lesion, in memory: {instance: {"localizer" | "captioner": (3, z, y, x)}}
    with channels CT (HU), PET (SUV), this lesion's mask — the training extractor's kernel and settings."""
    cfg = local.patches
    requests = tuple(Request(lesion.instance, lesion.instance, lesion.centroid_mm, lesion.bbox)
                     for lesion in ingested.lesions)
    job = StudyJob(local.store_url, ingested.study.study_id, requests, fields_of_view(cfg), "", cfg.dtype,
                   cfg.ct_pad_hu, cfg.threads_per_worker)
    return compute_study(job)


# ------------------------------------------------------------------------------------------ results
@dataclass
class LesionCaption:
    """One lesion's answer: what the localizer said, what the captioner was shown, and the caption."""

    instance: int
    centroid_mm: tuple[float, float, float]
    volume_ml: float
    suv_max: float
    top5: list[dict]  # [{"location_id", "location", "confidence"}], best first
    window: str  # CT window the captioner saw (DWS)
    prompt: str  # CGLP prompt words ("" when the model uses none)
    caption: str


@dataclass
class StudyCaptions:
    study_id: str  # pseudonym in the private store (the folder name never leaves ingestion)
    vendor: str
    tracer: str
    lesions: list[LesionCaption] = field(default_factory=list)
    models: dict = field(default_factory=dict)  # checkpoint paths and versions used
    seconds: dict = field(default_factory=dict)  # ingest / patches / models / outputs / total

    def to_json(self) -> dict:
        return asdict(self)


def top5_entries(class_ids: list[int], confidences: list[float]) -> list[dict]:
    """The localizer's top-k class indices and confidences as JSON entries."""
    locs = taxonomy.locations()
    return [{"location_id": locs[i].id, "location": locs[i].name, "confidence": round(float(c), 6)}
            for i, c in zip(class_ids, confidences)]


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(result: StudyCaptions, out_dir: Path) -> Path:
    path = Path(out_dir) / JSON_NAME
    _atomic_write(path, json.dumps(result.to_json(), indent=2).encode())
    return path


def write_report(result: StudyCaptions, patches: dict[int, dict[str, np.ndarray]], out_dir: Path,
                 ct_window: tuple[float, float] = (-160.0, 240.0), suv_max: float = 15.0) -> Path:
    """The visual report: one row per lesion — CT, PET and PET-on-CT with the mask outline, axial slice
    through the captioner patch's centre — and the caption with the top-5 locations beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, len(result.lesions))
    fig, axes = plt.subplots(rows, 4, figsize=(14, 3.2 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
    for r, lesion in enumerate(result.lesions):
        patch = np.asarray(patches[lesion.instance]["captioner"], dtype=np.float32)  # (3, z, y, x)
        z = patch.shape[1] // 2
        ct, pet, mask = patch[0, z], patch[1, z], patch[2, z]
        ax = axes[r]
        ax[0].imshow(ct, cmap="gray", vmin=ct_window[0], vmax=ct_window[1])
        ax[0].set_title(f"lesion {lesion.instance}: CT")
        ax[1].imshow(pet, cmap="gray_r", vmin=0, vmax=suv_max)
        ax[1].set_title(f"PET (SUVmax {lesion.suv_max:.1f})")
        ax[2].imshow(ct, cmap="gray", vmin=ct_window[0], vmax=ct_window[1])
        ax[2].imshow(np.ma.masked_less(pet, 0.5), cmap="hot", vmin=0, vmax=suv_max, alpha=0.6)
        if mask.any():
            ax[2].contour(mask, levels=[0.5], colors="cyan", linewidths=0.8)
        ax[2].set_title("fused + mask")
        for a in ax[:3]:
            a.axis("off")
        top = "\n".join(f"  {i + 1}. {t['location']} ({t['confidence']:.2f})" for i, t in enumerate(lesion.top5))
        ax[3].axis("off")
        ax[3].text(0, 1, f"{lesion.caption}\n\nwindow: {lesion.window}\ntop-5:\n{top}", va="top", ha="left",
                   fontsize=9, wrap=True, transform=ax[3].transAxes)
    if not result.lesions:
        axes[0][0].text(0.5, 0.5, "no lesions", ha="center")
    fig.suptitle(f"study {result.study_id} ({result.vendor}, {result.tracer}): {len(result.lesions)} lesion(s)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (3.2 * rows)))
    path = Path(out_dir) / REPORT_NAME
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{REPORT_NAME}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=80)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path


# ------------------------------------------------------------------------------------------ the models
class CaptionModels:
    """The localizer and captioner loaded once (a service keeps this between studies) and how they are applied.

    ``method``: the captioner's training recipe (``MethodConfig``: ``dws``, ``cglp``, ``beam_size``,
    ``mask_channel``), read from its checkpoint, so a served caption is made the way the model was trained and
    evaluated (``models.training.captioner.predict`` does the same for the test split).
    """

    def __init__(self, localizer_checkpoint: Path | str, captioner_checkpoint: Path | str, settings: Settings,
                 device: str = "cpu"):
        from models.captioner import load_checkpoint
        from models.localizer import load_localizer
        from models.training.captioner import method_of

        self.settings = settings
        self.device = device
        self.localizer = load_localizer(localizer_checkpoint, map_location=device)
        self.captioner, self.cfg, self.vocab, extra = load_checkpoint(captioner_checkpoint, map_location=device)
        self.method = method_of(extra)
        self.paths = {"localizer": str(localizer_checkpoint), "captioner": str(captioner_checkpoint)}

    def caption(self, patches: dict[int, dict[str, np.ndarray]], lesions: list[Lesion], tracer: str,
                geometry: Geometry | None = None) -> list[LesionCaption]:
        """One ``LesionCaption`` per lesion, in instance order: localizer top-k -> DWS -> CGLP -> decoding.

        ``tracer``: the study's (FDG | PSMA), the captioner's context token; ``geometry``: the study's CT grid,
        which a localizer trained with the scan position needs (``Geometry.scan_position`` of each centroid).
        """
        import torch

        from models.cglp import cglp_prompt_ids
        from models.dws import DynamicWindow
        from models.training.captioner import generate_captions
        from models.training.data import captioner_inputs, centre_crop, localizer_input
        from models.training.localizer import localize_inputs

        if not lesions:
            return []
        s = self.settings
        lcfg = self.localizer.cfg
        large = torch.from_numpy(np.stack([np.asarray(patches[les.instance]["localizer"], dtype=np.float32)
                                           for les in lesions]))  # (N, 3, z, y, x): HU, SUV, mask
        small = torch.from_numpy(np.stack([np.asarray(patches[les.instance]["captioner"], dtype=np.float32)
                                           for les in lesions]))  # (N, 3, z, y, x)
        # The training pipeline's localizer inputs (models.training.data.localizer_inputs, from memory instead
        # of the patch store): wide CT window, PET / suv_max, mask 0/1, area-resized, kept as float16.
        x = localizer_input(large, lcfg, s.pet_suv_max, lcfg.patch_size)
        details = localizer_input(small, lcfg, s.pet_suv_max, lcfg.detail_size) if lcfg.detail_size else None
        positions = None
        if lcfg.uses_position:
            if geometry is None:
                raise ValueError("this localizer uses the lesion's scan position: pass the study's CT geometry")
            positions = torch.from_numpy(np.stack([geometry.scan_position(les.centroid_mm)
                                                   for les in lesions]).astype(np.float32))  # (N, 3)
        ids, conf = localize_inputs(self.localizer, x, device=self.device, positions=positions,
                                    details=details)  # (N, 5) long, (N, 5) float32

        raw = centre_crop(small, self.cfg.patch_size).clone()
        image = captioner_inputs(raw, ids[:, 0], conf[:, 0], s, self.method.dws, self.method.mask_channel)
        image = image.half().float().to(self.device)  # training keeps its inputs as float16
        prompt = cglp_prompt_ids(ids, conf, self.vocab, threshold=s.cglp_threshold, length=self.cfg.prompt_len,
                                 enabled=self.method.cglp, counts=tuple(s.cglp_prompt_locations),
                                 tracers=[tracer] * len(lesions) if self.method.tracer_token else None
                                 ).to(self.device)
        texts = generate_captions(self.captioner, self.vocab, image, prompt.cpu(), beam_size=self.method.beam_size,
                                  device=self.device, method=self.method, confidences=conf)
        window = DynamicWindow(s.dws_threshold, enabled=self.method.dws)
        results = []
        for i, les in enumerate(lesions):
            words = [self.vocab.itos[t] for t in prompt[i].tolist()] if self.cfg.use_prompt else []
            w = window.window(int(ids[i, 0]), conf[i, 0])
            results.append(LesionCaption(
                instance=les.instance, centroid_mm=tuple(round(v, 2) for v in les.centroid_mm),
                volume_ml=round(les.volume_ml, 3), suv_max=round(les.suv_max, 2),
                top5=top5_entries(ids[i].tolist(), conf[i].tolist()), window=_window_name(w),
                prompt=" ".join(t for t in words if t != "<pad>"), caption=texts[i]))
        return results


def _window_name(window) -> str:
    """"soft_tissue (L40/W350)": the window group and its level / width in HU."""
    from data_contracts.taxonomy import WINDOWS

    group = next((g.value for g, w in WINDOWS.items() if w == window), "custom")
    return f"{group} (L{window.level:g}/W{window.width:g})"


# ------------------------------------------------------------------------------------------ one study
@dataclass(frozen=True)
class CaptionStudyResult:
    json_path: Path
    report_path: Path
    lesions: int
    seconds: float  # wall clock, ingestion included
    captions: StudyCaptions


def caption_study(study_dir: Path | str, out_dir: Path | str, settings: Settings, models: CaptionModels,
                  vendor: str | None = None, tracer: str | None = None) -> CaptionStudyResult:
    """Caption every lesion of one new study; write ``captions.json`` and ``report.png`` into ``out_dir``.

    ``models`` are loaded once by the caller (``CaptionModels``); ingestion goes to ``out_dir``'s private store.
    Raises ``IngestError`` for a study that cannot be ingested, naming the file and the problem.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    ingested, local = ingest_new_study(study_dir, out_dir, settings, vendor, tracer)
    t1 = time.perf_counter()
    patches = study_patches(local, ingested)
    t2 = time.perf_counter()
    lesions = sorted(ingested.lesions, key=lambda les: les.instance)
    geometry = volumes.open_study(local.store_url, ingested.study.study_id).geometry
    captions = models.caption(patches, lesions, ingested.study.tracer.value, geometry)
    t3 = time.perf_counter()
    result = StudyCaptions(study_id=ingested.study.study_id, vendor=ingested.study.vendor.value,
                           tracer=ingested.study.tracer.value, lesions=captions, models=models.paths)
    report = write_report(result, patches, out_dir, suv_max=settings.pet_suv_max)
    t4 = time.perf_counter()
    result.seconds = {"ingest": round(t1 - t0, 3), "patches": round(t2 - t1, 3), "models": round(t3 - t2, 3),
                      "outputs": round(t4 - t3, 3), "total": round(t4 - t0, 3)}
    path = write_json(result, out_dir)
    log.info("captioned %s: %d lesions in %.1f s", result.study_id, len(captions), t4 - t0)
    return CaptionStudyResult(path, report, len(captions), time.perf_counter() - t0, result)


_MODELS: dict[tuple[str, str, str], CaptionModels] = {}


def caption_study_files(study_dir: Path | str, out_dir: Path | str, settings: Settings, localizer_checkpoint: str,
                        captioner_checkpoint: str, vendor: str | None = None,
                        tracer: str | None = None) -> CaptionStudyResult:
    """``caption_study`` with checkpoint paths instead of loaded models: what a batch runs on a Dask worker.

    The models are loaded once per process and kept (keyed by the two paths and the settings), so a worker
    that captions many studies pays the load once.
    """
    key = (str(localizer_checkpoint), str(captioner_checkpoint), settings.model_dump_json())
    if key not in _MODELS:
        _MODELS[key] = CaptionModels(localizer_checkpoint, captioner_checkpoint, settings)
    return caption_study(study_dir, out_dir, settings, _MODELS[key], vendor, tracer)
