"""The location hierarchy: every taxonomy location gets its parents, plus coarse nodes and further leaves.

Reports often name a place less precisely than the 134 localizer classes of ``taxonomy.locations()``
("mediastinal lymph nodes", "a right rib lesion", "the thoracic spine", "diffuse marrow uptake"), or name
a place those classes do not have ("prostate bed", "base of tongue", "left adnexa"). A finding carries the
finest node its text supports (``records.StructuredFinding.location_id``): never a finer one than stated,
and never dropped for being coarse. Examples of a lineage (node → parent → ...):

    vertebra_t7 → spine_thoracic → spine → skeleton → body
    ln_mediastinal_4r → ln_paratracheal_r → ln_paratracheal → ln_mediastinal → ln_thoracic
        → ln_supradiaphragmatic → lymph_nodes → body
    lung_rul → lung_r → lung → body
    tonsil_palatine_r → tonsil_palatine → oropharynx → region_head_neck → body

Three kinds of node, all ``taxonomy.Location`` records that ``taxonomy.get`` resolves:

* the localizer's classes (``taxonomy.locations()``, unchanged: ids, order and class indices of 1.x);
* further leaves real whole-body reports need (``EXTRA_LEAVES`` below: head-and-neck subsites, prostate
  bed, gynaecological and bowel sites, more nodal groups, soft tissue, bronchus, ...). The phantom and the
  localizer do not have them: the localizer's class list stays the 134 classes, and a finding at such a
  leaf trains the localizer only through the class of its linked mask (``localizer_class`` gives the class
  a leaf lies inside, e.g. ``fossa_rosenmuller_r`` → ``nasopharynx``, where there is one);
* coarse nodes (``ln_mediastinal``, ``lung_r``, ``rib_l``, ``spine_thoracic``, ``bone_marrow``, ...), and
  the open nodes ``body`` and ``region_<region>``: an "other site" finding sits on one of those and keeps
  the report's own words (``records.OtherSite``).

Paired structures have ``_r``/``_l`` ids; the side-free form of a pair is their lowest common ancestor
(``unsided``): "level II nodes" with no side → ``ln_cervical``, "7th rib" → ``rib``, "hilar" → ``ln_hilar``.
"""

from __future__ import annotations

import dataclasses
from functools import cache

from data_contracts.taxonomy import (
    Laterality,
    Location,
    Region,
    System,
    WindowGroup,
    _lateral,
    _midline,
    locations,
    register_nodes,
)

R, LN, LG, BN, OR = Region, System.lymph_node, System.lung, System.bone, System.organ
ST, LW, BW = WindowGroup.soft_tissue, WindowGroup.lung, WindowGroup.bone
U = Laterality.unspecified

# The open nodes: an "other site" finding sits here with the report's words.
OPEN_NODES = ("body", *(f"region_{r.value}" for r in Region if r is not Region.whole_body))


def _coarse(key: str, name: str, region: Region, system: System, window: WindowGroup,
            synonyms: tuple[str, ...] = (), laterality: Laterality = U) -> Location:
    return Location(key, name, region, system, laterality, window, (), synonyms, ())


def _leaf(key: str, name: str, region: Region, system: System = OR, window: WindowGroup = ST,
          synonyms: tuple[str, ...] = ()) -> Location:
    loc = _midline(key, name, region, system, window, (), synonyms)
    return dataclasses.replace(loc, structures=())


def _pair(key: str, stem: str, region: Region, system: System = OR, window: WindowGroup = ST,
          stems: tuple[str, ...] = (), name_fmt: str = "{side} {stem}") -> list[Location]:
    """A right and a left node (``key_r``/``key_l``) named by side-free stems."""
    return [dataclasses.replace(loc, structures=())
            for loc in _lateral(key, stem, region, system, window, "", stems or (stem,), name_fmt=name_fmt)]


