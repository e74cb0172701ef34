"""Cross-fitted soft targets: every training utterance labelled by teachers that never heard it.

An ensemble scores 93% frame accuracy on its own training utterances and 78% on new ones (AN4):
its soft targets there repeat the labels it fitted instead of showing how it generalises.
`train-teachers` with `folds: K` trains K ensembles, ensemble k without fold k of the training
utterances, and writes folds.json; given as `--teacher .../folds.json`, each utterance's top-k
targets come from the ensemble that left out its fold (a speed copy goes with its original).
Audio no fold trained on (validation utterances, other corpora's transfer sets) gets all K
ensembles' members together.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from asr_kd.acoustic import EnsembleAcousticModel, load_acoustic_model
from asr_kd.train.trainer import original_utt


class CrossFitTeacher:
    def __init__(self, folds_json, device, combine: str = "arithmetic"):
        folds_json = Path(folds_json)
        spec = json.loads(folds_json.read_text())
        self.ensembles = []
        self.fold_of: dict[str, int] = {}
        for k, fold in enumerate(spec["folds"]):
            model = load_acoustic_model(folds_json.parent / fold["ensemble"], device)
            members = model.members if isinstance(model, EnsembleAcousticModel) else [model]
            self.ensembles.append(EnsembleAcousticModel(members, combine))
            for utt in fold["held_out"]:
                if utt in self.fold_of:
                    raise ValueError(f"{folds_json}: utterance '{utt}' is left out by folds "
                                     f"{self.fold_of[utt] + 1} and {k + 1}")
                self.fold_of[utt] = k
        self.everyone = EnsembleAcousticModel([m for e in self.ensembles for m in e.members],
                                              combine)
        self.log_prior = self.everyone.log_prior

    @staticmethod
    def is_one(teacher_path) -> bool:
        return teacher_path is not None and Path(teacher_path).name == "folds.json"

    def teacher_for(self, utt: str) -> EnsembleAcousticModel:
        k = self.fold_of.get(original_utt(utt))
        return self.everyone if k is None else self.ensembles[k]

    def log_posteriors(self, feats: list[torch.Tensor], temperature: float = 1.0,
                       utts: list[str] | None = None) -> list[torch.Tensor]:
        """Per utterance, its own teacher's; `utts` names them (required)."""
        if utts is None:
            raise ValueError("a cross-fitted teacher needs the utterance ids of its input")
        out: list[torch.Tensor | None] = [None] * len(feats)
        by_teacher: dict[EnsembleAcousticModel, list[int]] = {}
        for i, u in enumerate(utts):
            by_teacher.setdefault(self.teacher_for(u), []).append(i)
        for teacher, rows in by_teacher.items():
            for i, lp in zip(rows, teacher.log_posteriors([feats[i] for i in rows], temperature)):
                out[i] = lp
        return out
