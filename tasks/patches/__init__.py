"""Stage 4: localizer and captioner patches of every caption sample, extracted with Dask from the volume store.

* ``tasks.patches.extract`` — ``extract_patches(settings)`` (``petcap extract-patches``): what is new, the Dask
  tasks, atomic registration; ``PatchSummary``, ``PatchExtractionError``.
* ``tasks.patches.store`` — the patch store and its append-only sample table; ``read_patch_samples(settings)``
  (the current samples, with their split) and ``read_patches(settings, rows, kind)`` for training.
* ``tasks.patches.resample`` — the per-study sweep a Dask worker runs, built from ``interpolation`` (patch
  lattice, linear kernels), ``job`` (a worker's task and answer), ``sweep_plan`` (which chunk rows each patch
  needs), ``volume_io`` (zarr reads, grids checked) and ``worker_process`` (threads, freed memory).

Nothing is imported here: a Dask worker unpickling the kernel imports only ``tasks.patches.resample``.
"""
