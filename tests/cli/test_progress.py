"""Progress display: a bar with stage counts in a terminal, plain lines without carriage returns elsewhere."""

from __future__ import annotations

import io

from poisonlab.cli.progress import StageProgress


def test_a_terminal_gets_one_bar_with_lines_above_it():
    stream = io.StringIO()
    with StageProgress(stream=stream, terminal=True) as shown:
        assert not shown.epoch_lines  # worker epoch lines would break the bar
        shown.update(1, 4)
        shown.log("[seed 0] clean: accuracy 99.0%")
        shown.update(4, 4)
    text = stream.getvalue()
    assert "4/4 stages" in text and "poisonlab: [seed 0] clean: accuracy 99.0%" in text and "\r" in text


def test_a_log_file_gets_lines_only():
    stream = io.StringIO()
    with StageProgress(stream=stream, terminal=False) as shown:
        assert shown.epoch_lines
        shown.update(1, 4)
        shown.log("one")
        shown.update(2, 4)
        shown.log("two")
    assert stream.getvalue() == "poisonlab: one\npoisonlab: two\n"


def test_quiet_says_nothing():
    stream = io.StringIO()
    with StageProgress(quiet=True, stream=stream, terminal=True) as shown:
        shown.update(1, 2)
        shown.log("x")
        assert not shown.epoch_lines
    assert stream.getvalue() == ""
