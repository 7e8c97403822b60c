"""Documentation that runs and type-checks: the README, every page in docs/, the examples.

Blocks fenced as ```python run as written, as a reader runs them: each page's blocks one after
the other in one directory (each in a fresh interpreter), and then all of them again. Blocks
fenced as ```py are complete modules that are not run (a worker started with arguments, a
pytest module). Every block of both kinds, and every example, passes ``mypy --strict``. A block
whose first line is a file name (``# dict_store.py``) is that module, so a later block can import
it.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import session_persistence
from session_persistence import SessionPersistenceConfig, SessionStore, SessionStoreConfig
from session_persistence.manager_config import ENVIRONMENT_VARIABLES
from session_persistence.testing import StoreConformance

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
ANY_FENCE = re.compile(r"^```(?:python|py)\n(.*?)^```", re.MULTILINE | re.DOTALL)
FILE_NAME = re.compile(r"# (\w+)\.py\b")


def python_blocks(path: Path) -> list[str]:
    return FENCE.findall(path.read_text(encoding="utf-8"))


DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
PAGES = [pytest.param(path, id=str(path.relative_to(ROOT))) for path in DOCS if python_blocks(path)]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_readme_quick_start_is_short_and_prints_what_it_says() -> None:
    """The README quick start is at most ~15 lines of code and prints its promised output."""
    block = python_blocks(ROOT / "README.md")[0]
    code_lines = [line for line in block.splitlines() if line.strip()]
    assert len(code_lines) <= 15
    result = run_python(block, ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2 {'text': 'Hi!'}"


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_in_order_twice_in_one_directory(page: Path, tmp_path: Path) -> None:
    """A page's ```python blocks run one after another in one directory, and again.

    That is how a reader runs them: the second block finds what the first one stored, and
    trying the page a second time finds what the first time stored.
    """
    blocks = python_blocks(page)
    for attempt in ("first", "second"):
        for number, block in enumerate(blocks):
            result = run_python(block, tmp_path)
            where = f"{page.relative_to(ROOT)} block {number}, {attempt} time"
            assert result.returncode == 0, f"{where}:\n{result.stderr}"


def test_every_snippet_and_example_passes_mypy_strict(tmp_path: Path) -> None:
    """Every ```python and ```py block of the README and docs, and every example, type-checks.

    The package is typed (``Typing :: Typed``), so what it shows must pass ``mypy --strict``.
    """
    names: dict[Path, str] = {}
    for page in DOCS:
        for number, block in enumerate(ANY_FENCE.findall(page.read_text(encoding="utf-8"))):
            named = FILE_NAME.match(block)
            slug = re.sub(r"\W", "_", str(page.relative_to(ROOT).with_suffix("")))
            module = named.group(1) if named else f"{slug}_{number}"
            path = tmp_path / f"{module}.py"
            assert not path.exists(), f"two snippets are named {module}.py"
            path.write_text(block, encoding="utf-8")
            names[path] = f"{page.relative_to(ROOT)} block {number}"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".cache"),
         *map(str, names), *map(str, EXAMPLES)],
        cwd=tmp_path,  # no project config: the snippets are checked as a user's code would be
        env={**os.environ, "MYPYPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    report = result.stdout
    for path, name in names.items():
        report = report.replace(str(path), name).replace(path.name, name)
    assert result.returncode == 0, report
    assert len(names) >= 20  # the README's and docs' blocks were all found


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_says_how_and_keeps_to_its_own_data(example: Path, tmp_path: Path) -> None:
    """Every example runs, says how to run it, and writes only where its docstring says.

    Only the demo (what ``make demo`` runs) uses ``./session_data``, the command-line tool's
    default store, so ``session-persistence stats`` after the demo shows only the demo's
    sessions.
    """
    result = subprocess.run(
        [sys.executable, "-W", "error", str(example)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout
    docstring = ast.get_docstring(ast.parse(example.read_text(encoding="utf-8"))) or ""
    assert f"python examples/{example.name}" in docstring, "the docstring says how to run it"
    demo = re.search(r"^demo:.*\n\t\$\(PY\) (\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert demo is not None
    is_demo = example == ROOT / demo.group(1)
    says_demo = "Run with ``make demo``" in docstring
    assert says_demo == is_demo, "only what make demo runs says to run it with make demo"
    for entry in tmp_path.iterdir():
        assert f"./{entry.name}" in docstring, f"{entry.name} is not named in the docstring"
    assert (tmp_path / "session_data").exists() == is_demo


def _docs_dict_store() -> type[SessionStore]:
    """Load the toy DictStore defined in the custom-store how-to."""
    block = python_blocks(ROOT / "docs/how-to/custom-store.md")[0]
    definitions = block.split("\n\nasync def main")[0]  # the class, without running the demo
    namespace: dict[str, object] = {"__name__": "docs_custom_store"}
    exec(definitions, namespace)
    store_class = namespace["DictStore"]
    assert isinstance(store_class, type)
    return store_class


class TestDocsCustomStoreConforms(StoreConformance):
    """The how-to's toy store passes the conformance suite, as the page claims."""

    def make_store(self, config: SessionStoreConfig, path: Path) -> SessionStore:
        return _docs_dict_store()(config)


def test_configuration_reference_lists_every_option_and_variable() -> None:
    """docs/reference/configuration.md names every option and environment variable."""
    text = (ROOT / "docs" / "reference" / "configuration.md").read_text(encoding="utf-8")
    options = [f.name for f in dataclasses.fields(SessionPersistenceConfig)]
    options += [f.name for f in dataclasses.fields(SessionStoreConfig)]
    missing = [name for name in [*options, *ENVIRONMENT_VARIABLES] if f"`{name}`" not in text]
    assert not missing


def test_api_reference_names_every_export() -> None:
    """docs/reference/api.md mentions every public name."""
    text = (ROOT / "docs" / "reference" / "api.md").read_text(encoding="utf-8")
    assert not [name for name in session_persistence.__all__ if f"`{name}" not in text]
