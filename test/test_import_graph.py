"""The package's layering, read from the source (nothing is imported or executed).

Every `import` and `from ... import` anywhere in a module counts, also the ones inside
functions: a circle that only closes at call time is still a circle a reader has to hold
in their head, and it breaks as soon as someone moves the import to the top.
"""
from __future__ import annotations

import ast
import os
from typing import Dict, List, Set

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "bljust")
# the layers below training: they are used by train/ and bin/, never the other way round
LOWER = ("decode", "data", "nets", "features", "text", "score", "losses", "utils")
UPPER = ("bljust.train", "bljust.bin")


def module_files(root: str = ROOT) -> Dict[str, str]:
    """bljust module name -> file, packages under their package name."""
    out = {}
    base = os.path.dirname(os.path.abspath(root))
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(d, f), base)[:-3].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            out[".".join(rel)] = os.path.join(d, f)
    return out


def imports_of(name: str, path: str, modules: Set[str]) -> Set[str]:
    """The bljust modules that `name` imports (a `from pkg import sub` counts as pkg.sub)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    is_pkg = os.path.basename(path) == "__init__.py"
    out: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = name.split(".")
                keep = len(parts) - node.level + (1 if is_pkg else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # `import bljust.x.y as z` of an attribute: its module
                t = t.rpartition(".")[0]
            if t.startswith("bljust") and t != name:
                out.add(t)
    return out


def import_graph(root: str = ROOT) -> Dict[str, Set[str]]:
    files = module_files(root)
    return {m: imports_of(m, p, set(files)) for m, p in files.items()}


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def upward_imports(graph: Dict[str, Set[str]]) -> List[str]:
    bad = []
    for m, targets in sorted(graph.items()):
        if m.split(".")[1:2] and m.split(".")[1] in LOWER:
            bad += [f"{m} imports {t}" for t in sorted(targets) if t.startswith(UPPER)]
    return bad


def test_graph_is_read():
    g = import_graph()
    assert "bljust.train.trainer" in g and "bljust.decode.runner" in g
    assert "bljust.data.batching" in g["bljust.train.trainer"]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles among bljust modules: " + "; ".join(" <-> ".join(c) for c in found)


def test_lower_layers_do_not_import_train_or_bin():
    bad = upward_imports(import_graph())
    assert not bad, "lower layers import train/ or bin/: " + "; ".join(bad)


@pytest.mark.parametrize("src,expect_cycle,expect_upward", [
    ({"a.py": "from bljust.b import x\n", "b.py": "def f():\n    from bljust import a\n"}, True, False),
    ({"a.py": "import bljust.b\n", "b.py": "x = 1\n"}, False, False),
    ({"decode/__init__.py": "", "decode/r.py": "def f():\n    from bljust.train import c\n",
      "train/__init__.py": "", "train/c.py": "from ..decode import r\n"}, True, True),
    ({"data/__init__.py": "", "data/d.py": "from bljust.bin.x import main\n",
      "bin/__init__.py": "", "bin/x.py": "def main():\n    pass\n"}, False, True),
])
def test_checker_finds_what_it_claims(tmp_path, src, expect_cycle, expect_upward):
    """The checks themselves: a made-up package with a circle / an upward import."""
    root = tmp_path / "bljust"
    root.mkdir()
    (root / "__init__.py").write_text("")
    for rel, text in src.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    g = import_graph(str(root))
    assert bool(cycles(g)) == expect_cycle
    assert bool(upward_imports(g)) == expect_upward
