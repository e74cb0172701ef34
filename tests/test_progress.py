"""Progress in a log file: a line every few percent, not a tqdm frame per step."""

from __future__ import annotations

import logging

from asr_kd.utils.progress import progress


def test_a_line_every_ten_percent_when_stderr_is_not_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="asr_kd.progress")
    assert list(progress(range(200), "decode x", unit="batches", quiet_s=0.0)) == list(range(200))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10
    assert lines[0].startswith("decode x: 20/200 batches (10%, ")
    assert lines[-1].startswith("decode x: 200/200 batches (100%, ")


def test_a_loop_that_ends_quickly_logs_nothing(caplog):
    caplog.set_level(logging.INFO, logger="asr_kd.progress")
    list(progress(range(200), "training graphs"))
    assert caplog.records == []
