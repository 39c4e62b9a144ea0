"""genie's modules import one another without a cycle, imports inside functions included: a
cycle hidden behind a function-level import is still two modules that cannot be read, tested or
moved one without the other. What both sides of a cycle need belongs in a lower module."""

from __future__ import annotations

import ast
import configparser
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_folders() -> dict[str, Path]:
    """Installed package name -> folder, from setup.cfg (eval/ installs as genie.eval, ...)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    mapped = dict(line.split(" = ") for line in config["options"]["package_dir"].strip().splitlines())
    return {"genie": ROOT / "genie", **{name: ROOT / folder for name, folder in mapped.items()}}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in package_folders().items():
        for path in folder.rglob("*.py"):
            parts = (package, *path.relative_to(folder).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The genie modules `name` imports anywhere in its file (`from pkg import module` names the
    module, `from module import thing` the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names)
    return {m for m in out if m in known and m != name}


def test_no_import_cycle():
    known = modules()
    graph = {name: imported(name, path, known) for name, path in known.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_the_check_sees_a_cycle_inside_a_function(tmp_path):
    """The check reads function-level imports: a cycle made of one is found."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import genie.b\n")
    b.write_text("def later():\n    from genie import a\n")
    known = {"genie.a": a, "genie.b": b}
    graph = {name: imported(name, path, known) for name, path in known.items()}
    assert graph == {"genie.a": {"genie.b"}, "genie.b": {"genie.a"}}
