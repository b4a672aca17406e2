"""The package as a user meets it: every module imports on its own, and one version."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FIRST_IMPORTS = """
import importlib, pkgutil, sys
import highlightzoo
names = sorted(m.name for m in pkgutil.walk_packages(highlightzoo.__path__, "highlightzoo.")
               if not m.name.endswith("__main__"))  # __main__ runs the command line
failed = []
for name in names:
    for key in [k for k in sys.modules if k == "highlightzoo" or k.startswith("highlightzoo.")]:
        del sys.modules[key]  # as in a fresh interpreter, where this module is the first one
    try:
        importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 - every failure is the finding
        failed.append(f"{name}: {type(err).__name__}: {err}")
print(len(names))
print("\\n".join(failed))
"""


def test_every_module_imports_first_in_a_fresh_interpreter():
    """``from highlightzoo.features import extract_features`` in a fresh interpreter was an
    ImportError (features -> data -> phdgifs -> features: a cycle), as were six other modules
    imported before the rest; the test suite never saw it, since it imports data first."""
    out = subprocess.run([sys.executable, "-c", FIRST_IMPORTS], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.splitlines()
    assert int(out[0]) > 50  # the walk found the package
    assert [line for line in out[1:] if line] == []


def test_the_package_version_is_the_one_pyproject_declares():
    """``highlightzoo --version``, ``__version__`` and the provenance of every run read the
    package's constant; pip and the changelog read pyproject's. They must not drift apart."""
    import highlightzoo

    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert declared and declared.group(1) == highlightzoo.__version__
