"""``caption-studies``: a drop folder captioned on a DaskTaskRunner (worker processes), a corrupt study reported
while the others are captioned. Slow (trains tiny models, starts a Dask cluster of processes): ``pytest -m slow``."""

from __future__ import annotations

import json

import pytest

from data_contracts.settings import Settings, SynthSettings
from tasks.ingest.pseudonym import study_pseudonym
from tests.flows.conftest import TINY_CAPTIONER, TINY_LOCALIZER, home_copy


@pytest.mark.slow
def test_caption_studies_on_dask_reports_a_corrupt_study_and_captions_the_others(refreshed, tiny_raw, tmp_path,
                                                                                 fast_patches):
    from flows.caption import caption_studies_flow
    from flows.evaluation import promote_captioner_flow
    from flows.training import train_captioner_flow, train_localizer_flow
    from tasks.synth.cohort import synthesize_cohort

    home = home_copy(refreshed, tmp_path / "home")
    train_localizer_flow(home=str(home), overrides=TINY_LOCALIZER)
    train_captioner_flow(home=str(home), overrides=TINY_CAPTIONER)
    assert promote_captioner_flow(home=str(home))["promoted"]

    drop = tmp_path / "drop"
    synthesize_cohort(drop, patients=2, seed=777, scale="tiny",
                      settings=Settings(home=home, synth=SynthSettings(lesion_free_fraction=0.0)), progress=False)
    studies = sorted(p.name for p in (drop / "studies").iterdir())
    bad = studies[0]
    (drop / "studies" / bad / "lesions.nii.gz").write_bytes(b"not a nifti file")

    out = caption_studies_flow(drop_dir=str(drop), home=str(home), out_dir=str(tmp_path / "captions"))
    assert out["model_version"] == "1"
    key = Settings(home=home).pseudonym_key
    assert set(out["studies"]) == {study_pseudonym(s, key) for s in studies}  # never the raw folder names
    assert "lesions.nii.gz" in out["studies"][study_pseudonym(bad, key)]["error"]
    for name in [study_pseudonym(s, key) for s in studies[1:]]:
        result = out["studies"][name]
        captions = json.loads((tmp_path / "captions" / name / "captions.json").read_text())
        assert result["lesions"] == len(captions["lesions"]) > 0
        assert all(les["caption"].strip() and len(les["top5"]) == 5 for les in captions["lesions"])
