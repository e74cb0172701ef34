"""The `asr-kd` command: one verb per recipe stage (also `python -m asr_kd VERB`).

    asr-kd validate-data DATA_DIR [--sample-rate N [--resample]] [--lang LANG_DIR] \
        [--ali-dir ALI_DIR] [--drop-bad]
    asr-kd perturb-speed DATA_DIR OUT_DIR --factors 0.9 1.1
    asr-kd perturb-vtln DATA_DIR OUT_DIR --factors 0.9 1.1 [--copies-only]
    asr-kd prune-lm IN.arpa[.gz] OUT.arpa[.gz] [--threshold 1e-7] [--vocab WORDLIST]
    asr-kd make-lang DICT_DIR LANG_DIR --arpa LM.arpa
    asr-kd compute-feats DATA_DIR --config conf/fbank.yaml
    asr-kd train-mono DATA_DIR LANG_DIR EXP_DIR --config conf/mono.yaml
    asr-kd train-tri DATA_DIR LANG_DIR ALI_DIR EXP_DIR --config conf/tri1.yaml
    asr-kd train-lda-mllt DATA_DIR LANG_DIR ALI_DIR EXP_DIR --config conf/tri2.yaml
    asr-kd train-sat DATA_DIR LANG_DIR ALI_DIR EXP_DIR --config conf/tri3.yaml
    asr-kd align DATA_DIR LANG_DIR MODEL_DIR ALI_DIR --config conf/mono.yaml \
        [--transform-dir DIR]
    asr-kd train-teachers DATA_DIR ALI_DIR EXP_ROOT --config conf/teachers.yaml
    asr-kd train-student DATA_DIR ALI_DIR EXP_DIR --config conf/student.yaml \
        [--teacher EXP_ROOT/ensemble/final.pt] [--set distill.temperature=5 ...] \
        [--role student|sweep|share|seed|transfer] [--group NAME]
    asr-kd train-specialists DATA_DIR ALI_DIR GENERALIST EXP_DIR --config conf/specialists.yaml
    asr-kd score-specialists MODEL DATA_DIR ALI_DIR DECODE_DIR
    asr-kd make-graph LANG_DIR MODEL_DIR GRAPH_DIR --config conf/graph.yaml
    asr-kd decode --system NAME MODEL GRAPH_DIR DATA_DIR DECODE_DIR [--ali-dir ALI_DIR]
        [--decoder reference|torch] [--lm-weights 7:17 | --lm-weight-from DEV_DECODE_DIR]
    asr-kd report EXP_DIR --corpus NAME --test-set SET [--test-set SET2 ...]
    asr-kd evaluate RECIPE_DIR DATA_DIR --system NAME [--decoder reference|torch]
    asr-kd export RECIPE_DIR --system NAME [--int8] [--out DIR]
    asr-kd transcribe EXPORT_DIR AUDIO... | WAV_SCP | DATA_DIR [--online]  (asr-kd-transcribe)

A stage whose output is marked done is skipped unless --force is given.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from asr_kd.decode import DEFAULT_DECODER, decode_marker, decoder_names
from asr_kd.decode.lm_weight import DEFAULT_PENALTIES
from asr_kd.utils.io import is_done
from asr_kd.utils.logging import setup_logging

log = logging.getLogger("asr_kd")


def stage_config(cls, args):
    """A stage's config: its --config files merged in order, then its --set overrides."""
    from asr_kd.utils.config import load_config

    return load_config(cls, args.config, args.set)


def _device(args):
    from asr_kd.utils.device import resolve_device

    return resolve_device(args.device)


