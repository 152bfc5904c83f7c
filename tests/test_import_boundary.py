"""The pure rings (DESIGN.md section 2) never import I/O: walk every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

BROKER = Path(__file__).resolve().parent.parent / "broker"
PURE = ["wire", "pppoe", "ppp", "l2tp", "radius", "policy", "callflow", "sim"]
FORBIDDEN = {"twisted", "redis", "pyroute2", "socket", "time", "asyncio", "select", "selectors"}
# Pure packages may not import the I/O rings either.
FORBIDDEN_INTERNAL = {
    "broker.adapters",
    "broker.dataplane",
    "broker.state.redis_store",
    "broker.accounting",
    "broker.control",
    "broker.commands",
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_pure_packages_import_no_io() -> None:
    checked = 0
    offences = []
    for pkg in PURE:
        for path in sorted((BROKER / pkg).rglob("*.py")) if (BROKER / pkg).exists() else []:
            checked += 1
            for line, name in _imports(path):
                top = name.split(".")[0]
                internal = any(name == p or name.startswith(p + ".") for p in FORBIDDEN_INTERNAL)
                if top in FORBIDDEN or internal:
                    offences.append(f"{path.relative_to(BROKER.parent)}:{line} imports {name}")
    assert checked > 0
    assert offences == [], "\n".join(offences)


def test_boundary_checker_catches_offence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom twisted.internet import reactor\n")
    names = [n for _, n in _imports(bad)]
    assert "time" in names and "twisted.internet" in names
