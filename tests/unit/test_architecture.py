"""The layout's import rules (docs/architecture.md), read from the source with ``ast``.

Every ``import`` and ``from ... import`` counts, also those inside functions: a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SERVICES = frozenset(
    {"registry", "central", "cp_engine", "cp_monitor", "driver", "weather", "web_ui", "ocpp_sim"}
)
FIRST_PARTY = SERVICES | {"common", "demo", "bench", "tests"}

# What each top-level package may import of ours (besides itself).
ALLOWED: dict[str, frozenset[str]] = {
    "common": frozenset(),
    **{service: frozenset({"common"}) for service in SERVICES},
    "demo": frozenset({"common"}),
    "bench": frozenset({"common"}) | SERVICES,
    "tests": FIRST_PARTY,
}


def imported_packages(path: Path) -> set[str]:
    """The first-party top-level packages ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & FIRST_PARTY


def violations(package: str) -> list[str]:
    allowed = ALLOWED[package] | {package}
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for imported in sorted(imported_packages(path) - allowed):
            out.append(f"{path.relative_to(ROOT)} imports {imported}")
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_the_layout_allows(package: str) -> None:
    assert (ROOT / package).is_dir()
    assert violations(package) == []


def test_every_top_level_package_has_a_rule() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(ALLOWED)


def test_the_checker_sees_lazy_and_dotted_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import os\nimport cp_engine.menu\n"
        "def f():\n    from central.states import CPState\n    from . import x\n",
        encoding="utf-8",
    )
    assert imported_packages(source) == {"cp_engine", "central"}
