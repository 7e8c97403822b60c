"""Documentation that runs: README quick start, every ```python block in docs/, the examples.

Blocks fenced as ```python must run as written, each in a fresh interpreter; fragments that
need surrounding code are fenced as ```py and are not run.
"""

from __future__ import annotations

import dataclasses
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


def python_blocks(path: Path) -> list[str]:
    return FENCE.findall(path.read_text(encoding="utf-8"))


DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
BLOCKS = [
    pytest.param(block, id=f"{path.relative_to(ROOT)}#{n}")
    for path in DOCS
    for n, block in enumerate(python_blocks(path))
]
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


@pytest.mark.parametrize("block", BLOCKS)
def test_doc_snippet_runs(block: str, tmp_path: Path) -> None:
    """Each ```python block in the README and docs runs without error."""
    result = run_python(block, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path, tmp_path: Path) -> None:
    """Every example script runs to completion."""
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
