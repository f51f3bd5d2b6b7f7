"""The package's shape: layers that import only downwards, and a domain of the standard library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

STREAMS = Path(__file__).resolve().parents[2] / "streams"


def test_every_layer_imports_only_the_layers_below_it() -> None:
    """The contract in pyproject.toml (`lint-imports`): the commands over the tools, over the SDK
    and the pipeline, over the adapters, over settings, errors and the domain."""
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(linter)], cwd=STREAMS.parent, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_domain_imports_the_standard_library_and_itself_only() -> None:
    outside = {
        f"{path.name}: {name}"
        for path in (STREAMS / "domain").glob("*.py")
        for name in _imported(path)
        if name.split(".")[0] not in sys.stdlib_module_names
        and not name.startswith("streams.domain")
    }
    assert not outside
