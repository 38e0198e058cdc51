"""Derived numeric features as small expressions over columns, parsed without `eval`.

The grammar (spec `features.derived: {name: expression}`), validated when the spec is loaded, from
the loosest binding to the tightest:

    expression  := conjunction ("or" conjunction)*
    conjunction := negation ("and" negation)*
    negation    := "not" negation | comparison
    comparison  := sum [("<" | "<=" | ">" | ">=" | "==" | "!=") sum]     # no chains: a < b < c
    sum         := term (("+" | "-") term)*
    term        := factor (("*" | "/") factor)*
    factor      := "-" factor | number | column | "(" expression ")" | call
    call        := function "(" expression ("," expression)* ")"

A name followed by "(" is a function (`FUNCTIONS`, each with its number of arguments), any other name
a column; `and`, `or` and `not` are words of the grammar. `clip(x, low, high)` takes numbers for its
bounds and `missing(column, sentinel)` a column and a number.

A parsed expression is a tree of tuples: ``("num", 1.0)``, ``("col", "tenure")``, ``("neg", x)``,
``(op, left, right)`` for ``+ - * /``, the comparisons, ``and`` and ``or``, ``("not", x)``,
``(function, x)`` for the one-argument functions, ``("min", a, b)``, ``("max", a, b)``,
``("where", condition, a, b)``, ``("clip", x, low, high)``, ``("missing", column, sentinel)``. This
module is pure Python, so a DAG file can validate a spec without importing numpy;
`include.training.preprocess.DerivedFeatures` computes the values.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

Node = tuple[Any, ...]

_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)|([A-Za-z_][A-Za-z0-9_]*)|(<=|>=|==|!=|\S))")
UNARY = ("abs", "ceil", "exp", "floor", "log", "log1p", "sign", "sqrt")
# Function -> its number of arguments.
FUNCTIONS: dict[str, int] = {
    **dict.fromkeys(UNARY, 1),
    "min": 2,
    "max": 2,
    "where": 3,
    "clip": 3,
    "missing": 2,
}
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
WORDS = ("and", "or", "not")
# What a user coming from Python, SQL or C may write instead, and what this grammar says.
_HINTS = {"=": "'==' compares", "&": "write 'and'", "|": "write 'or'", "!": "write 'not'", "^": "no powers"}

Token = tuple[str, str, int]


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
        self.tokens: list[Token] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                break  # only trailing white space is left
            number, name, symbol = match.groups()
            if number is not None:
                self.tokens.append(("num", number, match.start(1)))
            elif name is not None:
                kind = "word" if name in WORDS else "name"
                self.tokens.append((kind, name, match.start(2)))
            elif symbol is not None:
                self.tokens.append(("sym", symbol, match.start(3)))
            position = match.end()
        self.index = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def fail(self, expected: str, token: Token | None = None) -> NoReturn:
        token = token or self.peek()
        where = f"at {token[2]} ({token[1]!r})" if token else "at the end"
        hint = _HINTS.get(token[1]) if token and token[0] == "sym" else None
        raise ExpressionError(f"{self.text!r}: expected {expected} {where}{f': {hint}' if hint else ''}")

    def refuse(self, problem: str, token: Token) -> NoReturn:
        raise ExpressionError(f"{self.text!r}: {problem} at {token[2]} ({token[1]!r})")

    def at(self, kind: str, *values: str) -> Token | None:
        """The next token when it is of `kind` and one of `values` (consumed), else None."""
        token = self.peek()
        if token is not None and token[0] == kind and token[1] in values:
            self.index += 1
            return token
        return None

    def take(self, symbol: str) -> None:
        if self.at("sym", symbol) is None:
            self.fail(repr(symbol))

    def expression(self) -> Node:
        node = self.conjunction()
        while self.at("word", "or"):
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.at("word", "and"):
            node = ("and", node, self.negation())
        return node

    def negation(self) -> Node:
        if self.at("word", "not"):
            return ("not", self.negation())
        return self.comparison()

    def comparison(self) -> Node:
        node = self.sum()
        if (token := self.at("sym", *COMPARISONS)) is not None:
            node = (token[1], node, self.sum())
            if (chained := self.at("sym", *COMPARISONS)) is not None:
                self.refuse("comparisons do not chain (write 'a < b and b < c')", chained)
        return node

    def sum(self) -> Node:
        node = self.term()
        while (token := self.at("sym", "+", "-")) is not None:
            node = (token[1], node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while (token := self.at("sym", "*", "/")) is not None:
            node = (token[1], node, self.factor())
        return node

    def factor(self) -> Node:
        token = self.peek()
        if token is None:
            self.fail("a number, a column or '('")
        kind, value, _ = token
        if kind == "num":
            self.index += 1
            return ("num", float(value))
        if self.at("sym", "-"):
            return ("neg", self.factor())
        if self.at("sym", "("):
            node = self.expression()
            self.take(")")
            return node
        if kind != "name":
            self.fail("a number, a column or '('")
        self.index += 1
        if self.at("sym", "(") is None:
            return ("col", value)
        return self.call(token)

    def call(self, name: Token) -> Node:
        function = name[1]
        if function not in FUNCTIONS:
            self.fail(f"one of the functions {sorted(FUNCTIONS)}, not {function!r}", name)
        nodes: list[Node] = []
        if self.at("sym", ")") is None:
            nodes.append(self.expression())
            while self.at("sym", ","):
                nodes.append(self.expression())
            if self.at("sym", ")") is None:
                self.fail("',' or ')'")
        wanted = FUNCTIONS[function]
        if len(nodes) != wanted:
            plural = "s" if wanted > 1 else ""
            self.refuse(f"{function} takes {wanted} argument{plural} ({len(nodes)} given)", name)
        if function == "clip":
            low = self.constant(nodes[1], "clip's low bound", name)
            high = self.constant(nodes[2], "clip's high bound", name)
            if low > high:
                raise ExpressionError(f"{self.text!r}: clip's low {low} is above its high {high}")
            return ("clip", nodes[0], low, high)
        if function == "missing":
            if nodes[0][0] != "col":
                self.fail("a column name as missing's first argument", name)
            return ("missing", nodes[0][1], self.constant(nodes[1], "missing's sentinel", name))
        return (function, *nodes)

    def constant(self, node: Node, what: str, name: Token) -> float:
        if node[0] == "num":
            return node[1]
        if node[0] == "neg" and node[1][0] == "num":
            return -node[1][1]
        self.refuse(f"{what} must be a number", name)
