"""The package's layout, read from the source (ast), so a later change cannot quietly undo it:
imports run one way, weights are read and written in one module, functions stay short, and the
models are listed once."""
import ast
from pathlib import Path

import pytest

from conftest import MODELS, REPO, SPECS
from latentlab.registry import SCRIPTS

PACKAGE = MODELS / "latentlab"
# Each module may import only those before it (checked with every import, lazy ones included).
ORDER = ["__init__", "data", "preprocess", "models", "losses", "training", "checkpoints", "exact", "metrics", "style",
         "animations", "figures", "page", "results", "folders", "cli", "registry", "reports", "sweep"]


def _tree(path):
    return ast.parse(Path(path).read_text(encoding="utf-8"))


def package_imports(module):
    """Modules of the package that ``module`` imports anywhere in its source."""
    found = set()
    for node in ast.walk(_tree(PACKAGE / f"{module}.py")):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:  # from .data import x
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level == 1:  # from . import results, UserError
            found.update(a.name if (PACKAGE / f"{a.name}.py").exists() else "__init__" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("latentlab"):
            found.add(node.module.partition(".")[2] or "__init__")
        elif isinstance(node, ast.Import):
            found.update(a.name.partition(".")[2] for a in node.names if a.name.startswith("latentlab."))
    return found


def test_every_module_is_in_the_order():
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == sorted(ORDER)


@pytest.mark.parametrize("module", ORDER)
def test_imports_run_one_way(module):
    allowed = set(ORDER[:ORDER.index(module)])
    assert package_imports(module) <= allowed, f"{module} imports {package_imports(module) - allowed}"


def test_the_named_rooms_keep_to_themselves():
    assert package_imports("models") == set()
    for module in ("figures", "animations", "style"):
        assert "training" not in package_imports(module) and "cli" not in package_imports(module)
    assert "figures" not in package_imports("animations")


def test_one_module_reads_and_writes_weights():
    users = set()
    for path in [*PACKAGE.glob("*.py"), *MODELS.glob("*.py")]:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and node.attr in ("save", "load") \
                    and isinstance(node.value, ast.Name) and node.value.id == "torch":
                users.add(path.name)
    assert users == {"checkpoints.py"}


def test_functions_are_short():
    long = []
    for path in [*PACKAGE.glob("*.py"), *MODELS.glob("*.py")]:
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                limit = 40 if (path.name, node.name) == ("cli.py", "run") else 60
                if lines > limit:
                    long.append(f"{path.name}:{node.name} has {lines} lines (limit {limit})")
    assert not long, long


def test_the_models_are_listed_once():
    """Only the registry names the scripts; everything that goes over all models reads it."""
    assert list(SPECS) == ["ae2", "vae2", "ae32", "vae32"]
    assert [SPECS[k].script for k in SPECS] == [f"{name}.py" for name in SCRIPTS]
    for path in [MODELS / "compare_models.py", MODELS / "sweep.py", PACKAGE / "sweep.py", PACKAGE / "reports.py",
                 REPO / "benchmarks" / "train_speed.py", REPO / "benchmarks" / "page_speed.py",
                 *(REPO / "tests").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for name in SCRIPTS:
            assert f"import {name}" not in text and f"{name}.py" not in text, (path.name, name)
