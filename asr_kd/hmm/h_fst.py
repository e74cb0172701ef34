"""The H transducers: HMM-state sequences -> context windows (the input labels of C∘L∘...).

Each window (asr_kd.hmm.context) is the HMM of its central phone, with the transition state of
every HMM state picked by the tree; for a monophone model the windows are the phones themselves.

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

from asr_kd.hmm.context import ContextDependency
from asr_kd.hmm.transitions import TransitionModel


def phone_states(tm: TransitionModel) -> dict[int, dict[int, int]]:
    """phone -> {hmm_state: transition state} of a monophone model (the flat start's)."""
    out: dict[int, dict[int, int]] = {}
    for s, (phone, hmm_state, _pdf) in enumerate(tm.tuples):
        if hmm_state in out.setdefault(phone, {}):
            raise ValueError(f"phone {phone} state {hmm_state} has several pdfs: the model is "
                             f"context-dependent, not a monophone one")
        out[phone][hmm_state] = s
    return out


def window_states(tm: TransitionModel, ctx: ContextDependency,
                  window: tuple[int, ...]) -> dict[int, int]:
    """{HMM state: transition state} of the central phone of `window`."""
    phone = window[ctx.central]
    return {j: tm.state_index[(phone, j, ctx.pdf(window, st.pdf_class))]
            for j, st in enumerate(tm.topo.states(phone)) if st.pdf_class is not None}


def _is_phone_window(window: tuple[int, ...]) -> bool:
    # () is epsilon; a one-element window <= 0 is a disambiguation symbol (0: Kaldi's #-1,
    # which compose_context puts where C waits for the right context)
    return len(window) > 0 and window[0] >= 0 and not (len(window) == 1 and window[0] == 0)


def training_h(tm: TransitionModel, ctx: ContextDependency, windows) -> str:
    """AT&T text of H with transition-id inputs and window-index outputs (entry arcs are
    eps:window)."""
    lines, next_node = [], 1  # node 0 is the start/final state between phones
    for label, window in enumerate(windows):
        if not _is_phone_window(window):
            continue
        states = window_states(tm, ctx, window)
        topo_states = tm.topo.states(window[ctx.central])
        final_state = len(topo_states) - 1
        node = {j: next_node + i for i, j in enumerate(sorted(states))}
        next_node += len(states)
        lines.append(f"0 {node[0]} 0 {label} 0")
        for j, s in states.items():
            for i, (dst, _prob) in enumerate(topo_states[j].transitions):
                to = 0 if dst == final_state else node[dst]
                lines.append(f"{node[j]} {to} {tm.tid(s, i)} 0 0")
    lines.append("0 0")
    return "\n".join(lines) + "\n"


def decoding_ha(tm: TransitionModel, ctx: ContextDependency, windows,
                transition_scale: float = 1.0) -> tuple[str, int]:
    """AT&T text of Ha and its number of disambiguation inputs. Inputs are transition states + 1,
    then one id per disambiguation window (passed through by loops on the start state); outputs
    are window indices."""
    lines, next_node = [], 1
    num_ts = len(tm.tuples)
    num_dis = 0
    for label, window in enumerate(windows):
        if not window:
            continue
        if not _is_phone_window(window):
            num_dis += 1
            lines.append(f"0 0 {num_ts + num_dis} {label} 0")
            continue
        states = window_states(tm, ctx, window)
        phone = window[ctx.central]
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
                out = label if j == 0 else 0
                lines.append(f"{node[j]} {to} {s + 1} {out} {cost:.7g}")
    lines.append("0 0")
    return "\n".join(lines) + "\n", num_dis
