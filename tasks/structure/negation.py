"""Negation scope of the rules extractor (``tasks.structure.rules``, step 5): which mentions a negation cue
covers, and the negative statements a sentence makes (``sites.deny`` records them).
"""

from __future__ import annotations

import re

from data_contracts.findings import CTFinding
from tasks.structure import lexicon as lx
from tasks.structure.drafts import Group, Mention
from tasks.structure.sites import weak

NO_CHANGE = re.compile(r"\b(?:no|without)\s+(?:significant\s+|interval\s+|appreciable\s+|substantial\s+|"
                        r"relevant\s+|definite\s+|major\s+)?(?:change|progression|increase|decrease|growth)\w*\b"
                        r"|\bnot\s+(?:changed|significantly\s+changed)\b", re.IGNORECASE)


def scope_end(masked: str, start: int) -> int:
    m = lx.SCOPE_END.search(masked, start)
    return m.start() if m else len(masked)


def negated(norm: str, m: Mention, group: Group, fwd_scopes, bwd: list[lx.Hit], suv, g_ct) -> bool:
    strong_evidence = suv is not None or any(h.value is not CTFinding.no_ct_correlate for h in g_ct)
    for cue, a, b in fwd_scopes:
        if a <= m.anchor < b:
            if weak(cue) and strong_evidence:
                continue
            return True
    for cue in bwd:
        if group.owns(cue.start) and cue.start >= m.anchor and ";" not in norm[m.anchor:cue.start]:
            return True  # said of this mention, in its own clause ("...; NP clear" is about something else)
    return False

