"""The worker's logging costs nothing per message at any level an operator may choose."""

from __future__ import annotations

import logging

import faust
import pytest

from streams.pipeline.worker import quiet_worker


@pytest.mark.parametrize("level", ["warning", "error", "info"])
def test_no_log_level_turns_the_root_logger_to_debug(level: str) -> None:
    root = logging.getLogger()
    before_level, before_handlers = root.level, list(root.handlers)
    worker = quiet_worker(faust.App("pokazy-logging-test", autodiscover=False), level)
    try:
        if not root.handlers:
            root.addHandler(logging.NullHandler())
        worker.on_setup_root_logger(root, logging.getLevelName(level.upper()))
        assert root.level != logging.DEBUG
        assert not root.isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(before_level)
        root.handlers[:] = before_handlers
