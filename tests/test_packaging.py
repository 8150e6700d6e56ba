"""``pip install .[test]`` brings everything the test suite imports: every third-party module
imported by ``tests/``, ``benches/micro`` and the load harness that the load smoke test runs
(``benches/load``) belongs to a runtime dependency or the ``test`` extra of pyproject.toml."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "tests", ROOT / "benches" / "micro", ROOT / "benches" / "load"]
# Extras of a requirement that bring other distributions with them.
EXTRA_BRINGS = {("pyjwt", "crypto"): {"cryptography"}}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(pyproject: dict[str, object]) -> set[str]:
    project = pyproject["project"]
    assert isinstance(project, dict)
    requirements = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    names: set[str] = set()
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)(?:\[([^\]]*)\])?", requirement)
        assert match, requirement
        name = normalize(match.group(1))
        names.add(name)
        for extra in (match.group(2) or "").split(","):
            names |= EXTRA_BRINGS.get((name, extra.strip()), set())
    return names


def imported_top_level(paths: list[Path]) -> dict[str, Path]:
    local = {p.stem for base in paths for p in base.rglob("*.py")} | {"tickfan", "tests", "benches"}
    found: dict[str, Path] = {}
    for base in paths:
        for path in base.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in local and top != "__future__":
                        found.setdefault(top, path)
    return found


def test_the_test_extra_covers_every_import_of_the_suite() -> None:
    names = declared(tomllib.loads((ROOT / "pyproject.toml").read_text()))
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module, where in imported_top_level(SOURCES).items():
        dists = {normalize(d) for d in distributions.get(module, [module])}
        if not dists & names:
            missing[module] = str(where.relative_to(ROOT))
    assert not missing, f"imported by the suite but not in pyproject's dependencies or [test]: {missing}"
