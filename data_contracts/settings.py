"""The one typed settings object. Every path, threshold and default lives here.

Each field can be overridden from the environment with the ``PETCAP_`` prefix (nested fields with ``__``,
e.g. ``PETCAP_LLM__BASE_URL``) or from a ``.env`` file. Paths not set explicitly derive from ``home``,
so pointing ``PETCAP_HOME`` at a folder moves the whole working set; ``store_url`` may be any fsspec URL
(``s3://bucket/volumes.zarr``) so the volume store can live on object storage.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_serializer, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from data_contracts.site_key import HomeKey

STORE_NAME = "volumes.zarr"  # a volume store's folder: <home>/volumes.zarr, and the private one in a caption output


def _comma_list(value: Any) -> Any:
    """A list setting as people type it: ``vllm,localhost`` (commas), ``vllm`` (one) or JSON ``["vllm"]``."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return value


# A tuple of strings that an environment variable may give as a comma list (JSON still accepted).
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)]


class RawLayout:
    """Where things lie in a raw drop folder (a hospital delivery or `petcap synth` output).

    studies/<key>/ct/*.dcm | ct.nii.gz, pet/*.dcm | pet.nii.gz (+ pet.json), lesions.nii.gz, anatomy.nii.gz
    (+ anatomy.json); reports/<key>.txt; manifest.csv; truth/ (synthetic ground truth, evaluation only).
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.csv"

    @property
    def studies(self) -> Path:
        return self.root / "studies"

    def study_dir(self, key: str) -> Path:
        return self.studies / key

    def report(self, key: str) -> Path:
        return self.root / "reports" / f"{key}.txt"

    # One study's files. ``fmt`` is the study's source format: "dicom" (a folder of slices) or "nifti".
    def ct(self, key: str, fmt: str = "nifti") -> Path:
        return self.study_dir(key) / ("ct" if fmt == "dicom" else "ct.nii.gz")

    def pet(self, key: str, fmt: str = "nifti") -> Path:
        return self.study_dir(key) / ("pet" if fmt == "dicom" else "pet.nii.gz")

    def lesions(self, key: str) -> Path:
        return self.study_dir(key) / "lesions.nii.gz"

    def anatomy(self, key: str) -> Path:
        return self.study_dir(key) / "anatomy.nii.gz"

    @staticmethod
    def sidecar(image: Path | str) -> Path:
        """The JSON sidecar beside a NIfTI image (BIDS convention: same name, ``.json``)."""
        image = Path(image)
        stem = image.name.removesuffix(".gz").removesuffix(".nii")
        return image.with_name(stem + ".json")

    def relative(self, path: Path | str) -> str:
        """A path inside the drop folder as the manifest spells it (POSIX, relative to the root)."""
        return Path(path).relative_to(self.root).as_posix()

    @property
    def truth(self) -> Path:
        return self.root / "truth"

    @property
    def truth_lesions(self) -> Path:
        return self.truth / "lesions.parquet"

    @property
    def truth_report_findings(self) -> Path:
        return self.truth / "report_findings.parquet"


class SynthSettings(BaseModel):
    model_config = ConfigDict(frozen=True)
    patients: int = Field(12, ge=1)
    seed: int = 0
    scale: str = Field("demo", pattern=r"^(tiny|demo|full)$")  # tiny: unit tests; full: clinical size
    # Scanner mix like the paper's cohort (Siemens 301, GE 290, United Imaging 1,276 of 1,867).
    vendor_mix: tuple[float, float, float] = (0.16, 0.16, 0.68)
    fdg_fraction: float = Field(0.69, ge=0, le=1)  # FDG 1,292 of 1,867; the rest PSMA
    dicom_vendors: CommaList = ("Siemens",)  # delivered as DICOM series; the others as NIfTI
    lesions_per_patient: tuple[int, int] = (1, 12)  # a patient with disease: skewed towards few lesions
    lesion_free_fraction: float = Field(0.25, ge=0, le=1)  # patients without disease (restaging after a response)
    followup_fraction: float = Field(0.25, ge=0, le=1)  # patients with a second study (same patient ID)
    workers: int = Field(2, ge=1)  # processes generating studies in parallel


class PlausibilitySettings(BaseModel):
    """Bands a study must lie in to be ingested (tasks.ingest.plausibility); wide on purpose: they catch wrong
    units and wrong files (grams for kg, Bq for MBq, another patient's PET), not unusual patients."""

    model_config = ConfigDict(frozen=True)
    weight_kg: tuple[float, float] = (20.0, 300.0)
    uptake_min: tuple[float, float] = (10.0, 300.0)  # injection -> scan start
    # Injected activity per tracer (MBq): FDG ~ 2-5 MBq/kg, Ga-68 / F-18 PSMA ~ 1.8-4 MBq/kg.
    dose_mbq: dict[str, tuple[float, float]] = {"FDG": (20.0, 1200.0), "PSMA": (20.0, 1000.0)}
    # Every axis of CT and PET voxels. Clinical PET is 2-6 mm; the upper bound admits the 12.5 mm voxels of the
    # synthetic "tiny" scale the test suites use and still catches the unit slips (um or m read as mm: x1000).
    spacing_mm: tuple[float, float] = (0.3, 20.0)
    min_slices: int = Field(8, ge=1)
    min_negative_fraction: float = Field(0.01, gt=0, le=1)  # more voxels than this below -1 SUV: negative_pet
    # Reference region SUVmean (liver, else blood pool in the aorta) per tracer: normal physiology is well
    # inside (FDG liver 1.5-3.5, PSMA liver 4-12); outside means wrong units, wrong dose or another patient's PET.
    liver_suv: dict[str, tuple[float, float]] = {"FDG": (0.8, 5.0), "PSMA": (1.5, 25.0)}
    blood_pool_suv: dict[str, tuple[float, float]] = {"FDG": (0.6, 4.0), "PSMA": (0.3, 6.0)}
    min_reference_ml: float = Field(20.0, gt=0)  # a reference region smaller than this is not used
    min_body_dice: float = Field(0.82, ge=0, le=1)  # PET vs CT body outline; below: pet_ct_mismatch
    # PET vs CT axial field of view: one acquisition's PET and CT are planned over the same range; a PET ending
    # further than this from the CT's ends is another patient's or scan's (pet_ct_mismatch)
    max_axial_offset_mm: float = Field(40.0, gt=0)


class IngestSettings(BaseModel):
    model_config = ConfigDict(frozen=True)
    chunks: tuple[int, int, int] = (32, 128, 128)  # zarr chunk (z, y, x)
    # zarr codec: "blosc-lz4" (byte shuffle; fastest), "blosc-zstd" (bit shuffle; ~15 % smaller), "zstd"
    compressor: str = Field("blosc-lz4", pattern=r"^(zstd|blosc-zstd|blosc-lz4)$")
    compression_level: int = Field(3, ge=1, le=22)  # codec level (Blosc caps it at 9)
    pet_spacing_mm: tuple[float, float, float] | None = None  # None: PET on its own grid; else resampled (its FOV)
    ct_spacing_mm: tuple[float, float, float] | None = None  # None: CT kept at its native spacing
    min_lesion_voxels: int = Field(3, ge=1)
    max_workers: int = Field(2, ge=1)
    plausibility: PlausibilitySettings = PlausibilitySettings()


class LLMSettings(BaseModel):
    model_config = ConfigDict(frozen=True)
    backend: str = Field("rules", pattern=r"^(rules|openai)$")
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "Qwen/Qwen2.5-7B-Instruct"
    api_key: SecretStr = SecretStr("EMPTY")
    allow_remote_llm: bool = False
    allowed_hosts: CommaList = ()  # PETCAP_LLM__ALLOWED_HOSTS=vllm,10.20.0.0/16
    concurrency: int = Field(4, ge=1)  # requests in flight at once
    timeout_s: float = Field(60.0, gt=0)  # per request
    max_retries: int = Field(4, ge=0)  # on 429 / 5xx / timeout / connection error, per request
    backoff_base_s: float = Field(0.5, gt=0)  # retry k waits ~ base * 2**k (with jitter), at most backoff_max_s
    backoff_max_s: float = Field(30.0, gt=0)
    max_completion_tokens: int = Field(4096, ge=64)
    # How the answer schema is sent (tasks.structure.llm_dialects): json_schema (OpenAI, vLLM),
    # json_object_schema (llama.cpp server), structured_outputs (vLLM >= 0.12 extra_body), guided_json
    # (vLLM < 0.12 extra_body); auto tries them in that order and remembers what the endpoint accepted.
    structured_output: str = Field("auto", pattern=r"^(auto|json_schema|json_object_schema|structured_outputs"
                                                   r"|guided_json)$")
    use_cache: bool = True
    cache_dir: Path | None = None  # response cache (JSON files); None: <home>/cache/llm


class LinkSettings(BaseModel):
    """Costs of matching a lesion mask to a report finding (lower is better; pairs above ``max_cost`` refused)."""

    model_config = ConfigDict(frozen=True)
    cost_same_location: float = 0.0
    cost_unknown_location: float = 0.8  # the mask lies on no labelled structure (e.g. fat, muscle)
    cost_near_location: float = 0.7  # same system, region and side (T7 vs T8, level II vs III)
    cost_other_location: float = 3.0  # anything else: never linked
    suv_weight: float = 0.5  # per unit |ln(SUVmax mask / SUVmax report)|
    size_weight: float = 0.3  # per unit |ln| of size ratio beyond the tolerance
    size_tolerance: float = 1.6  # long axis vs equivalent-sphere diameter
    max_cost: float = 1.5


class PatchSettings(BaseModel):
    """Patch extraction (stage 4): the two fields of view, the patch store, and the Dask cluster that runs it.

    Sizes are voxel counts in array order (z, y, x); spacings are (x, y, z) mm like every grid here. Patches
    are sampled on an LPS-aligned grid centred on the lesion centroid, whatever the volume's orientation.
    """

    model_config = ConfigDict(frozen=True)
    # Localizer: large, coarse field of view (96 x 4 mm = 38.4 cm: vertebrae, ribs and the midline in view).
    localizer_size: tuple[int, int, int] = (96, 96, 96)
    localizer_spacing_mm: tuple[float, float, float] = (4.0, 4.0, 4.0)
    # Captioner: small, fine field of view (48 x 1.5 mm = 7.2 cm) around the lesion.
    captioner_size: tuple[int, int, int] = (48, 48, 48)
    captioner_spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5)
    dtype: str = Field("float16", pattern=r"^(float16|float32)$")  # float16: 1 HU steps up to 2048 HU
    ct_pad_hu: float = -1000.0  # CT outside the volume (air); PET and mask are padded with 0
    store_url: str | None = None  # patch store root (path or fsspec URL); None: <home>/patches.zarr
    compressor: str = Field("blosc-lz4", pattern=r"^(zstd|blosc-zstd|blosc-lz4)$")
    compression_level: int = Field(3, ge=1, le=22)
    # Dask: an existing scheduler ("tcp://host:8786") when set, else a LocalCluster of these workers.
    scheduler_address: str | None = None
    workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    processes: bool = True  # LocalCluster workers as processes (False: threads of this process)
    memory_limit: str = "4GiB"  # per LocalCluster worker (Dask restarts a worker that exceeds it)
    commit_every: int = Field(256, ge=1)  # finished samples registered in the sample table per commit
    # Lesions of one study swept together (memory ~6 MB per lesion at the default sizes); a study with more
    # is swept in batches along z, decoding the chunks two batches share twice.
    max_open_lesions: int = Field(24, ge=1)


