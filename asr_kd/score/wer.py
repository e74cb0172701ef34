"""Word error rate, counted and printed the way Kaldi's compute-wer does.

`%WER 0.00 [ 0 / 232, 0 ins, 0 del, 0 sub ]`: errors / reference words, with the edit operations
of a minimum-edit-distance alignment per utterance (jiwer computes the alignment).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import jiwer


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
