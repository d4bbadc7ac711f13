"""The one error ingestion raises on purpose."""

from __future__ import annotations

from data_contracts.errors import PetcapError


class IngestError(PetcapError):
    """A raw study that cannot be ingested: a short reason code, the file at fault and what is wrong.

    ``source`` is the file as quarantine rows show it (study pseudonym + path inside the study folder, never
    the raw folder name); ``detail`` carries the numbers. Pickles with its fields (``PetcapError``).
    """

    def __init__(self, reason: str, source: str, detail: str, hint: str | None = None):
        super().__init__(detail, path=source, reason=reason, hint=hint)
        self.source, self.detail = source, detail
