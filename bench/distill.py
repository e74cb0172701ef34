"""Distillation speed: frames/s of a student's training step with soft targets from E teachers
run on the fly (TeacherTargets, `distill.source: online`), and from a top-k cache
(CachedTargets, `source: topk`), beside the same student on hard targets alone.

Teachers are E recipe-shape MLPs (11 x 40 in, 6 x 1024, 2000 outputs), grouped as
_teacher_members does (stacked on a GPU, a loop on the CPU); the student has the members' shape,
as in the paper. Each step is train_members' own: a batch of chunks gathered on the device from
a ChunkSet, soft targets for it, the student's logits under bf16 autocast (on a GPU), kd_loss
(alpha 0.5, T 2), backward, MemberAdam. Features, targets and the cache (ids, renormalised
log-probs, kept mass for every frame, k = 20) are synthetic random numbers, already on the
device; warm-up steps are not timed. TFLOP/s counts 6 x the student's and 2 x each teacher's
weight multiply-adds per frame.

Target on an H100: >= 0.7M frames/s with 4 on-the-fly teachers.
"""

from __future__ import annotations

import torch
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
from asr_kd.train.trainer import CachedTargets, TeacherTargets
from asr_kd.utils.runtime import runtime_policy


def add_args(p):
    p.add_argument("--teachers", type=int, default=4, help="ensemble size E")
    p.add_argument("--shape", choices=["recipe", "paper"], default="recipe",
                   help="shape of the teachers and the student")
    p.add_argument("--batch-size", type=int, default=256, help="chunks per step")
    p.add_argument("--chunk-size", type=int, default=16, help="frames per chunk")
    p.add_argument("--top-k", type=int, default=20)


def random_cache(num_frames: int, num_pdfs: int, k: int, device: torch.device) -> CachedTargets:
    """What load_soft_cache gives, moved to the device: ids int64, log-probs renormalised over
    the k, and the mass the k held, for every frame in the ChunkSet's order."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, num_pdfs, (num_frames, k), generator=g)
    logp = torch.log_softmax(torch.randn(num_frames, k, generator=g), dim=-1)
    mass = 0.5 + 0.5 * torch.rand(num_frames, generator=g)
    return CachedTargets(ids.to(device), logp.to(device), mass.to(device))


def main():
    args = parse_args(__doc__, add_args)
    device = pick_device(args.device)
    rep = Report("distill", device, args)
    spec, num_pdfs = shape(args.shape, args.quick)
    bs = 8 if args.quick else args.batch_size
    frames_per_step = bs * args.chunk_size
    data = synthetic_chunks(4_000 if args.quick else 400_000, spec, num_pdfs, args.chunk_size,
                            device)
    e, macs = args.teachers, macs_per_frame(spec, num_pdfs)
    teachers = new_members(spec, num_pdfs, e, device.type == "cuda", device, seed=100)
    cases = [  # (targets, distill config, soft-target source, forward passes per frame)
        ("hard only", DistillConfig(), None, 0),
        (f"online, E={e} {type(teachers).__name__}",
         DistillConfig(alpha=0.5, temperature=2.0, source="online"), "online", e),
        (f"top-{args.top_k} cache", DistillConfig(alpha=0.5, temperature=2.0, source="topk",
                                                  top_k=args.top_k), "topk", 0),
    ]
    for label, cfg, source, teacher_passes in cases:
        reset_memory(device)
        soft = None
        if source == "online":
            soft = TeacherTargets(teachers, cfg, runtime_policy(device))
        elif source == "topk":
            soft = random_cache(len(data.targets), num_pdfs, args.top_k, device)
        student = new_members(spec, num_pdfs, 1, False, device)
        step = training_step(student, data, bs, cfg, soft)
        sec = time_per_call(step, device, **step_timing(args.quick))
        fps = frames_per_step / sec
        rep.add(model=describe(spec, num_pdfs), soft_targets=label, batch_frames=frames_per_step,
                ms_per_step=1e3 * sec, frames_per_s=fps,
                tflops=(6 + 2 * teacher_passes) * macs * fps / 1e12,
                peak_gib=peak_memory_gib(device))
        del student, step, soft
    rep.note("synthetic random features, targets and top-k cache, already on the device; "
             "student and teachers have the same shape")
    rep.finish()


if __name__ == "__main__":
    main()
