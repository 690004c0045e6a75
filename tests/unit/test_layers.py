"""Issue 17, item 2: packages import only downward, checked on every import statement.

The declared order, bottom to top (docs/architecture.md, "Layers"):

    config                                   the top: settings, urls, asgi, the production launcher
    workflows                                operations that span nouns: init, join, upgrade, reset, ...
    nodes  tokens                            the noun apps, by ownership: a node or token belongs to a
    clusters                                 cluster, a cluster to a team; a noun imports its owner,
    teams                                    never a sibling or what it owns
    remote  kube                             the transports: no models; they import kubeadm and core only
    operations                               Operation, phases, events, the runner
    audit                                    the trail: imports no domain app
    core                                     shared by every app: imports no app
    kubeadm                                  pure kubeadm knowledge: no Django, no other project package

Every ``.py`` file of the product packages is parsed (never imported) and every import is read:
at module level, inside functions and classes, under ``if TYPE_CHECKING:``, relative ones, and
``importlib.import_module``/``__import__``/``import_string`` of a literal name. Each import is
mapped to its top-level package and checked against ``ALLOWED``. ``tools/``, ``tests/`` and
``bench/`` are outside the product: the product never imports them (the test bed reaches the
product only through settings, e.g. ``KUBEBOARD_CONNECTION_GUARD``).

Not seen here: Django's lazy model references (``ForeignKey("clusters.Cluster")``,
``apps.get_model``) and dotted names in settings; they are dependencies of the models and the
settings, not imports.

``KNOWN_BACK_IMPORTS`` listed the back-imports that existed when the test was written, each
with the issue item that removed it; it is empty now. It may only shrink: a back-import not on
it fails, and an entry that no longer occurs fails too, so that it is deleted (and cannot come back).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Bottom to top; the packages of one layer sit side by side and do not import one another.
LAYERS: list[tuple[str, ...]] = [
    ("kubeadm",),
    # Pod network add-ons: pure knowledge like kubeadm/ (manifests, substitutions), no Django.
    ("addons",),
    # The control-plane endpoint (issue 21): keepalived/haproxy files and checks, no Django.
    ("endpoints",),
    ("core",),
    ("audit",),
    ("operations",),
    ("remote", "kube"),
    # The noun apps, ordered by ownership: a cluster belongs to a team, nodes and tokens to a
    # cluster. A noun imports the nouns it belongs to (a node's page finds its cluster), never
    # a sibling or an owned noun.
    ("teams", "artifacts"),
    ("clusters",),
    ("nodes", "tokens"),
    ("workflows",),
    ("config",),
]
# Not part of the product: they may import anything, the product imports none of them.
OUTSIDE = ("tools", "tests", "bench")
# Top-level modules that are not in a package, and the layer they count as.
LOOSE_MODULES = {"manage": "config"}
# Packages that import less than every layer below them.
ONLY: dict[str, tuple[str, ...]] = {
    "kubeadm": (),
    "addons": ("kubeadm",),
    "endpoints": ("kubeadm",),
    "remote": ("kubeadm", "core"),
    "kube": ("kubeadm", "core"),
}

_NOUN_RULE = (
    "the noun apps import the layers below them and, among themselves, only the noun they belong to "
    "(nodes, tokens -> clusters -> teams); a workflow that spans nouns belongs to the workflows layer"
)
# The rule a reader is shown when a package imports what it may not.
RULES: dict[str, str] = {
    "kubeadm": "kubeadm/ is pure kubeadm knowledge: it imports no Django and no other project package",
    "addons": "addons/ is pure add-on knowledge: it imports kubeadm/ only, no Django",
    "endpoints": "endpoints/ is pure control-plane endpoint knowledge: it imports kubeadm/ only, no Django",
    "core": "core/ is at the bottom, shared by every app: it imports no app",
    "audit": "audit/ sits above core/ and below every domain app: it imports no domain app "
    "(a per-object history belongs to the object's app, see audit.queries.register_history)",
    "operations": "operations/ sits below the transports and the noun apps: a kind registers itself with it",
    "remote": "the transports (remote/, kube/) have no models: they import kubeadm/ and core/ only",
    "kube": "the transports (remote/, kube/) have no models: they import kubeadm/ and core/ only",
    "teams": _NOUN_RULE,
    "artifacts": _NOUN_RULE,
    "clusters": _NOUN_RULE,
    "nodes": _NOUN_RULE,
    "tokens": _NOUN_RULE,
    "workflows": "the workflows import every layer below them, never config/",
    "config": "config/ is the top: it imports any product package, never the test bed, the tests or bench",
}


def _allowed() -> dict[str, tuple[tuple[str, ...], str]]:
    allowed = {}
    below: tuple[str, ...] = ()
    for layer in LAYERS:
        for package in layer:
            allowed[package] = (ONLY.get(package, below), RULES[package])
        below += layer
    return allowed


# What each package may import besides itself, and the rule it is shown when it does not.
ALLOWED = _allowed()
# Third-party packages a layer may not import either.
FORBIDDEN_EXTERNAL: dict[str, tuple[str, ...]] = {
    "kubeadm": ("django", "channels", "daphne", "django_q", "django_htmx", "axes", "whitenoise"),
    "addons": ("django", "channels", "daphne", "django_q", "django_htmx", "axes", "whitenoise"),
    "endpoints": ("django", "channels", "daphne", "django_q", "django_htmx", "axes", "whitenoise"),
}
IMPORTING_CALLS = {"import_module", "__import__", "import_string"}

# (importer module, imported module) -> the issue item that removes it. MAY ONLY SHRINK: delete an
# entry when its import goes; never add one (fix the import, or move the code to the right layer).
KNOWN_BACK_IMPORTS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name of the file
    imported: str  # dotted name as imported (a module, or a package when the name is an attribute)
    path: str
    line: int
    where: str  # "", "inside a function", "under TYPE_CHECKING"


def package_of(module: str) -> str:
    top = module.split(".")[0]
    return LOOSE_MODULES.get(top, top)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str, root: Path) -> bool:
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def collect_imports(source: str, path: Path, root: Path = ROOT) -> list[Import]:
    """Every import in ``source``, wherever it stands in the file."""
    importer = module_name(path, root)
    tree = ast.parse(source, filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            here = where
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                here = where or "inside a function"
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                # Only the body is TYPE_CHECKING's; its else branch runs.
                for statement in child.body:
                    handle(statement, "under TYPE_CHECKING")
                    visit(statement, "under TYPE_CHECKING")
                for statement in child.orelse:
                    handle(statement, here)
                    visit(statement, here)
                continue
            handle(child, here)
            visit(child, here)

    def add(name: str, node: ast.AST, where: str) -> None:
        found.append(Import(importer, name, str(path.relative_to(root)), node.lineno, where))

    def handle(node: ast.AST, where: str) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, where)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(importer, path.name == "__init__.py", node.level, node.module)
                if node.level
                else node.module or ""
            )
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                add(candidate if alias.name != "*" and _is_module(candidate, root) else base, node, where)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in IMPORTING_CALLS and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    add(first.value.rsplit(":", 1)[0] if name == "import_string" else first.value, node, where)

    visit(tree, "")
    return found


def product_files(root: Path = ROOT) -> list[Path]:
    files: list[Path] = []
    for package in (name for layer in LAYERS for name in layer):
        if (root / package).is_dir():
            files += sorted((root / package).rglob("*.py"))
    files += [root / f"{name}.py" for name in LOOSE_MODULES if (root / f"{name}.py").is_file()]
    return files


def broken_rule(found: Import) -> str | None:
    """The rule ``found`` breaks, or None if the import is allowed."""
    importer, imported = package_of(found.importer), package_of(found.imported)
    if importer == imported:
        return None
    allowed, rule = ALLOWED[importer]
    if imported in OUTSIDE:
        return f"the product never imports {imported}/ (outside the product: the test bed, the tests, bench)"
    if imported in ALLOWED:
        return None if imported in allowed else rule
    if imported in FORBIDDEN_EXTERNAL.get(importer, ()):
        return rule
    return None  # the standard library or a third-party package


def violations(root: Path = ROOT) -> list[tuple[Import, str]]:
    result = []
    for path in product_files(root):
        for found in collect_imports(path.read_text(encoding="utf-8"), path, root):
            rule = broken_rule(found)
            if rule is not None:
                result.append((found, rule))
    return result


def describe(found: Import, rule: str) -> str:
    where = f" ({found.where})" if found.where else ""
    return (
        f"{found.path}:{found.line}: {found.importer} imports {found.imported}{where}\n"
        f"    {package_of(found.importer)} -> {package_of(found.imported)} breaks the rule: {rule}"
    )


# --- the checks ------------------------------------------------------------------------------


def test_every_package_is_declared_in_one_layer():
    declared = [name for layer in LAYERS for name in layer]
    assert len(declared) == len(set(declared)), "a package is declared in two layers"
    assert set(declared) == set(ALLOWED), "every declared package needs its rule in ALLOWED"
    undeclared = sorted(
        child.name
        for child in ROOT.iterdir()
        if (child / "__init__.py").is_file() and child.name not in declared and child.name not in OUTSIDE
    )
    assert not undeclared, (
        f"top-level packages without a layer: {undeclared}; declare each in LAYERS and ALLOWED "
        '(tests/unit/test_layers.py) and in docs/architecture.md, "Layers"'
    )


def test_no_new_back_import():
    new = [
        describe(found, rule)
        for found, rule in violations()
        if (found.importer, found.imported) not in KNOWN_BACK_IMPORTS
    ]
    assert not new, (
        f'{len(new)} import(s) against the layers (docs/architecture.md, "Layers"); import from a '
        "lower layer only, or move the code to the layer it belongs to:\n" + "\n".join(new)
    )


def test_known_back_imports_only_shrink():
    current = {(found.importer, found.imported) for found, _ in violations()}
    gone = sorted(pair for pair in KNOWN_BACK_IMPORTS if pair not in current)
    assert not gone, (
        "these back-imports no longer occur: delete them from KNOWN_BACK_IMPORTS "
        "(tests/unit/test_layers.py) so they cannot come back:\n"
        + "\n".join(f"    {importer} -> {imported}" for importer, imported in gone)
    )


def test_the_check_sees_every_kind_of_import(tmp_path):
    """The check's own proof: a back-import fails wherever it stands, and the failure names the
    importing module, the imported module and the rule."""
    (tmp_path / "core").mkdir()
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "__init__.py").write_text("")
    (tmp_path / "nodes" / "models.py").write_text("")
    source = "\n".join(
        [
            "from typing import TYPE_CHECKING",
            "import os",
            "from nodes import models",
            "if TYPE_CHECKING:",
            "    from clusters.models import Cluster",
            "def later():",
            "    import tokens.services",
            "    from django.db import models",
            "class Screen:",
            "    def method(self):",
            "        importlib.import_module('operations.runner')",
            "from . import encryption",
            "from tests.support import fixtures",
        ]
    )
    path = tmp_path / "core" / "sample.py"
    found = collect_imports(source, path, tmp_path)
    by_name = {f.imported: f for f in found}
    assert by_name["nodes.models"].where == "" and by_name["nodes.models"].line == 3
    assert by_name["clusters.models"].where == "under TYPE_CHECKING"
    assert by_name["tokens.services"].where == "inside a function"
    assert by_name["operations.runner"].where == "inside a function"
    assert by_name["core"].importer == "core.sample"  # relative: "from . import encryption"

    broken = {f.imported: broken_rule(f) for f in found}
    assert broken["os"] is None and broken["django.db"] is None and broken["core"] is None
    for name in ("nodes.models", "clusters.models", "tokens.services", "operations.runner"):
        assert broken[name] == ALLOWED["core"][1]
    assert "never imports tests/" in broken["tests.support"]

    message = describe(by_name["tokens.services"], broken["tokens.services"])
    assert "core/sample.py:7: core.sample imports tokens.services (inside a function)" in message
    assert "core -> tokens breaks the rule: core/ is at the bottom" in message


def test_kubeadm_may_not_import_django(tmp_path):
    (tmp_path / "kubeadm").mkdir()
    path = tmp_path / "kubeadm" / "sample.py"
    found = collect_imports("def f():\n    from django.conf import settings\n", path, tmp_path)
    assert broken_rule(found[0]) == ALLOWED["kubeadm"][1]