def cmd_validate_data(a):
    from asr_kd.data.fix import drop_bad
    from asr_kd.data.validate import validate_data_dir

    if a.resample and a.sample_rate is None:
        raise ValueError("--resample needs --sample-rate")
    v = validate_data_dir(a.data_dir, allow_pipes=a.allow_pipes, sample_rate=a.sample_rate,
                          resample=a.resample, lang_dir=a.lang, ali_dir=a.ali_dir)
    for p in v.problems:
        print(p, file=sys.stderr)
    if not v.problems:
        d = v.datadir
        print(f"{a.data_dir}: OK, {len(d.utts)} utterances, {len(d.spk2utt)} speakers, "
              f"{v.audio_read} audio segments read")
        return
    if not a.drop_bad:
        n = len(v.problems)
        raise ValueError(f"{a.data_dir}: {n} problem{'s' * (n > 1)}; nothing written "
                         "(--drop-bad writes the dir without the utterances that have them)")
    backup, kept, dropped = drop_bad(v)
    print(f"{a.data_dir}: kept {len(kept)} of {len(kept) + len(dropped)} utterances, dropped "
          f"{len(dropped)}" + (f"; report and original files in {backup}" if backup else ""))


def cmd_perturb_speed(a):
    from asr_kd.data.perturb import perturb_speed

    d = perturb_speed(a.data_dir, a.out_dir, a.factors, copies_only=a.copies_only)
    speeds = " ".join(f"{f:g}" for f in sorted({d.speed_of(d.recording_of(u)) for u in d.utts}))
    print(f"{a.out_dir}: {len(d.utts)} utterances, {len(d.spk2utt)} speakers, speeds {speeds}")


def cmd_perturb_vtln(a):
    from asr_kd.data.perturb import perturb_vtln

    d = perturb_vtln(a.data_dir, a.out_dir, a.factors, copies_only=a.copies_only)
    warps = " ".join(f"{f:g}" for f in sorted({d.warp_of(u) for u in d.utts}))
    print(f"{a.out_dir}: {len(d.utts)} utterances, {len(d.spk2utt)} speakers, warps {warps}")


def cmd_prune_lm(a):
    from asr_kd.steps.prune_lm import run_prune_lm

    run_prune_lm(a.in_arpa, a.out_arpa, a.threshold, a.vocab)


def cmd_make_lang(a):
    from asr_kd.lang import prepare_lang

    lang = prepare_lang(a.dict_dir, a.lang_dir, arpa=a.arpa, sil_prob=a.sil_prob,
                        force=a.force)
    print(f"{a.lang_dir}: {len(lang.phones)} phones, {len(lang.words)} words")


def cmd_compute_feats(a):
    from asr_kd.features import FbankConfig
    from asr_kd.steps.feats import run_compute_feats

    run_compute_feats(a.data_dir, stage_config(FbankConfig, a), _device(a), a.allow_pipes)


def cmd_train_mono(a):
    from asr_kd.hmm.train_mono import MonoConfig
    from asr_kd.steps.gmm import run_train_mono

    run_train_mono(a.data_dir, a.lang_dir, a.exp_dir, stage_config(MonoConfig, a), _device(a))


def cmd_train_tri(a):
    from asr_kd.hmm.train_tri import TriConfig
    from asr_kd.steps.gmm import run_train_tri

    run_train_tri(a.data_dir, a.lang_dir, a.ali_dir, a.exp_dir, stage_config(TriConfig, a),
                  _device(a))


def cmd_train_lda_mllt(a):
    from asr_kd.hmm.train_lda_mllt import Tri2Config
    from asr_kd.steps.gmm import run_train_lda_mllt

    run_train_lda_mllt(a.data_dir, a.lang_dir, a.ali_dir, a.exp_dir,
                       stage_config(Tri2Config, a), _device(a))


def cmd_train_sat(a):
    from asr_kd.hmm.train_sat import SatConfig
    from asr_kd.steps.gmm import run_train_sat

    run_train_sat(a.data_dir, a.lang_dir, a.ali_dir, a.exp_dir, stage_config(SatConfig, a),
                  _device(a))


