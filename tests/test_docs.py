"""The front door holds: README.md, README.en.md and docs/ stay short where promised, every relative link
and image resolves, no link points at a line number, and every function they cite by name exists in the
file they cite it from."""
import ast
import os
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "Models" / "latentlab"
PAGES = [REPO / "README.md", REPO / "README.en.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)\)")     # [text](target) and ![alt](target)
FILE_TYPES = {"py", "json", "js", "pt", "png", "gif", "npz", "npy", "md", "html"}  # `metrics.json` is a file
CODE = re.compile(r"`([A-Za-z_][A-Za-z0-9_.]*)`")    # `name` or `module.name`


def _rel(page):
    return page.relative_to(REPO).as_posix() if page.is_relative_to(REPO) else page.name


def defined_names(path):
    """Top-level functions, classes and assignments of a Python file, and ``Class.method`` for methods."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names |= {f"{node.name}.{n.name}" for n in node.body if isinstance(n, ast.FunctionDef)}
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def prose(page):
    """A Markdown page's text, its code blocks left out."""
    return re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)


def links(page):
    """(text, target) of every link and image of a Markdown page, code blocks left out."""
    return LINK.findall(prose(page))


def test_the_pages_exist_and_the_front_door_is_short():
    readme, english = (REPO / "README.md"), (REPO / "README.en.md")
    text = readme.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200 and len(text.encode("utf-8")) <= 20 * 1024
    assert "pip install -r requirements.txt && python Models/" in text
    assert "pip install -r requirements.txt && python -m pytest -q" in text
    assert "README.en.md" in "\n".join(text.splitlines()[:10])  # the English door is on the first screen
    en = english.read_text(encoding="utf-8")
    assert len(re.findall(r"^## ", en, flags=re.M)) >= 4
    assert max(len(line) for line in en.splitlines()) <= 400
    assert len(list((REPO / "docs").glob("*.md"))) >= 5


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_and_image_resolves(page):
    broken = []
    for _, target in links(page):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address, or an anchor in the same page
        path, _, fragment = target.partition("#")
        assert not re.fullmatch(r"L\d+(-L\d+)?", fragment), f"{_rel(page)}: {target} points at a line number"
        if not (page.parent / unquote(path)).exists():
            broken.append(target)
    assert not broken, f"{_rel(page)}: broken links {broken}"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_code_cited_by_name_exists(page):
    """[`name`](file.py) must name a function, class or constant of file.py; `module.name` in prose must
    name one of the package module's."""
    missing = []
    for label, target in links(page):
        name = re.fullmatch(r"`([A-Za-z_][A-Za-z0-9_.]*)`", label)
        path = page.parent / unquote(target.partition("#")[0])
        if name and path.suffix == ".py" and path.exists() and name[1] != path.name:
            if name[1] not in defined_names(path):
                missing.append(f"{name[1]} in {target}")
    for dotted in CODE.findall(prose(page)):
        module, _, attr = dotted.partition(".")
        source = PACKAGE / f"{module}.py"
        if attr and attr not in FILE_TYPES and source.exists() and attr not in defined_names(source):
            missing.append(f"{dotted} in {source.name}")
    assert not missing, f"{_rel(page)} cites code that is not there: {missing}"


def test_the_checker_sees_a_missing_function_and_a_broken_link(tmp_path):
    """The two checks above fail on a page that cites a function that is not there, or a missing file."""
    up = os.path.relpath(REPO, tmp_path)
    page = tmp_path / "probe.md"
    page.write_text(f"[`vae_loss`]({up}/Models/latentlab/losses.py) is there; "
                    f"[`no_such_function`]({up}/Models/latentlab/losses.py) and `losses.vae_lossx` are not, "
                    f"nor ![x]({up}/no_such.png)\n", encoding="utf-8")
    with pytest.raises(AssertionError, match=r"\['no_such_function in .*, 'losses.vae_lossx in losses.py'\]"):
        test_code_cited_by_name_exists(page)
    with pytest.raises(AssertionError, match=r"broken links \['.*no_such.png'\]"):
        test_every_relative_link_and_image_resolves(page)


def test_the_readmes_table_is_the_seeds_sweeps_summary():
    """README's numbers come from sweeps/seeds/summary.json through compare_models.py, unchanged."""
    from compare_models import END, START, note
    from latentlab.sweep_reports import load, markdown_table
    summary = load(REPO / "sweeps" / "seeds" / "summary.json")
    expected = markdown_table(summary) + "\n\n" + note(summary, True)
    for readme in ("README.md", "README.en.md"):
        text = (REPO / readme).read_text(encoding="utf-8")
        assert text.split(START, 1)[1].split(END, 1)[0].strip() == expected, readme


@pytest.mark.parametrize("sweep", ["warmup", "likelihood"])
def test_the_variant_tables_are_their_sweeps_summaries(sweep):
    """docs/variants.md's tables come from sweeps/<sweep>/summary.json through compare_models.py, unchanged."""
    from compare_models import variant_markers, variant_note
    from latentlab.sweep_reports import load, variant_table
    summary = load(REPO / "sweeps" / sweep / "summary.json")
    start, end = variant_markers(sweep)
    text = (REPO / "docs" / "variants.md").read_text(encoding="utf-8")
    assert text.split(start, 1)[1].split(end, 1)[0].strip() == variant_table(summary) + "\n\n" + variant_note(summary)
