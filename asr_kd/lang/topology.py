"""HMM topologies in Kaldi's `topo` format.

Each phone has a list of emitting states (each with a pdf class and outgoing transitions) and one
final, non-emitting state. The defaults are Kaldi's (utils/gen_topo.pl): 3 left-to-right states
for speech phones, 5 states with an ergodic middle for silence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class HmmState:
    pdf_class: int | None  # None for the final, non-emitting state
    transitions: list[tuple[int, float]] = field(default_factory=list)  # (dest state, prob)


@dataclass
class Topology:
    entries: list[tuple[list[int], list[HmmState]]]  # (phones, states)

    def states(self, phone: int) -> list[HmmState]:
        for phones, states in self.entries:
            if phone in phones:
                return states
        raise KeyError(f"phone {phone} has no entry in the topology")

    def num_pdf_classes(self, phone: int) -> int:
        return len({s.pdf_class for s in self.states(phone) if s.pdf_class is not None})

    @property
    def phones(self) -> list[int]:
        return sorted(p for phones, _ in self.entries for p in phones)

    def to_text(self) -> str:
        out = ["<Topology>"]
        for phones, states in self.entries:
            out += ["<TopologyEntry>", "<ForPhones>", " ".join(map(str, phones)), "</ForPhones>"]
            for i, st in enumerate(states):
                if st.pdf_class is None:
                    out.append(f"<State> {i} </State>")
                    continue
                trans = " ".join(f"<Transition> {d} {p:g}" for d, p in st.transitions)
                out.append(f"<State> {i} <PdfClass> {st.pdf_class} {trans} </State>")
            out.append("</TopologyEntry>")
        out.append("</Topology>")
        return "\n".join(out) + "\n"

    @classmethod
    def from_text(cls, text: str, path: str = "topo") -> Topology:
        entries = []
        for m in re.finditer(r"<TopologyEntry>(.*?)</TopologyEntry>", text, re.S):
            body = m.group(1)
            pm = re.search(r"<ForPhones>(.*?)</ForPhones>", body, re.S)
            if pm is None:
                raise ValueError(f"{path}: a <TopologyEntry> has no <ForPhones>")
            phones = [int(x) for x in pm.group(1).split()]
            states = []
            for sm in re.finditer(r"<State>(.*?)</State>", body, re.S):
                tok = sm.group(1).split()
                if int(tok[0]) != len(states):
                    raise ValueError(f"{path}: states of phones {phones} are not "
                                     f"numbered 0, 1, ...")
                pdf_class = None
                trans = []
                i = 1
                while i < len(tok):
                    if tok[i] == "<PdfClass>":
                        pdf_class = int(tok[i + 1])
                        i += 2
                    elif tok[i] == "<Transition>":
                        trans.append((int(tok[i + 1]), float(tok[i + 2])))
                        i += 3
                    else:
                        raise ValueError(f"{path}: unsupported token {tok[i]!r} in a <State>")
                states.append(HmmState(pdf_class, trans))
            entries.append((phones, states))
        if not entries:
            raise ValueError(f"{path}: no <TopologyEntry> found")
        return cls(entries)


def left_to_right(num_states: int, self_loop: float = 0.75) -> list[HmmState]:
    """Kaldi's speech-phone topology: each state loops or moves on to the next."""
    states = [HmmState(i, [(i, self_loop), (i + 1, 1.0 - self_loop)]) for i in range(num_states)]
    return states + [HmmState(None)]


def silence_topology(num_states: int = 5) -> list[HmmState]:
    """Kaldi's silence topology: ergodic middle states, as utils/gen_topo.pl writes it."""
    if num_states < 3:
        return left_to_right(num_states)
    last = num_states - 1
    p = 1.0 / last
    states = [HmmState(0, [(j, p) for j in range(last)])]
    for i in range(1, last):
        states.append(HmmState(i, [(j, p) for j in range(1, num_states)]))
    states.append(HmmState(last, [(last, 0.75), (num_states, 0.25)]))
    return states + [HmmState(None)]


def make_topology(speech_phones: list[int], silence_phones: list[int],
                  num_speech_states: int = 3, num_silence_states: int = 5) -> Topology:
    entries = []
    if speech_phones:
        entries.append((sorted(speech_phones), left_to_right(num_speech_states)))
    if silence_phones:
        entries.append((sorted(silence_phones), silence_topology(num_silence_states)))
    return Topology(entries)