def _spec() -> list[tuple[Location, str | None]]:
    """(node, parent id) for every node that is not a localizer class, parents before children."""
    n: list[tuple[Location, str | None]] = []

    def add(locs, parent):
        for loc in locs if isinstance(locs, list) else [locs]:
            n.append((loc, parent(loc) if callable(parent) else parent))

    side = lambda key: (lambda loc: f"{key}_{loc.id[-1]}")  # noqa: E731 (a sided child's sided parent)
    add(_coarse("body", "body", R.whole_body, OR, ST), None)
    for r, name in ((R.head_neck, "head and neck"), (R.chest, "chest"), (R.abdomen, "abdomen"),
                    (R.pelvis, "pelvis"), (R.extremity, "extremity")):
        add(_coarse(f"region_{r.value}", name, r, OR, ST), "body")

    # ---- lymph nodes
    add(_coarse("lymph_nodes", "lymph node", R.whole_body, LN, ST, ("lymph node station", "nodal station")), "body")
    add(_coarse("ln_supradiaphragmatic", "supradiaphragmatic lymph node", R.whole_body, LN, ST,
                ("supradiaphragmatic", "supra-diaphragmatic", "above the diaphragm", "above the hemidiaphragms",
                 "above the thoracic hemidiaphragms", "above the hemidiaphragm", "above the thoracic hemidiaphragm")),
        "lymph_nodes")
    add(_coarse("ln_infradiaphragmatic", "infradiaphragmatic lymph node", R.whole_body, LN, ST,
                ("infradiaphragmatic", "infra-diaphragmatic", "subdiaphragmatic", "below the diaphragm",
                 "below the hemidiaphragms", "below the hemidiaphragm", "below the thoracic hemidiaphragms",
                 "below the thoracic hemidiaphragm")),
        "lymph_nodes")
    add(_coarse("ln_cervical", "cervical lymph node", R.head_neck, LN, ST), "ln_supradiaphragmatic")
    add(_pair("ln_cervical", "cervical lymph node", R.head_neck, LN, ST,
              ("cervical", "neck", "cervical node", "neck node", "jugular", "jugular chain", "cervical chain",
               "jugulodigastric region", "neck lymph node")), "ln_cervical")
    add(_coarse("ln_supraclavicular", "supraclavicular lymph node", R.head_neck, LN, ST), "ln_supradiaphragmatic")
    add(_coarse("ln_infraclavicular", "infraclavicular lymph node", R.chest, LN, ST), "ln_supradiaphragmatic")
    add(_pair("ln_infraclavicular", "infraclavicular lymph node", R.chest, LN, ST,
              ("infraclavicular", "infraclavicular node", "subclavicular", "subpectoral", "interpectoral")),
        "ln_infraclavicular")
    add(_coarse("ln_axillary", "axillary lymph node", R.chest, LN, ST), "ln_supradiaphragmatic")
    add(_coarse("ln_thoracic", "thoracic lymph node", R.chest, LN, ST,
                ("thoracic lymph node", "intrathoracic lymph node", "thoracic node", "intrathoracic node",
                 "intrathoracic nodal", "thoracic nodal", "intrapulmonary lymph node", "intrapulmonary node",
                 "intrathoracic lymphadenopathy")), "ln_supradiaphragmatic")
    add(_coarse("ln_mediastinal", "mediastinal lymph node", R.chest, LN, ST,
                ("mediastinal", "mediastinum", "mediastinal node", "mediastinal lymph node",
                 "mediastinal nodal", "prevascular", "precarinal", "pretracheal", "retrotracheal",
                 "anterior mediastinal", "posterior mediastinal", "superior mediastinal")), "ln_thoracic")
    add(_coarse("ln_paratracheal", "paratracheal lymph node", R.chest, LN, ST), "ln_mediastinal")
    add(_pair("ln_paratracheal", "paratracheal lymph node", R.chest, LN, ST,
              ("paratracheal", "paratracheal node", "para-tracheal")), "ln_paratracheal")
    add(_coarse("ln_hilar", "hilar lymph node", R.chest, LN, ST), "ln_thoracic")
    add(_coarse("ln_internal_mammary", "internal mammary lymph node", R.chest, LN, ST), "ln_thoracic")
    add(_pair("ln_internal_mammary", "internal mammary lymph node", R.chest, LN, ST,
              ("internal mammary", "internal mammary node", "parasternal", "internal thoracic",
               "internal mammary chain")), "ln_internal_mammary")
    add(_coarse("ln_abdominal", "abdominal lymph node", R.abdomen, LN, ST,
                ("abdominal lymph node", "abdominal node", "intra-abdominal lymph node", "intraabdominal node",
                 "abdominal nodal", "intra-abdominal nodal")), "ln_infradiaphragmatic")
    add(_coarse("ln_retroperitoneal", "retroperitoneal lymph node", R.abdomen, LN, ST,
                ("retroperitoneal", "retroperitoneum", "retroperitoneal node")), "ln_abdominal")
    add(_leaf("ln_retrocrural", "retrocrural lymph node", R.abdomen, LN, ST, ("retrocrural", "retro-crural")),
        "ln_abdominal")
    add(_leaf("ln_peripancreatic", "peripancreatic lymph node", R.abdomen, LN, ST,
              ("peripancreatic", "peri-pancreatic")), "ln_abdominal")
    add(_leaf("ln_gastric", "perigastric lymph node", R.abdomen, LN, ST,
              ("perigastric", "lesser curvature", "gastrohepatic", "left gastric")), "ln_abdominal")
    add(_coarse("ln_pelvic", "pelvic lymph node", R.pelvis, LN, ST,
                ("pelvic lymph node", "pelvic node", "pelvic nodal", "pelvic sidewall", "pelvic side wall",
                 "pelvic wall")), "ln_infradiaphragmatic")
    add(_coarse("ln_iliac", "iliac lymph node", R.pelvis, LN, ST), "ln_pelvic")
    add(_pair("ln_iliac", "iliac lymph node", R.pelvis, LN, ST,
              ("iliac", "iliac node", "iliac chain", "iliac lymph node", "iliac vessels", "iliac junctional",
               "iliac bifurcation")), "ln_iliac")
    add(_coarse("ln_obturator", "obturator lymph node", R.pelvis, LN, ST), "ln_pelvic")
    add(_pair("ln_obturator", "obturator lymph node", R.pelvis, LN, ST,
              ("obturator", "obturator node", "obturator fossa")), "ln_obturator")
    add(_leaf("ln_mesorectal", "mesorectal lymph node", R.pelvis, LN, ST,
              ("mesorectal", "mesorectum", "perirectal", "pararectal")), "ln_pelvic")
    add(_leaf("ln_presacral", "presacral lymph node", R.pelvis, LN, ST, ("presacral", "pre-sacral")), "ln_pelvic")
    add(_coarse("ln_inguinal", "inguinal lymph node", R.pelvis, LN, ST), "ln_infradiaphragmatic")
    add(_pair("ln_popliteal", "popliteal lymph node", R.extremity, LN, ST, ("popliteal",)), "lymph_nodes")
    add(_pair("ln_epitrochlear", "epitrochlear lymph node", R.extremity, LN, ST, ("epitrochlear",)), "lymph_nodes")

    # ---- lungs and pleura
    add(_coarse("lung", "lung", R.chest, LG, LW, ("pulmonary", "lung parenchyma", "lungs", "pulmonary parenchyma",
                                                  "both lungs")), "body")
    add(_pair("lung", "lung", R.chest, LG, LW, ("lung", "pulmonary", "lung field")), "lung")
    add(_pair("bronchus", "main bronchus", R.chest, LG, LW,
              ("main bronchus", "bronchus", "mainstem bronchus", "main-stem bronchus", "endobronchial",
               "bronchial", "main bronchi")), side("lung"))
    add(_coarse("pleura", "pleura", R.chest, LG, LW), "body")

    # ---- skeleton
    add(_coarse("skeleton", "skeleton", R.whole_body, BN, BW,
                ("skeleton", "skeletal", "osseous", "bone", "bony", "skeletal system", "axial skeleton",
                 "appendicular skeleton", "ossous")), "body")
    add(_coarse("bone_marrow", "bone marrow", R.whole_body, BN, BW,
                ("bone marrow", "marrow", "diffuse marrow", "red marrow", "intramedullary")), "skeleton")
    add(_coarse("spine", "spine", R.whole_body, BN, BW,
                ("spine", "spinal column", "vertebral column", "vertebral", "vertebra", "vertebral body",
                 "vertebrae", "spinal")), "skeleton")
    for key, word, region, letter in (("cervical", "cervical", R.head_neck, "C"),
                                      ("thoracic", "thoracic", R.chest, "T"), ("lumbar", "lumbar", R.abdomen, "L")):
        syn = (f"{word} spine", f"{word} vertebra", f"{word} vertebral body", f"{word} vertebral",
               f"{word} spinal")
        if key == "thoracic":
            syn += ("dorsal spine",)
        if key == "lumbar":
            syn += ("lumbar",)
        add(_coarse(f"spine_{key}", f"{word} spine", region, BN, BW, syn), "spine")
    add(_leaf("coccyx", "coccyx", R.pelvis, BN, BW, ("coccygeal",)), "spine")
    add(_coarse("rib", "rib", R.chest, BN, BW), "skeleton")
    add(_pair("rib", "rib", R.chest, BN, BW, ("rib", "costal", "costal arc", "rib cage")), "rib")
    add(_coarse("pelvis_bone", "pelvic bone", R.pelvis, BN, BW, ("bony pelvis", "pelvic skeleton")), "skeleton")
    add(_pair("pelvis_bone", "pelvic bone", R.pelvis, BN, BW, ("pelvic bone", "hemipelvis", "innominate bone",
                                                               "os coxae")), "pelvis_bone")
    add(_pair("acetabulum", "acetabulum", R.pelvis, BN, BW, ("acetabulum", "acetabular", "acetabular roof")),
        side("pelvis_bone"))
    for key, name, region in (("femur", "femur", R.extremity), ("humerus", "humerus", R.extremity),
                              ("scapula", "scapula", R.chest), ("clavicle", "clavicle", R.chest)):
        add(_coarse(key, name, region, BN, BW), "skeleton")
    add(_pair("tibia", "tibia", R.extremity, BN, BW, ("tibia", "tibial", "tibial plateau")), "skeleton")
    add(_pair("fibula", "fibula", R.extremity, BN, BW, ("fibula", "fibular")), "skeleton")
    add(_pair("radius", "radius", R.extremity, BN, BW, ("radius", "distal radius")), "skeleton")
    add(_pair("ulna", "ulna", R.extremity, BN, BW, ("ulna", "ulnar")), "skeleton")
    add(_leaf("mandible", "mandible", R.head_neck, BN, BW, ("mandibular", "mandibular body", "mandibular ramus")),
        "skeleton")
    add(_leaf("maxilla", "maxilla", R.head_neck, BN, BW, ("maxillary bone",)), "skeleton")

    # ---- organs: coarse paired organs and the further leaves, by region
    add(_coarse("liver", "liver", R.abdomen, OR, ST, ("liver", "hepatic", "hepatic parenchyma", "liver parenchyma",
                                                      "right hepatic lobe", "left hepatic lobe",
                                                      "right lobe of the liver", "left lobe of the liver",
                                                      "right liver lobe", "left liver lobe")), "region_abdomen")
    add(_coarse("kidney", "kidney", R.abdomen, OR, ST), "region_abdomen")
    add(_coarse("adrenal", "adrenal gland", R.abdomen, OR, ST), "region_abdomen")
    add(_coarse("breast", "breast", R.chest, OR, ST), "region_chest")
    # head and neck
    add(_coarse("oropharynx", "oropharynx", R.head_neck, OR, ST,
                ("oropharyngeal", "soft palate", "vallecula", "oropharyngeal wall")), "region_head_neck")
    add(_coarse("tonsil_palatine", "palatine tonsil", R.head_neck, OR, ST), "oropharynx")
    add(_pair("tonsil_palatine", "palatine tonsil", R.head_neck, OR, ST,
              ("palatine tonsil", "tonsil", "tonsillar", "tonsillar fossa", "tonsillar pillar")), "tonsil_palatine")
    add(_leaf("tongue_base", "base of tongue", R.head_neck, OR, ST,
              ("base of the tongue", "tongue base", "tongue-base", "lingual tonsil", "BOT")), "oropharynx")
    add(_leaf("oral_cavity", "oral cavity", R.head_neck, OR, ST,
              ("oral tongue", "tongue", "floor of mouth", "floor of the mouth", "buccal mucosa", "gingiva",
               "gingival", "hard palate", "lip", "retromolar trigone", "mouth", "buccal")), "region_head_neck")
    add(_leaf("hypopharynx", "hypopharynx", R.head_neck, OR, ST,
              ("hypopharyngeal", "pyriform sinus", "piriform sinus", "pyriform fossa", "piriform fossa",
               "postcricoid", "post-cricoid")), "region_head_neck")
    add(_leaf("larynx", "larynx", R.head_neck, OR, ST,
              ("laryngeal", "glottis", "glottic", "supraglottis", "supraglottic", "subglottic", "vocal cord",
               "vocal fold", "epiglottis", "epiglottic", "aryepiglottic fold", "thyroid cartilage",
               "cricoid cartilage", "arytenoid")), "region_head_neck")
    add(_coarse("parotid", "parotid gland", R.head_neck, OR, ST), "region_head_neck")
    add(_pair("parotid", "parotid gland", R.head_neck, OR, ST, ("parotid", "parotid gland")), "parotid")
    add(_coarse("submandibular_gland", "submandibular gland", R.head_neck, OR, ST), "region_head_neck")
    add(_pair("submandibular_gland", "submandibular gland", R.head_neck, OR, ST,
              ("submandibular gland", "submandibular salivary gland")), "submandibular_gland")
    add(_pair("fossa_rosenmuller", "fossa of Rosenmüller", R.head_neck, OR, ST,
              ("fossa of Rosenmüller", "fossa of Rosenmuller", "Rosenmüller fossa", "Rosenmuller fossa",
               "Rosenmüller's fossa", "Rosenmuller's fossa", "pharyngeal recess", "lateral pharyngeal recess"),
              name_fmt="{side} {stem}"), "nasopharynx")
    add(_leaf("sinonasal", "sinonasal cavity", R.head_neck, OR, ST,
              ("nasal cavity", "paranasal sinus", "maxillary sinus", "ethmoid sinus", "sinonasal", "nasal")),
        "region_head_neck")
    add(_leaf("brain", "brain", R.head_neck, OR, ST,
              ("cerebral", "cerebrum", "cerebellum", "cerebellar", "intracranial", "brain parenchyma", "frontal lobe",
               "parietal lobe", "temporal lobe", "occipital lobe", "basal ganglia", "thalamus", "brainstem")),
        "region_head_neck")
    add(_pair("orbit", "orbit", R.head_neck, OR, ST, ("orbit", "orbital")), "region_head_neck")
    # chest
    add(_leaf("trachea", "trachea", R.chest, OR, ST, ("tracheal",)), "region_chest")
    add(_leaf("thymus", "thymus", R.chest, OR, ST, ("thymic",)),
        "region_chest")
    add(_leaf("heart", "heart", R.chest, OR, ST, ("cardiac", "myocardium", "myocardial", "pericardium",
                                                  "pericardial", "left ventricle", "right atrium", "atrial")),
        "region_chest")
    # abdomen
    add(_leaf("gallbladder", "gallbladder", R.abdomen, OR, ST, ("gall bladder", "gallbladder fossa",
                                                                "gallbladder wall")), "region_abdomen")
    add(_leaf("small_bowel", "small bowel", R.abdomen, OR, ST,
              ("small intestine", "jejunum", "jejunal", "ileum", "ileal", "terminal ileum", "duodenum",
               "duodenal", "small bowel loop", "small-bowel")), "region_abdomen")
    add(_leaf("peritoneum", "peritoneum", R.abdomen, OR, ST,
              ("peritoneal", "omentum", "omental", "greater omentum", "peritoneal cavity")), "region_abdomen")
    add(_leaf("bile_duct", "bile duct", R.abdomen, OR, ST, ("common bile duct", "biliary", "cholangio",
                                                            "hilar bile duct", "CBD")), "region_abdomen")
    # pelvis
    add(_leaf("prostate_bed", "prostate bed", R.pelvis, OR, ST,
              ("prostatic bed", "prostatic fossa", "prostate fossa", "vesicourethral anastomosis",
               "urethrovesical anastomosis", "prostatectomy bed")), "region_pelvis")
    add(_leaf("seminal_vesicle", "seminal vesicle", R.pelvis, OR, ST, ("seminal vesicles",)), "region_pelvis")
    add(_leaf("rectum", "rectum", R.pelvis, OR, ST, ("rectal", "anorectal", "rectal wall")), "region_pelvis")
    add(_leaf("anal_canal", "anal canal", R.pelvis, OR, ST, ("anus", "anal", "perianal")), "region_pelvis")
    add(_leaf("uterus", "uterus", R.pelvis, OR, ST, ("uterine", "endometrium", "endometrial", "myometrium",
                                                     "myometrial", "uterine corpus", "uterine body")),
        "region_pelvis")
    add(_leaf("cervix_uteri", "uterine cervix", R.pelvis, OR, ST,
              ("cervix", "cervix uteri", "cervical cancer", "cervical carcinoma", "cervical tumor",
               "cervical tumour")), "region_pelvis")
    add(_leaf("vagina", "vagina", R.pelvis, OR, ST, ("vaginal", "vaginal vault", "vaginal cuff")), "region_pelvis")
    add(_leaf("vulva", "vulva", R.pelvis, OR, ST, ("vulvar", "vulval")), "region_pelvis")
    add(_coarse("adnexa", "adnexa", R.pelvis, OR, ST, ("adnexal region",)), "region_pelvis")
    add(_pair("adnexa", "adnexa", R.pelvis, OR, ST, ("adnexa", "adnexal", "adnexum", "adnexal mass")), "adnexa")
    add(_pair("ovary", "ovary", R.pelvis, OR, ST, ("ovary", "ovarian", "ovaries")), side("adnexa"))
    add(_coarse("testis", "testis", R.pelvis, OR, ST, ("testes",)), "region_pelvis")
    add(_pair("testis", "testis", R.pelvis, OR, ST, ("testis", "testicle", "testicular", "hemiscrotum",
                                                     "scrotal")), "testis")
    add(_leaf("penis", "penis", R.pelvis, OR, ST, ("penile", "glans", "corpus cavernosum", "corpora cavernosa")),
        "region_pelvis")
    # soft tissue
    add(_coarse("soft_tissue", "soft tissue", R.whole_body, OR, ST), "body")
    add(_leaf("soft_tissue_subcutaneous", "subcutaneous soft tissue", R.whole_body, OR, ST,
              ("subcutaneous", "subcutaneous tissue", "subcutaneous fat", "subcutis", "skin", "cutaneous",
               "dermal", "dermis", "subcutaneous nodule")), "soft_tissue")
    add(_leaf("muscle", "muscle", R.whole_body, OR, ST,
              ("muscular", "intramuscular", "skeletal muscle", "psoas", "iliopsoas", "gluteal muscle", "gluteus",
               "paraspinal muscle", "paravertebral muscle", "pectoralis", "sternocleidomastoid", "trapezius",
               "latissimus dorsi", "quadriceps", "erector spinae", "deltoid", "adductor", "iliacus")),
        "soft_tissue")
    add(_leaf("chest_wall", "chest wall", R.chest, OR, ST, ("thoracic wall", "chest-wall")), "soft_tissue")
    add(_leaf("abdominal_wall", "abdominal wall", R.abdomen, OR, ST, ("anterior abdominal wall",)), "soft_tissue")
    return n


