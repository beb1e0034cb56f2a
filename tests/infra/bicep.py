"""Offline Bicep reading for the infra tests: tree-sitter-bicep syntax trees and literal values."""

from __future__ import annotations

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


def literal(node: Node) -> Any:
    """Evaluate a literal (object, array, string, number, boolean, null); anything else → Expression."""
    kind = node.type
    if kind == "object":
        result: dict[str, Any] = {}
        for prop in node.named_children:
            if prop.type != "object_property":
                continue
            key_node, *rest = prop.named_children
            key = literal(key_node) if key_node.type == "string" else _text(key_node)
            result[str(key)] = literal(rest[-1]) if rest else None
        return result
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


def variables(path: Path = MAIN) -> dict[str, Any]:
    """Top-level ``var`` declarations of a Bicep file, evaluated with :func:`literal`."""
    found: dict[str, Any] = {}
    for node in parse(path).named_children:
        if node.type != "variable_declaration":
            continue
        name_node, *rest = node.named_children
        found[_text(name_node)] = literal(rest[-1])
    return found
