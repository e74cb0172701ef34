"""The H transducers: HMM-state sequences -> phones, for monophone transition models.

- `training_h`: every transition is an arc labelled with its transition id (self-loops
  included) and cost 0; transition log-probs are added at alignment time, as Kaldi does when it
  compiles training graphs with both scales 0.
- `decoding_ha`: no self-loops; an arc labelled with transition state s (1-based) stands for the
  *last* frame spent in s, weighted by log(a_jk / (1 - a_jj)). Self-loops are inserted after
  determinization (asr_kd.decode.graph), where their weight log a_jj and the matching
  log(1 - a_jj) on the outgoing arcs go in.
"""

from __future__ import annotations

import numpy as np

from asr_kd.hmm.transitions import TransitionModel


def phone_states(tm: TransitionModel) -> dict[int, dict[int, int]]:
    """phone -> {hmm_state: transition state}; monophone models have one per HMM state."""
    out: dict[int, dict[int, int]] = {}
    for s, (phone, hmm_state, _pdf) in enumerate(tm.tuples):
        if hmm_state in out.setdefault(phone, {}):
            raise ValueError(f"phone {phone} state {hmm_state} has several pdfs: a monophone H "
                             f"cannot represent a context-dependent model")
        out[phone][hmm_state] = s
    return out


def training_h(tm: TransitionModel) -> str:
    """AT&T text of H with transition-id inputs and phone outputs (entry arcs are eps:phone)."""
    lines, next_node = [], 1  # node 0 is the start/final state between phones
    for phone, states in sorted(phone_states(tm).items()):
        topo_states = tm.topo.states(phone)
        final_state = len(topo_states) - 1
        node = {j: next_node + i for i, j in enumerate(sorted(states))}
        next_node += len(states)
        lines.append(f"0 {node[0]} 0 {phone} 0")
        for j, s in states.items():
            for i, (dst, _prob) in enumerate(topo_states[j].transitions):
                to = 0 if dst == final_state else node[dst]
                lines.append(f"{node[j]} {to} {tm.tid(s, i)} 0 0")
    lines.append("0 0")
    return "\n".join(lines) + "\n"


def decoding_ha(tm: TransitionModel, disambig_in: list[int], disambig_out: list[int],
                transition_scale: float = 1.0) -> str:
    """AT&T text of Ha: inputs are transition states + 1 (then disambig ids `disambig_in`),
    outputs phones (and phone disambig symbols, passed through by loops on the start state)."""
    lines, next_node = [], 1
    for phone, states in sorted(phone_states(tm).items()):
        topo_states = tm.topo.states(phone)
        final_state = len(topo_states) - 1
        node = {j: (0 if j == 0 else next_node + i - 1) for i, j in enumerate(sorted(states))}
        next_node += len(states) - 1
        for j, s in states.items():
            trans = topo_states[j].transitions
            stay = np.exp(tm.self_loop_log_prob(s))
            for i, (dst, _) in enumerate(trans):
                if dst == j:
                    continue
                prob = np.exp(tm.log_probs[tm.tid(s, i)])  # trained, not the topology's prior
                cost = -transition_scale * np.log(prob / max(1.0 - stay, 1e-30))
                if dst == 0:  # state 0 is the shared start node of Ha
                    raise ValueError(f"phone {phone}: the topology re-enters state 0, which "
                                     f"the decoding graph builder does not support")
                to = 0 if dst == final_state else node[dst]
                out = phone if j == 0 else 0
                lines.append(f"{node[j]} {to} {s + 1} {out} {cost:.7g}")
    for i, o in zip(disambig_in, disambig_out):
        lines.append(f"0 0 {i} {o} 0")
    lines.append("0 0")
    return "\n".join(lines) + "\n"
