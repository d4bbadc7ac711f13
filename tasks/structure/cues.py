"""Context cues of real report prose: what makes a sentence or a place a finding of this PET/CT or not.

Case reports, figure legends and teaching files tell the history, other exams' results, the diagnosis and
comparisons among the findings. The rules extractor (``tasks.structure.rules``) uses these patterns to keep
the findings of this study only: PET words (``PET_EVIDENCE``), the history (``HISTORY``), another exam as the
subject (``OTHER_EXAM_SUBJECT``, ``OTHER_STUDY``), reference organs (``REFERENCE``), diagnoses and benign
entities (``DISEASE_*``, ``DIAGNOSIS_*``, ``BENIGN``, ``NOT_A_LESION``), imaging qualifiers
(``MODALITY_AFTER``), other sites (``OTHER_SITE_*``, ``region_of``) and whole-body negatives.
"""

from __future__ import annotations

import re

# A place named as the reference of an uptake comparison ("similar in intensity to the liver", "greater than
# mediastinal blood pool"): never a finding, even when the sentence names no other place.
REFERENCE = re.compile(
    r"(?:(?:similar|comparable|equal|identical|higher|greater|lower|less|more|above|below|exceed\w*|relative|"
    r"compared|superior|inferior)\s+(?:in\s+intensity\s+|in\s+uptake\s+)?(?:than|to|with)?|than|exceeding)"
    r"\s+(?:that\s+(?:of|in)\s+)?(?:the\s+)?(?:normal\s+|background\s+)?$", re.IGNORECASE)

# A place that qualifies an imaging technique ("breast PET", "axillary high-resolution breast PET").
MODALITY_AFTER = re.compile(r"(?:[\s-]+(?:high[\s-]resolution|dedicated|tomographic|breast|axillary|whole[\s-]body|"
                            r"(?-i:MLO|CC)))*[\s-]+(?:PET|MRI|MR|scintigraph\w*|mammogra\w*|ultrasound|"
                            r"sonograph\w*|coil|window)\b(?![\s/-]*CT\s+(?:showed|shows|revealed)\b)", re.IGNORECASE)

# A place named with what is not a lesion there ("kidney stones", "renal artery aneurysm", "bone infarct").
NOT_A_LESION = re.compile(r"[\s-]+(?:[\w-]+\s+){0,2}?(?:stones?|calcul\w+|aneurysms?|infarcts?|cysts?|fluid|"
                          r"artery|arteries|vein|veins|vessels?|effusions?)\b", re.IGNORECASE)
# A benign entity the sentence is about ("a calcified calculus in the renal pelvis"): no lesion unless PET says so.
BENIGN = re.compile(r"\b(?:calcul(?:us|i)|stones?|aneurysm\w*|simple\s+cysts?|hemangioma\w*|haemangioma\w*)\b",
                    re.IGNORECASE)
# A lesion without uptake explained as benign ("a 12 mm adrenal nodule is non avid in keeping with adenoma"):
# an incidental CT finding, not a lesion of this study.
BENIGN_EXPLAINED = re.compile(
    r"\b(?:non[\s-]*(?:FDG[\s-]*|PSMA[\s-]*)?avid|no(?:\s+significant)?\s+(?:FDG\s+|PSMA\s+)?uptake|without\s+"
    r"(?:significant\s+)?(?:FDG\s+|PSMA\s+)?uptake|photopenic)\b[^.;?]{0,40}?\b(?:in\s+keeping\s+with|consistent\s+with|"
    r"compatible\s+with|typical\s+of|likely|probably|representing|suggestive\s+of)\s+(?:an?\s+|a\s+benign\s+)?"
    r"(?:(?:lipid[\s-]rich\s+|benign\s+)?adenomas?|(?:simple\s+)?cysts?|lipomas?|h(?:a)?emangiomas?|fibroadenomas?|"
    r"hamartomas?|calcifications?|scar(?:ring)?|atelectasis|fibrosis)\b", re.IGNORECASE)