# Parents of the localizer classes (taxonomy 1.x ids). A prefix rule covers the numbered series.
def _class_parent(loc: Location) -> str:
    lid = loc.id
    s = lid[-1] if loc.laterality in (Laterality.left, Laterality.right) else ""
    if lid.startswith("ln_cervical_"):
        return f"ln_cervical_{s}"
    if lid.startswith("ln_mediastinal_"):
        return {"2r": "ln_paratracheal_r", "4r": "ln_paratracheal_r", "2l": "ln_paratracheal_l",
                "4l": "ln_paratracheal_l"}.get(lid.rsplit("_", 1)[1], "ln_mediastinal")
    if lid.startswith("ln_retroperitoneal_"):
        return "ln_retroperitoneal"
    if lid.startswith(("ln_common_iliac", "ln_external_iliac", "ln_internal_iliac")):
        return f"ln_iliac_{s}"
    if lid in ("ln_mesenteric", "ln_porta_hepatis", "ln_celiac"):
        return "ln_abdominal"
    for key in ("ln_supraclavicular", "ln_axillary", "ln_hilar", "ln_inguinal", "kidney", "adrenal", "breast",
                "femur", "humerus", "scapula", "clavicle"):
        if lid.startswith(key + "_"):
            return key
    if lid.startswith("lung_"):
        return f"lung_{lid[5]}"
    if lid.startswith("pleura_"):
        return "pleura"
    if lid.startswith("vertebra_"):
        return {"c": "spine_cervical", "t": "spine_thoracic", "l": "spine_lumbar"}[lid[9]]
    if lid == "sacrum":
        return "spine"
    if lid.startswith("rib_"):
        return f"rib_{s}"
    if lid.startswith(("ilium_", "pubis_", "ischium_")):
        return f"pelvis_bone_{s}"
    if lid in ("sternum", "skull"):
        return "skeleton"
    if lid.startswith("liver_s"):
        return "liver"
    region = {R.head_neck: "region_head_neck", R.chest: "region_chest", R.abdomen: "region_abdomen",
              R.pelvis: "region_pelvis", R.extremity: "region_extremity"}
    return region[loc.region]


