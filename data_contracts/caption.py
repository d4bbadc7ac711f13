"""The one canonical caption a structured finding becomes; what the captioner learns to write.

"<location>, <CT finding> with <grade> <tracer> uptake", e.g.
"T7 vertebral body, osteolytic destruction with increased FDG uptake". A finding without a CT correlate
reads "<location>, <grade> <tracer> uptake without CT correlate". The location is the finest hierarchy node
known: a coarse node's name ("mediastinal lymph node") unless linking decided the mask's class; an "other
site" finding writes the report's own words. No tracer known: "<grade> uptake".
"""

from __future__ import annotations

from data_contracts import taxonomy
from data_contracts.findings import CT_FINDINGS, UPTAKE_PHRASES, CTFinding


def caption_text(location_id: str, ct_finding: CTFinding, pet, place: str | None = None) -> str:
    """``pet`` is a ``records.PetFinding`` (tracer, possibly None, and grade); ``place`` overrides the
    location's name (an other-site finding's own words)."""
    name = place or taxonomy.get(location_id).name
    tracer = f" {pet.tracer.value}" if pet.tracer is not None else ""
    uptake = f"{UPTAKE_PHRASES[pet.grade]}{tracer} uptake"
    if ct_finding is CTFinding.no_ct_correlate:
        return f"{name}, {uptake} without CT correlate"
    return f"{name}, {CT_FINDINGS[ct_finding].phrase} with {uptake}"


def caption_for(finding) -> str:
    """Caption of a ``StructuredFinding`` (or anything with location_id, ct_finding, pet_finding)."""
    other = getattr(finding, "other_site", None)
    return caption_text(finding.location_id, finding.ct_finding, finding.pet_finding,
                        other.words if other is not None else None)
