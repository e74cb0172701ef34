"""Phonetic context dependency: which pdf an HMM state of a phone uses in a given context.

A *window* is the phone sequence around a phone instance, `width` phones long with the phone
itself at `central` (triphones: width 3, central 1; 0 stands for "no phone", before the first and
after the last phone of an utterance). A decision tree (asr_kd.hmm.tree builds it) maps
(window, pdf class) to a pdf; it has one root per (central phone, pdf class) and asks yes/no
questions "is the phone at position k in this set?". A monophone model is the tree of width 1
whose roots are leaves.

`compose` puts the context transducer C on the left of an FST with phone inputs (L∘W for a
training graph, LG for decoding), through kaldifst's compose_context: the result's input labels
index a list of windows, negative one-element windows standing for disambiguation symbols.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import kaldifst

from asr_kd.lang.topology import Topology


@dataclass
class Node:
    pdf: int = -1  # leaf: the pdf id; internal nodes: -1
    key: int = -1  # window position the question asks about
    question: tuple[int, ...] = ()  # the phones (sorted) that answer "yes"
    yes: int = -1
    no: int = -1


class ContextDependency:
    def __init__(self, width: int, central: int, roots: dict[tuple[int, int], int],
                 nodes: list[Node]):
        if not 0 <= central < width:
            raise ValueError(f"central position {central} is outside a window of {width}")
        self.width, self.central = width, central
        self.roots = roots  # (phone, pdf class) -> node index
        self.nodes = nodes
        self._sets = [frozenset(n.question) for n in nodes]

    @classmethod
    def monophone(cls, roots: dict[tuple[int, int], int]) -> ContextDependency:
        """Width 1: every (phone, pdf class) is its own leaf with the pdf given."""
        nodes, index = [], {}
        for key, pdf in sorted(roots.items()):
            index[key] = len(nodes)
            nodes.append(Node(pdf=pdf))
        return cls(1, 0, index, nodes)

    @classmethod
    def from_transitions(cls, topo: Topology, tuples) -> ContextDependency:
        """The monophone tree of a transition model whose (phone, state) have one pdf each."""
        roots = {}
        for phone, hmm_state, pdf in tuples:
            key = (phone, topo.states(phone)[hmm_state].pdf_class)
            if roots.setdefault(key, pdf) != pdf:
                raise ValueError(f"phone {phone} pdf class {key[1]} has several pdfs: the "
                                 f"model is context-dependent and needs its tree")
        return cls.monophone(roots)

    @property
    def num_pdfs(self) -> int:
        return max(n.pdf for n in self.nodes) + 1

    @property
    def num_leaves(self) -> int:
        return sum(n.pdf >= 0 for n in self.nodes)

    def pdf(self, window, pdf_class: int) -> int:
        phone = window[self.central]
        try:
            i = self.roots[(phone, pdf_class)]
        except KeyError:
            raise KeyError(f"the tree has no root for phone {phone} pdf class {pdf_class}") \
                from None
        node = self.nodes[i]
        while node.pdf < 0:
            i = node.yes if window[node.key] in self._sets[i] else node.no
            node = self.nodes[i]
        return node.pdf

    def leaves(self, phone: int, pdf_class: int) -> list[int]:
        """Every pdf the tree can give this (phone, pdf class), whatever the context."""
        out, todo = [], [self.roots[(phone, pdf_class)]]
        while todo:
            node = self.nodes[todo.pop()]
            if node.pdf >= 0:
                out.append(node.pdf)
            elif node.key == self.central:  # a question about the phone itself
                todo.append(node.yes if phone in node.question else node.no)
            else:
                todo += [node.yes, node.no]
        return sorted(out)

    def tuples(self, topo: Topology) -> list[tuple[int, int, int]]:
        """The (phone, HMM state, pdf) transition states this tree can produce."""
        return [(phone, j, pdf) for phone in topo.phones
                for j, st in enumerate(topo.states(phone)) if st.pdf_class is not None
                for pdf in self.leaves(phone, st.pdf_class)]

    def compose(self, fst: kaldifst.StdVectorFst, disambig: list[int] = (),
                ) -> tuple[kaldifst.StdVectorFst, list[tuple[int, ...]]]:
        """C∘fst and the window of each of its input labels (label 0: epsilon, ())."""
        if self.width == 1:  # C is the identity: labels stay phone ids
            windows = [()] * (max([*self.phones, *disambig]) + 1)
            for p in self.phones:
                windows[p] = (p,)
            for d in disambig:
                windows[d] = (-d,)
            return fst, windows
        out, info = kaldifst.compose_context(list(disambig), self.width, self.central, fst)
        return out, [tuple(w) for w in info]

    @property
    def phones(self) -> list[int]:
        return sorted({p for p, _ in self.roots})

    def state_dict(self) -> dict:
        return {"width": self.width, "central": self.central,
                "roots": [[p, k, i] for (p, k), i in sorted(self.roots.items())],
                "nodes": [[n.pdf, n.key, list(n.question), n.yes, n.no] for n in self.nodes]}

    @classmethod
    def from_state_dict(cls, d: dict) -> ContextDependency:
        return cls(d["width"], d["central"], {(p, k): i for p, k, i in d["roots"]},
                   [Node(pdf, key, tuple(q), yes, no) for pdf, key, q, yes, no in d["nodes"]])

    def to_json(self) -> str:
        return json.dumps(self.state_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ContextDependency:
        return cls.from_state_dict(json.loads(text))
