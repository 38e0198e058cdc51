"""Derived numeric features as small expressions over columns, parsed without `eval`.

The grammar (spec `features.derived: {name: expression}`), validated when the spec is loaded:

    expression := term (("+" | "-") term)*
    term       := factor (("*" | "/") factor)*
    factor     := number | column | "-" factor | "(" expression ")" | call
    call       := "log1p(" expression ")"
                | "clip(" expression "," number "," number ")"
                | "missing(" column "," number ")"       # the column with that sentinel value as null

A parsed expression is a tree of tuples: ``("num", 1.0)``, ``("col", "tenure")``,
``("neg", x)``, ``(op, left, right)`` for ``+ - * /``, ``("log1p", x)``, ``("clip", x, low, high)``,
``("missing", column, sentinel)``. This module is pure Python, so a DAG file can validate a spec
without importing numpy; `include.training.preprocess.DerivedFeatures` computes the values.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

Node = tuple[Any, ...]

_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)|([A-Za-z_][A-Za-z0-9_]*)|(.))")
FUNCTIONS = ("log1p", "clip", "missing")


class ExpressionError(ValueError):
    """An expression that does not parse, with the position and what was expected."""


def parse(text: str) -> Node:
    """The tree of `text` (module doc).

    Raises:
        ExpressionError: naming the position and the token that does not fit.
    """
    parser = _Parser(text)
    node = parser.expression()
    if parser.peek() is not None:
        parser.fail("an operator or the end")
    return node


def columns_of(node: Node) -> list[str]:
    """The columns an expression reads, in order of first use."""
    found: list[str] = []

    def walk(item: Node) -> None:
        kind = item[0]
        if kind in ("col", "missing"):
            if item[1] not in found:
                found.append(item[1])
            return
        for child in item[1:]:
            if isinstance(child, tuple):
                walk(child)

    walk(node)
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                break
            number, name, symbol = match.groups()
            if number is not None:
                self.tokens.append(("num", number, match.start(1)))
            elif name is not None:
                self.tokens.append(("name", name, match.start(2)))
            elif symbol is not None:
                self.tokens.append(("sym", symbol, match.start(3)))
            position = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def fail(self, expected: str) -> NoReturn:
        token = self.peek()
        where = f"at {token[2]} ({token[1]!r})" if token else "at the end"
        raise ExpressionError(f"{self.text!r}: expected {expected} {where}")

    def take(self, symbol: str) -> None:
        token = self.peek()
        if token is None or token[:2] != ("sym", symbol):
            self.fail(repr(symbol))
        self.index += 1

    def expression(self) -> Node:
        node = self.term()
        while (token := self.peek()) is not None and token[:2] in (("sym", "+"), ("sym", "-")):
            self.index += 1
            node = (token[1], node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while (token := self.peek()) is not None and token[:2] in (("sym", "*"), ("sym", "/")):
            self.index += 1
            node = (token[1], node, self.factor())
        return node

    def number(self) -> float:
        sign = 1.0
        token = self.peek()
        if token is not None and token[:2] == ("sym", "-"):
            self.index, sign = self.index + 1, -1.0
            token = self.peek()
        if token is None or token[0] != "num":
            self.fail("a number")
        self.index += 1
        return sign * float(token[1])

    def factor(self) -> Node:
        token = self.peek()
        if token is None:
            self.fail("a number, a column or '('")
        kind, value, _ = token
        if kind == "num":
            self.index += 1
            return ("num", float(value))
        if (kind, value) == ("sym", "-"):
            self.index += 1
            return ("neg", self.factor())
        if (kind, value) == ("sym", "("):
            self.index += 1
            node = self.expression()
            self.take(")")
            return node
        if kind != "name":
            self.fail("a number, a column or '('")
        self.index += 1
        following = self.peek()
        if following is None or following[:2] != ("sym", "("):
            if value in FUNCTIONS:
                self.fail(f"'(' after {value}")
            return ("col", value)
        return self.call(value)

    def call(self, value: str) -> Node:
        if value not in FUNCTIONS:
            self.fail(f"one of the functions {list(FUNCTIONS)}, not {value!r}")
        self.index += 1
        if value == "log1p":
            node: Node = ("log1p", self.expression())
        elif value == "clip":
            inner = self.expression()
            self.take(",")
            low = self.number()
            self.take(",")
            high = self.number()
            if low > high:
                raise ExpressionError(f"{self.text!r}: clip's low {low} is above its high {high}")
            node = ("clip", inner, low, high)
        else:
            column = self.peek()
            if column is None or column[0] != "name" or column[1] in FUNCTIONS:
                self.fail("a column name")
            self.index += 1
            self.take(",")
            node = ("missing", column[1], self.number())
        self.take(")")
        return node
