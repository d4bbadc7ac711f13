"""Names the evaluation run and its report share: metric labels and the rows every report has."""

LABELS = {"bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu3": "BLEU-3", "bleu4": "BLEU-4", "meteor": "METEOR",
          "rouge_l": "ROUGE-L", "cider": "CIDEr", "spice": "SPICE", "localization": "Localization",
          "ct_finding": "CT finding"}
OURS = "B+W+P"  # the method's configuration
PRIOR = "Location prior"  # the trivial baseline row: most frequent training caption of (predicted location, tracer)
POSITION_PRIOR = "Position prior"  # the same, with the location from the scan position alone (no image)
