"""Offline Bicep reading for the infra tests: tree-sitter-bicep syntax trees and literal values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"


class Expression:
    """A value that is not a literal (a reference, a call, an interpolated string)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


@dataclass(frozen=True)
class SyntaxProblem:
    line: int
    column: int
    text: str


@cache
def parser() -> Parser:
    return Parser(Language(tree_sitter_bicep.language()))


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def parse(path: Path) -> Node:
    return parser().parse(path.read_bytes()).root_node


def first_syntax_problem(path: Path) -> SyntaxProblem | None:
    """The first ERROR or MISSING node, or None when the file parses cleanly."""
    root = parse(path)
    if not root.has_error:
        return None
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            text = (node.text or b"").decode(errors="replace")[:80]
            return SyntaxProblem(node.start_point[0] + 1, node.start_point[1] + 1, text or node.type)
        stack.extend(reversed([child for child in node.children if child.has_error or child.is_missing]))
    return SyntaxProblem(root.start_point[0] + 1, 1, "error")


def _text(node: Node) -> str:
    return (node.text or b"").decode()


def _property_nodes(node: Node) -> Iterator[tuple[Node, Node | None]]:
    """An object's (key, value) nodes, comments skipped."""
    for prop in node.named_children:
        if prop.type == "object_property":
            key_node, *rest = prop.named_children
            yield key_node, (rest[-1] if rest else None)


def literal(node: Node) -> Any:
    """Evaluate a literal (object, array, string, number, boolean, null); anything else → Expression."""
    kind = node.type
    if kind == "object":
        return {
            str(literal(key) if key.type == "string" else _text(key)): None if value is None else literal(value)
            for key, value in _property_nodes(node)
        }
    if kind == "array":
        return [literal(child) for child in node.named_children if child.type not in ("comment",)]
    if kind == "string":
        parts = node.named_children
        if any(part.type == "interpolation" for part in parts):
            return Expression(_text(node))
        return "".join(_text(part) for part in parts if part.type in ("string_content", "escape_sequence"))
    if kind == "number":
        return int(_text(node))
    if kind == "boolean":
        return _text(node) == "true"
    if kind == "null":
        return None
    return Expression(_text(node))


