"""Stage 8: the decoding graph HCLG for a lang dir and a model's transition model; beside it the
lang's words.txt and, where the lang has one, its score map."""

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


def run_make_graph(lang_dir, model_dir, graph_dir, cfg: GraphConfig) -> None:
    graph_dir = Path(graph_dir)
    clear_done(graph_dir)
    lang = load_lang(lang_dir)
    model = GmmHmm.load(Path(model_dir) / "final.mdl")
    hclg = make_hclg(lang, model.tm, cfg, model.ctx)
    write_fst(hclg, graph_dir / "HCLG.fst")
    shutil.copyfile(lang.path / "words.txt", graph_dir / "words.txt")
    if (lang.path / SCORE_MAP_FILE).is_file():  # decoding scores with it (asr_kd.score.wer)
        shutil.copyfile(lang.path / SCORE_MAP_FILE, graph_dir / SCORE_MAP_FILE)
    else:
        (graph_dir / SCORE_MAP_FILE).unlink(missing_ok=True)
    write_text(graph_dir / "num_pdfs", f"{model.num_pdfs}\n")
    save_config(cfg, graph_dir / "config.yaml")
    mark_done(graph_dir)