def cmd_align(a):
    from asr_kd.steps.gmm import GmmAlignConfig, run_align

    # GmmAlignConfig holds every key of a mono, tri1, tri2 or tri3 config; alignment reads
    # `align`, and `fmllr` for a speaker-adapted model
    run_align(a.data_dir, a.lang_dir, a.model_dir, a.ali_dir, stage_config(GmmAlignConfig, a),
              _device(a), transform_dir=a.transform_dir)


def cmd_train_teachers(a):
    from asr_kd.steps.dnn import run_train_teachers
    from asr_kd.train.trainer import TrainConfig

    run_train_teachers(a.data_dir, a.ali_dir, a.exp_root, stage_config(TrainConfig, a), _device(a))


def cmd_train_student(a):
    from asr_kd.steps.dnn import run_train_student
    from asr_kd.train.trainer import TrainConfig

    group = a.group or (Path(a.config[0]).stem if a.config else "student")
    run_train_student(a.data_dir, a.ali_dir, a.exp_dir, stage_config(TrainConfig, a), _device(a),
                      teacher=a.teacher, role=a.role, group=group)


def cmd_train_specialists(a):
    from asr_kd.steps.specialists import run_train_specialists
    from asr_kd.train.specialists import SpecialistConfig

    run_train_specialists(a.data_dir, a.ali_dir, a.generalist, a.exp_dir,
                          stage_config(SpecialistConfig, a), _device(a))


def cmd_score_specialists(a):
    from asr_kd.steps.specialists import run_specialist_coverage

    run_specialist_coverage(a.model, a.data_dir, a.ali_dir, a.decode_dir, _device(a))


def cmd_make_graph(a):
    from asr_kd.decode.graph import GraphConfig
    from asr_kd.steps.graph import run_make_graph

    run_make_graph(a.lang_dir, a.model_dir, a.graph_dir, stage_config(GraphConfig, a))


def cmd_decode(a):
    from asr_kd.decode import DecodeConfig
    from asr_kd.decode.lm_weight import parse_lm_weights
    from asr_kd.steps.decode import run_decode

    lm_weights = parse_lm_weights(a.lm_weights) if a.lm_weights else None
    if lm_weights and a.lm_weight_from:
        raise ValueError("--lm-weights searches a grid on this set and --lm-weight-from takes "
                         "a dev set's choice: give one of them")
    run_decode(a.system, a.model, a.graph_dir, a.data_dir, a.decode_dir,
               stage_config(DecodeConfig, a), _device(a), ali_dir=a.ali_dir, decoder=a.decoder,
               lm_weights=lm_weights, penalties=a.word_ins_penalties,
               lm_weight_from=a.lm_weight_from)


def cmd_report(a):
    from asr_kd.score.report import make_report

    print(make_report(a.exp_dir, a.corpus, a.test_set)["markdown"])


def cmd_evaluate(a):
    from asr_kd.steps.evaluate import run_evaluate

    run_evaluate(a.recipe_dir, a.data_dir, a.system, _device(a), a.allow_pipes, a.force,
                 a.decoder)


def cmd_export(a):
    from asr_kd.steps.export import run_export

    run_export(a.recipe_dir, a.system, a.out, a.int8, a.calibration_utts)