@cache
def extra_nodes() -> tuple[Location, ...]:
    """Every node that is not a localizer class: coarse, open and further leaves (``taxonomy.get`` knows them)."""
    return tuple(loc for loc, _ in _spec())


@cache
def parents() -> dict[str, str | None]:
    """node id → parent id (None for the root, ``body``)."""
    out: dict[str, str | None] = {loc.id: p for loc, p in _spec()}
    for loc in locations():
        if loc.id in out:
            raise AssertionError(f"hierarchy node {loc.id} shadows a localizer class")
        out[loc.id] = _class_parent(loc)
    for node, p in out.items():
        if p is not None and p not in out:
            raise AssertionError(f"{node}: unknown parent {p}")
    return out


def parent(node: str) -> str | None:
    return parents()[node]


@cache
def lineage(node: str) -> tuple[str, ...]:
    """The node and all its ancestors, finest first, ending at ``body``."""
    out = [node]
    while (p := parents()[out[-1]]) is not None:
        out.append(p)
    return tuple(out)


def contains(node: str, other: str) -> bool:
    """Whether ``other`` is ``node`` or lies inside it (``contains("ln_mediastinal", "ln_mediastinal_7")``)."""
    return node in lineage(other)


@cache
def children() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for node, p in parents().items():
        if p is not None:
            out.setdefault(p, []).append(node)
    return {k: tuple(v) for k, v in out.items()}


