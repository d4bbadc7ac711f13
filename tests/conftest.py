"""Fixtures shared across the test tree: a tiny cohort through the whole upstream chain and both models trained on
it (tiny configs, seconds on a CPU), each made once per session and reused by training, inference and serving
tests."""

from __future__ import annotations

import pytest

from data_contracts.settings import PatchSettings, Settings, SynthSettings, TrainSettings
# Store patches differ from the model sizes on purpose: the localizer's are area-resized 24^3 -> 16^3, the
# captioner's centre-cropped 20^3 -> 16^3.
PATCHES = PatchSettings(localizer_size=(24, 24, 24), localizer_spacing_mm=(16.0, 16.0, 16.0),
                        captioner_size=(20, 20, 20), captioner_spacing_mm=(4.0, 4.0, 4.0), dtype="float32",
                        workers=1, processes=False)
LOCALIZER = {"loop.epochs": 2, "loop.batch_size": 8, "loop.threads": 1, "loop.val_every": 1,
             "model.patch_size": [16, 16, 16], "model.encoder_channels": [8, 8, 16, 16],
             "model.embed_dim": 32, "model.text_width": 32, "model.text_layers": 1, "model.text_heads": 2}
CAPTIONER = {"loop.epochs": 2, "loop.batch_size": 8, "loop.threads": 1, "loop.val_every": 2,
             "model.patch_size": [16, 16, 16], "model.encoder_channels": [8, 8, 16, 16], "model.dim": 32,
             "model.heads": 2, "model.encoder_layers": 1, "model.decoder_layers": 1, "method.beam_size": 2}


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Settings:
    """Six tiny patients through the whole upstream chain, once per session."""
    from tasks.ingest import ingest_all
    from tasks.link import link_dataset
    from tasks.patches.extract import extract_patches
    from tasks.splits import update_splits
    from tasks.synth.cohort import synthesize_cohort

    home = tmp_path_factory.mktemp("train-cohort")
    # every study with 3-8 lesions (ingest quarantines a lesion-free study)
    settings = Settings(home=home, patches=PATCHES, train=TrainSettings(threads=1),
                        synth=SynthSettings(lesion_free_fraction=0.0, lesions_per_patient=(3, 8)))
    synthesize_cohort(settings.raw_dir, patients=6, seed=5, scale="tiny", settings=settings, progress=False)
    ingest_all(settings, progress=False)
    link_dataset(settings, "rules")
    extract_patches(settings, progress=False)
    update_splits(settings)
    return settings


@pytest.fixture(scope="session")
def trained(cohort, tmp_path_factory):
    """Both models trained (tiny overrides) into their own checkpoint folder."""
    settings = cohort.model_copy(update={"train": TrainSettings(
        threads=1, checkpoints_dir=tmp_path_factory.mktemp("checkpoints"))})
    from models.training.captioner import train_captioner
    from models.training.localizer import train_localizer

    loc = train_localizer(settings, "demo", LOCALIZER, progress=False)
    from tasks.evaluate.metrics import validation_scores

    cap = train_captioner(settings, "b_w_p", CAPTIONER, progress=False, score_captions=validation_scores)
    return settings, loc, cap


from tests.pacs_support import dicom_drop, pacs  # noqa: E402,F401 - the PACS fixtures, shared by tasks/pacs and serving
