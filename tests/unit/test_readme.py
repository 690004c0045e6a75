"""The repository stands on its own: no reference to a folder a user's clone does not have, and
the README's configuration table names every environment variable the code reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("config", "core", "clusters", "nodes", "tokens", "operations", "audit", "teams", "workflows", "kubeadm")
VARIABLE = re.compile(r"\b(KUBEBOARD_[A-Z0-9_]+|DATABASE_URL|REDIS_URL)\b")


def _code_variables() -> set[str]:
    found: set[str] = set()
    files = [p for d in CODE_DIRS if (ROOT / d).is_dir() for p in (ROOT / d).rglob("*.py")]
    files += [ROOT / "bin" / "run", ROOT / "bin" / "setup"]
    for path in files:
        if "migrations" not in path.parts and path.exists():
            found |= set(VARIABLE.findall(path.read_text(encoding="utf-8")))
    return found


def test_the_configuration_section_names_every_variable_the_code_reads():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration (environment)", 1)[1].split("\n## ", 1)[0]
    documented = set(VARIABLE.findall(section))
    missing = sorted(_code_variables() - documented)
    assert missing == [], f"add these to the README's configuration table: {', '.join(missing)}"
    assert "`KUBEBOARD_PORT`" in section and "`KUBEBOARD_BIND`" in section


def test_no_reference_to_a_folder_outside_the_repository():
    paths = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "kubeadm").rglob("*")]
    paths += list(ROOT.glob("requirements*.txt"))
    offenders = [str(p.relative_to(ROOT)) for p in paths if p.is_file() and "../shared" in p.read_text(errors="ignore")]
    assert offenders == []
