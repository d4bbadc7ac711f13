"""Caption metrics: pycocoevalcap's BLEU-1..4, METEOR, ROUGE-L, CIDEr (and SPICE when its jars are there).

Captions are tokenized with pycocoevalcap's PTB tokenizer (Stanford CoreNLP, run through java) exactly as the
COCO caption evaluation does, then scored with pycocoevalcap's own scorers; nothing is re-implemented here.
Each metric comes back twice: the corpus score pycocoevalcap reports (what the paper's tables show) and one
score per lesion (for paired t-tests and bootstrap intervals between configurations).

SPICE needs Stanford CoreNLP 3.6.0 (``stanford-corenlp-3.6.0.jar`` and ``-models.jar``), which pycocoevalcap
would download at run time; here it runs only when both jars are found in ``EvalSettings.spice_jar_dir`` and
is otherwise reported as unavailable (``None``), never as 0.

METEOR starts a java process (seconds); one is kept alive per Python process and shared by every
``CaptionScorer`` (``shared_scorer`` also reuses the scorer itself).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

# Metric keys, in table order. Scores are on pycocoevalcap's scale (0..1; CIDEr 0..10).
CAPTION_METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider", "spice")
SPICE_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")

Tokenized = dict[str, list[str]]  # sample key -> [tokenized caption] (pycocoevalcap's gts / res format)
_METEOR_STATS: dict[tuple[str, tuple[str, ...]], str] = {}  # (hypothesis, refs) -> METEOR's statistics line


class MetricError(RuntimeError):
    """Captions that cannot be scored (mismatched keys, empty input, a scorer that failed)."""


@dataclass
class CaptionScores:
    """Corpus scores (``None`` = unavailable) and per-sample scores (rows in input order, NaN = unavailable)."""

    corpus: dict[str, float | None]
    per_sample: pd.DataFrame  # index: sample keys; columns: CAPTION_METRICS
    spice_available: bool = False
    notes: list[str] = field(default_factory=list)


def spice_jars_found(jar_dir: Path | None) -> bool:
    return jar_dir is not None and all((Path(jar_dir) / name).is_file() for name in SPICE_JARS)


def tokenize(captions: Mapping[str, str]) -> Tokenized:
    """PTB-tokenize captions (one java call for all of them): key -> [lower-cased, punctuation-free tokens]."""
    if not captions:
        return {}
    return PTBTokenizer().tokenize({k: [{"caption": str(v)}] for k, v in captions.items()})


def corpus_bleu4(references: Sequence[str], generated: Sequence[str]) -> float:
    """THE BLEU-4 (evaluation, promotion and training validation): pycocoevalcap's corpus ``Bleu(4)`` over
    PTB-tokenized captions, one reference per sample."""
    if len(references) != len(generated):
        raise MetricError(f"{len(references)} references but {len(generated)} generated captions")
    if not references:
        return float("nan")
    keys = [str(i) for i in range(len(references))]
    tok = tokenize({**{f"r{k}": r for k, r in zip(keys, references)},
                    **{f"h{k}": g for k, g in zip(keys, generated)}})
    scores, _ = Bleu(4).compute_score({k: tok[f"r{k}"] for k in keys}, {k: tok[f"h{k}"] for k in keys}, verbose=0)
    return float(scores[3])


def validation_scores(references: list[str], generated: list[str]) -> dict[str, float]:
    """What a training run reports on its val split each validation: ``corpus_bleu4`` (as ``bleu4``)."""
    return {"bleu4": corpus_bleu4(references, generated)}


class CaptionScorer:
    """pycocoevalcap's scorers, METEOR's java process kept between calls."""

    def __init__(self, spice_jar_dir: Path | None = None):
        self.spice_jar_dir = Path(spice_jar_dir) if spice_jar_dir is not None else None
        self._meteor: Meteor | None = None
        self._meteor_stats = _METEOR_STATS

    @property
    def meteor(self) -> Meteor:
        if self._meteor is None:
            self._meteor = _meteor_process()
        return self._meteor

    def score(self, references: Sequence[str], generated: Sequence[str], keys: Sequence[str] | None = None
              ) -> CaptionScores:
        """Score raw captions (one reference per sample, as the caption-sample table has)."""
        if len(references) != len(generated):
            raise MetricError(f"{len(references)} references but {len(generated)} generated captions")
        keys = [str(k) for k in (keys if keys is not None else range(len(references)))]
        if len(set(keys)) != len(keys):
            raise MetricError("sample keys are not unique")
        tok = tokenize({**{f"r{k}": r for k, r in zip(keys, references)},
                        **{f"h{k}": g for k, g in zip(keys, generated)}})
        gts = {k: tok[f"r{k}"] for k in keys}
        res = {k: tok[f"h{k}"] for k in keys}
        return self.score_tokenized(gts, res)

    def score_tokenized(self, gts: Tokenized, res: Tokenized) -> CaptionScores:
        """Score tokenized captions (``tokenize`` output); the keys of ``gts`` and ``res`` must agree."""
        if set(gts) != set(res):
            raise MetricError("references and generated captions have different sample keys")
        if not gts:
            raise MetricError("no captions to score")
        keys = list(gts)
        gts, res = {k: gts[k] for k in keys}, {k: res[k] for k in keys}
        corpus: dict[str, float | None] = {}
        per: dict[str, np.ndarray] = {}
        bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
        for n in range(4):
            corpus[f"bleu{n + 1}"] = float(bleu[n])
            per[f"bleu{n + 1}"] = np.asarray(bleu_each[n], dtype=float)
        m, m_each = self._meteor_score(gts, res)
        corpus["meteor"], per["meteor"] = float(m), np.asarray(m_each, dtype=float)
        r, r_each = Rouge().compute_score(gts, res)
        corpus["rouge_l"], per["rouge_l"] = float(r), np.asarray(r_each, dtype=float)
        c, c_each = Cider().compute_score(gts, res)
        corpus["cider"], per["cider"] = float(c), np.asarray(c_each, dtype=float)
        notes = []
        if spice_jars_found(self.spice_jar_dir):
            s, s_each = run_spice(gts, res, self.spice_jar_dir)
            corpus["spice"], per["spice"] = s, s_each
        else:
            corpus["spice"], per["spice"] = None, np.full(len(keys), np.nan)
            notes.append(f"SPICE unavailable: {' and '.join(SPICE_JARS)} not found in "
                         f"{self.spice_jar_dir or 'evaluation.spice_jar_dir (unset)'}")
        table = pd.DataFrame(per, index=pd.Index(keys, name="key"))[list(CAPTION_METRICS)]
        return CaptionScores(corpus, table, spice_available=corpus["spice"] is not None, notes=notes)

    def _meteor_score(self, gts: Tokenized, res: Tokenized) -> tuple[float, list[float]]:
        """``Meteor.compute_score`` with each caption pair's statistics line cached.

        METEOR answers one pair per java round trip (~10 ms); the per-vendor and per-tracer subsets re-score
        the same pairs, so each pair's ``SCORE`` statistics are asked for once and the ``EVAL`` line (which
        aggregates statistics, as pycocoevalcap does) is sent per subset: the same numbers, a third of the time.
        """
        meteor = self.meteor
        keys = list(gts)
        with meteor.lock:
            stats = []
            for k in keys:
                key = (res[k][0], tuple(gts[k]))
                if key not in self._meteor_stats:
                    self._meteor_stats[key] = meteor._stat(res[k][0], gts[k])  # SCORE line; no lock of its own
                stats.append(self._meteor_stats[key])
            meteor.meteor_p.stdin.write(("EVAL ||| " + " ||| ".join(stats) + "\n").encode())
            meteor.meteor_p.stdin.flush()
            each = [float(meteor.meteor_p.stdout.readline().strip()) for _ in keys]
            total = float(meteor.meteor_p.stdout.readline().strip())
        return total, each



@cache
def _meteor_process() -> Meteor:
    """pycocoevalcap's METEOR java process, started once per Python process and shared by every scorer
    (its lock serialises the callers); it is reaped by ``Meteor.__del__`` when the process exits."""
    return Meteor()


def shared_scorer(spice_jar_dir: Path | None = None) -> CaptionScorer:
    """One scorer per process (and SPICE folder): METEOR's java start-up is paid once."""
    return _scorer(Path(spice_jar_dir).resolve() if spice_jar_dir is not None else None)


