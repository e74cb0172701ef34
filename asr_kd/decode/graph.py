"""The decoding graph HCLG, with pdf id + 1 as input labels (0 = epsilon).

Kaldi's mkgraph.sh:
  LG   = minimize(determinize_star(L_disambig ∘ G))          (log semiring determinization)
  CLG  = C ∘ LG                  (kaldifst.compose_context; the identity for monophone models)
  HaCLG = minimize_encoded(determinize_star(Ha ∘ CLG))         (Ha: HMMs without self-loops)
  HCLG = add self-loops to HaCLG, then map transition states to pdf + 1, disambig symbols to 0.
An arc of Ha labelled with transition state s means "the last frame spent in s". A state whose
outgoing arcs all leave the same s gets the self-loop of s, weighted self_loop_scale * log a_ss,
with self_loop_scale * log(1 - a_ss) added to those arcs; a state whose arcs leave several
states reaches each group through an epsilon arc into a new state holding that group's loop.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import resource
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import kaldifst
import numpy as np

from asr_kd.hmm.context import ContextDependency
from asr_kd.hmm.h_fst import decoding_ha
from asr_kd.hmm.transitions import TransitionModel
from asr_kd.lang import Lang
from asr_kd.utils.fst import FstArrays, compile_text, from_arrays, read_fst, to_arrays, write_fst
from asr_kd.utils.io import write_text

log = logging.getLogger(__name__)


@dataclass
class GraphConfig:
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1


def make_lg(lang: Lang) -> kaldifst.StdVectorFst:
    L = lang.L(disambig=True)
    kaldifst.arcsort(L, sort_type="olabel")
    LG = kaldifst.compose(L, lang.G())
    if kaldifst.determinize_star(LG, use_log=True):
        raise RuntimeError("determinization of L∘G stopped early")
    kaldifst.minimize_encoded(LG)
    kaldifst.arcsort(LG, sort_type="ilabel")
    return LG


def add_self_loops(a: FstArrays, tm: TransitionModel, self_loop_scale: float) -> FstArrays:
    """Insert HMM self-loops into HaCLG (labels = transition state + 1; see module docstring)."""
    num_states = len(tm.tuples)
    loop_lp = np.array([tm.self_loop_log_prob(s) for s in range(num_states)])
    has_loop = np.concatenate([[False], np.isfinite(loop_lp)])  # indexed by label
    loop_cost = np.concatenate([[0.0], -self_loop_scale * loop_lp])
    fwd_cost = np.concatenate([[0.0], -self_loop_scale * np.log1p(-np.exp(loop_lp))])
    is_ts = (a.ilabel >= 1) & (a.ilabel <= num_states)
    loopable = np.zeros(a.num_arcs, dtype=bool)
    loopable[is_ts] = has_loop[a.ilabel[is_ts]]

    src = a.src.copy()
    weight = a.weight.astype(np.float64)
    weight[loopable] += fwd_cost[a.ilabel[loopable]]
    # One self-loop per (state, label) pair of loopable arcs, in state then label order.
    arcs = np.nonzero(loopable)[0]
    key = a.src[arcs] * (num_states + 1) + a.ilabel[arcs]
    pairs, pair_of_arc = np.unique(key, return_inverse=True)
    q, lab = pairs // (num_states + 1), pairs % (num_states + 1)
    labels_per_state = np.bincount(q, minlength=a.num_states)
    out_degree = np.bincount(a.src, minlength=a.num_states)
    loopable_per_state = np.bincount(a.src[arcs], minlength=a.num_states)
    alone_state = (labels_per_state == 1) & (loopable_per_state == out_degree) & \
        ~np.isfinite(a.final)
    alone_state[a.start] = False
    alone = alone_state[q]
    # Otherwise each pair's arcs leave from a new state, entered from q by an epsilon arc.
    holder = q.copy()
    holder[~alone] = a.num_states + np.arange(int((~alone).sum()))
    src[arcs] = holder[pair_of_arc]
    n_pairs = len(pairs)
    eps = np.nonzero(~alone)[0]
    # New arcs in the order of the pairs: the epsilon arc (if any), then the loop.
    new_key = np.concatenate([2 * eps, 2 * np.arange(n_pairs) + 1])
    new_src = np.concatenate([q[eps], holder])
    new_dst = np.concatenate([holder[eps], holder])
    new_il = np.concatenate([np.zeros(len(eps), dtype=np.int64), lab])
    new_w = np.concatenate([np.zeros(len(eps)), loop_cost[lab]])
    order = np.argsort(new_key, kind="stable")
    next_state = a.num_states + len(eps)
    n_new = len(new_key)
    return FstArrays(
        num_states=next_state, start=a.start,
        src=np.concatenate([src, new_src[order]]),
        dst=np.concatenate([a.dst, new_dst[order]]),
        ilabel=np.concatenate([a.ilabel, new_il[order]]),
        olabel=np.concatenate([a.olabel, np.zeros(n_new, dtype=np.int64)]),
        weight=np.concatenate([weight, new_w[order]]).astype(np.float32),
        final=np.concatenate([a.final, np.full(next_state - a.num_states, np.inf,
                                               dtype=np.float32)]),
    )


def make_hclg(lang: Lang, tm: TransitionModel, cfg: GraphConfig,
               ctx: ContextDependency | None = None, work_dir=None) -> kaldifst.StdVectorFst:
    """HCLG (module docstring). With `work_dir`, LG, C∘LG and HaCLG are kept there as they are
    made (binary FSTs, written atomically) and a rerun starts from the last one kept: on a
    72k-word trigram each step takes minutes. A stamp of the inputs (the lang's L_disambig and
    G, the transition model, the tree, the config) guards them: other inputs start afresh."""
    ctx = ctx or ContextDependency.from_transitions(tm.topo, tm.tuples)
    steps = _Steps(work_dir, None if work_dir is None else inputs_stamp(lang, tm, ctx, cfg))
    # Each FST is dropped once the next is made (steps run inside one another): on a 72k-word
    # trigram they are gigabytes each.

    def clg():
        CLG, windows = ctx.compose(steps.fst("LG", lambda: make_lg(lang)), lang.disambig_phones)
        kaldifst.arcsort(CLG, sort_type="ilabel")
        steps.keep_windows(windows)
        return CLG

    @functools.cache
    def ha() -> tuple[str, int]:  # Ha's text and its number of disambiguation inputs
        return decoding_ha(tm, ctx, steps.windows(), cfg.transition_scale)

    def haclg():
        CLG = steps.fst("CLG", clg)
        Ha = compile_text(ha()[0])
        kaldifst.arcsort(Ha, sort_type="olabel")
        HaCLG = kaldifst.compose(Ha, CLG)
        del CLG
        if kaldifst.determinize_star(HaCLG, use_log=True):
            raise RuntimeError("determinization of Ha∘C∘L∘G stopped early")
        kaldifst.minimize_encoded(HaCLG)
        return HaCLG

    a = to_arrays(steps.fst("HaCLG", haclg))
    a = add_self_loops(a, tm, cfg.self_loop_scale)
    # Transition states -> pdf + 1; disambiguation symbols (and anything past them) -> epsilon.
    ts2pdf = np.array([0] + [pdf + 1 for _, _, pdf in tm.tuples] + [0] * ha()[1])
    a.ilabel = ts2pdf[a.ilabel]
    hclg = from_arrays(a)
    del a
    kaldifst.connect(hclg)
    kaldifst.arcsort(hclg, sort_type="ilabel")
    steps.done("HCLG", hclg)
    return hclg


def inputs_stamp(lang: Lang, tm: TransitionModel, ctx: ContextDependency,
                 cfg: GraphConfig) -> str:
    """What make_hclg's kept steps were made from: a sha256 of L_disambig, G, the transition
    model, the tree and the config."""
    h = hashlib.sha256()
    for name in ("L_disambig.fst", "G.fst"):
        h.update((lang.path / name).read_bytes())
    h.update(json.dumps([tm.tuples, ctx.state_dict(), asdict(cfg)], default=str).encode())
    return h.hexdigest()


class _Steps:
    """make_hclg's steps: each logged with its time, size and the process's peak memory, and,
    with a work dir, kept there to be read back by a rerun with the same stamp."""

    def __init__(self, work_dir, stamp: str | None):
        self.dir = None if work_dir is None else Path(work_dir)
        self.t0 = self._last = time.time()
        self._windows = None
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            stamp_file = self.dir / "stamp"
            if not stamp_file.is_file() or stamp_file.read_text().strip() != stamp:
                for f in self.dir.glob("*.fst"):
                    f.unlink()
                (self.dir / "windows.json").unlink(missing_ok=True)
                write_text(stamp_file, stamp + "\n")

    def fst(self, name: str, make) -> kaldifst.StdVectorFst:
        """The step's FST: read back from the work dir if kept there, else made (and kept)."""
        path = None if self.dir is None else self.dir / f"{name}.fst"
        if path is not None and path.is_file():
            fst = read_fst(path)
            self._log(name, fst, "read back from " + str(path))
            return fst
        t = time.time()
        out = make()
        own = time.time() - max(t, self._last)  # a step made inside this one is not counted
        if path is not None:
            write_fst(out, path)
        self._log(name, out, f"made in {own:.0f} s")
        return out

    def keep_windows(self, windows: list[tuple[int, ...]]) -> None:
        """C∘LG's context windows, kept (before CLG.fst is written) for a rerun's Ha."""
        self._windows = windows
        if self.dir is not None:
            write_text(self._windows_file, json.dumps(windows))

    @property
    def _windows_file(self) -> Path:
        return self.dir / "windows.json"

    def windows(self) -> list[tuple[int, ...]]:
        """C∘LG's windows, as keep_windows got them in this run or kept them in an earlier one."""
        if self._windows is None:
            self._windows = [tuple(w) for w in json.loads(self._windows_file.read_text())]
        return self._windows

    def done(self, name: str, fst) -> None:
        self._log(name, fst, "made")
        if self.dir is not None:  # the graph is the caller's to write; the steps are spent
            shutil.rmtree(self.dir)

    def _log(self, name: str, fst, how: str) -> None:
        self._last = time.time()
        log.info("graph: %s %s: %d states, %d arcs; %.0f s in all, peak memory %.1f GB", name,
                 how, fst.num_states, _num_arcs(fst), time.time() - self.t0,
                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def _num_arcs(fst) -> int:
    return sum(fst.num_arcs(s) for s in range(fst.num_states))
