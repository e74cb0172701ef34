"""Stage 8: the decoding graph HCLG for a lang dir and a model's transition model; beside it the
lang's words.txt, its silence phones (phones/silence.csl, for fMLLR in decoding) and, where the
lang has one, its score map."""

from __future__ import annotations

import shutil
from pathlib import Path

from asr_kd.decode.graph import GraphConfig, make_hclg
from asr_kd.hmm.model import GmmHmm
from asr_kd.lang import load_lang
from asr_kd.score.wer import SCORE_MAP_FILE
from asr_kd.utils.config import save_config
from asr_kd.utils.fst import write_fst
from asr_kd.utils.io import clear_done, mark_done, write_text

SILENCE_CSL = "phones/silence.csl"  # the silence phones' ids, colon-separated (Kaldi's format)


def run_make_graph(lang_dir, model_dir, graph_dir, cfg: GraphConfig) -> None:
    graph_dir = Path(graph_dir)
    clear_done(graph_dir)
    lang = load_lang(lang_dir)
    model = GmmHmm.load(Path(model_dir) / "final.mdl")
    # graph_dir/steps keeps LG, C∘LG and HaCLG until HCLG is made: a rerun resumes there
    hclg = make_hclg(lang, model.tm, cfg, model.ctx, work_dir=graph_dir / "steps")
    write_fst(hclg, graph_dir / "HCLG.fst")
    shutil.copyfile(lang.path / "words.txt", graph_dir / "words.txt")
    if (lang.path / SCORE_MAP_FILE).is_file():  # decoding scores with it (asr_kd.score.wer)
        shutil.copyfile(lang.path / SCORE_MAP_FILE, graph_dir / SCORE_MAP_FILE)
    else:
        (graph_dir / SCORE_MAP_FILE).unlink(missing_ok=True)
    write_text(graph_dir / "num_pdfs", f"{model.num_pdfs}\n")
    # Kaldi's graph dirs carry the lang's phones/; decode_fmllr reads the silence phones there
    write_text(graph_dir / SILENCE_CSL, ":".join(map(str, lang.silence_phones)) + "\n")
    save_config(cfg, graph_dir / "config.yaml")
    mark_done(graph_dir)
