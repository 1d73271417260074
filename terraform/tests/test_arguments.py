"""Every resource type, argument and block name used in terraform/ is one the google provider
documents for that resource (meta-arguments aside)."""

import json
from pathlib import Path

from arguments import ARGUMENTS, unknown_names


def test_fixture_is_the_shared_provider_argument_list():
    shared = Path(__file__).resolve().parents[3] / "shared" / "terraform" / "google-provider-arguments.json"
    assert ARGUMENTS["source"].startswith("hashicorp/terraform-provider-google")
    assert ARGUMENTS["commit"] and ARGUMENTS["date"]
    if shared.exists():  # beside a checkout; CI has only the committed copy
        assert json.loads(shared.read_text()) == ARGUMENTS, "fixtures/ is out of date with shared/terraform"


def test_every_argument_is_documented(cfg):
    problems = unknown_names(cfg)
    assert not problems, "\n".join(problems)


def test_the_check_sees_every_resource(cfg):
    types = {r.type for r in cfg.of("resource")}
    assert {"google_sql_database_instance", "google_pubsub_subscription", "google_storage_bucket"} <= types
