"""The package's layout, read from the source (ast), so a later change cannot quietly undo it:
imports run one way, weights are read and written in one module, functions stay short, and the
models are listed once."""
import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from conftest import MODELS, REPO, SPECS
from latentlab.registry import SCRIPTS

PACKAGE = MODELS / "latentlab"
# Each module may import only those before it (checked with every import, lazy ones included).
ORDER = ["__init__", "data", "likelihoods", "losses", "models", "precision", "training", "checkpoints", "exact", "inference", "metrics",
         "style", "run_animations", "run_figures", "page_export", "write_results", "folder_swap", "cli", "registry",
         "sweep_reports", "sweep_jobs"]


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
    assert package_imports("models") == {"likelihoods", "losses"}
    assert package_imports("losses") == {"likelihoods"} and package_imports("likelihoods") == set()
    for module in ("run_figures", "run_animations", "style"):
        assert "training" not in package_imports(module) and "cli" not in package_imports(module)
    assert "run_figures" not in package_imports("run_animations")


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
    assert list(SPECS) == ["ae2", "vae2", "ae32", "vae32", "cvae2"]
    assert [SPECS[k].script for k in SPECS] == [f"{name}.py" for name in SCRIPTS]
    for path in [MODELS / "compare_models.py", MODELS / "sweep.py", PACKAGE / "sweep_jobs.py", PACKAGE / "sweep_reports.py",
                 REPO / "benchmarks" / "train_speed.py", REPO / "benchmarks" / "page_speed.py",
                 *(REPO / "tests").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for name in SCRIPTS:
            assert f"import {name}" not in text and f"{name}.py" not in text, (path.name, name)


# Timings and hardware of one machine: true there only, so the code's comments and docstrings leave them
# to benchmarks/ (a few may stay where the number is the reason for a constant).
MEASURED = re.compile(r"\d+(\.\d+)? ?ms\b|GFLOP|EPYC|Xeon|\b\d+-core\b"
                      r"|\d+(\.\d+)? ?s (a|per) (step|epoch|run)", re.IGNORECASE)


def prose_lines(path):
    """(line number, text) of every comment and docstring line in ``path``."""
    source = Path(path).read_text(encoding="utf-8")
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                for i, line in enumerate(doc.splitlines()):
                    yield node.body[0].lineno + i, line


def test_few_comments_quote_one_machines_timings():
    found = [f"{path.relative_to(REPO)}:{n}: {text.strip()}"
             for path in sorted([*PACKAGE.glob("*.py"), *MODELS.glob("*.py")])
             for n, text in prose_lines(path) if MEASURED.search(text)]
    assert len(found) <= 5, "\n".join(found)


def test_no_module_switches_on_the_model_kind():
    """What differs between models is asked of the model (its interface in models.py), never decided by
    comparing its name: a new model is a class there, a script and a registry line."""
    switch = re.compile(r"kind ?[!=]= ?|[!=]= ?[\"'](ae|vae)[\"']")
    found = [f"{p.relative_to(REPO)}:{i}" for p in [*PACKAGE.glob("*.py"), *MODELS.glob("*.py")]
             if p.name != "models.py" for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if switch.search(line)]
    assert not found, found
