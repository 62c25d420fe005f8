# SPDX-License-Identifier: Apache-2.0
"""The package is what users run: the dev tools (training, dataset building, benchmarks) live in
``codedap_depth.tools`` and no core module depends on them; only the CLI wires ``bench``."""

from __future__ import annotations

import ast
from pathlib import Path

import codedap_depth

PACKAGE = Path(codedap_depth.__file__).parent
#: Core modules allowed to import ``codedap_depth.tools``: the CLI's ``bench`` command.
WIRING = {"cli.py"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name a file imports, anywhere in it (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_core_modules_do_not_import_the_dev_tools() -> None:
    core = [p for p in PACKAGE.rglob("*.py") if "tools" not in p.relative_to(PACKAGE).parts]
    assert len(core) > 20
    offenders = {str(p.relative_to(PACKAGE)): sorted(m for m in imported_modules(p)
                                                       if m.startswith("codedap_depth.tools"))
                 for p in core if str(p.relative_to(PACKAGE)) not in WIRING}
    assert {k: v for k, v in offenders.items() if v} == {}

