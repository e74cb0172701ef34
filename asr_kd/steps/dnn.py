"""Stages 6 and 7: the teacher ensemble, and students distilled from it (or trained on hard
targets alone as the baseline).

Stage 6 writes exp/teachers/ (checkpoints, history), exp/teacher_<k>/final.pt for each member
and exp/ensemble/final.pt, and marks exp/.teachers when all are there; with `folds: K` (into its
own root, e.g. exp/crossfit) it writes K cross-fitted ensembles and folds.json instead, the
teacher of students distilled on targets no teacher fitted (asr_kd.train.crossfit). Stage 7 writes
exp/<student>/final.pt, history.json and train_eval.json (frame accuracy on the utterances it
trained on: the Table 5 "train" column).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

from asr_kd.acoustic import (
    DnnAcousticModel,
    EnsembleAcousticModel,
    SpecialistAcousticModel,
    load_acoustic_model,
    read_priors,
)
from asr_kd.features import as_tensors
from asr_kd.steps.common import load_dir_feats, num_pdfs_of, read_alignments
from asr_kd.steps.transfer import prepare_transfer
from asr_kd.train.chunks import ChunkSet
from asr_kd.train.crossfit import CrossFitTeacher
from asr_kd.train.members import LoopMembers, group_members
from asr_kd.train.soft_cache import cache_dir_for, load_soft_cache, write_soft_cache
from asr_kd.train.trainer import (
    TrainConfig,
    evaluate_members,
    original_utt,
    split_utts,
    train_members,
)
from asr_kd.train.transfer import FrameStore, open_cache_arrays
from asr_kd.utils.config import save_config, to_dict
from asr_kd.utils.io import clear_done, is_done, mark_done, write_json
from asr_kd.utils.runinfo import write_run
from asr_kd.utils.runtime import runtime_policy

log = logging.getLogger(__name__)


def _train(data_dir, ali_dir, train_dir: Path, cfg: TrainConfig, device, teacher=None):
    d, feats = load_dir_feats(data_dir)
    targets = read_alignments(ali_dir, d, feats)
    if cfg.distill.uses_teachers and teacher is None:
        raise ValueError(f"{train_dir}: distill.alpha > 0 needs a teacher (--teacher)")
    # Checked (and featurised) before anything of the run is written.
    stores = prepare_transfer(cfg.distill.transfer, data_dir, device)
    train_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, train_dir / "config.yaml")
    num_pdfs = num_pdfs_of(ali_dir)
    teachers = cache = transfer_soft = None
    if cfg.distill.uses_teachers:
        if cfg.distill.source == "topk":
            cache = _soft_cache(teacher, feats, cfg, device)
            transfer_soft = [_transfer_cache(teacher, s, cfg, device) for s in stores]
        else:
            teachers = _teacher_members(teacher, device)
    transfer = (stores, transfer_soft) if stores else None
    nets, history = train_members(cfg, feats, targets, num_pdfs, train_dir, device,
                                  teachers=teachers, cache=cache, transfer=transfer)
    priors = read_priors(Path(ali_dir) / "priors")
    models = [DnnAcousticModel(net, spec, priors) for net, spec in zip(nets, cfg.member_specs())]
    input_dim = next(iter(feats.values())).shape[1]
    return models, history, input_dim, (feats, targets)


def _teacher_members(teacher_path, device):
    if CrossFitTeacher.is_one(teacher_path):
        raise ValueError(f"{teacher_path}: cross-fitted teachers give each utterance its own "
                         f"fold's soft targets, computed once: set distill.source: topk")
    teacher = load_acoustic_model(teacher_path, device)
    if isinstance(teacher, SpecialistAcousticModel):
        raise ValueError(f"{teacher_path}: soft targets from a generalist with specialists "
                         f"come from their combination, computed once: set "
                         f"distill.source: topk")
    members = teacher.members if isinstance(teacher, EnsembleAcousticModel) else [teacher]
    return group_members([m.net for m in members], [m.spec for m in members],
                         runtime_policy(device).stacked)


def _cache_teacher(teacher_path, cfg: TrainConfig, device):
    if CrossFitTeacher.is_one(teacher_path):
        return CrossFitTeacher(teacher_path, device, cfg.distill.combine)
    teacher = load_acoustic_model(teacher_path, device)
    if isinstance(teacher, DnnAcousticModel):
        teacher = EnsembleAcousticModel([teacher])
    if isinstance(teacher, EnsembleAcousticModel):
        teacher.combine = cfg.distill.combine
    return teacher


def _soft_cache(teacher_path, feats, cfg: TrainConfig, device):
    d = cfg.distill
    cache_dir = cache_dir_for(teacher_path, d.temperature, d.top_k, d.combine)
    if not is_done(cache_dir):
        log.info("caching top-%d soft targets at T=%g in %s", d.top_k, d.temperature, cache_dir)
        write_soft_cache(cache_dir, _cache_teacher(teacher_path, cfg, device), as_tensors(feats),
                         d.temperature, d.top_k,
                         meta={"teacher": str(teacher_path), "combine": d.combine})
    return lambda utts: load_soft_cache(cache_dir, utts)


def _transfer_cache(teacher_path, store: FrameStore, cfg: TrainConfig, device):
    """The teacher's top-k targets on one transfer set, memory-mapped in the store's row order
    (made once per teacher, temperature, k and the store's features)."""
    d = cfg.distill
    cache_dir = cache_dir_for(teacher_path, d.temperature, d.top_k, d.combine, store.data_dir)
    made_from = {"teacher": str(teacher_path), "combine": d.combine, "store": store.meta}
    index = cache_dir / "index.json"
    if not (is_done(cache_dir) and
            {k: json.loads(index.read_text()).get(k) for k in made_from} == made_from):
        log.info("caching top-%d soft targets at T=%g on %s in %s", d.top_k, d.temperature,
                 store.data_dir, cache_dir)
        write_soft_cache(cache_dir, _cache_teacher(teacher_path, cfg, device), store,
                         d.temperature, d.top_k, meta=made_from,
                         lengths={u: n for u, (_, n) in store.index.items()})
    return open_cache_arrays(cache_dir)


def _transfer_size(dirs) -> dict:
    """{transfer_frames, transfer_hours} of the transfer sets' stores."""
    stores = [FrameStore(t) for t in dirs]
    return {"transfer_frames": sum(s.num_frames for s in stores),
            "transfer_hours": round(sum(s.num_frames * s.meta["fbank"]["frame_shift_ms"]
                                        for s in stores) / 3.6e6, 4)}


def run_train_teachers(data_dir, ali_dir, exp_root, cfg: TrainConfig, device) -> None:
    """The ensemble; with `folds: K`, K cross-fitted ensembles instead (`_train_folds`)."""
    exp_root = Path(exp_root)
    if cfg.folds and not cfg.fold:
        return _train_folds(data_dir, ali_dir, exp_root, cfg, device)
    train_dir = exp_root / "teachers"
    clear_done(exp_root, "teachers")
    # Soft targets cached from an earlier ensemble would no longer be this one's.
    shutil.rmtree(exp_root / "ensemble" / "soft_targets", ignore_errors=True)
    models, history, input_dim, (feats, targets) = _train(data_dir, ali_dir, train_dir, cfg,
                                                          device)
    if cfg.fold:  # the training utterances this fold's ensemble never heard (original ids)
        utts = [u for u in feats if u in targets]
        heard = {original_utt(u) for u in split_utts(utts, cfg)[0]}
        everyone = {original_utt(u) for u in split_utts(utts, replace(cfg, fold=0))[0]}
        write_json(exp_root / "held_out.json", sorted(everyone - heard))
    where = {"device": device, "config": to_dict(cfg), "data": str(data_dir), "ali": str(ali_dir)}
    for k, (m, spec, seed) in enumerate(zip(models, cfg.member_specs(), cfg.member_seeds()), 1):
        m.save(exp_root / f"teacher_{k}" / "final.pt", input_dim)
        write_run(exp_root / f"teacher_{k}", "teacher", {"member": k, "model": spec},
                  seed=seed, **where)
    EnsembleAcousticModel(models).save(exp_root / "ensemble" / "final.pt", input_dim)
    write_run(exp_root / "ensemble", "ensemble", {"members": len(models), "combine": "arithmetic"},
              seed=cfg.seed, **where)
    write_json(train_dir / "history.json", history)
    mark_done(exp_root, "teachers")


def _train_folds(data_dir, ali_dir, exp_root: Path, cfg: TrainConfig, device) -> None:
    """exp_root/fold_k: an ensemble trained without fold k, for k = 1..K (each resumable on
    its own), and exp_root/folds.json naming each fold's ensemble and the utterances it left
    out: the teacher `train-student --teacher exp_root/folds.json` reads (CrossFitTeacher)."""
    clear_done(exp_root, "teachers")
    shutil.rmtree(exp_root / "soft_targets", ignore_errors=True)  # as run_train_teachers
    folds = []
    for k in range(1, cfg.folds + 1):
        fold_root = exp_root / f"fold_{k}"
        if not is_done(fold_root, "teachers"):
            log.info("cross-fitted teachers: fold %d of %d", k, cfg.folds)
            run_train_teachers(data_dir, ali_dir, fold_root, replace(cfg, fold=k), device)
        folds.append({"ensemble": f"fold_{k}/ensemble/final.pt",
                      "held_out": json.loads((fold_root / "held_out.json").read_text())})
    write_json(exp_root / "folds.json", {"folds": folds, "data": str(data_dir)})
    mark_done(exp_root, "teachers")


def run_train_student(data_dir, ali_dir, exp_dir, cfg: TrainConfig, device, teacher=None,
                      role: str = "student", group: str = "student") -> None:
    """One student. `role` says which experiment it belongs to (student: stage 7's pairs;
    sweep, share, seed, transfer) and `group` which runs it is compared with: a group's
    hard-target and distilled runs make a pair (utils/runinfo.py)."""
    exp_dir = Path(exp_dir)
    clear_done(exp_dir)
    if cfg.members != 1:
        raise ValueError(f"{exp_dir}: a student is one model; got members={cfg.members}")
    (model,), history, input_dim, (feats, targets) = _train(data_dir, ali_dir, exp_dir, cfg,
                                                            device, teacher)
    model.save(exp_dir / "final.pt", input_dim)
    write_json(exp_dir / "history.json", history)
    d = cfg.distill
    variant = "kdt" if d.transfer else "kd" if d.uses_teachers else "hard"
    settings = {"targets": "soft" if d.uses_teachers else "hard", "variant": variant,
                "alpha": d.alpha, "temperature": d.temperature, "mode": d.mode,
                "source": d.source, "transfer": list(d.transfer),
                "transfer_weight": d.transfer_weight if d.transfer else None,
                **_transfer_size(d.transfer),
                "utt_fraction": cfg.utt_fraction, "seed": cfg.seed}
    write_run(exp_dir, role, settings, device=device, seed=cfg.seed, config=to_dict(cfg),
              group=group, data=str(data_dir), ali=str(ali_dir),
              teacher=str(teacher) if d.uses_teachers else None)
    # Frame accuracy on exactly the utterances it trained on (Table 5's "train" column).
    train_utts, _ = split_utts([u for u in feats if u in targets], cfg)
    net = model.net
    data = ChunkSet({u: feats[u] for u in train_utts}, targets, net.left_context,
                    net.right_context, cfg.chunk_size, device)
    _, acc = evaluate_members(LoopMembers([net]), data, 1024)
    pdfs_seen = len({int(p) for u in train_utts for p in targets[u]})
    write_json(exp_dir / "train_eval.json", {"utts": len(train_utts), "frames": data.num_frames,
                                             "frame_acc": round(acc[0], 4),
                                             "pdfs_seen": pdfs_seen})
    mark_done(exp_dir)
