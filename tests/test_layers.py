"""The layer rule, read from the source with `ast` (DESIGN.md, "Layout and dependency direction").

Imports run one way, downward:
- `abr` imports nothing of ours; `netem` imports nothing of `player` or `abr`;
- in `player`: `core` imports only `abr` and `netem`; `dash` imports the core; `http` imports
  `dash` and the core; `lab` imports the core; `cli` may import anything.
- No import of our own modules inside a function (that is how a cycle hides).
- No leading-underscore name imported from another module (private means private).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("abr", "netem", "player")

#: layer -> the layers it may import (itself included)
ALLOWED = {
    "abr": {"abr"},
    "netem": {"netem"},
    "player.core": {"abr", "netem", "player.core"},
    "player.dash": {"abr", "netem", "player.core", "player.dash"},
    "player.http": {"abr", "netem", "player.core", "player.dash", "player.http"},
    "player.lab": {"abr", "netem", "player.core", "player.lab"},
    "player.cli": {"abr", "netem", "player.core", "player.dash", "player.http", "player.lab", "player.cli"},
    "player": {"player"},          # player/__init__.py
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    if parts[0] == "player" and len(parts) > 1 and f"player.{parts[1]}" in ALLOWED:
        return f"player.{parts[1]}"
    return parts[0]


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def imports(tree: ast.AST, module: str) -> list[tuple[ast.AST, str, list[str], bool]]:
    """(node, imported module, names, inside a function) for every import in a module."""
    out = []
    package = module if module_name_is_package(module) else module.rpartition(".")[0]

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    out.append((child, a.name, [], in_function))
            elif isinstance(child, ast.ImportFrom):
                target = child.module or ""
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                out.append((child, target, [a.name for a in child.names], in_function))
            visit(child, inner)

    visit(tree, False)
    return out


def module_name_is_package(module: str) -> bool:
    return (REPO / Path(*module.split(".")) / "__init__.py").exists()


def violations() -> list[str]:
    found = []
    for path in source_files():
        module = module_name(path)
        mine = layer_of(module)
        tree = ast.parse(path.read_text(), str(path))
        for node, target, names, in_function in imports(tree, module):
            theirs = layer_of(target)
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if theirs is None:
                continue
            if in_function:
                found.append(f"{where}: imports {target} inside a function")
            if theirs not in ALLOWED[mine]:
                found.append(f"{where}: {mine} imports {target} ({theirs}) against the layer rule")
            for name in names:
                if name.startswith("_") and not name.startswith("__") and target != module:
                    found.append(f"{where}: imports the private name {name} from {target}")
    return found


def test_the_layer_rule_holds_for_every_import():
    assert violations() == []


@pytest.mark.parametrize("source, expected", [
    ("from player.cli.main import main\n", "player.core imports player.cli.main"),
    ("def f():\n    import netem.link\n", "inside a function"),
    ("from netem.link import _Curves\n", "private name _Curves"),
])
def test_the_checker_catches_each_kind_of_violation(tmp_path, monkeypatch, source, expected):
    """The checker itself: a planted bad import in a core module is reported."""
    fake = REPO / "player" / "core" / "_layer_probe_tmp.py"
    fake.write_text(source)
    try:
        assert any(expected in v for v in violations())
    finally:
        fake.unlink()


def test_layer_of_names_the_layers():
    assert layer_of("player.core.rules") == "player.core"
    assert layer_of("player.cli") == "player.cli"
    assert layer_of("netem.link") == "netem"
    assert layer_of("numpy") is None


def helper_violations(source: str) -> list[str]:
    """What in `source` (a test module) imports from conftest or from another test module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        found += [n for n in names if n == "conftest" or n.split(".")[0].startswith("test_")]
    return found


def test_tests_share_helpers_not_each_other():
    """Test modules import shared code from the helper modules (`tests/helpers.py`,
    `abr_support.py`, `mpd_urls.py`, `labdata.py`), never from conftest (fixtures only) or
    from another test module, whose import would also collect its tests twice."""
    bad = {p.name: helper_violations(p.read_text()) for p in sorted((REPO / "tests").rglob("*.py"))}
    assert {k: v for k, v in bad.items() if v} == {}
    assert helper_violations("from conftest import run_bounded\nimport test_edge\n") == ["conftest", "test_edge"]
