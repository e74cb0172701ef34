"""A Kaldi dictionary dir (`data/local/dict`): lexicon, silence and speech phones.

Files: lexicon.txt (`WORD PH1 PH2 ...`, or lexiconp.txt with a probability after the word),
silence_phones.txt, nonsilence_phones.txt (first phone on each line), optional_silence.txt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Dictionary:
    lexicon: list[tuple[str, float, list[str]]]  # (word, pron prob, phones)
    silence_phones: list[str]
    nonsilence_phones: list[str]
    optional_silence: str

    @property
    def words(self) -> set[str]:
        return {w for w, _, _ in self.lexicon}


def _read_phone_list(path: Path) -> list[str]:
    phones = []
    for line in path.read_text(encoding="utf-8").splitlines():
        phones.extend(line.split())
    return phones


def read_dict_dir(path) -> Dictionary:
    path = Path(path)
    lex_path = path / "lexiconp.txt"
    with_prob = lex_path.exists()
    if not with_prob:
        lex_path = path / "lexicon.txt"
    sil = _read_phone_list(path / "silence_phones.txt")
    nonsil = _read_phone_list(path / "nonsilence_phones.txt")
    known = set(sil) | set(nonsil)
    overlap = set(sil) & set(nonsil)
    if overlap:
        raise ValueError(f"{path}: phones {sorted(overlap)} are both silence and non-silence")
    opt = (path / "optional_silence.txt").read_text(encoding="utf-8").split()
    if len(opt) != 1 or opt[0] not in sil:
        raise ValueError(f"{path / 'optional_silence.txt'}: expected one phone from "
                         f"silence_phones.txt, got {opt}")
    lexicon = []
    for lineno, line in enumerate(lex_path.read_text(encoding="utf-8").splitlines(), 1):
        f = line.split()
        if not f:
            continue
        word, rest = f[0], f[1:]
        prob = 1.0
        if with_prob:
            try:
                prob = float(rest[0])
            except (IndexError, ValueError):
                raise ValueError(f"{lex_path}:{lineno}: word '{word}': expected a probability "
                                 f"after the word") from None
            rest = rest[1:]
        if not rest:
            raise ValueError(f"{lex_path}:{lineno}: word '{word}': empty pronunciation")
        unknown = [p for p in rest if p not in known]
        if unknown:
            raise ValueError(f"{lex_path}:{lineno}: word '{word}': phones {unknown} are in "
                             f"neither silence_phones.txt nor nonsilence_phones.txt")
        if word.startswith("#") or word in ("<eps>", "<s>", "</s>"):
            raise ValueError(f"{lex_path}:{lineno}: word '{word}' is a reserved symbol")
        lexicon.append((word, prob, rest))
    if not lexicon:
        raise ValueError(f"{lex_path}: empty lexicon")
    return Dictionary(lexicon, sil, nonsil, opt[0])


def add_disambig(lexicon: list[tuple[str, float, list[str]]]) -> tuple[list[list[str]], int]:
    """Kaldi's add_lex_disambig.pl: append #1, #2, ... to pronunciations that are homophones or
    prefixes of other pronunciations, so that L∘G is determinizable. Returns the new phone
    sequences (in lexicon order) and the highest disambiguation index used."""
    counts: dict[tuple[str, ...], int] = {}
    prefixes: set[tuple[str, ...]] = set()
    for _, _, phones in lexicon:
        key = tuple(phones)
        counts[key] = counts.get(key, 0) + 1
        for i in range(1, len(phones)):
            prefixes.add(tuple(phones[:i]))
    next_index: dict[tuple[str, ...], int] = {}
    out, max_index = [], 0
    for _, _, phones in lexicon:
        key = tuple(phones)
        if counts[key] > 1 or key in prefixes:
            n = next_index.get(key, 0) + 1
            next_index[key] = n
            max_index = max(max_index, n)
            out.append(phones + [f"#{n}"])
        else:
            out.append(list(phones))
    return out, max_index
