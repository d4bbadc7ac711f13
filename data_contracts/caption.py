"""The one canonical caption a structured finding becomes; what the captioner learns to write.

"<location>, <CT finding> with <grade> <tracer> uptake", e.g.
"T7 vertebral body, osteolytic destruction with increased FDG uptake". A finding without a CT correlate
reads "<location>, <grade> <tracer> uptake without CT correlate".
"""

from __future__ import annotations

from data_contracts import taxonomy
from data_contracts.findings import CT_FINDINGS, UPTAKE_PHRASES, CTFinding


def caption_text(location_id: str, ct_finding: CTFinding, pet) -> str:
    """``pet`` is a ``records.PetFinding`` (tracer and grade)."""
    loc = taxonomy.get(location_id)
    uptake = f"{UPTAKE_PHRASES[pet.grade]} {pet.tracer.value} uptake"
    if ct_finding is CTFinding.no_ct_correlate:
        return f"{loc.name}, {uptake} without CT correlate"
    return f"{loc.name}, {CT_FINDINGS[ct_finding].phrase} with {uptake}"


def caption_for(finding) -> str:
    """Caption of a ``StructuredFinding`` (or anything with location_id, ct_finding, pet_finding)."""
    return caption_text(finding.location_id, finding.ct_finding, finding.pet_finding)
