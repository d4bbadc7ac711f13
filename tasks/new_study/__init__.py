"""A new study to caption (outside the training data): its headers read, ingested into a private store, patches cut.

    header.describe_study(study_dir) -> ManifestRow       vendor and tracer from the PET's DICOM tags or BIDS sidecar
    intake.ingest_new_study(study_dir, out_dir, settings) the training ingestion, into ``out_dir``'s private store
    intake.study_patches(local, ingested)                 both fields of view per lesion, the training kernel
"""
