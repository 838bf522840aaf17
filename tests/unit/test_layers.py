"""The package layout is the architecture: each layer imports only the layers below it.

platform (settings, lake, db, logs, compute, ...) < data (Bronze -> Silver) < features (Gold) < quality
(the gates on both) < model < scores < monitoring < steps and the CLI. The README's folder table draws the
same order; this test keeps the code to it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import churn

LAYERS = ["platform", "data", "features", "quality", "model", "scores", "monitoring", "top"]
ROOT = Path(churn.__file__).resolve().parent


def layer(module: str) -> str | None:
    """The layer of a `churn...` module (None for the generator and the old-name shim)."""
    parts = module.split(".")
    if parts[0] != "churn":
        return None
    name = parts[1] if len(parts) > 1 else ""
    if name in ("synth", "pipeline"):  # a tool above the stack; a name kept for registered models
        return None
    if name in ("steps", "cli"):
        return "top"
    return name if name in LAYERS else "platform"


def imports_of(path: Path) -> set[str]:
    """Every `churn...` module a file imports (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "churn":
            found |= {f"churn.{a.name}" for a in node.names} if node.module == "churn" else {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "churn"}
    return found


def upward_imports(root: Path = ROOT) -> list[tuple[str, str]]:
    """(module, imported module) pairs where a layer of the package at `root` reaches above itself."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(("churn", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        own = layer(module)
        if own is None:
            continue
        for imported in imports_of(path):
            other = layer(imported)
            if other is not None and LAYERS.index(other) > LAYERS.index(own):
                found.append((module, imported))
    return found


def test_every_layer_imports_only_the_layers_below_it() -> None:
    assert upward_imports() == []


def test_every_package_is_a_layer() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"synth"}
    assert packages == set(LAYERS) - {"platform", "top"}


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "silver.py").write_text("def f():\n    from churn.model import champion\n")
    (tmp_path / "lake.py").write_text("from churn.data.kkbox import TABLES\n")
    assert upward_imports(tmp_path) == [("churn.data.silver", "churn.model"),
                                        ("churn.lake", "churn.data.kkbox")]  # fmt: skip
