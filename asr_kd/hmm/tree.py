"""Decision-tree state tying, Kaldi-style (acc-tree-stats, cluster-phones, build-tree).

1. `accumulate_tree_stats`: from monophone alignments, single-Gaussian statistics (count, sum,
   sum of squares) of the GMM features for every seen (context window, pdf class).
2. `cluster_phones`: the questions. Phones are clustered top-down by 2-means on the statistics of
   their middle HMM state, as Kaldi's cluster-phones does; every cluster of the resulting binary
   tree is a question, and so are the silence and the non-silence phones. "No phone" (0, the
   context at an utterance's ends) answers like the silence phones.
3. `build_tree`: one root per (phone, pdf class); the leaf whose best split gains the most
   likelihood is split first, until `num_leaves` leaves, until no split gains `min_gain`, or
   until no split leaves both sides `min_count` frames. A split asks about a context position
   (not the central phone, which the root fixes).

The log-likelihood of a set of frames under one diagonal Gaussian fitted to them is
-n/2 (D (1 + log 2 pi) + sum_d log var_d), so a split's gain follows from the statistics alone.
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from asr_kd.hmm.context import ContextDependency, Node
from asr_kd.hmm.transitions import TransitionModel
from asr_kd.lang.topology import Topology

log = logging.getLogger(__name__)


@dataclass
class TreeConfig:
    num_leaves: int = 500  # target number of tied states (pdfs)
    min_count: float = 100.0  # frames each side of a split must hold
    min_gain: float = 100.0  # log-likelihood gain a split must bring (Kaldi's --thresh is 300)
    context_width: int = 3
    central_position: int = 1
    var_floor: float = 0.01
    cluster_tries: int = 5  # random restarts of each 2-means split of the phone clustering
    seed: int = 0


@dataclass
class TreeStats:
    """Statistics per seen (window, pdf class): windows [N, width], pdf_class [N], count [N],
    sum [N, D], sumsq [N, D] (float64)."""
    windows: np.ndarray
    pdf_class: np.ndarray
    count: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray


def gauss_loglik(count, sx, sxx, var_floor: float) -> np.ndarray:
    """Log-likelihood of the frames behind the statistics under their own ML diagonal Gaussian
    (leading dimensions are batch dimensions; 0 where the count is 0)."""
    n = np.maximum(count, 1e-10)[..., None]
    var = np.maximum(sxx / n - (sx / n) ** 2, var_floor)
    d = sx.shape[-1]
    ll = -0.5 * count * (d * (1.0 + math.log(2 * math.pi)) + np.log(var).sum(-1))
    return np.where(count > 0, ll, 0.0)


def phone_instances(tm: TransitionModel, tids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(phone of each phone instance, instance index of each frame) of a transition-id
    alignment: an instance ends with the transition into its phone's final state."""
    phones = tm.tid2phone[tids]
    final = np.full(int(tm.tid2phone.max()) + 1, -1)
    for p in tm.topo.phones:
        final[p] = len(tm.topo.states(p)) - 1
    ends = tm.tid2dst[tids] == final[phones]
    instance = np.concatenate([[0], np.cumsum(ends)[:-1]])
    starts = np.concatenate([[True], ends[:-1]])
    return phones[starts], instance


