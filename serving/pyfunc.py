"""The registered model: localizer + captioner as ONE MLflow pyfunc that captions studies on its own.

It carries its code (``code_paths``: the ``data_contracts``, ``tasks``, ``models`` and ``serving`` packages, so
``mlflow models serve`` or ``mlflow.pyfunc.load_model`` in a fresh environment imports them from the model
folder, not from a checkout) and pinned requirements (the versions it was registered with). Artifacts are the two
checkpoint files; loading rebuilds both networks from them (no MLflow torch serialization). Method parameters
come from the checkpoints (``models.inference.InferenceParams``), never from the serving environment.

Input: a DataFrame, one row per request (``input_example()``):
    study      a raw study folder (ct/ or ct.nii.gz, pet/ or pet.nii.gz, lesions.nii.gz) visible to the server,
               or a volume store root (path or fsspec URL) holding the study ``study_id``
    study_id   the study's pseudonym in that store ("" for a folder)
    lesions    lesion instance ids, comma-separated ("" = every lesion)
    vendor, tracer   optional: when a folder's PET header does not say
Output: one row per lesion: study, study_id, lesion, caption, top_ids (5 taxonomy ids, ";"-joined),
top1_confidence, window (lung | bone | soft_tissue), prompt, status ("captioned" | "no lesions" | "error: ...").
A request that fails (a folder that cannot be read) gets one "error: ..." row; the other requests go on.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from data_contracts import taxonomy
from data_contracts.settings import Settings
from tasks.tracking import configure, experiment_id, lineage_tags

REPO = Path(__file__).resolve().parents[1]
CODE_PACKAGES = ("data_contracts", "tasks", "models", "serving")
# distributions the served code imports (pinned to the registering environment's versions)
REQUIREMENTS = ("torch", "monai", "numpy", "scipy", "pandas", "pyarrow", "pydantic", "pydantic-settings",
                "SimpleITK", "pydicom", "nibabel", "zlib-ng", "zarr", "numcodecs", "fsspec", "mlflow", "PyYAML")
OUTPUT_COLUMNS = ("study", "study_id", "lesion", "caption", "top_ids", "top1_confidence", "window", "prompt",
                  "status")


class PetcapCaptionModel(mlflow.pyfunc.PythonModel):
    """Artifacts ``localizer`` and ``captioner`` (checkpoints); see the module docstring for input and output."""

    def load_context(self, context):
        from models.inference import CaptionPipeline

        self.pipeline = CaptionPipeline.load(context.artifacts["localizer"], context.artifacts["captioner"])
        # The serving process's pseudonym key (PETCAP_PSEUDONYM_KEY, else its home's generated key): one study
        # gets the same pseudonym in every request, although each request ingests into a temporary home.
        self.pseudonym_key = Settings().pseudonym_key

    def predict(self, context, model_input, params=None):
        df = pd.DataFrame(model_input)
        rows: list[dict] = []
        for req in df.to_dict("records"):
            rows += self.caption_request({k: ("" if v is None or v != v else str(v)) for k, v in req.items()})
        return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))

    def caption_request(self, req: dict) -> list[dict]:
        from serving.study import caption_stored_study
        from tasks.new_study.intake import NoLesions, ingest_new_study

        study, study_id = req.get("study", ""), req.get("study_id", "")
        instances = [int(x) for x in req.get("lesions", "").replace(";", ",").split(",") if x.strip()] or None
        base = {"study": study, "study_id": study_id}
        try:
            with tempfile.TemporaryDirectory(prefix="petcap-serve-") as tmp:
                settings = Settings(home=Path(tmp) / "home", pseudonym_key=self.pseudonym_key)
                if study_id:
                    store_url = study
                else:  # a raw study folder: the training ingestion into a private, temporary store
                    ingested, local = ingest_new_study(study, Path(tmp) / "out", settings,
                                                       req.get("vendor") or None, req.get("tracer") or None)
                    if isinstance(ingested, NoLesions):
                        return [{**base, "study_id": ingested.study_id, "status": "no lesions"}]
                    store_url, study_id = local.store_url, ingested.study.study_id
                found = caption_stored_study(store_url, study_id, settings, self.pipeline, instances)
        except Exception as e:  # noqa: BLE001 - one bad request is reported in its row, the others go on
            return [{**base, "status": f"error: {type(e).__name__}: {str(e).splitlines()[0][:300]}"}]
        if not found.lesions:
            return [{**base, "study_id": study_id, "status": "no lesions"}]
        locs = taxonomy.locations()
        return [{**base, "study_id": study_id, "lesion": les.instance, "caption": a.caption,
                 "top_ids": ";".join(locs[i].id for i in a.top_ids), "top1_confidence": float(a.top_conf[0]),
                 "window": a.window, "prompt": a.prompt, "status": "captioned"}
                for les, a in zip(found.lesions, found.answers)]


def model_signature() -> ModelSignature:
    inputs = Schema([ColSpec("string", "study"), ColSpec("string", "study_id", required=False),
                     ColSpec("string", "lesions", required=False), ColSpec("string", "vendor", required=False),
                     ColSpec("string", "tracer", required=False)])
    outputs = Schema([ColSpec("string", "study"), ColSpec("string", "study_id"), ColSpec("long", "lesion"),
                      ColSpec("string", "caption"), ColSpec("string", "top_ids"),
                      ColSpec("double", "top1_confidence"), ColSpec("string", "window"),
                      ColSpec("string", "prompt"), ColSpec("string", "status")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example() -> pd.DataFrame:
    """Two requests: every lesion of a raw study folder, and lesions 1 and 2 of an ingested study."""
    return pd.DataFrame({"study": ["/data/incoming/study-0001", "/data/volumes.zarr"],
                         "study_id": ["", "st-4f9c2a71d0be"], "lesions": ["", "1,2"],
                         "vendor": ["", ""], "tracer": ["", ""]})


def pinned_requirements() -> list[str]:
    out = []
    for name in REQUIREMENTS:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def code_paths() -> list[str]:
    return [str(REPO / pkg) for pkg in CODE_PACKAGES]


def register_candidate(settings: Settings, localizer_checkpoint: Path | str, captioner_checkpoint: Path | str,
                       run_id: str | None = None, tags: dict[str, str] | None = None) -> str:
    """Register localizer + captioner as a new version of ``tracking.registered_model``. -> the version.

    The model is logged in ``run_id`` (e.g. the captioner's training run) or in a new run of the
    ``register`` experiment; lineage tags go on the version, so it says which cohort and split it saw.
    """
    client = configure(settings)
    own_run = run_id is None
    if own_run:
        run_id = client.create_run(experiment_id(settings, "register"),
                                   tags={**lineage_tags(settings), "petcap.flow": "register"}).info.run_id
    exp = client.get_run(run_id).info.experiment_id
    with mlflow.start_run(run_id=run_id, experiment_id=exp):
        info = mlflow.pyfunc.log_model(
            name="petcap-model", python_model=PetcapCaptionModel(),
            artifacts={"localizer": str(localizer_checkpoint), "captioner": str(captioner_checkpoint)},
            signature=model_signature(), input_example=input_example(), code_paths=code_paths(),
            registered_model_name=settings.tracking.registered_model, pip_requirements=pinned_requirements())
    if own_run:
        client.set_terminated(run_id)
    version = str(info.registered_model_version)
    for k, v in {**lineage_tags(settings), **(tags or {})}.items():
        client.set_model_version_tag(settings.tracking.registered_model, version, k, v)
    return version