# A place named with a disease word inside it ("cervical cancer", "lung carcinoma").
DISEASE_WORD = re.compile(r"\b(?:cancer|carcinoma|adenocarcinoma|malignancy|neoplasm)\b", re.IGNORECASE)
# Another exam as the subject of a report verb ("a bone scan showed", "MRI demonstrated").
OTHER_EXAM_SUBJECT = re.compile(
    r"\b(?:bone\s+scan|bone\s+scintigra\w*|scintigra\w*|(?-i:MRI|MR)|magnetic\s+resonance\s+\w+|ultrasound|"
    r"sonograph\w*|mammogra\w*|SPECT(?:/CT)?|(?<!PET/)(?<!PET-)(?<!PET\s)CT(?:\s+scan)?|radiograph\w*|X-?ray|"
    r"compute[dr]i?z?e?d?\s+tomography|(?:prior|previous|earlier|outside)\s+(?:FDG[\s-]*|PSMA[\s-]*)?PET(?:/CT)?|"
    r"PET(?:/CT)?(?:\s+scan)?\s+performed\s+at\s+the\s+time)"
    r"[\s)]+(?:[\w()/-]+\s+){0,5}?(?:showed|shows|revealed|reveals|demonstrated|demonstrates|depicted|confirmed|"
    r"found)\b",
    re.IGNORECASE)

# A place named in the diagnosis, not as a lesion site ("patient with lung cancer", "carcinoma of the bladder");
# only when the sentence says nothing of uptake.
DISEASE_AFTER = re.compile(r"[\s-]+(?:(?:squamous|small|non-small|neuroendocrine|primary|papillary|follicular|"
                           r"medullary|ductal|lobular|clear)[\s-]+(?:cell[\s-]+)?)*(?:cancer|carcinoma|"
                           r"adenocarcinoma|malignancy|neoplasm)\b", re.IGNORECASE)
DISEASE_BEFORE = re.compile(r"\b(?:cancer|carcinoma|adenocarcinoma|malignancy|neoplasm|metastas[ie]s)\s+"
                            r"(?:of|from|arising\s+from)\s+(?:the\s+)?(?:[\w-]+\s+(?:or|and)\s+)?$",
                            re.IGNORECASE)
# "a patient with lung cancer", "staging of breast cancer", "known prostate cancer": the diagnosis.
DIAGNOSIS_BEFORE = re.compile(r"\b(?:(?:with|for|known|treated|recurrent|metastatic|suspected|previous|prior)"
                              r"\s+(?:[\w-]+\s+){0,3}|(?:of|from)\s+(?:(?:a|an|the|newly|diagnosed|primary|"
                              r"advanced|known|recurrent|metastatic|(?:right|left)(?:[\s-]sided)?)\s+){0,3})$",
                              re.IGNORECASE)
# "suspicious for bone metastasis", "consistent with nodal disease": a coarse word in the diagnosis.
DIAGNOSIS_OF = re.compile(r"\b(?:suspicious|consistent|compatible|keeping|concerning|worrisome|suggestive|"
                          r"likely|representing|typical|diagnostic|characteristic)\s+(?:of|for|with)\s+"
                          r"(?:(?:a|an|the|early|widespread|diffuse|metastatic|malignant)\s+){0,2}$", re.IGNORECASE)
METASTASIS_AFTER = re.compile(r"[\s-]+(?:metasta\w*|mets|disease|involvement|deposits?|spread|lymphoma|"
                              r"malignancy)\b", re.IGNORECASE)
PART_OF = re.compile(r"\s+of\s+(?:the\s+)?(?:(?:right|left)\s+)?", re.IGNORECASE)


# What makes a sentence of free prose a PET statement: uptake words, SUV, a focus, or "seen on PET". A tracer
# name alone ("FDG PET/CT in a 52-year-old man who presented with ...") is not.
PET_EVIDENCE = re.compile(
    r"\b(?:uptake|avid\w*|activity|accumulation|expression|hypermetaboli\w*|hypometaboli\w*|metabolism|"
    r"metabolic(?:ally)?|SUV\w*|S\s?U\s?V|glycoly\w*|glucose\s+(?:consumption|metabolism|utili[sz]ation)|foci|focus|"
    r"focal|hot\s*spots?|photopeni\w*|tracer|radiotracer|(?:FDG|PSMA|PET|tracer)[\s-]*(?:positive|negative|avid)|"
    r"(?:on|at|by|in|(?:detected|seen|identified|visuali[sz]ed|shown|depicted)\s+(?:from|with))\s+(?:the\s+|a\s+)?"
    r"(?:FDG[\s-]*|PSMA[\s-]*)?(?:PET|positron\s+emission\s+tomography)"
    r"(?![\s/-]*CT\s+(?:was|is)\s+performed)|"
    r"concentrat\w+|incorporat\w+|captation|retention|binding|staining|(?:in)?tense|increased|elevated|"
    r"intensity|hyperfixation|fixation)\b", re.IGNORECASE)
