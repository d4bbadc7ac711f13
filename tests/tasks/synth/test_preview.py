"""The preview figure is drawn from the delivered files and shows three non-empty panels."""

import numpy as np
import pytest
from PIL import Image

from data_contracts import tables
from data_contracts.settings import RawLayout, Settings, SynthSettings
from tasks.synth import cohort as co
from tasks.synth.preview import render_preview


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    settings = Settings(synth=SynthSettings(workers=1))
    co.synthesize_cohort(root, patients=1, seed=5, scale="tiny", settings=settings, progress=False)
    return root


def test_preview_png(raw, tmp_path):
    key = tables.MANIFEST.read(RawLayout(raw).manifest)["study_key"].iloc[0]
    out = render_preview(raw, key, tmp_path / "p" / "preview.png")
    assert out.exists() and out.stat().st_size < 500_000
    img = np.asarray(Image.open(out).convert("L"), float)
    h, w = img.shape
    assert h > 400 and w > 400
    thirds = [img[h // 6: -h // 6, i * w // 3:(i + 1) * w // 3] for i in range(3)]
    # soft-tissue and lung windows: dark background with a bright body; PET MIP: white background, dark uptake
    assert all(t.std() > 20 for t in thirds)
    assert thirds[0].min() < 30 and thirds[0].max() > 200
    assert np.median(thirds[2]) > 200 and thirds[2].min() < 60


def test_unknown_study_is_named(raw, tmp_path):
    with pytest.raises(KeyError, match="NOPE"):
        render_preview(raw, "NOPE", tmp_path / "x.png")
