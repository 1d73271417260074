"""Every checkov skip in terraform/ says why, in the code, next to what it skips."""

import re
from pathlib import Path

TERRAFORM = Path(__file__).resolve().parent.parent
SKIP = re.compile(r"#\s*checkov:skip=(?P<id>[A-Z0-9_]+)(?::(?P<reason>.*))?")


def skips():
    for path in sorted(TERRAFORM.rglob("*.tf")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = SKIP.search(line)
            if m:
                yield path.relative_to(TERRAFORM), n, m.group("id"), (m.group("reason") or "").strip()


def test_every_skip_has_a_written_reason():
    found = list(skips())
    assert found, "the skips this configuration needs are missing"
    for path, line, check, reason in found:
        assert len(reason.split()) >= 8, f"{path}:{line}: skip of {check} needs a real reason, not {reason!r}"