@cache
def _scorer(spice_jar_dir: Path | None) -> CaptionScorer:
    return CaptionScorer(spice_jar_dir)


def run_spice(gts: Tokenized, res: Tokenized, jar_dir: Path) -> tuple[float, np.ndarray]:
    """SPICE F-score (corpus mean, per sample) with the CoreNLP jars from ``jar_dir``.

    pycocoevalcap's ``Spice`` looks for CoreNLP in its own package folder (and downloads it when absent);
    this runs the same ``spice-1.0.jar`` with the same arguments from a scratch folder whose ``lib/`` holds
    pycocoevalcap's bundled jars plus the two CoreNLP jars from ``jar_dir`` (links, no copies).
    """
    import pycocoevalcap.spice as spice_pkg

    pkg = Path(spice_pkg.__file__).parent
    keys = list(gts)
    with tempfile.TemporaryDirectory(prefix="petcap-spice-") as tmp:
        tmp = Path(tmp)
        (tmp / "lib").mkdir()
        os.symlink(pkg / "spice-1.0.jar", tmp / "spice-1.0.jar")
        for jar in (pkg / "lib").glob("*.jar"):
            os.symlink(jar, tmp / "lib" / jar.name)
        for name in SPICE_JARS:
            os.symlink(Path(jar_dir).resolve() / name, tmp / "lib" / name)
        inp = [{"image_id": k, "test": res[k][0], "refs": gts[k]} for k in keys]
        (tmp / "in.json").write_text(json.dumps(inp))
        cmd = ["java", "-jar", "-Xmx8G", "spice-1.0.jar", "in.json", "-cache", str(tmp / "cache"),
               "-out", "out.json", "-subset", "-silent"]
        if shutil.which("java") is None:
            raise MetricError("SPICE needs java on PATH")
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise MetricError(f"SPICE failed (exit {done.returncode}): {done.stderr[-2000:]}")
        out = {str(item["image_id"]): item["scores"]["All"]["f"] for item in json.loads((tmp / "out.json").read_text())}
    each = np.asarray([float(out[k]) if out.get(k) is not None else np.nan for k in keys])
    return float(np.nanmean(each)), each