class Evaluator:
    """Evaluate a Bicep file's declarations as far as they are known before deployment.

    Parameters take the given values, else their defaults; ``known`` fixes variables; references to resources, modules and
    deployment functions stay :class:`Expression`. Covers what Herald's templates use to decide
    *what* is deployed: ``loadJsonContent``, ``union``, ``concat``, ``empty``, ``join``, ``contains``,
    ``? :``, ``== != && || !``, member access and ``[for ...]`` over known lists.
    """

    def __init__(
        self, path: Path = MAIN, params: dict[str, Any] | None = None, known: dict[str, Any] | None = None
    ) -> None:
        self.path = path
        self.root = parse(path)
        self.params = dict(params or {})
        self._decls: dict[str, Node] = {}
        self._params: dict[str, Node | None] = {}
        for node in self.root.named_children:
            if node.type == "variable_declaration":
                name_node, *rest = node.named_children
                self._decls[_text(name_node)] = rest[-1]
            elif node.type == "parameter_declaration":
                children = node.named_children
                default = children[-1] if len(children) >= 3 else None
                self._params[_text(children[0])] = default
        unknown = set(self.params) - set(self._params)
        if unknown:
            raise KeyError(f"{path.name} declares no parameter {sorted(unknown)}")
        # `known` fixes variables that depend on deployment functions (e.g. a name with uniqueString()).
        self._values: dict[str, Any] = dict(known or {})

    def variables(self) -> dict[str, Any]:
        return {name: self.value(name) for name in self._decls}

    def value(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        if name in self._decls:
            result = self.eval(self._decls[name], {})
        elif name in self.params:
            result = self.params[name]
        elif name in self._params:
            default = self._params[name]
            result = self.eval(default, {}) if default is not None else Expression(name)
        else:
            result = Expression(name)
        self._values[name] = result
        return result

    def eval(self, node: Node, scope: dict[str, Any]) -> Any:
        kind = node.type
        if kind in ("number", "boolean", "null"):
            return literal(node)
        if kind == "string":
            return self._string(node, scope)
        if kind == "object":
            result: dict[str, Any] = {}
            for key_node, value_node in _property_nodes(node):
                key = self.eval(key_node, scope) if key_node.type == "string" else _text(key_node)
                result[str(key.text if isinstance(key, Expression) else key)] = (
                    None if value_node is None else self.eval(value_node, scope)
                )
            return result
        if kind == "array":
            return [self.eval(child, scope) for child in node.named_children if child.type != "comment"]
        if kind == "parenthesized_expression":
            return self.eval(node.named_children[0], scope)
        if kind == "identifier":
            name = _text(node)
            return scope[name] if name in scope else self.value(name)
        if kind == "member_expression":
            target = self.eval(node.named_children[0], scope)
            attribute = _text(node.named_children[-1])
            if isinstance(target, dict) and attribute in target:
                return target[attribute]
            return Expression(_text(node))
        if kind == "ternary_expression":
            condition, when_true, when_false = node.named_children
            chosen = self.eval(condition, scope)
            if isinstance(chosen, bool):
                return self.eval(when_true if chosen else when_false, scope)
            return Expression(_text(node))
        if kind == "unary_expression" and _text(node.children[0]) == "!":
            operand = self.eval(node.named_children[0], scope)
            return (not operand) if isinstance(operand, bool) else Expression(_text(node))
        if kind == "binary_expression":
            return self._binary(node, scope)
        if kind == "call_expression":
            return self._call(node, scope)
        if kind == "for_statement":
            return self._for(node, scope)
        return Expression(_text(node))

    def _string(self, node: Node, scope: dict[str, Any]) -> Any:
        parts: list[str] = []
        for part in node.named_children:
            if part.type in ("string_content", "escape_sequence"):
                parts.append(_text(part) if part.type == "string_content" else _unescape(_text(part)))
            elif part.type == "interpolation":
                value = self.eval(part.named_children[0], scope)
                if isinstance(value, Expression) or not isinstance(value, str | int | bool):
                    return Expression(_text(node))
                parts.append(str(value).lower() if isinstance(value, bool) else str(value))
        return "".join(parts)

    def _binary(self, node: Node, scope: dict[str, Any]) -> Any:
        left_node, right_node = node.named_children
        operator = _text(node.children[1])
        left, right = self.eval(left_node, scope), self.eval(right_node, scope)
        if operator in ("&&", "||"):
            if isinstance(left, bool) and isinstance(right, bool):
                return (left and right) if operator == "&&" else (left or right)
            # Short-circuit when one known side decides.
            for side in (left, right):
                if isinstance(side, bool) and side is (operator == "||"):
                    return side
            return Expression(_text(node))
        if isinstance(left, Expression) or isinstance(right, Expression):
            return Expression(_text(node))
        if operator == "==":
            return left == right
        if operator == "!=":
            return left != right
        return Expression(_text(node))

    def _call(self, node: Node, scope: dict[str, Any]) -> Any:
        name = _text(node.named_children[0])
        argument_nodes = [child for child in node.named_children[1].named_children if child.type != "comment"]
        if name == "loadJsonContent":
            (relative,) = argument_nodes
            return json.loads((self.path.parent / str(self.eval(relative, scope))).read_text())
        args = [self.eval(child, scope) for child in argument_nodes]
        if any(isinstance(arg, Expression) for arg in args):
            return Expression(_text(node))
        if name == "union" and all(isinstance(arg, dict) for arg in args):
            merged: dict[str, Any] = {}
            for arg in args:
                merged.update(arg)
            return merged
        if name in ("union", "concat") and all(isinstance(arg, list) for arg in args):
            combined = [item for arg in args for item in arg]
            if name == "concat":
                return combined
            return [item for index, item in enumerate(combined) if item not in combined[:index]]
        if name == "empty" and len(args) == 1:
            return args[0] is None or len(args[0]) == 0
        if name == "contains" and len(args) == 2:
            return args[1] in args[0]
        if name == "join" and len(args) == 2:
            return str(args[1]).join(map(str, args[0]))
        if name == "string" and len(args) == 1:
            return json.dumps(args[0]) if not isinstance(args[0], str) else args[0]
        return Expression(_text(node))

    def _for(self, node: Node, scope: dict[str, Any]) -> Any:
        children = node.named_children
        # [for item in list: body] or [for (item, index) in list: body], body possibly `if (...) {...}`
        head, source, body = children[0], children[-2], children[-1]
        names = [_text(child) for child in head.named_children] if head.type != "identifier" else [_text(head)]
        items = self.eval(source, scope)
        if not isinstance(items, list):
            return Expression(_text(node))
        result = []
        for index, item in enumerate(items):
            local = {**scope, names[0]: item}
            if len(names) > 1:
                local[names[1]] = index
            if body.type == "if_statement":
                condition = self.eval(body.named_children[0], local)
                if condition is False:
                    continue
                result.append(self.eval(body.named_children[-1], local))
            else:
                result.append(self.eval(body, local))
        return result

    def modules(self) -> dict[str, dict[str, Any]]:
        """Module declarations: ``{name: {"path": Path, "params": {...}, "condition": ...}}``."""
        found: dict[str, dict[str, Any]] = {}
        for node in self.root.named_children:
            if node.type != "module_declaration":
                continue
            name_node, path_node, body = node.named_children[0], node.named_children[1], node.named_children[-1]
            condition: Any = True
            if body.type == "if_statement":
                condition = self.eval(body.named_children[0], {})
                body = body.named_children[-1]
            declaration = self.eval(body, {}) if body.type == "object" else {}
            found[_text(name_node)] = {
                "path": (self.path.parent / str(literal(path_node))).resolve(),
                "params": declaration.get("params", {}),
                "condition": condition,
                "dependsOn": declaration.get("dependsOn", []),
            }
        return found

    def decorators(self, parameter: str) -> dict[str, Any]:
        """A parameter's decorators, name to evaluated argument (``@minValue(40)`` → ``{"minValue": 40}``)."""
        nodes = self.root.named_children
        for position, node in enumerate(nodes):
            if node.type == "parameter_declaration" and _text(node.named_children[0]) == parameter:
                previous = nodes[position - 1] if position else None
                found: dict[str, Any] = {}
                if previous is not None and previous.type == "decorators":
                    for decorator in previous.named_children:
                        call = decorator.named_children[0]
                        if call.type != "call_expression":
                            continue
                        arguments = [c for c in call.named_children[1].named_children if c.type != "comment"]
                        found[_text(call.named_children[0])] = (
                            self.eval(arguments[0], {})
                            if len(arguments) == 1
                            else [self.eval(a, {}) for a in arguments]
                        )
                return found
        raise KeyError(f"{self.path.name} declares no parameter {parameter}")


@dataclass(frozen=True)
class Resource:
    symbol: str
    type: str
    body: Node
    path: Path

    @property
    def text(self) -> str:
        return _text(self.body)


def resources(path: Path) -> list[Resource]:
    """Top-level resource declarations of one file (existing ones included), with their body nodes."""
    found = []
    for node in parse(path).named_children:
        if node.type != "resource_declaration":
            continue
        symbol, type_node = node.named_children[0], node.named_children[1]
        found.append(Resource(_text(symbol), str(literal(type_node)).split("@", 1)[0], node.named_children[-1], path))
    return found


def object_properties(node: Node) -> dict[str, Node]:
    """The property nodes of the object a resource body holds (through ``[for ...]`` and ``if (...)``)."""
    while node.type in ("for_statement", "if_statement"):
        node = node.named_children[-1]
    if node.type != "object":
        return {}
    return {
        str(literal(key) if key.type == "string" else _text(key)): value
        for key, value in _property_nodes(node)
        if value is not None
    }


def _unescape(sequence: str) -> str:
    return {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}.get(sequence, sequence)


def variables(path: Path = MAIN, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Top-level ``var`` declarations of a Bicep file, evaluated with :class:`Evaluator`."""
    return Evaluator(path, params).variables()


# --- Names: what the Bicep compiler resolves before anything is deployed -------------------------------------------

# Bicep's built-in functions and decorators, as far as infra/ calls them. A call to any other name that the file does
# not declare (func, import) is reported, so a new built-in is added here on purpose (and an unused one is removed,
# see test_bicep_names.py).
BICEP_FUNCTIONS = frozenset(
    {
        "concat",
        "empty",
        "environment",
        "guid",
        "items",
        "join",
        "loadJsonContent",
        "replace",
        "resourceGroup",
        "split",
        "string",
        "subscription",
        "subscriptionResourceId",
        "tenant",
        "toLower",
        "union",
        "uniqueString",
    }
)
BICEP_DECORATORS = frozenset({"allowed", "description", "maxLength", "maxValue", "minLength", "minValue", "secure"})
# `az.resourceGroup()`, `sys.concat()`: the namespaces that qualify built-ins.
BICEP_NAMESPACES = frozenset({"az", "sys"})
REGISTRY_PREFIXES = ("br:", "br/", "ts:", "ts/")
# Top-level declarations whose children after the name see every parameter, variable, resource and module.
DECLARATIONS = frozenset(
    {
        "variable_declaration",
        "resource_declaration",
        "module_declaration",
        "output_declaration",
        "metadata_declaration",
        "type_declaration",
    }
)


@dataclass(frozen=True)
class NameProblem:
    path: Path
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}:{self.column}: {self.message}"


def _problem(path: Path, node: Node, message: str) -> NameProblem:
    return NameProblem(path, node.start_point[0] + 1, node.start_point[1] + 1, message)


class _Names:
    """Resolve every reference of one file the way the compiler's binder does (BCP057 and friends)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = parse(path)
        self.problems: list[NameProblem] = []
        self.params: set[str] = set()
        self.values: set[str] = set()  # params, vars, resources, modules, imported symbols and namespaces
        self.functions: set[str] = set()  # `func` declarations and imported symbols
        self.types: set[str] = set()  # `type` declarations and imported symbols
        for node in self.root.named_children:
            kind = node.type
            if kind in ("parameter_declaration", "variable_declaration", "resource_declaration", "module_declaration"):
                self.values.add(_text(node.named_children[0]))
                if kind == "parameter_declaration":
                    self.params.add(_text(node.named_children[0]))
            elif kind == "type_declaration":
                self.types.add(_text(node.named_children[0]))
            elif kind == "user_defined_function":
                self.functions.add(_text(node.child_by_field_name("name") or node.named_children[0]))
            elif kind == "import_functionality":
                imported = _imported_names(node)
                self.values |= imported
                self.functions |= imported
                self.types |= imported
        # Outputs and metadata are not symbols other declarations can reference.

    def check(self) -> list[NameProblem]:
        everything = frozenset(self.values)
        for node in self.root.named_children:
            kind = node.type
            rest = node.named_children[1:]
            if kind == "parameter_declaration":
                # A parameter's default may reference other parameters only (BCP072).
                for child in rest:
                    self.walk(child, frozenset(), frozenset(self.params))
            elif kind in DECLARATIONS:
                for child in rest:
                    self.walk(child, frozenset(), everything)
            elif kind == "decorators":
                self.walk(node, frozenset(), everything)
            elif kind == "user_defined_function":
                names = frozenset(
                    _text(parameter.named_children[0])
                    for child in rest
                    if child.type == "parameters"
                    for parameter in child.named_children
                    if parameter.type == "parameter"
                )
                for child in rest:
                    if child.type == "parameters":
                        for parameter in child.named_children:
                            for type_node in parameter.named_children[1:]:
                                self.walk(type_node, names, everything)
                    else:
                        self.walk(child, names, everything)
        return self.problems

    def walk(self, node: Node, local: frozenset[str], top: frozenset[str]) -> None:
        kind = node.type
        if node.is_missing or kind == "ERROR":
            return  # a syntax error, reported by test_bicep_syntax.py
        if kind == "identifier":
            name = _text(node)
            if name not in local and name not in top and name not in BICEP_NAMESPACES:
                message = (
                    f"'{name}' is not a parameter, and a parameter default may reference parameters only"
                    if name in self.values
                    else f"'{name}' is not declared in this file"
                )
                self.problems.append(_problem(self.path, node, message))
        elif kind == "type":
            self._walk_type(node)
        elif kind == "call_expression":
            function = node.child_by_field_name("function") or node.named_children[0]
            self._call(node, function, local, top)
            for argument in (node.child_by_field_name("arguments") or node).named_children:
                if argument != function:
                    self.walk(argument, local, top)
        elif kind in ("member_expression", "resource_expression"):
            # `.property` and `parent::child` name members, not symbols of this scope.
            self.walk(node.child_by_field_name("object") or node.named_children[0], local, top)
        elif kind == "object":
            # A nested resource's symbol is visible in its parent's body.
            nested = frozenset(
                _text(prop.named_children[0].named_children[0])
                for prop in node.named_children
                if prop.type == "object_property" and prop.named_children[0].type == "resource_declaration"
            )
            for child in node.named_children:
                self.walk(child, local | nested, top)
        elif kind == "object_property":
            key, *values = node.named_children
            if key.type == "resource_declaration":
                for child in key.named_children[1:]:
                    self.walk(child, local, top)
            elif key.type == "string":
                self.walk(key, local, top)  # an interpolated key references names
            for child in values:
                self.walk(child, local, top)
        elif kind == "for_statement":
            header, *rest = node.named_children
            if header.type == "for_loop_parameters":
                names = frozenset(_text(child) for child in header.named_children)
            else:
                names = frozenset({_text(header)})
            body = node.child_by_field_name("body") or rest[-1]
            for child in rest:
                # The item and index exist in the loop body only, not in the list it iterates.
                self.walk(child, local | names if child == body else local, top)
        elif kind == "lambda_expression":
            head, body = node.named_children[0], node.named_children[-1]
            heads = head.named_children if head.type == "parenthesized_expression" else [head]
            self.walk(body, local | frozenset(_text(h) for h in heads if h.type == "identifier"), top)
        elif kind in ("resource_declaration", "module_declaration"):
            for child in node.named_children[1:]:
                self.walk(child, local, top)
        elif kind not in ("comment", "property_identifier"):
            for child in node.named_children:
                self.walk(child, local, top)

    def _call(self, node: Node, function: Node, local: frozenset[str], top: frozenset[str]) -> None:
        decorator = node.parent is not None and node.parent.type == "decorator"
        known = BICEP_DECORATORS if decorator else BICEP_FUNCTIONS
        if function.type == "member_expression":
            target = function.child_by_field_name("object") or function.named_children[0]
            if target.type == "identifier" and _text(target) in BICEP_NAMESPACES:
                name = _text(function.child_by_field_name("property") or function.named_children[-1])
                if name not in known:
                    self.problems.append(_problem(self.path, function, f"unknown function '{_text(function)}'"))
            else:
                self.walk(function, local, top)  # a resource function such as `account.listKeys()`
        elif function.type == "identifier":
            name = _text(function)
            if name not in known and name not in self.functions:
                what = "decorator" if decorator else "function"
                self.problems.append(_problem(self.path, function, f"unknown {what} '{name}'"))
        else:
            self.walk(function, local, top)

    def _walk_type(self, node: Node) -> None:
        if node.is_missing or node.type == "ERROR":
            return
        if node.type == "identifier":
            if _text(node) not in self.types:
                self.problems.append(_problem(self.path, node, f"type '{_text(node)}' is not declared in this file"))
            return
        children = node.named_children
        if node.type == "object_property":
            children = children[1:]  # the key
        for child in children:
            self._walk_type(child)


def _imported_names(node: Node) -> set[str]:
    """Local names an ``import`` binds: ``{a, b as c}`` binds a and c; ``* as ns`` binds ns."""
    names: set[str] = set()
    children = node.children
    for position, child in enumerate(children):
        if child.type != "identifier":
            continue
        aliased = position + 1 < len(children) and children[position + 1].type == "as"
        if not aliased:
            names.add(_text(child))
    return names


def undeclared_names(path: Path) -> list[NameProblem]:
    """References in one file that the file does not declare, and calls to unknown functions or decorators."""
    return _Names(path).check()


def _module_parameters(path: Path) -> dict[str, bool]:
    """A module's parameters, name to whether a caller must pass it (no default and not nullable)."""
    found = {}
    for node in parse(path).named_children:
        if node.type == "parameter_declaration":
            name, type_node, *default = node.named_children
            nullable = any(child.type == "nullable_type" for child in type_node.named_children)
            found[_text(name)] = not default and not nullable
    return found


def module_argument_problems(path: Path) -> list[NameProblem]:
    """Module calls that pass a parameter the module does not declare, or omit one it requires."""
    problems = []
    for node in parse(path).named_children:
        if node.type != "module_declaration":
            continue
        name_node, source_node, body = node.named_children[0], node.named_children[1], node.named_children[-1]
        source = literal(source_node)
        symbol = _text(name_node)
        if not isinstance(source, str) or source.startswith(REGISTRY_PREFIXES):
            problems.append(_problem(path, source_node, f"module {symbol}: cannot read {_text(source_node)} offline"))
            continue
        target = (path.parent / source).resolve()
        if not target.is_file():
            problems.append(_problem(path, source_node, f"module {symbol}: {source} does not exist"))
            continue
        declared = _module_parameters(target)
        arguments = object_properties(body).get("params")
        passed: dict[str, Node] = {}
        if arguments is not None and arguments.type != "object":
            problems.append(_problem(path, arguments, f"module {symbol}: params is not an object literal"))
            continue
        for prop in arguments.named_children if arguments is not None else []:
            if prop.type == "object_property":
                key = prop.named_children[0]
                passed[str(literal(key)) if key.type == "string" else _text(key)] = key
        for name, key in passed.items():
            if name not in declared:
                problems.append(_problem(path, key, f"module {symbol}: {source} declares no parameter '{name}'"))
        missing = sorted(name for name, required in declared.items() if required and name not in passed)
        if missing:
            problems.append(
                _problem(path, name_node, f"module {symbol}: required parameter(s) of {source} not passed: {missing}")
            )
    return problems
