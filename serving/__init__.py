"""Serving: one new study's captions, composed from the pipeline stages (``tasks``: intake of the study, outputs)
and the one inference path (``models.inference``), plus the MLflow model that carries both.

    study.caption_study(study_dir, out_dir, settings, pipeline)   ingest privately -> patches -> captions -> files
    models_cache.resolve_models(settings, version | checkpoints)  the registered files, downloaded once per version
    models_cache.load_pipeline(localizer, captioner)              both models, loaded once per process (bounded)
    pyfunc.register_candidate(settings, localizer, captioner)     the registered MLflow model (code + requirements)

Layer: above ``data_contracts``, ``tasks`` and ``models``, below ``flows`` (which only compose) and the CLI.
"""