def is_leaf(node: str) -> bool:
    return node not in children()


def is_open(node: str) -> bool:
    """An open node: where an "other site" finding sits (``body`` and the region nodes)."""
    return node in OPEN_NODES


def region_node(region: Region | None) -> str:
    """The open node of a body region (``body`` when the region is unknown or spans several)."""
    if region is None or region is Region.whole_body:
        return "body"
    return f"region_{region.value}"


def localizer_class(node: str) -> str | None:
    """The localizer class the node lies inside (itself when it is one), or None (a coarse node above the
    classes, or a further leaf outside them: ``prostate_bed``, ``tongue_base``)."""
    from data_contracts.taxonomy import is_class

    return next((n for n in lineage(node) if is_class(n)), None)


def common_ancestor(nodes) -> str:
    """The finest node containing all of them (``ln_cervical_ii_r``, ``ln_cervical_ii_l`` → ``ln_cervical``)."""
    nodes = list(nodes)
    common = lineage(nodes[0])
    for n in nodes[1:]:
        line = set(lineage(n))
        common = tuple(c for c in common if c in line)
    return common[0]


def can_link(finding_node: str, lesion_class: str) -> bool:
    """Whether a finding at ``finding_node`` may describe a mask on ``lesion_class`` (a localizer class):
    the node contains the class (a "mediastinal node" finding, a mask at station 7), or the node is a
    further leaf inside the class (``fossa_rosenmuller_r`` on a ``nasopharynx`` mask)."""
    return contains(finding_node, lesion_class) or localizer_class(finding_node) == lesion_class


def depth(node: str) -> int:
    return len(lineage(node)) - 1


# The further leaves (not localizer classes) and what they are for; the README lists them.
def extra_leaves() -> tuple[str, ...]:
    return tuple(loc.id for loc in extra_nodes() if is_leaf(loc.id) and not is_open(loc.id))


def is_within(node: str, ancestor: str) -> bool:
    """Whether ``ancestor`` is ``node`` or one of its ancestors (``contains`` with the arguments swapped);
    unknown ids are within nothing."""
    return node in parents() and ancestor in lineage(node)


register_nodes(extra_nodes())  # ``taxonomy.get`` resolves every node from here on
