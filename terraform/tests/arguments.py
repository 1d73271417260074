"""Argument names checked against the google provider's documentation.

No provider schema can be downloaded here, so `fixtures/google-provider-arguments.json` (every
argument and nested-block name the provider's documentation gives per resource, with the commit
and date it was derived from) stands in for it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tfconfig import META_ARGUMENTS, Config, is_block

ARGUMENTS = json.loads((Path(__file__).parent / "fixtures" / "google-provider-arguments.json").read_text())


def allowed(resource: dict, path: list[str]) -> set[str]:
    """Names documented inside the block at `path` ([] = top level)."""
    documented = resource.get("blocks", {})
    dotted = ".".join(path)
    # Nested blocks appear as their own paths ("settings.backup_configuration").
    children = {k[len(dotted) + 1 :] for k in documented if dotted and k.startswith(dotted + ".") and "." not in k[len(dotted) + 1 :]}
    for key in (dotted, path[-1] if path else ""):
        if key in documented:
            return set(documented[key]) | children
    # A block the documentation does not lay out by path: any name it documents at any depth.
    return set(resource.get("arguments", []))


def unknown_names(cfg: Config) -> list[str]:
    """`file: type.name: path.argument` for every name the documentation does not list."""
    problems = []
    for item in cfg.of("resource"):
        # The project IAM page (google_project_iam.html.markdown) is filed under a doubled
        # prefix in the fixture: google_google_project_iam_member.
        resource = ARGUMENTS["resources"].get(item.type) or ARGUMENTS["resources"].get(f"google_{item.type}")
        if resource is None:
            problems.append(f"{item.file.name}: {item.address}: resource type {item.type} is not documented")
            continue

        def walk(body: dict, path: list[str]):
            names = allowed(resource, path)
            for key, value in body.items():
                if not path and key in META_ARGUMENTS:
                    continue
                if key not in names:
                    problems.append(f"{item.file.name}: {item.address}: {'.'.join(path + [key])} is not a documented argument")
                if is_block(value):
                    for b in value:
                        walk(b, path + [key])

        walk(item.body, [])
    return problems
