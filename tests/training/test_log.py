"""The toolkit's logger: one line per message, from the main rank only (warnings from every rank)."""

from __future__ import annotations

from model_compress import log as log_module
from model_compress.log import logger


def test_messages_read_name_then_text_on_the_current_stderr(capsys):
    logger("tinybert").info("step 1 done")
    assert capsys.readouterr().err == "[tinybert] step 1 done\n"


def test_other_ranks_keep_only_warnings(capsys, monkeypatch):
    monkeypatch.setattr(log_module, "main_rank", lambda: False)
    log = logger("kd")
    log.info("every rank would say this")
    log.warning("only this rank saw that")
    assert capsys.readouterr().err == "[kd] only this rank saw that\n"