class SplitSettings(BaseModel):
    """Patient-level train/val/test splits, stratified per vendor (stage 5)."""

    model_config = ConfigDict(frozen=True)
    # The paper's 1,647 / 100 / 120 of 1,867 patients (88.2 / 5.4 / 6.4 %).
    ratios: tuple[float, float, float] = (1647 / 1867, 100 / 1867, 120 / 1867)
    seed: str = "petcap-splits-1"  # key of the hash that orders newly added patients
    min_patients_for_eval: int = Field(3, ge=2)  # a vendor with this many patients has >= 1 val and >= 1 test

    @model_validator(mode="after")
    def _ratios(self):
        if min(self.ratios) < 0 or abs(sum(self.ratios) - 1.0) > 1e-6:
            raise ValueError(f"split ratios must be >= 0 and sum to 1, got {self.ratios}")
        return self


class RefreshSettings(BaseModel):
    """What a dataset refresh may do before it stops (``flows.refresh``; docs in infra/README.md).

    A refresh in which more than ``max_failed_share`` of the studies (ingestion), the reports (structuring) or
    the LLM calls fail ends FAILED with the counts and changes no derived table. Samples leave the tables only
    for studies withdrawn from the delivery log (``petcap withdraw``), unless ``allow_removals``.
    """

    model_config = ConfigDict(frozen=True)
    max_failed_share: float = Field(0.2, ge=0, le=1)
    # Fewer failures than this never fail a refresh unless everything failed (one missing report of four is
    # quarantined and the rest go on; a server down fails every report and the run).
    min_failures: int = Field(3, ge=1)
    allow_removals: bool = False


