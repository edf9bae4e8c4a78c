"""The installed package: one name (``ssmrl``), every sub-package shipped, no path hacks, no import cycles."""

import ast
import pathlib
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("ssm", "envs", "agents", "experiment")


def _tracked_python_files() -> list[pathlib.Path]:
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / f for f in files.stdout.split()]


def test_pyproject_ships_every_sub_package():
    """A wheel holds only the listed packages: a new folder missing from the list would vanish on install."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {"ssmrl"} | {"ssmrl." + ".".join(p.parent.relative_to(ROOT).parts)
                           for top in PACKAGES for p in (ROOT / top).rglob("__init__.py")}
    folders = {p.parent for top in PACKAGES for p in (ROOT / top).rglob("*.py")}
    assert all((f / "__init__.py").exists() for f in folders), "every folder with modules is a package"
    assert listed == on_disk


def test_public_imports_are_namespaced():
    code = "from ssmrl import agents, envs, experiment, ssm; print(ssm.available()[0], envs.__name__)"
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["gru", "ssmrl.envs"]


def test_no_path_edits_or_bare_imports():
    """Scripts and tests import the installed package; nothing edits ``sys.path`` or imports ``ssm`` bare."""
    offenders = []
    for path in _tracked_python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} uses sys.path")
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                          if n.split(".")[0] in PACKAGES]
    assert offenders == []


def _module_imports(path: pathlib.Path) -> set[str]:
    """The ``ssmrl`` modules a file imports at module level (``from a import b`` is ``a.b`` when b is a module)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ssmrl."):
            for alias in node.names:
                sub = ROOT.joinpath(*node.module.split(".")[1:], alias.name)
                found.add(f"{node.module}.{alias.name}" if sub.with_suffix(".py").exists() or sub.is_dir()
                          else node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "ssmrl":
            found |= {f"ssmrl.{a.name}" for a in node.names}
    return found


def test_no_import_cycles():
    modules = {}
    for top in PACKAGES:
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = "ssmrl." + ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = _module_imports(path)
    state: dict[str, int] = {}

    def visit(name, trail):
        if state.get(name) == 1:
            raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(name):] + [name]))
        if state.get(name) == 2 or name not in modules:
            return
        state[name] = 1
        for dep in sorted(modules[name]):
            visit(dep, trail + [name])
        state[name] = 2

    for name in sorted(modules):
        visit(name, [])
