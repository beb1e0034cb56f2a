"""Every .bicep file parses with tree-sitter-bicep without error nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.bicep import INFRA, ROOT, bicep_files, first_syntax_problem


def test_there_are_bicep_files() -> None:
    assert (INFRA / "main.bicep").is_file()
    assert len(bicep_files()) > 5


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_bicep_file_parses(path: Path) -> None:
    problem = first_syntax_problem(path)
    assert problem is None, (
        f"{path.relative_to(ROOT)}:{problem.line}:{problem.column}: syntax error near {problem.text!r}"
    )


def test_a_broken_file_is_reported_with_its_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.bicep"
    broken.write_text("param ok string\n\nresource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: \n")
    problem = first_syntax_problem(broken)
    assert problem is not None
    assert problem.line >= 3
