"""The code's shape: no import circle, no study importing another, and the registry as the only list of figures."""
import ast
import re
from pathlib import Path

import yaml

from convbench.analysis import registry

SRC = Path(__file__).resolve().parents[1] / "src"
STUDIES = set(registry.STUDIES)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """convbench modules this file imports, at module level or inside functions."""
    found, package = set(), module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("convbench")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("convbench"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from convbench import spec`
    modules = {module_name(p) for p in SRC.rglob("*.py")}
    return {m for m in found if m in modules and m != package}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in SRC.rglob("*.py")}


def test_no_import_circle():
    edges, seen, stack = graph(), set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("import circle: " + " -> ".join(stack[stack.index(node):] + [node]))
        if node in seen:
            return
        stack.append(node)
        for child in sorted(edges.get(node, ())):
            # a package's __init__ importing its own submodules is how a package is assembled, not a circle
            if not child.startswith(node + "."):
                visit(child)
        stack.pop()
        seen.add(node)

    for node in sorted(edges):
        visit(node)


def study_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["convbench", "analysis"] and parts[2] in STUDIES else None


def test_no_study_imports_another():
    for module, targets in graph().items():
        mine = study_of(module)
        others = {study_of(t) for t in targets} - {None, mine}
        assert not (mine and others), f"{module} imports the studies {others}"


def test_the_workflow_takes_the_figures_from_the_registry():
    """No figure name is written in the workflow's rules or its report captions: they come from registry.FIGURES.
    (The schemas describe configs and records, whose fields may share a figure's name: 'phases'.)"""
    root = SRC.parent
    text = "".join(p.read_text() for p in (root / "workflow").rglob("*") if p.is_file() and "schemas" not in p.parts)
    assert registry.FIGURES, "the registry lists no figure"
    for name in set(registry.FIGURES) - STUDIES:  # a figure may share its study's name
        assert name not in text, f"figure {name} named in workflow/"


def test_every_figure_and_table_the_paper_includes_is_registered():
    paper = "".join(p.read_text() for p in (SRC.parent / "paper").rglob("*.tex"))

    figures = set(re.findall(r"figures/([\w-]+)\.pdf", paper))
    tables = set(re.findall(r"\\input\{tables/([\w-]+)\}", paper))
    assert figures <= set(registry.FIGURES), figures - set(registry.FIGURES)
    assert tables <= set(registry.TABLES), tables - set(registry.TABLES)
    assert set(registry.FIGURES) <= figures, f"registered but not in the paper: {set(registry.FIGURES) - figures}"
    # one name per figure: the paper labels it fig:<its registered name>
    found = re.findall(r"\\includegraphics(?:\[[^\]]*\])?\{figures/([\w-]+)\.pdf\}.*?\\label\{fig:([^}]+)\}", paper, re.S)
    assert len(found) == len(figures) and all(name == label for name, label in found), found


def test_every_study_of_the_config_schema_has_an_analysis():
    schema = yaml.safe_load((SRC.parent / "workflow/schemas/config.schema.yaml").read_text())
    studies = set(schema["properties"]["studies"].get("properties", {}))
    assert studies <= STUDIES, studies - STUDIES
