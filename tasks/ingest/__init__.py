"""Stage 1: raw DICOM/NIfTI studies -> pseudonymised Zarr v3 groups + studies / lesions / quarantine tables.

Entry points: ``ingest_all`` (a delivery), ``ingest_study`` (one study), ``open_study`` / ``list_studies``
(readers of the store), ``study_pseudonym`` / ``patient_pseudonym`` (the ID mapping later stages share).
"""

from tasks.ingest.ingest import IngestedStudy, IngestSummary, ingest_all, ingest_study
from tasks.ingest.pseudonym import patient_pseudonym, study_pseudonym
from tasks.ingest.readers import IngestError
from tasks.ingest.store import StoredStudy, list_studies, open_study

__all__ = ["IngestError", "IngestSummary", "IngestedStudy", "StoredStudy", "ingest_all", "ingest_study",
           "list_studies", "open_study", "patient_pseudonym", "study_pseudonym"]
