"""Training speed of one model: frames/s and achieved TFLOP/s (and % of the GPU's bf16 peak).

Shapes: `paper` (26 x 40 spliced fbank in, 8 x 2560 ReLU, 14,000 outputs; Hinton et al. 2015)
and `recipe` (11 x 40 in, 6 x 1024, 2000 outputs). Each step is train_members' own: a batch of
chunks gathered on the device from a ChunkSet (our data pipeline), the logits under bf16
autocast (on a GPU), kd_loss (cross-entropy on hard targets), backward, MemberAdam. Features
and targets are synthetic random numbers, already on the device; warm-up steps are not timed.
TFLOP/s counts 6 x (weight multiply-adds) per frame: forward and both backward matmuls.

Target on an H100: the paper shape at >= 55% of the bf16 dense peak (989 TFLOP/s).
"""

from __future__ import annotations

from common import (
    Report,
    describe,
    macs_per_frame,
    new_members,
    parse_args,
    peak_bf16_tflops,
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
    p.add_argument("--batch-sizes", default="256,1024",
                   help="chunks per step, comma-separated (TrainConfig's default is 256)")
    p.add_argument("--chunk-size", type=int, default=16, help="frames per chunk")
    p.add_argument("--shapes", default="paper,recipe")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="bf16 dense peak of a GPU missing from common.PEAK_BF16_TFLOPS")


def main():
    args = parse_args(__doc__, add_args)
    device = pick_device(args.device)
    rep = Report("train", device, args)
    peak = args.peak_tflops or peak_bf16_tflops(device)
    batch_sizes = [2, 8] if args.quick else [int(b) for b in args.batch_sizes.split(",")]
    frames = 4_000 if args.quick else 400_000  # ~67 min of 10 ms frames
    for name in args.shapes.split(","):
        spec, num_pdfs = shape(name, args.quick)
        data = synthetic_chunks(frames, spec, num_pdfs, args.chunk_size, device)
        for bs in batch_sizes:
            reset_memory(device)
            members = new_members(spec, num_pdfs, 1, False, device)
            step = training_step(members, data, bs, DistillConfig())
            sec = time_per_call(step, device, **step_timing(args.quick))
            fps = bs * args.chunk_size / sec
            tflops = 6 * macs_per_frame(spec, num_pdfs) * fps / 1e12
            rep.add(shape=name, model=describe(spec, num_pdfs), batch_frames=bs * args.chunk_size,
                    ms_per_step=1e3 * sec, frames_per_s=fps, tflops=tflops,
                    pct_bf16_peak=100 * tflops / peak if peak else None,
                    peak_gib=peak_memory_gib(device))
            del members, step
    rep.note("synthetic random features and targets, already on the device; step = ChunkSet."
             "batch -> center_logits (bf16 autocast on cuda) -> kd_loss -> backward -> "
             "MemberAdam.step")
    rep.note(f"bf16 dense peak used: {peak} TFLOP/s" if peak else
             "no bf16 peak for this device (CPU, or a GPU not in the table: --peak-tflops)")
    rep.finish()


if __name__ == "__main__":
    main()
