"""The patch benchmark's decode floors on a hand-made study group (a version subgroup, as ingest writes them)."""

from __future__ import annotations

import numpy as np

from benchmarks import patches as bench
from data_contracts.geometry import Geometry
from data_contracts.settings import IngestSettings
from tasks.ingest.store import StudyWriter
from tasks.patches.resample import FieldOfView, Request, StudyJob, touched_chunks

SID = "S000000000009"


def test_the_codec_only_floor_decodes_every_stored_chunk_the_patches_need(tmp_path):
    url = str(tmp_path / "v.zarr")
    grid = Geometry((24, 24, 24), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    labels = np.zeros(grid.shape, np.uint16)
    labels[4:8, 4:8, 4:8] = 1  # inside chunk (0, 0, 0)
    writer = StudyWriter(url, SID, IngestSettings(chunks=(8, 8, 8)))
    writer.create("ct", grid)[...] = np.full(grid.shape, 40, np.int16)
    writer.create("pet", grid)[...] = np.ones(grid.shape, np.float32)
    writer.create("lesions", grid)[...] = labels  # only the label's chunk is stored (no empty chunks)
    writer.commit({})
    centre = tuple(grid.index_to_mm((5.5, 5.5, 5.5)).tolist())
    job = StudyJob(url, SID, (Request(0, 1, centre, (4, 4, 4, 8, 8, 8)),),
                   (FieldOfView("captioner", (10, 10, 10), (2.0, 2.0, 2.0)),))  # across the chunk borders at 8
    touched = touched_chunks(job)
    assert touched["lesions"] == {(0, 0, 0)} and len(touched["ct"]) == len(touched["pet"]) == 8
    # ct and pet: every touched chunk is stored; lesions: the one holding the label
    assert bench.decode_touched_raw(job, touched) == 8 + 8 + 1
    bench.decode_touched(job, touched)  # the zarr floor reads the same study version
