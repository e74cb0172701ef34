"""Build and read a Kaldi `data/lang` dir: phones.txt, words.txt, topo, L.fst, L_disambig.fst
and G.fst.

Phones are position-independent (Kaldi's `--position-dependent-phones false`). L has optional
silence between words with probability `sil_prob`, as Kaldi's make_lexicon_fst.py builds it
(`sil_prob` 0: none, as where silence is a word of its own, TIMIT's `sil`). A score map in the
dict dir (`score_map.txt`, see asr_kd.score.wer) is checked and copied into the lang dir.
G comes from an ARPA n-gram through kaldilm (backoff arcs carry #0, which L_disambig passes
through with a #0:#0 self-loop).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import kaldifst
import kaldilm

from asr_kd.lang.dictionary import Dictionary, add_disambig, read_dict_dir
from asr_kd.lang.topology import Topology, make_topology
from asr_kd.score.wer import SCORE_MAP_FILE, read_score_map
from asr_kd.utils.fst import compile_text, read_fst, read_symbols, write_fst
from asr_kd.utils.io import atomic_path, clear_done, is_done, mark_done, write_lines, write_text


@dataclass
class Lang:
    path: Path
    phones: dict[str, int]
    words: dict[str, int]
    topo: Topology
    silence_phones: list[int]
    optional_silence: int
    disambig_phones: list[int]  # ids of #0, #1, ... in phones.txt
    lexicon: list[tuple[int, float, list[int]]]  # (word id, prob, phone ids)

    @property
    def id2word(self) -> dict[int, str]:
        return {i: w for w, i in self.words.items()}

    def L(self, disambig: bool = False) -> kaldifst.StdVectorFst:
        return read_fst(self.path / ("L_disambig.fst" if disambig else "L.fst"))

    def G(self) -> kaldifst.StdVectorFst:
        return read_fst(self.path / "G.fst")


def lexicon_fst_text(prons: list[tuple[int, float, list[int]]], sil: int, sil_prob: float,
                     disambig_loop: tuple[int, int] | None = None) -> str:
    """AT&T text of L: phones in, words out, optional silence after each word and at the start."""
    no_sil = -math.log(1.0 - sil_prob) if sil_prob < 1.0 else float("inf")
    sil_cost = -math.log(sil_prob) if sil_prob > 0.0 else float("inf")
    start, loop, sil_state = 0, 1, 2
    lines = [f"{start} {loop} 0 0 {no_sil}", f"{start} {sil_state} 0 0 {sil_cost}",
             f"{sil_state} {loop} {sil} 0 0"]
    next_state = 3
    for word, prob, phones in prons:
        cost = -math.log(prob)
        src = loop
        for i, p in enumerate(phones[:-1]):
            lines.append(f"{src} {next_state} {p} {word if i == 0 else 0} {cost if i == 0 else 0}")
            src, next_state = next_state, next_state + 1
        out = word if len(phones) == 1 else 0
        c = cost if len(phones) == 1 else 0.0
        lines.append(f"{src} {loop} {phones[-1]} {out} {c + no_sil}")
        lines.append(f"{src} {sil_state} {phones[-1]} {out} {c + sil_cost}")
    if disambig_loop is not None:
        lines.append(f"{loop} {loop} {disambig_loop[0]} {disambig_loop[1]} 0")
    # sil_prob 0 or 1 makes one kind of arc impossible: left out rather than weighted infinity
    lines = [ln for ln in lines if not ln.endswith(" inf")]
    lines.append(f"{loop} 0")
    return "\n".join(lines) + "\n"


def prepare_lang(dict_dir, lang_dir, arpa: str | None = None, sil_prob: float = 0.5,
                 num_speech_states: int = 3, num_silence_states: int = 5,
                 force: bool = False) -> Lang:
    """Kaldi's utils/prepare_lang.sh + format_lm.sh in one step."""
    lang_dir = Path(lang_dir)
    if is_done(lang_dir) and not force:
        return load_lang(lang_dir)
    clear_done(lang_dir)
    d: Dictionary = read_dict_dir(dict_dir)
    dis_prons, max_dis = add_disambig(d.lexicon)

    phone_list = ["<eps>"] + d.silence_phones + d.nonsilence_phones
    phone_list += [f"#{i}" for i in range(max_dis + 1)]
    phones = {p: i for i, p in enumerate(phone_list)}
    word_list = ["<eps>"] + sorted(d.words) + ["#0", "<s>", "</s>"]
    words = {w: i for i, w in enumerate(word_list)}

    topo = make_topology([phones[p] for p in d.nonsilence_phones],
                         [phones[p] for p in d.silence_phones],
                         num_speech_states, num_silence_states)
    prons = [(words[w], prob, [phones[p] for p in ph]) for w, prob, ph in d.lexicon]
    prons_dis = [(words[w], prob, [phones[p] for p in ph])
                 for (w, prob, _), ph in zip(d.lexicon, dis_prons)]
    sil = phones[d.optional_silence]

    lang_dir.mkdir(parents=True, exist_ok=True)
    write_lines(lang_dir / "phones.txt", (f"{p} {i}" for p, i in phones.items()))
    write_lines(lang_dir / "words.txt", (f"{w} {i}" for w, i in words.items()))
    write_text(lang_dir / "topo", topo.to_text())
    write_lines(lang_dir / "lexiconp.txt",
                (f"{w} {prob:g} {' '.join(ph)}" for w, prob, ph in d.lexicon))
    (lang_dir / "phones").mkdir(exist_ok=True)
    write_lines(lang_dir / "phones/silence.txt", d.silence_phones)
    write_lines(lang_dir / "phones/nonsilence.txt", d.nonsilence_phones)
    write_lines(lang_dir / "phones/optional_silence.txt", [d.optional_silence])
    write_lines(lang_dir / "phones/disambig.txt", phone_list[len(phone_list) - max_dis - 1:])

    L = compile_text(lexicon_fst_text(prons, sil, sil_prob))
    kaldifst.arcsort(L, sort_type="olabel")
    write_fst(L, lang_dir / "L.fst")
    L_dis = compile_text(lexicon_fst_text(prons_dis, sil, sil_prob,
                                          disambig_loop=(phones["#0"], words["#0"])))
    kaldifst.arcsort(L_dis, sort_type="olabel")
    write_fst(L_dis, lang_dir / "L_disambig.fst")

    if arpa is not None:
        with atomic_path(lang_dir / "G.fst") as tmp:  # written binary, ilabel-sorted
            kaldilm.arpa2fst(input_arpa=str(arpa), output_fst=str(tmp), disambig_symbol="#0",
                             read_symbol_table=str(lang_dir / "words.txt"), ilabel_sort=True)
        shutil.copyfile(arpa, lang_dir / "lm.arpa")
    score_map = Path(dict_dir) / SCORE_MAP_FILE
    if score_map.is_file():
        read_score_map(score_map)  # a malformed map fails here, not after decoding
        shutil.copyfile(score_map, lang_dir / SCORE_MAP_FILE)
    else:
        (lang_dir / SCORE_MAP_FILE).unlink(missing_ok=True)
    mark_done(lang_dir)
    return load_lang(lang_dir)


def load_lang(lang_dir) -> Lang:
    lang_dir = Path(lang_dir)
    phones = read_symbols(lang_dir / "phones.txt")
    words = read_symbols(lang_dir / "words.txt")
    topo = Topology.from_text((lang_dir / "topo").read_text(), str(lang_dir / "topo"))
    sil = [phones[p] for p in (lang_dir / "phones/silence.txt").read_text().split()]
    opt = phones[(lang_dir / "phones/optional_silence.txt").read_text().split()[0]]
    dis = [i for p, i in phones.items() if p.startswith("#")]
    lexicon = []
    for lineno, line in enumerate((lang_dir / "lexiconp.txt").read_text().splitlines(), 1):
        f = line.split()
        try:
            lexicon.append((words[f[0]], float(f[1]), [phones[p] for p in f[2:]]))
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"{lang_dir / 'lexiconp.txt'}:{lineno}: malformed entry "
                             f"{line!r}") from None
    return Lang(lang_dir, phones, words, topo, sil, opt, dis, lexicon)