def accumulate_tree_stats(tm: TransitionModel, alis: dict[str, np.ndarray],
                          feats: dict[str, torch.Tensor], width: int = 3, central: int = 1,
                          ci_phones: list[int] = ()) -> TreeStats:
    """Gather statistics per (window, pdf class) from transition-id alignments and the GMM
    features of the same utterances. Context-independent phones (Kaldi's --ci-phones: the
    silence phones) are gathered with an all-zero context, so the tree never splits them;
    they still are context to the others."""
    pdf_class_of = {(p, j): st.pdf_class for p in tm.topo.phones
                    for j, st in enumerate(tm.topo.states(p))}
    ts_class = np.array([pdf_class_of[(p, j)] for p, j, _ in tm.tuples])
    tid_class = np.concatenate([[0], ts_class[tm.tid2state[1:]]])
    windows, classes, xs = [], [], []
    for utt, tids in alis.items():
        seq, instance = phone_instances(tm, tids)
        padded = np.concatenate([np.zeros(central, np.int64), seq,
                                 np.zeros(width - central - 1, np.int64)])
        # window of instance i = padded[i : i + width]
        win = np.stack([padded[instance + k] for k in range(width)], axis=1)
        windows.append(win)
        classes.append(tid_class[tids])
        xs.append(feats[utt].double())
    windows = np.concatenate(windows)
    classes = np.concatenate(classes)
    centre = windows[:, central].copy()
    ci = np.isin(centre, list(ci_phones))
    windows[ci] = 0
    windows[ci, central] = centre[ci]
    x = torch.cat(xs)
    keys = np.concatenate([windows, classes[:, None]], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inv = torch.from_numpy(inverse.reshape(-1)).to(x.device)
    n = len(uniq)
    count = torch.zeros(n, dtype=torch.float64, device=x.device).index_add_(
        0, inv, torch.ones_like(inv, dtype=torch.float64))
    sx = torch.zeros(n, x.shape[1], dtype=torch.float64, device=x.device).index_add_(0, inv, x)
    sxx = torch.zeros_like(sx).index_add_(0, inv, x * x)
    return TreeStats(uniq[:, :width].copy(), uniq[:, width].copy(), count.cpu().numpy(),
                     sx.cpu().numpy(), sxx.cpu().numpy())


def _two_means(stats: np.ndarray, members: list[int], rng: np.random.Generator, tries: int,
               var_floor: float) -> tuple[list[int], list[int]]:
    """Split phones (rows of stats [P, 1 + 2D]) in two, maximising the summed likelihood of the
    two clusters' Gaussians; `tries` random starts, each refined by reassignment."""
    sub = stats[members]
    d = (sub.shape[1] - 1) // 2

    def total(assign):
        out = 0.0
        for c in (0, 1):
            s = sub[assign == c].sum(0)
            out += float(gauss_loglik(s[0], s[1:1 + d], s[1 + d:], var_floor))
        return out

    best, best_ll = None, -math.inf
    for _ in range(tries):
        assign = (rng.permutation(len(members)) < len(members) // 2).astype(int)
        for _ in range(20):
            changed = False
            for i in range(len(members)):  # move a phone when the move raises the likelihood
                if (assign == assign[i]).sum() == 1:
                    continue
                before = total(assign)
                assign[i] ^= 1
                if total(assign) > before + 1e-9:
                    changed = True
                else:
                    assign[i] ^= 1
            if not changed:
                break
        ll = total(assign)
        if ll > best_ll:
            best, best_ll = assign.copy(), ll
    return ([m for m, a in zip(members, best) if a == 0],
            [m for m, a in zip(members, best) if a == 1])


def cluster_phones(stats: TreeStats, topo: Topology, silence: list[int],
                   cfg: TreeConfig) -> list[tuple[int, ...]]:
    """Questions (sorted phone sets) from a top-down binary clustering of the phones."""
    phones = topo.phones
    d = stats.sum.shape[1]
    rows = np.zeros((max(phones) + 1, 1 + 2 * d))
    centre = stats.windows[:, cfg.central_position]
    for p in phones:
        middle = topo.num_pdf_classes(p) // 2
        sel = (centre == p) & (stats.pdf_class == middle)
        rows[p] = np.concatenate([[stats.count[sel].sum()], stats.sum[sel].sum(0),
                                  stats.sumsq[sel].sum(0)])
    rng = np.random.default_rng(cfg.seed)
    seen = [p for p in phones if rows[p, 0] > 0]
    questions, todo = set(), [seen]
    while todo:
        members = todo.pop()
        questions.add(tuple(sorted(members)))
        if len(members) > 1:
            todo += _two_means(rows, members, rng, cfg.cluster_tries, cfg.var_floor)
    nonsil = tuple(p for p in phones if p not in silence)
    questions |= {tuple(sorted(silence)), nonsil}
    # utterance ends (0) behave like silence: add 0 wherever the silence phones all are
    out = set()
    for q in questions:
        if silence and set(silence) <= set(q):
            q = tuple(sorted({0, *q}))
        out.add(q)
    out.discard(tuple(sorted({0, *phones})))  # the question everything answers "yes" to
    return sorted(out, key=lambda q: (len(q), q))


@dataclass
class _Split:
    gain: float
    key: int = -1
    question: int = -1


def _best_split(rows: np.ndarray, stats: TreeStats, membership: np.ndarray, keys: list[int],
                cfg: TreeConfig) -> _Split:
    """The best question for the contexts `rows` of one leaf: gain, key, question index."""
    count, sx, sxx = stats.count[rows], stats.sum[rows], stats.sumsq[rows]
    parent = float(gauss_loglik(count.sum(), sx.sum(0), sxx.sum(0), cfg.var_floor))
    best = _Split(-math.inf)
    v = membership.shape[1]
    for key in keys:
        values = stats.windows[rows, key]
        c = np.bincount(values, count, minlength=v)
        s = np.zeros((v, sx.shape[1]))
        np.add.at(s, values, sx)
        q = np.zeros_like(s)
        np.add.at(q, values, sxx)
        yc, ys, yq = membership @ c, membership @ s, membership @ q
        nc, ns, nq = c.sum() - yc, s.sum(0) - ys, q.sum(0) - yq
        gain = (gauss_loglik(yc, ys, yq, cfg.var_floor) + gauss_loglik(nc, ns, nq, cfg.var_floor)
                - parent)
        gain = np.where((yc >= cfg.min_count) & (nc >= cfg.min_count), gain, -math.inf)
        i = int(np.argmax(gain))
        if gain[i] > best.gain:
            best = _Split(float(gain[i]), key, i)
    return best


def build_tree(stats: TreeStats, topo: Topology, questions: list[tuple[int, ...]],
               cfg: TreeConfig) -> ContextDependency:
    width, central = cfg.context_width, cfg.central_position
    if stats.windows.shape[1] != width:
        raise ValueError(f"tree statistics have windows of {stats.windows.shape[1]} phones, "
                         f"the tree wants {width}")
    num_values = max(max(topo.phones), int(stats.windows.max())) + 1
    membership = np.zeros((len(questions), num_values))
    for i, q in enumerate(questions):
        membership[i, list(q)] = 1.0
    keys = [k for k in range(width) if k != central]

    nodes: list[Node] = []
    rows_of: dict[int, np.ndarray] = {}
    roots: dict[tuple[int, int], int] = {}
    heap: list[tuple[float, int, _Split]] = []

    def new_leaf(rows: np.ndarray) -> int:
        nodes.append(Node())
        i = len(nodes) - 1
        rows_of[i] = rows
        split = _best_split(rows, stats, membership, keys, cfg) if len(rows) > 1 else None
        if split is not None and split.gain >= cfg.min_gain:
            heapq.heappush(heap, (-split.gain, i, split))
        return i

    centre = stats.windows[:, central]
    for p in topo.phones:
        for k in sorted({st.pdf_class for st in topo.states(p) if st.pdf_class is not None}):
            roots[(p, k)] = new_leaf(np.nonzero((centre == p) & (stats.pdf_class == k))[0])
    num_leaves, total_gain = len(roots), 0.0
    while heap and num_leaves < cfg.num_leaves:
        neg_gain, i, split = heapq.heappop(heap)
        rows = rows_of.pop(i)
        yes_mask = membership[split.question, stats.windows[rows, split.key]] > 0
        yes, no = new_leaf(rows[yes_mask]), new_leaf(rows[~yes_mask])
        nodes[i] = Node(key=split.key, question=questions[split.question], yes=yes, no=no)
        num_leaves += 1
        total_gain -= neg_gain

    # Number the leaves root by root, depth first: the pdf ids.
    next_pdf = 0
    for root in roots.values():
        todo = [root]
        while todo:
            n = nodes[todo.pop()]
            if n.question:
                todo += [n.no, n.yes]
            else:
                n.pdf = next_pdf
                next_pdf += 1
    frames = stats.count.sum()
    log.info("tree: %d leaves from %d roots, %d contexts seen; likelihood gain %.3f per frame "
             "over %d frames", num_leaves, len(roots), len(stats.count), total_gain / frames,
             frames)
    return ContextDependency(width, central, roots, nodes)


def leaf_stats(ctx: ContextDependency, stats: TreeStats) -> tuple[np.ndarray, ...]:
    """count [P], sum [P, D], sumsq [P, D] of each pdf's contexts: the single Gaussians a
    triphone system starts from (Kaldi's gmm-init-model)."""
    pdf = np.array([ctx.pdf(w, k) for w, k in zip(stats.windows.tolist(),
                                                     stats.pdf_class.tolist())])
    p, d = ctx.num_pdfs, stats.sum.shape[1]
    count = np.bincount(pdf, stats.count, minlength=p)
    sx, sxx = np.zeros((p, d)), np.zeros((p, d))
    np.add.at(sx, pdf, stats.sum)
    np.add.at(sxx, pdf, stats.sumsq)
    return count, sx, sxx