# The clinical history told inside the findings ("73 yrs old male presented with a neck mass", "FNA showed").
HISTORY = re.compile(
    r"\b(?:presented\s+with|presenting\s+with|(?:\d+|one|two|three)[\s-]*(?:year|yr)s?[\s-]*old|history\s+of|"
    r"was\s+diagnosed|diagnosed\s+(?:with|to\s+have|as)|underwent|was\s+referred|referred\s+(?:to|for)|"
    r"biops(?:y|ies)\s+(?:showed|revealed|confirmed|indicated)|FNA|histopatholog\w*|treated\s+with|"
    r"status\s+post|s/p)\b", re.IGNORECASE)
# Another examination than this PET/CT (its findings are not this study's).
OTHER_STUDY = re.compile(
    r"\b(?:(?-i:MRI?)|magnetic\s+resonance|ultrasound|ultrasonograph\w*|sonograph\w*|(?-i:US)|X-?ray|radiograph\w*|"
    r"mammogra\w*|endoscop\w*|colonoscop\w*|laryngoscop\w*|bronchoscop\w*|scintigra\w*|bone\s+scan|"
    r"contrast[\s-]*enhanced\s+CT|CECT|CT\s+(?:scan\s+)?of\s+the|(?:outside|prior|previous|earlier|initial)\s+"
    r"(?:CT|imaging|scan|study)|biops\w+|(?-i:FNA)|cytolog\w*|patholog(?!ic(?:al)?(?:ly)?\b)\w*|surgery|resect\w*|excision|excised|"
    r"signal|T[12][\s-]*weighted|radiographic|"
    r"(?<!PET/)(?<!PET-)(?<!PET\s)CT(?:\s+scan)?\s+(?:revealed|showed|demonstrated|depicted|confirmed))\b",
    re.IGNORECASE)

# ------------------------------------------------------------------------------------------ other sites
# An uptake statement that may name a place no node has ("a focus of activity in the right anterior sulcus").
OTHER_SITE_CUE = re.compile(
    r"\b(?:(?:increased|intense|focal|moderate|mild|marked|abnormal|avid|hypermetabolic|FDG|PSMA|tracer)[\s-]+"
    r"(?:\w+[\s-]+)?(?:uptake|activity|accumulation|hypermetabolism|avidity|expression)|"
    r"(?:focus|foci)\s+of\s+(?:\w+\s+){0,2}(?:uptake|activity|accumulation)|"
    r"hypermetabolic\s+(?:\w+\s+)?(?:mass|lesion|focus|nodule)|avid\s+(?:\w+\s+)?(?:mass|lesion|focus|nodule)|"
    r"(?P<node>(?:\d+|one|two|three|a|an|single|solitary)\s+(?:(?:small|enlarged|tiny)\s+)?lymph\s+nodes?\s+"
    r"(?:with|showing)\s+(?:[\w-]+\s+){0,3}?(?:uptake|activity|accumulation|avidity)))",
    re.IGNORECASE)
OTHER_SITE_PLACE = re.compile(
    r"\b(?:in|within|at|along|of|involving|(?:posterior|anterior|lateral|medial|superior|inferior)\s+to)\s+"
    r"(?:the\s+|a\s+|an\s+)?(?P<words>(?:(?!(?:which|that|with|is|are|was|were|and|corresponding|compatible|"
    r"consistent|suggest\w*|representing|likely|probably|possibly|measuring|on|in|at|by)\b)[A-Za-z][\w'-]*\s*){1,5})",
    re.IGNORECASE)
GENERIC_PLACE = re.compile(
    r"(?:(?:the\s+)?(?:body|region|regions|area|areas|site|sites|study|scan|image|images|patient|PET|CT|PET/CT|"
    r"location|lesion|lesions|mass|tumou?r|this|these|those|it|intensity|uptake|activity|level|periphery|"
    r"center|centre|same|previous|prior|other|remaining|rest|whole|entire|known|primary|case|size|sizes|diameter|"
    r"dimensions?|length|width|thickness|axis|extent|comparison|keeping|total|appearance|addition|"
    r"degree|number|part|portion|component)\b\s*)+",
    re.IGNORECASE)
