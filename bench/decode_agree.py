"""Decoder agreement: the torch decoder against the reference on a recipe's test set, on a device.

Per system: how many utterances agree (words, pdf path, cost, reached-final), which differ and
how, and both decoders' RTFx (10 ms frames): ours on the device in batches, kaldi-decoder's
FasterDecoder on one CPU core. Everything is real: the recipe's graph, model, features and
decode config (asr_kd.steps.decode_agreement). Exits 1 if any utterance differs.

    python bench/decode_agree.py --recipe recipes/an4 --test test --systems tri1 ensemble
"""

from __future__ import annotations

import sys
from pathlib import Path

from common import Report, parse_args, pick_device

from asr_kd.steps.decode_agreement import compare_decoders


def main() -> int:
    def add(p):
        p.add_argument("--recipe", type=Path, required=True, help="a recipe dir, after stage 9")
        p.add_argument("--test", default="test", help="data/<test> of the recipe")
        p.add_argument("--systems", nargs="+", default=["ensemble"], help="exp/<system>")
        p.add_argument("--batch", type=int, default=64, help="utterances per torch batch")

    args = parse_args(__doc__, add)
    device = pick_device(args.device)
    rep = Report("decode_agree", device, args)
    differing = 0
    for system in args.systems:
        ag = compare_decoders(args.recipe, args.test, system, device, args.batch)
        seconds = sum(len(h.pdf_alignment) for h in ag.reference if h is not None) / 100
        diff = ag.differing()
        differing += len(diff)
        rep.add(system=system, utts=len(ag.utts), agree=len(ag.utts) - len(diff),
                torch_rtfx=seconds / ag.torch_seconds,
                reference_rtfx=seconds / ag.reference_seconds)
        for u, why in diff:
            rep.note(f"{system} {u}: {why}")
    rep.note(f"{args.recipe}, data/{args.test}; the torch decoder in batches of {args.batch}")
    rep.finish()
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
