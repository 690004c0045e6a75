"""The package stays pure: no Django, and `import kubeadm` is tiny."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "kubeadm"


def test_no_module_imports_django():
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] in ("django", "requests", "kubernetes") for n in names), path


def test_importing_everything_loads_no_django_and_top_level_is_light():
    code = (
        "import sys, kubeadm; light = not {'cryptography', 'yaml'} & set(sys.modules); "
        "import kubeadm.config, kubeadm.pki, kubeadm.certs, kubeadm.kubeconfig, kubeadm.tokens, "
        "kubeadm.discovery, kubeadm.certkeys, kubeadm.join, kubeadm.workflow, kubeadm.versions, "
        "kubeadm.diagnose, kubeadm.nodeconfig, kubeadm.uploads, kubeadm.preflight, kubeadm.migrate; "
        "print(light, 'django' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.split() == ["True", "False"]


def test_no_file_io_outside_file_functions():
    allowed = {"certs.py": {"write_pki", "load_pki"}}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for func in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            calls = {
                c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", "")
                for c in ast.walk(func)
                if isinstance(c, ast.Call)
            }
            io = calls & {"open", "read_bytes", "read_text", "write_bytes", "write_text", "mkdir", "fdopen"}
            if io:
                assert func.name in allowed.get(path.name, set()), (path.name, func.name, io)