class TrackingSettings(BaseModel):
    """MLflow tracking and model registry (stages 8-9).

    ``uri`` None: a sqlite file under home (``sqlite:///<home>/mlflow.db``); any MLflow server URI works
    (``http://mlflow:5000``). The registry lives at the same URI unless ``registry_uri`` says otherwise.
    """

    model_config = ConfigDict(frozen=True)
    uri: str | None = None  # None: sqlite:///<home>/mlflow.db
    registry_uri: str | None = None  # None: same as the tracking URI
    artifact_location: str | None = None  # new experiments' artifact root; None: the server's, else <home>/mlruns
    experiment_prefix: str = "petcap"  # experiment per flow: "<prefix>/<flow>" (train-localizer, evaluate, ...)
    registered_model: str = "petcap-lesion-captioner"  # localizer + captioner, registered together
    champion_alias: str = "champion"
    # Promotion gate: the candidate's validation BLEU-4 must beat the champion's, and no vendor's BLEU-4 may
    # fall by more than this (absolute, BLEU on the 0..1 scale; 0.01 = one percentage point).
    promotion_vendor_margin: float = Field(0.01, ge=0)


class EvalSettings(BaseModel):
    """Evaluation (stage 8): caption metrics, significance tests and the report."""

    model_config = ConfigDict(frozen=True)
    # Folder holding stanford-corenlp-3.6.0.jar and stanford-corenlp-3.6.0-models.jar; SPICE runs only when
    # both are found there, and is reported as unavailable otherwise (never as 0).
    spice_jar_dir: Path | None = None
    bootstrap_samples: int = Field(1000, ge=100)  # resamples of lesions for the confidence intervals
    confidence_level: float = Field(0.95, gt=0, lt=1)
    significance_alpha: float = Field(0.05, gt=0, lt=1)  # paired t-test level for the tables' marks
    bootstrap_seed: int = 0
    example_panels: int = Field(4, ge=0)  # Fig.-3-like panels in the report
    reliability_bins: int = Field(10, ge=2)
    reports_dir: Path | None = None  # None: <home>/reports