# verb -> (handler, positional args, the dir whose done-marker means "skip", marker name)
VERBS = {
    "validate-data": (cmd_validate_data, ["data_dir"], None, None),
    "perturb-speed": (cmd_perturb_speed, ["data_dir", "out_dir"], "out_dir", "perturb"),
    "perturb-vtln": (cmd_perturb_vtln, ["data_dir", "out_dir"], "out_dir", "perturb"),
    "prune-lm": (cmd_prune_lm, ["in_arpa", "out_arpa"], None, None),
    "make-lang": (cmd_make_lang, ["dict_dir", "lang_dir"], "lang_dir", "done"),
    "compute-feats": (cmd_compute_feats, ["data_dir"], "data_dir", "feats"),
    "train-mono": (cmd_train_mono, ["data_dir", "lang_dir", "exp_dir"], "exp_dir", "done"),
    "train-tri": (cmd_train_tri, ["data_dir", "lang_dir", "ali_dir", "exp_dir"], "exp_dir",
                  "done"),
    "train-lda-mllt": (cmd_train_lda_mllt, ["data_dir", "lang_dir", "ali_dir", "exp_dir"],
                       "exp_dir", "done"),
    "train-sat": (cmd_train_sat, ["data_dir", "lang_dir", "ali_dir", "exp_dir"], "exp_dir",
                  "done"),
    "align": (cmd_align, ["data_dir", "lang_dir", "model_dir", "ali_dir"], "ali_dir", "done"),
    "train-teachers": (cmd_train_teachers, ["data_dir", "ali_dir", "exp_root"], "exp_root",
                       "teachers"),
    "train-student": (cmd_train_student, ["data_dir", "ali_dir", "exp_dir"], "exp_dir", "done"),
    "train-specialists": (cmd_train_specialists, ["data_dir", "ali_dir", "generalist", "exp_dir"],
                          "exp_dir", "done"),
    "score-specialists": (cmd_score_specialists, ["model", "data_dir", "ali_dir", "decode_dir"],
                          "decode_dir", "coverage"),
    "make-graph": (cmd_make_graph, ["lang_dir", "model_dir", "graph_dir"], "graph_dir", "done"),
    "decode": (cmd_decode, ["model", "graph_dir", "data_dir", "decode_dir"], "decode_dir", "done"),
    "report": (cmd_report, ["exp_dir"], None, None),
    "evaluate": (cmd_evaluate, ["recipe_dir", "data_dir"], None, None),
    "export": (cmd_export, ["recipe_dir"], None, None),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr-kd", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True)
    for verb, (_, positionals, _, _) in VERBS.items():
        sp = sub.add_parser(verb, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        for name in positionals:
            sp.add_argument(name)
        sp.add_argument("--config", action="append", default=[],
                        help="stage config (YAML); given again, an overlay merged over the "
                             "configs before it key by key (mappings recursively)")
        sp.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
        sp.add_argument("--force", action="store_true", help="redo a stage marked done")
        sp.add_argument("--allow-pipes", action="store_true",
                        help="run wav.scp entries that are shell pipes")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. distill.temperature=5")
        if verb.startswith("perturb-"):
            sp.add_argument("--factors", type=float, nargs="+", default=[0.9, 1.1],
                            help="a copy of every utterance per factor, read at that speed "
                                 "(perturb-speed: ids prefixed sp<factor>-) or featurised at "
                                 "that VTLN warp (perturb-vtln: vtln<factor>-); the originals "
                                 "are kept as well")
            sp.add_argument("--copies-only", action="store_true",
                            help="leave the originals out (a transfer set of perturbed copies "
                                 "of audio that is labelled already)")
        if verb == "prune-lm":
            sp.add_argument("--threshold", type=float, default=0.0,
                            help="drop every n-gram (order >= 2) whose removal raises the "
                                 "model's perplexity by less than this, relative (SRILM's "
                                 "ngram -prune); 0: none")
            sp.add_argument("--vocab", default=None, metavar="WORDLIST",
                            help="keep only n-grams of these words (first field per line, "
                                 "so words.txt works), unigrams renormalised; before pruning")
        if verb == "make-lang":
            sp.add_argument("--arpa", default=None, help="ARPA LM to convert into G.fst")
            sp.add_argument("--sil-prob", type=float, default=0.5)
        if verb in ("decode", "evaluate", "export"):
            sp.add_argument("--system", required=True, help="name in the results table")
        if verb == "export":
            sp.add_argument("--int8", action="store_true",
                            help="quantize: MatMul/Gemm dynamically, convolutions statically "
                                 "(calibrated on training features)")
            sp.add_argument("--out", default=None,
                            help="the export dir (default exp/NAME/export or export_int8)")
            sp.add_argument("--calibration-utts", type=int, default=200,
                            help="training utterances that calibrate --int8's convolutions")
        if verb in ("decode", "evaluate"):
            sp.add_argument("--decoder", choices=decoder_names(), default=DEFAULT_DECODER,
                            help="reference: kaldi-decoder's FasterDecoder on the CPU; torch: "
                                 "our batched decoder on --device")
        if verb == "train-student":
            sp.add_argument("--teacher", default=None,
                            help="ensemble (or single model) giving the soft targets")
            sp.add_argument("--role", default="student",
                            choices=("student", "sweep", "share", "seed", "transfer"),
                            help="the experiment this run belongs to, written to run.json "
                                 "for the report")
            sp.add_argument("--group", default=None,
                            help="runs compared with each other (a group's hard-target and "
                                 "distilled runs are a pair); default: the config's name")
        if verb == "decode":
            sp.add_argument("--ali-dir", default=None, help="alignments for frame accuracy")
            sp.add_argument("--lm-weights", default=None, metavar="MIN:MAX|W,W,...",
                            help="search every LM weight (1 / acoustic scale) and word "
                                 "insertion penalty and keep the best, as Kaldi's score.sh on "
                                 "a dev set (e.g. 7:17; each point's WER in wer_<W>_<P>)")
            sp.add_argument("--word-ins-penalties", type=float, nargs="+",
                            default=list(DEFAULT_PENALTIES),
                            help="the penalties of the --lm-weights grid")
            sp.add_argument("--lm-weight-from", default=None, metavar="DEV_DECODE_DIR",
                            help="decode at the LM weight and penalty a dev decode with "
                                 "--lm-weights chose (the WER at the config's own weight is "
                                 "kept beside it)")
        if verb == "align":
            sp.add_argument("--transform-dir", default=None,
                            help="a speaker-adapted model (tri3) aligns with the fMLLR "
                                 "transforms of DIR/trans.scp (every speaker must have one); "
                                 "without it they are estimated (Kaldi's align_fmllr.sh)")
        if verb == "validate-data":
            sp.add_argument("--sample-rate", type=int, default=None,
                            help="the rate the recipe expects (fbank.yaml's sample_rate)")
            sp.add_argument("--resample", action="store_true",
                            help="accept other rates: the feats stage resamples them if its "
                                 "config says resample: true")
            sp.add_argument("--lang", default=None,
                            help="lang dir: every transcript word must be in its words.txt")
            sp.add_argument("--ali-dir", default=None,
                            help="alignments (ali.ark) whose lengths must match the features")
            sp.add_argument("--drop-bad", action="store_true",
                            help="write the dir without the bad utterances (originals and a "
                                 "report of each dropped one in DATA_DIR/.backup)")
        if verb == "report":
            sp.add_argument("--corpus", required=True)
            sp.add_argument("--test-set", required=True, action="append",
                            help="a decoded test set (decode_SET in each run dir); repeat it "
                                 "for more, each with its own Table 1: the first is the "
                                 "primary one, whose figures are results.json's top level")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["transcribe"]:  # the runtime's own command line (no torch on its path)
        from asr_kd_runtime.cli import main as transcribe

        return transcribe(argv[1:])
    args = build_parser().parse_args(argv)
    handler, _, out_arg, marker = VERBS[args.verb]
    out_dir = getattr(args, out_arg) if out_arg else None
    if args.verb == "decode":
        marker = decode_marker(args.decoder, _device(args))
    if out_dir and not args.force and is_done(out_dir, marker):
        print(f"asr-kd {args.verb}: {out_dir} is done; skipping (--force to redo)")
        return 0
    log_file = Path(out_dir) / "log" / f"{args.verb}.log" if out_dir else None
    setup_logging(log_file)
    t0 = time.time()
    try:
        handler(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        log.error("%s", e)
        print(f"asr-kd {args.verb}: error: {e}", file=sys.stderr)
        return 1
    log.info("asr-kd %s finished in %.1fs", args.verb, time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
