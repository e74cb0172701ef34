"""The torch decoder against the reference (kaldi-decoder's FasterDecoder) on a recipe's test set.

One system's scores are computed once, on `device`, and decoded by both decoders with the
recipe's decode config and graph: the reference on the CPU, one utterance at a time, ours on
`device` in batches of similar lengths. Used by the tests (yesno, FSDD, TIMIT and AN4 systems)
and by bench/decode_agree.py (AN4, on the GPU the day one is lent).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr_kd.decode.base import DecodeConfig, Hypothesis, make_decoder


@dataclass
class Agreement:
    utts: list[str]
    reference: list[Hypothesis | None]
    torch: list[Hypothesis | None]
    torch_seconds: float  # the torch decoder's search, device synchronised
    reference_seconds: float

    def differing(self, cost_tol: float = 1e-2, rel_tol: float = 1e-5) -> list[tuple[str, str]]:
        """(utterance, what differs) for every utterance whose words, pdf path, cost (float64
        sums against kaldi-decoder's float32 lattice weights: within cost_tol + rel_tol * |cost|)
        or reached-final flag differ, or that one decoder found no path for."""
        out = []
        for u, r, h in zip(self.utts, self.reference, self.torch, strict=True):
            if r is None or h is None:
                if (r is None) != (h is None):
                    out.append((u, "no path from " + ("the reference" if r is None else "torch")))
            elif h.words != r.words:
                out.append((u, f"words {h.words} against {r.words}"))
            elif not np.array_equal(h.pdf_alignment, r.pdf_alignment):
                out.append((u, "pdf path"))
            elif abs(h.cost - r.cost) > cost_tol + rel_tol * abs(r.cost):
                out.append((u, f"cost {h.cost:.4f} against {r.cost:.4f}"))
            elif h.reached_final != r.reached_final:
                out.append((u, "reached final"))
        return out


def compare_decoders(recipe_dir, test_set: str, system: str, device="cpu",
                     batch: int = 64) -> Agreement:
    """Decode data/<test_set> of `recipe_dir` with exp/<system>'s model through both decoders
    (its graph: exp/graph_<system> where there is one, else exp/graph)."""
    from asr_kd.acoustic import load_acoustic_model
    from asr_kd.features import as_tensors
    from asr_kd.steps.common import load_dir_feats
    from asr_kd.utils.config import load_config
    from asr_kd.utils.fst import read_fst

    device = torch.device(device)
    with contextlib.chdir(recipe_dir):  # feats.scp paths are relative to the recipe dir
        model_path = next(p for p in (Path("exp") / system / n for n in ("final.pt", "final.mdl"))
                          if p.exists())
        cfg = load_config(DecodeConfig, Path("conf") / (
            "decode_gmm.yaml" if model_path.suffix == ".mdl" else "decode_dnn.yaml"))
        d, feats = load_dir_feats(Path("data") / test_set)
        graph = Path(f"exp/graph_{system}")
        hclg = read_fst((graph if graph.exists() else Path("exp/graph")) / "HCLG.fst")
        model = load_acoustic_model(model_path, device)
        feats_t = as_tensors(feats)
        lls = [ll.float() for ll, _ in model.scores([feats_t[u].to(device) for u in d.utts])]
    t0 = time.perf_counter()
    theirs = make_decoder("reference", hclg, cfg).decode_batch([x.cpu().numpy() for x in lls])
    t1 = time.perf_counter()
    decoder = make_decoder("torch", hclg, cfg, device)
    # Batches of similar lengths (a batch runs as many frames as its longest utterance).
    order = sorted(range(len(lls)), key=lambda i: len(lls[i]))
    ours: list[Hypothesis | None] = [None] * len(lls)
    for k in range(0, len(order), batch):
        idx = order[k:k + batch]
        for i, h in zip(idx, decoder.decode_batch([lls[i] for i in idx]), strict=True):
            ours[i] = h
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return Agreement(list(d.utts), theirs, ours, time.perf_counter() - t1, t1 - t0)
