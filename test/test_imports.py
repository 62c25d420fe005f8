# SPDX-License-Identifier: Apache-2.0
"""Design rules on imports: no import cycle among the package's modules (counting the imports
inside functions), and the commands that need no torch do not import it."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "codedap_depth"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its body."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert "codedap_depth.ros.player" in graph["codedap_depth.bags.cli"]
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [name, target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, path + [name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def without_torch(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``codedap-depth ARGV`` in a subprocess that reports at exit whether torch was
    imported (the last line of stderr)."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules, "
            "file=sys.stderr))\n"
            "from codedap_depth.cli import main\n"
            f"sys.exit(main({argv!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120, **kwargs)


@pytest.mark.parametrize("argv", [["--help"], ["bag", "--help"], ["bag", "play", "--help"],
                                  ["node", "--help"]])
def test_help_imports_no_torch(argv: list[str]) -> None:
    result = without_torch(argv)
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "torch imported: False", result.stderr


def test_bag_play_imports_no_torch(tmp_path) -> None:
    from codedap_depth.bags.demo_bag import make_demo_bag

    bag = tmp_path / "bag"
    make_demo_bag(bag, storage="mcap", frames=2, size=(64, 48), hz=20.0)
    result = without_torch(["bag", "play", str(bag), "--hz", "20", "--wait", "0.1",
                            "--publish-as", "/no_torch/image_raw"])
    assert result.returncode == 0 and "published 2 frames" in result.stdout, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "torch imported: False", result.stderr


def test_readme_layout_matches_the_tree() -> None:
    """Every module of the package, its ``bags/`` and ``ros/`` is named in the README's Layout
    section, and every ``.py`` file named there exists."""
    readme = (REPO / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    for folder in (PACKAGE, PACKAGE / "bags", PACKAGE / "ros"):
        for path in folder.glob("*.py"):
            if path.name != "__init__.py":
                assert path.name in layout, path.relative_to(REPO)
    for folder in ("prior/", "regressor/", "weights/", "bags/", "ros/"):
        assert f"  {folder}" in layout, folder
    existing = {p.name for p in REPO.rglob("*.py") if ".venv" not in p.parts}
    for name in re.findall(r"[\w*.]+\.py\b", layout):
        assert "*" in name or name in existing, name
