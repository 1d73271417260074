"""The structural rules of terraform/ (see rules.py), one test each."""

import pytest

from rules import RULES


@pytest.mark.parametrize("rule", RULES, ids=[r.__name__ for r in RULES])
def test_rule(cfg, rule):
    rule(cfg)


def test_every_rule_module_is_loaded(cfg):
    modules = {m.name for m in cfg.of("module")}
    assert modules == {"pubsub", "payload_bucket", "ledger_digests", "event_store_sql"}
    for m in cfg.of("module"):
        assert m.body.get("source") == f"./modules/{m.name}"
