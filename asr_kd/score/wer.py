"""Word error rate, counted and printed the way Kaldi's compute-wer does.

`%WER 0.00 [ 0 / 232, 0 ins, 0 del, 0 sub ]`: errors / reference words, with the edit operations
of a minimum-edit-distance alignment per utterance (jiwer computes the alignment).

A score map folds tokens before scoring, in references and hypotheses alike: TIMIT trains on 48
phones and scores on 39 (Kaldi's egs/timit/s5 maps both sides with conf/phones.60-48-39.map).
It is a text file, `SCORE_MAP_FILE` in a lang dir (copied there from the dict dir by make-lang,
and on into each graph dir by make-graph), one `FROM TO` per line; a line `FROM` alone deletes
the token and a token the map does not name is scored as it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import jiwer

SCORE_MAP_FILE = "score_map.txt"


@dataclass
class WerResult:
    words: int = 0
    ins: int = 0
    dels: int = 0
    subs: int = 0
    sentences: int = 0
    sentence_errors: int = 0
    per_utt: dict[str, int] = field(default_factory=dict)  # errors per utterance

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def wer(self) -> float:
        return 100.0 * self.errors / self.words if self.words else 0.0

    def kaldi_line(self) -> str:
        return (f"%WER {self.wer:.2f} [ {self.errors} / {self.words}, {self.ins} ins, "
                f"{self.dels} del, {self.subs} sub ]")

    def ser_line(self) -> str:
        ser = 100.0 * self.sentence_errors / self.sentences if self.sentences else 0.0
        return f"%SER {ser:.2f} [ {self.sentence_errors} / {self.sentences} ]"

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(errors=self.errors, wer=round(self.wer, 4))
        return d


def compute_wer(refs: dict[str, list[str]], hyps: dict[str, list[str]]) -> WerResult:
    """Score every reference utterance; a missing hypothesis counts as all deletions."""
    r = WerResult()
    for utt in sorted(refs):
        ref, hyp = refs[utt], hyps.get(utt, [])
        if not ref:
            ins, dels, subs = len(hyp), 0, 0
        elif not hyp:
            ins, dels, subs = 0, len(ref), 0
        else:
            out = jiwer.process_words(" ".join(ref), " ".join(hyp))
            ins, dels, subs = out.insertions, out.deletions, out.substitutions
        r.words += len(ref)
        r.ins, r.dels, r.subs = r.ins + ins, r.dels + dels, r.subs + subs
        r.sentences += 1
        r.sentence_errors += int(ins + dels + subs > 0)
        r.per_utt[utt] = ins + dels + subs
    return r


def read_score_map(path) -> dict[str, str | None]:
    """{token: what it is scored as, None to delete it} from a score map file (module doc)."""
    path, out = Path(path), {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) > 2:
            raise ValueError(f"{path}:{lineno}: expected 'FROM TO' or 'FROM' (deleted), got "
                             f"{line!r}")
        if f[0] in out:
            raise ValueError(f"{path}:{lineno}: '{f[0]}' is mapped twice")
        out[f[0]] = f[1] if len(f) == 2 else None
    return out


def apply_score_map(texts: dict[str, list[str]],
                    score_map: dict[str, str | None]) -> dict[str, list[str]]:
    """Every utterance's tokens as scored: mapped, or dropped where the map deletes them."""
    return {u: [t for w in ws if (t := score_map.get(w, w)) is not None]
            for u, ws in texts.items()}
