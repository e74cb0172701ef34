"""Ensemble training speed: E members stacked (StackedMLP, one batched matmul per layer for all
members) vs in a loop (LoopMembers, one model after another), for E = 4 and E = 10.

Both forms come from make_members, as train_members builds them, and run train_members' step:
a batch of chunks gathered on the device from a ChunkSet, every member's logits under bf16
autocast (on a GPU), kd_loss per member on the hard targets, backward, MemberAdam. Features and
targets are synthetic random numbers, already on the device; warm-up steps are not timed.
frames/s counts input frames (each one trains all E members); TFLOP/s counts 6 x (weight
multiply-adds) per frame and member.

Target on an H100: stacked >= 3.5x faster than the loop for E = 4 at the recipe shape
(11 x 40 in, 6 x 1024, 2000 outputs).
"""

from __future__ import annotations

from common import (
    Report,
    describe,
    macs_per_frame,
    new_members,
    parse_args,
    peak_memory_gib,
    pick_device,
    reset_memory,
    shape,
    step_timing,
    synthetic_chunks,
    time_per_call,
    training_step,
)

from asr_kd.train.distill import DistillConfig


def add_args(p):
    p.add_argument("--members", default="4,10", help="ensemble sizes E, comma-separated")
    p.add_argument("--shape", choices=["recipe", "paper"], default="recipe")
    p.add_argument("--batch-size", type=int, default=256, help="chunks per step")
    p.add_argument("--chunk-size", type=int, default=16, help="frames per chunk")


def main():
    args = parse_args(__doc__, add_args)
    device = pick_device(args.device)
    rep = Report("ensemble", device, args)
    spec, num_pdfs = shape(args.shape, args.quick)
    bs = 8 if args.quick else args.batch_size
    frames_per_step = bs * args.chunk_size
    data = synthetic_chunks(4_000 if args.quick else 400_000, spec, num_pdfs, args.chunk_size,
                            device)
    for e in [int(x) for x in args.members.split(",")]:
        speed = {}
        for stacked in (True, False):
            reset_memory(device)
            members = new_members(spec, num_pdfs, e, stacked, device)
            step = training_step(members, data, bs, DistillConfig())
            sec = time_per_call(step, device, **step_timing(args.quick))
            speed[stacked] = fps = frames_per_step / sec
            rep.add(shape=args.shape, model=describe(spec, num_pdfs), E=e,
                    form=type(members).__name__, batch_frames=frames_per_step,
                    ms_per_step=1e3 * sec, frames_per_s=fps,
                    tflops=6 * macs_per_frame(spec, num_pdfs) * e * fps / 1e12,
                    stacked_speedup=speed[True] / fps if not stacked else None,
                    peak_gib=peak_memory_gib(device))
            del members, step
    rep.note("synthetic random features and targets, already on the device; stacked_speedup "
             "(on the loop's row) = stacked frames/s / loop frames/s")
    rep.finish()


if __name__ == "__main__":
    main()