class TrainSettings(BaseModel):
    """Model training (stage 6): where checkpoints go and how the machine is used; the recipes are named configs
    (``models/training/configs/*.toml``)."""

    model_config = ConfigDict(frozen=True)
    checkpoints_dir: Path | None = None  # None: <home>/checkpoints
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda)$")  # auto: CUDA when available
    threads: int = Field(0, ge=0)  # torch intra-op threads on CPU; 0: one per core (os.cpu_count())
    loader_workers: int = Field(0, ge=0)  # DataLoader worker processes (0: in the training process)
    seed: int = 0


class PacsSettings(BaseModel):
    """The department's PACS over DICOMweb (QIDO-RS / WADO-RS / STOW-RS) and its RIS report export.

    Credentials come from the environment (``PETCAP_PACS__TOKEN`` or ``PETCAP_PACS__USERNAME`` /
    ``PETCAP_PACS__PASSWORD``) and are never logged or written anywhere.
    """

    url: str | None = None  # DICOMweb root, e.g. http://pacs:8042/dicom-web
    token: SecretStr | None = None  # bearer token (Authorization: Bearer ...)
    username: str | None = None  # HTTP basic, with password
    password: SecretStr | None = None
    timeout_s: float = Field(60.0, gt=0)
    batch_size: int = Field(50, ge=1)  # studies per QIDO page
    modality: str = "PT"  # a study qualifies when it holds a series of this modality (and a CT)
    reports_dir: Path | None = None  # RIS export: <AccessionNumber>.txt, or reports.csv (accession_number, text)
    mask_source: str = Field("seg", pattern=r"^(seg|folder)$")  # lesion masks: a SEG in the study, or a folder
    mask_dir: Path | None = None  # mask_source "folder": <StudyInstanceUID or AccessionNumber>.nii.gz (nnU-Net)
    push_series_number: int = Field(900, ge=1)  # SEG gets this + 1, SR + 2


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PETCAP_", env_nested_delimiter="__", env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Path("var")
    raw_dir: Path | None = None  # hospital drop folder or `petcap synth` output
    store_url: str | None = None  # Zarr v3 volume store root: a path or any fsspec URL; None: <home>/STORE_NAME
    tables_dir: Path | None = None  # Parquet tables every stage writes (studies, lesions, quarantine, ...)
    docs_dir: Path = Path("docs")

    # HMAC key of the pseudonyms; set per site. Unset: a random key generated per home on first use
    # (data_contracts.site_key: <home>/secrets/pseudonym.key, owner-only; back it up).
    pseudonym_key: SecretStr | None = None

    # The paper's two 0.95 thresholds (sections 2.2 and 2.3).
    cglp_threshold: float = Field(0.95, ge=0, le=1)  # top-1 confidence > this: prompt top-1, else top-1..3
    dws_threshold: float = Field(0.95, ge=0, le=1)  # top-1 confidence >= this: that region's window
    cglp_prompt_locations: tuple[int, int] = (1, 3)
    localizer_top_k: int = 5
    # PET SUV -> [0, 1] for both models: SUV 0..pet_suv_max mapped linearly, higher values clipped to 1.
    pet_suv_max: float = Field(15.0, gt=0)

    synth: SynthSettings = SynthSettings()
    ingest: IngestSettings = IngestSettings()
    llm: LLMSettings = LLMSettings()
    link: LinkSettings = LinkSettings()
    patches: PatchSettings = PatchSettings()
    splits: SplitSettings = SplitSettings()
    refresh: RefreshSettings = RefreshSettings()
    train: TrainSettings = TrainSettings()
    tracking: TrackingSettings = TrackingSettings()
    evaluation: EvalSettings = EvalSettings()
    pacs: PacsSettings = PacsSettings()

    @model_validator(mode="after")
    def _derive_paths(self):
        # Absolute from start-up on: a flow run on another machine, or a Dask worker started elsewhere, must
        # not resolve a relative home (the default ``var``) against its own working directory.
        object.__setattr__(self, "home", Path(os.path.abspath(self.home.expanduser())))
        derived = {
            "raw_dir": self.home / "raw",
            "store_url": str(self.home / STORE_NAME),
            "tables_dir": self.home / "tables",
        }
        for name, value in derived.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.pseudonym_key is None or not self.pseudonym_key.get_secret_value():
            object.__setattr__(self, "pseudonym_key", HomeKey(self.home))
        return self

    @field_serializer("pseudonym_key")
    def _hide_key(self, key: SecretStr | None) -> str:
        return "**********"  # never the key, and never a reason to generate one

    # Paths derived from the roots above: the only place they are spelled.
    @property
    def raw(self) -> RawLayout:
        return RawLayout(self.raw_dir)

    @property
    def llm_cache_dir(self) -> Path | None:
        """LLM answer cache: ``llm.cache_dir``, else ``<home>/cache/llm``; None when caching is off."""
        if not self.llm.use_cache:
            return None
        return self.llm.cache_dir if self.llm.cache_dir is not None else self.home / "cache" / "llm"

    @property
    def corrections_path(self) -> Path:
        """Clinicians' location corrections (``petcap caption --lesion N --location ID``), a training label source."""
        return self.table_path("corrections")

    def table_path(self, name: str) -> Path:
        return self.tables_dir / f"{name}.parquet"

    @property
    def checkpoints_dir(self) -> Path:
        """Model checkpoints and the localizer's top-5 cache: ``train.checkpoints_dir``, else ``<home>/checkpoints``."""
        return self.train.checkpoints_dir if self.train.checkpoints_dir is not None else self.home / "checkpoints"

    @property
    def localizer_checkpoint(self) -> Path:
        """The trained localizer the captioner is trained on and registered with."""
        return self.checkpoints_dir / "localizer.pt"

    @property
    def patch_store_url(self) -> str:
        """Zarr patch store root: ``patches.store_url``, else ``<home>/patches.zarr``."""
        return self.patches.store_url if self.patches.store_url is not None else str(self.home / "patches.zarr")

    @property
    def tracking_db(self) -> Path:
        """The embedded MLflow database, ``<home>/mlflow.db`` (used when ``tracking.uri`` is None)."""
        return self.home / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI: ``tracking.uri``, else ``sqlite:///<home>/mlflow.db`` (absolute path)."""
        if self.tracking.uri is not None:
            return self.tracking.uri
        return f"sqlite:///{self.tracking_db.resolve()}"

    @property
    def registry_uri(self) -> str:
        return self.tracking.registry_uri if self.tracking.registry_uri is not None else self.tracking_uri

    @property
    def artifact_location(self) -> str | None:
        """Artifact root of experiments created here: ``tracking.artifact_location``; else, with a tracking server
        (``http(s)://``), None: the server's own root, so artifacts go through it (``mlflow server
        --serve-artifacts``) and no client writes the server's storage directly; else ``<home>/mlruns``."""
        if self.tracking.artifact_location is not None:
            return self.tracking.artifact_location
        if self.tracking_uri.startswith(("http://", "https://")):
            return None
        return (self.home / "mlruns").resolve().as_uri()

    @property
    def reports_dir(self) -> Path:
        """Evaluation reports: ``evaluation.reports_dir``, else ``<home>/reports``."""
        return self.evaluation.reports_dir if self.evaluation.reports_dir is not None else self.home / "reports"

    @property
    def preview_path(self) -> Path:
        return self.home / "preview.png"

    @property
    def captions_dir(self) -> Path:
        """Where `petcap caption` / caption-study write a study's captions JSON and visual report."""
        return self.home / "captions"

    @property
    def incoming_dir(self) -> Path:
        """The demo's drop folder for a new study that is not in the training cohort."""
        return self.home / "incoming"


@cache
def get_settings() -> Settings:
    return Settings()


def setting_env_names(model: type[BaseModel] = Settings, prefix: str = "PETCAP_") -> set[str]:
    """Every environment variable name that sets a field (``PETCAP_HOME``, ``PETCAP_LLM``, ``PETCAP_LLM__MODEL``)."""
    names = set()
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        names.add(env)
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            names |= setting_env_names(sub, env + "__")
    return names


# PETCAP_ variables that are read by deployment files, not by the settings (name -> where).
OTHER_VARIABLES = {"PETCAP_REPO": "infra/prefect.yaml: the checkout a Prefect worker runs flows from",
                   "PETCAP_LOG_LEVEL": "flows/logs.py: the level of the pipeline's loggers (read before settings)"}


def unknown_settings(environ: dict[str, str] | None = None) -> list[str]:
    """``PETCAP_`` variables in ``environ`` (default: this process's environment) that are no setting, sorted.

    Settings ignore them (``extra="ignore"``), so a misspelt name would otherwise change nothing, silently.
    """
    environ = os.environ if environ is None else environ
    known = setting_env_names() | set(OTHER_VARIABLES)
    return sorted(k for k in environ if k.upper().startswith("PETCAP_") and k.upper() not in known)