_REGION_WORDS = [
    ("head_neck", r"\b(?:head|neck|face|facial|scalp|orbit\w*|nasal|sinus\w*|pharyn\w*|cervical|jaw|ear|parapharyngeal|"
                  r"retropharyngeal|masticator)\b"),
    ("chest", r"\b(?:chest|thora\w*|hemithora\w*|sulcus|diaphragm\w*|pericardi\w*|mediastin\w*|pulmonary|pleur\w*|axill\w*|"
              r"sternal|costophrenic|apical|apex|breast)\b"),
    ("abdomen", r"\b(?:abdom\w*|epigastri\w*|hypochondri\w*|umbilic\w*|flank|mesenter\w*|retroperiton\w*|"
                r"perirenal|paracolic|peri-?colic)\b"),
    ("pelvis", r"\b(?:pelvi\w*|inguinal\s+canal|groin|perineum|perineal|vas\s+deferens|scrot\w*|presacral|"
               r"gluteal|buttock|ischiorectal)\b"),
    ("extremity", r"\b(?:knee|leg|thigh|arm|forearm|elbow|wrist|hand|foot|ankle|hip|shoulder|calf|popliteal|"
                  r"fab\w*|upper\s+limb|lower\s+limb|extremit\w*)\b"),
]


def region_of(words: str):
    """The body region a phrase names (``taxonomy.Region``), or None."""
    from data_contracts.taxonomy import Region

    for region, pattern in _REGION_WORDS:
        if re.search(pattern, words, re.IGNORECASE):
            return Region(region)
    return None

# A report about the female pelvis, where a bare "cervical" names the uterine cervix.
GYNAECOLOGICAL = re.compile(r"\b(?:cervix|uter\w+|gyn(?:a)?ecolog\w*|ovar\w+|endometri\w+|vagin\w+|vulv\w+|"
                            r"(?-i:FIGO)|parametri\w+|cervical\s+(?:cancer|carcinoma))\b", re.IGNORECASE)
# "The surgical bed" after an organ's removal is that organ's bed: the operation the report names, and the node.
SURGICAL_BED = re.compile(r"\b(?:(?:post[\s-]*)?(?:surgical|operative|operated|resection|prostatectomy)\s+bed|"
                          r"(?:resection|operative)\s+site)\b", re.IGNORECASE)
OPERATIONS = ((re.compile(r"\bprostatectom\w*", re.IGNORECASE), "prostate_bed"),
              (re.compile(r"\bthyroidectom\w*", re.IGNORECASE), "thyroid"))


def operated_bed(text: str) -> str | None:
    """The node of "the surgical bed" when the report names exactly one organ removal, else None."""
    found = {node for pattern, node in OPERATIONS if pattern.search(text)}
    return found.pop() if len(found) == 1 else None


# The words after "cervical" that make it the neck's nodes.
NODAL_AFTER = re.compile(r"[\s-]+(?:lymph|nodes?|nodal|(?:lymph)?adenopath\w*|levels?|chains?|stations?|"
                         r"spine|vertebr\w*|region|neck)\b", re.IGNORECASE)

# A negative statement about the whole body ("No evidence of distant metastatic disease", "no other findings"),
# a system ("no nodal disease") or a region ("no disease in the abdomen"): the negation, up to nine words of
# one clause, and the head noun of what is denied.
WHOLE_BODY_NEGATIVE = re.compile(
    r"\b(?:no|without|negative\s+for|free\s+of|absence\s+of|neither|nor|normal)\b"
    r"(?:\s+(?!(?:but|however|although|whereas|while|except)\b)[\w/-]+){0,9}?\s+(?:metasta\w*|"
    r"disease|lesions?|recurrence|abnormalit\w*|findings?|uptake|sites?|malignan\w*|involvement|locations?|"
    r"elsewhere)\b",
    re.IGNORECASE)
# A sentence that refers back to the lesion just described ("it is also hypermetabolic", "this lesion").
BACK_REFERENCE = re.compile(r"\b(?:it|this|these|the\s+(?:lesion|nodule|mass|focus|node|tumou?r))\b", re.IGNORECASE)
