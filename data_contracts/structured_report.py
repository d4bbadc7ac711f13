"""The response contract of report structuring: one report text → a ``StructuredReport``.

Both backends return this record: the offline ``rules`` extractor (``tasks.structure.rules``) and the
OpenAI-compatible LLM backend (``tasks.structure.llm``, vLLM inside the hospital or a hosted API).
Each finding is a ``records.StructuredFinding`` (taxonomy location, laterality, CT finding, PET finding,
SUVmax, long-axis size in mm, and the span of the source sentence in the report text), and the report
carries its provenance: which backend, model and prompt version produced it, and the extractor's version.

For the LLM the contract is split in two, because a model cannot reliably count character offsets:

* ``LLMAnswer`` / ``LLMFinding`` — what the model is asked to return. ``llm_json_schema()`` is its JSON
  schema in the form OpenAI *strict* structured outputs (and vLLM guided decoding) accept: root object,
  every property required, optional values nullable (``anyOf [..., null]``), ``additionalProperties:
  false`` everywhere, enums for location id (all taxonomy ids), laterality, CT finding, tracer and grade,
  no ``$ref``/defaults/numeric bounds. Each finding quotes its source sentence verbatim in ``evidence``.
* ``LLMAnswer.to_report(text, model=..., prompt_version=...)`` — validates the answer against the taxonomy
  (laterality must match the location, the CT finding must be possible in that location's system,
  SUV/size positive) and locates each ``evidence`` quote in the report text (exact, else ignoring case and
  whitespace, so a quote of a hard-wrapped sentence still matches) to make the ``TextSpan``. Any problem
  raises ``pydantic.ValidationError`` or ``ValueError`` with a message fit to quote back to the model
  in a repair request.

Typical use by the LLM backend::

    response_format = {"type": "json_schema", "json_schema": llm_json_schema()}
    answer = LLMAnswer.model_validate_json(message.content)
    report = answer.to_report(text, model=settings.llm.model, prompt_version=PROMPT_VERSION)
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from data_contracts import taxonomy
from data_contracts.findings import CTFinding, Tracer, UptakeGrade
from data_contracts.records import NegativeFinding, PetFinding, Record, StructuredFinding, TextSpan

CONTRACT_VERSION = "1.0.0"
Backend = Literal["rules", "openai"]


class StructuredReport(Record):
    """All findings one report states, with where each was read, and who read them."""

    findings: tuple[StructuredFinding, ...] = ()
    negatives: tuple[NegativeFinding, ...] = ()  # negative statements (rules backend; the LLM states none yet)
    backend: Backend
    model: str | None = None  # LLM model name; None for the rules backend
    prompt_version: str | None = None  # LLM prompt version; None for the rules backend
    extractor_version: str = Field(min_length=1)  # version of the code that produced the record

    @model_validator(mode="after")
    def _provenance(self):
        if self.backend == "openai" and (not self.model or not self.prompt_version):
            raise ValueError("an openai-backend report must name its model and prompt_version")
        return self

    @staticmethod
    def llm_json_schema() -> dict[str, Any]:
        """The ``json_schema`` member of an OpenAI ``response_format`` (see ``llm_json_schema``)."""
        return llm_json_schema()


class LLMFinding(Record):
    """One finding as the LLM states it; flat, with the source sentence quoted instead of offsets."""

    evidence: str = Field(min_length=1)  # the source sentence, copied verbatim from the report
    location_id: str
    laterality: taxonomy.Laterality
    ct_finding: CTFinding
    tracer: Tracer
    uptake_grade: UptakeGrade
    suv_max: float | None
    size_mm: float | None  # long axis in millimetres

    @field_validator("location_id")
    @classmethod
    def _known_location(cls, v: str) -> str:
        if v not in taxonomy.by_id():  # a ValueError, so it reaches the repair request as a validation error
            raise ValueError(f"unknown taxonomy location id {v!r}")
        return v

    def to_finding(self, text: str) -> StructuredFinding:
        """The contract's finding; raises ValueError (taxonomy, values) naming what is wrong."""
        span = locate_span(text, self.evidence)
        if span is None:
            raise ValueError(f"evidence {self.evidence[:80]!r} is not a verbatim quote of the report")
        return StructuredFinding(
            location_id=self.location_id,
            laterality=self.laterality,
            ct_finding=self.ct_finding,
            pet_finding=PetFinding(tracer=self.tracer, grade=self.uptake_grade),
            suv_max=self.suv_max,
            size_mm=self.size_mm,
            span=span,
        )


class LLMAnswer(Record):
    findings: tuple[LLMFinding, ...]

    def to_report(self, text: str, *, model: str, prompt_version: str,
                  extractor_version: str = CONTRACT_VERSION) -> StructuredReport:
        """Validate every finding against the taxonomy and the report text; see the module docstring."""
        findings = []
        for i, f in enumerate(self.findings):
            try:
                findings.append(f.to_finding(text))
            except ValueError as e:  # pydantic.ValidationError is a ValueError
                raise ValueError(f"findings[{i}]: {e}") from e
        return StructuredReport(findings=tuple(findings), backend="openai", model=model,
                                prompt_version=prompt_version, extractor_version=extractor_version)


def locate_span(text: str, quote: str) -> TextSpan | None:
    """Where ``quote`` occurs in ``text``: exactly, else ignoring case and runs of whitespace."""
    quote = quote.strip()
    if not quote:
        return None
    start = text.find(quote)
    if start >= 0:
        return TextSpan(start=start, end=start + len(quote), text=quote)
    words = quote.split()
    pattern = r"\s+".join(re.escape(w) for w in words)
    m = re.search(pattern, text, flags=re.IGNORECASE)
    if m is None:
        return None
    return TextSpan(start=m.start(), end=m.end(), text=m.group(0))


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def llm_json_schema() -> dict[str, Any]:
    """``{"name", "strict", "schema"}`` for ``response_format={"type": "json_schema", "json_schema": ...}``.

    Mirrors ``LLMAnswer`` field for field (a test checks they agree). Descriptions tell the model what
    each field means; enums carry every allowed value so decoding cannot leave the vocabulary.
    """
    finding = {
        "type": "object",
        "properties": {
            "evidence": {"type": "string",
                         "description": "the report sentence stating this finding, copied verbatim"},
            "location_id": {"type": "string", "enum": [loc.id for loc in taxonomy.locations()],
                            "description": "taxonomy id of the anatomical location"},
            "laterality": {"type": "string", "enum": [s.value for s in taxonomy.Laterality],
                           "description": "side of the location; midline for unpaired structures"},
            "ct_finding": {"type": "string", "enum": [c.value for c in CTFinding],
                           "description": "CT appearance; no_ct_correlate when only uptake is described"},
            "tracer": {"type": "string", "enum": [t.value for t in Tracer]},
            "uptake_grade": {"type": "string", "enum": [g.value for g in UptakeGrade],
                             "description": "mild: SUVmax < 4, moderate: 4 to < 10, intense: >= 10"},
            "suv_max": {**_nullable({"type": "number"}), "description": "SUVmax as written; null if not given"},
            "size_mm": {**_nullable({"type": "number"}),
                        "description": "largest dimension in millimetres (cm x 10); null if not given"},
        },
        "required": ["evidence", "location_id", "laterality", "ct_finding", "tracer", "uptake_grade",
                     "suv_max", "size_mm"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {"findings": {"type": "array", "items": finding}},
        "required": ["findings"],
        "additionalProperties": False,
    }
    return {"name": "structured_report", "strict": True, "schema": schema}
