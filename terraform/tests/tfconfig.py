"""Reads a Terraform configuration (a root module and its local modules) with python-hcl2.

python-hcl2 keeps HCL's quoting and adds bookkeeping keys; this module turns its output into
plain values: quoted strings lose their quotes, `__is_block__`/`__comments__` disappear, and
each resource, data source, variable, output and module call becomes an `Item` that knows the
file it came from. The structural tests and the argument-name test both read configurations
only through `load()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

META_KEYS = {"__is_block__", "__comments__", "__start_line__", "__end_line__"}
# Arguments every resource accepts that the provider does not document per resource.
META_ARGUMENTS = {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner", "connection"}


def unquote(v: Any) -> Any:
    if isinstance(v, str) and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1]
    return v


def clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {unquote(k): clean(x) for k, x in v.items() if k not in META_KEYS}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return unquote(v)


def is_block(v: Any) -> bool:
    """A nested block is a list of dicts in python-hcl2's output."""
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


@dataclass
class Item:
    kind: str  # resource | data | ephemeral | variable | output | module | import | moved | local
    type: str  # resource/data type ("" for the others)
    name: str
    body: dict
    file: Path

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}" if self.type else f"{self.kind}.{self.name}"


@dataclass
class Config:
    root: Path
    items: list[Item] = field(default_factory=list)

    def of(self, kind: str, type_: str = "", module: str | None = None) -> list[Item]:
        """Items of a kind (and type), optionally only those in `modules/<module>/`."""
        out = [i for i in self.items if i.kind == kind and (not type_ or i.type == type_)]
        if module is not None:
            prefix = self.root / "modules" / module
            out = [i for i in out if prefix in i.file.parents]
        return out

    def one(self, kind: str, type_: str, name: str) -> Item:
        found = [i for i in self.of(kind, type_) if i.name == name]
        assert len(found) == 1, f"expected exactly one {kind} {type_}.{name}, found {len(found)}"
        return found[0]

    def variable_default(self, name: str, module: str | None = None) -> Any:
        for v in self.of("variable", module=module):
            if v.name == name and (module is not None or v.file.parent == self.root):
                return v.body.get("default")
        raise AssertionError(f"variable {name} is not declared" + (f" in module {module}" if module else ""))


    def local(self, name: str, module: str | None = None) -> Any:
        for v in self.of("local", module=module):
            if v.name == name and (module is not None or v.file.parent == self.root):
                return v.body.get("value")
        raise AssertionError(f"local {name} is not declared" + (f" in module {module}" if module else ""))


def load(root: str | os.PathLike) -> Config:
    """Every .tf file under `root` (modules included, tests excluded)."""
    root = Path(root).resolve()
    cfg = Config(root=root)
    for path in sorted(root.rglob("*.tf")):
        if "tests" in path.relative_to(root).parts or ".terraform" in path.parts:
            continue
        with open(path) as f:
            doc = clean(hcl2.load(f))
        for kind in ("resource", "data", "ephemeral"):
            for entry in doc.get(kind, []):
                for type_, named in entry.items():
                    for name, body in named.items():
                        cfg.items.append(Item(kind, type_, name, body, path))
        for kind in ("variable", "output", "module"):
            for entry in doc.get(kind, []):
                for name, body in entry.items():
                    cfg.items.append(Item(kind, "", name, body, path))
        for entry in doc.get("locals", []):
            for name, value in entry.items():
                cfg.items.append(Item("local", "", name, {"value": value}, path))
        for kind in ("import", "moved"):
            for body in doc.get(kind, []):
                cfg.items.append(Item(kind, "", str(body.get("to", "")), body, path))
    return cfg


def block(body: dict, *path: str) -> dict:
    """The first nested block at `path` (e.g. block(instance, "settings", "ip_configuration"))."""
    cur: Any = body
    for name in path:
        assert isinstance(cur, dict) and is_block(cur.get(name)), f"block {'.'.join(path)} is missing"
        cur = cur[name][0]
    return cur


def blocks(body: dict, name: str) -> list[dict]:
    v = body.get(name)
    return v if is_block(v) else []
