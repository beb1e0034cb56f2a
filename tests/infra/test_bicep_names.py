"""What the Bicep compiler resolves, checked offline: every name a file uses is declared there, every module call
passes the parameters its module declares and every one the module requires.

tree-sitter-bicep only checks syntax; a template whose parameter line was deleted while its uses stayed still parses,
and only fails at `azd provision`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.infra.bicep import (
    BICEP_DECORATORS,
    BICEP_FUNCTIONS,
    INFRA,
    NameProblem,
    bicep_files,
    module_argument_problems,
    parse,
    undeclared_names,
)

MODULE = """\
param required string
param optional string = 'x'
param nullable string?
output echoed string = required
"""

BROKEN = """\
param names array = [
  'a'
]
param sized int = twice
var twice = 2
var typo = nmes
var copies = [for (item, index) in names: '${item}-${index}']
@description(undeclaredDescription)
param described string = 'd'
var made = frobnicate(names)
module child 'module.bicep' = {
  name: 'child'
  params: {
    optional: 'y'
    unknown: 1
  }
}
output leaked string = item
"""

# Every construct that declares a name, used as the compiler allows; `map` stands for a built-in infra/ does not call.
VALID = """\
import { shared, original as renamed } from 'types.bicep'
func double(value int) int => value * 2
param prefix string = toLower(resourceGroup().name)
param suffix string = '${prefix}-x'
var doubled = double(2)
var mapped = map([1, 2], x => x + doubled)
var keyed = { '${prefix}': [for (entry, index) in items({ a: 1 }): '${entry.key}${index}'] }
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: '${prefix}${suffix}'
  resource blobs 'blobServices' existing = {
    name: 'default'
  }
}
module child 'module.bicep' = [for name in [prefix, suffix]: if (!empty(name)) {
  name: name
  params: {
    required: az.resourceGroup().location
    'nullable': sys.concat(account::blobs.id, renamed, string(shared))
  }
}]
@description(string(keyed))
output id string = account.properties.primaryEndpoints.blob
"""


def _shown(problems: list[NameProblem]) -> str:
    return "\n".join(map(str, problems))


def _calls(decorators: bool) -> set[str]:
    """Unqualified function (or decorator) names called anywhere in infra/."""
    found = set()
    for path in bicep_files():
        stack = [parse(path)]
        while stack:
            node = stack.pop()
            stack.extend(node.named_children)
            function = node.child_by_field_name("function")
            if node.type == "call_expression" and function is not None and function.type == "identifier":
                in_decorator = node.parent is not None and node.parent.type == "decorator"
                if in_decorator == decorators:
                    found.add((function.text or b"").decode())
    return found


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_name_a_file_references_is_declared_in_it(path: Path) -> None:
    problems = undeclared_names(path)
    assert not problems, _shown(problems)


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_module_call_passes_only_and_all_required_module_parameters(path: Path) -> None:
    problems = module_argument_problems(path)
    assert not problems, _shown(problems)


def test_the_built_in_lists_are_what_infra_calls() -> None:
    # Unknown names fail the rule, so an entry here that infra/ does not call would be an unchecked claim.
    assert _calls(decorators=False) == BICEP_FUNCTIONS
    assert _calls(decorators=True) == BICEP_DECORATORS


def test_each_broken_reference_and_module_call_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "module.bicep").write_text(MODULE)
    broken = tmp_path / "broken.bicep"
    broken.write_text(BROKEN)
    found = {(problem.line, problem.message) for problem in undeclared_names(broken)}
    assert found == {
        (4, "'twice' is not a parameter, and a parameter default may reference parameters only"),
        (6, "'nmes' is not declared in this file"),
        (8, "'undeclaredDescription' is not declared in this file"),
        (10, "unknown function 'frobnicate'"),
        (18, "'item' is not declared in this file"),  # a loop variable outside its loop
    }, _shown(undeclared_names(broken))
    calls = module_argument_problems(broken)
    assert {(problem.line, problem.message) for problem in calls} == {
        (15, "module child: module.bicep declares no parameter 'unknown'"),
        (11, "module child: required parameter(s) of module.bicep not passed: ['required']"),
    }, _shown(calls)
    assert str(calls[0]).startswith(f"{broken}:")


def test_every_declaring_construct_resolves(tmp_path: Path) -> None:
    (tmp_path / "module.bicep").write_text(MODULE)
    valid = tmp_path / "valid.bicep"
    valid.write_text(VALID)
    assert [problem.message for problem in undeclared_names(valid)] == ["unknown function 'map'"]
    assert module_argument_problems(valid) == []


def test_a_removed_module_parameter_is_caught_where_it_is_used_and_where_it_is_passed(tmp_path: Path) -> None:
    infra = tmp_path / "infra"
    shutil.copytree(INFRA, infra)
    namespace = infra / "modules" / "service-bus" / "namespace.bicep"
    lines = namespace.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("param diagnosticWorkspaceResourceId ")]
    assert len(kept) == len(lines) - 1
    namespace.write_text("".join(kept))

    uses = {number for number, line in enumerate(kept, 1) if "diagnosticWorkspaceResourceId" in line}
    reported = undeclared_names(namespace)
    assert uses and {problem.line for problem in reported} == uses, _shown(reported)
    assert all("'diagnosticWorkspaceResourceId' is not declared" in problem.message for problem in reported)

    main = infra / "main.bicep"
    passed = module_argument_problems(main)
    assert [problem.message for problem in passed] == [
        "module serviceBus: modules/service-bus/namespace.bicep declares no parameter 'diagnosticWorkspaceResourceId'"
    ], _shown(passed)
    assert "diagnosticWorkspaceResourceId:" in main.read_text().splitlines()[passed[0].line - 1]
