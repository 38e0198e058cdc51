"""API fuzz: seeded requests against the platform's two HTTP APIs, in process; 0 answers of 500.

The world is real (`prepare`): the churn sources seeded, 22 days ingested, a random forest trained
through the training stage's own functions and promoted by the gate, a day scored. Against it:

- the real-time service (`include.serving.app.create_app` on `ChampionSource.from_settings()`),
  twice: on the compiled path (`auto`) and on scikit-learn's (`sklearn`);
- the UI's JSON API and pages (`include.ui.app.create_app`) with Airflow's real simple auth
  manager, which signs the tokens (its metadata database must be migrated: the caller's part).

Each is called through FastAPI's `TestClient` (server exceptions become 500 answers, redirects are
not followed). Every request is generated from one seed (`random.Random`): a route (or a path no
route takes), an auth state, and an input family: valid, missing, extra, wrong-typed, out of the
spec, huge, non-finite, deeply nested, not UTF-8, malformed, path-traversing, wrong method or
content type. Each answer is checked:

- `server_errors`: any 5xx (the figure that counts);
- `unexpected_status`: a status the request's case does not allow (401 for every protected route
  without a valid token; 200 for a valid row; 422 naming the field a mutation broke; 404 for a use
  case a user may not read, as for an unknown one);
- `unnamed_refusals`: a 4xx whose JSON body names no reason (`detail`, or each error's message);
- `path_leaks`: a server path (the world's folder, the code's) or a traceback in a refusal, or in
  any answer to a request without a valid token.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tools.reliability.world import World

REPO = Path(__file__).resolve().parents[2]
SERVING_TOKEN = "fuzz-serving-token-23"
FIRST_DAY = dt.date(2025, 3, 1)
TRAIN_DAY = dt.date(2025, 3, 21)  # a 21-day window: 03-01 .. 03-21
SCORED_DAY = dt.date(2025, 3, 22)
MAX_BODY = 1_048_576  # the service's default body limit (ServingSettings)
MAX_ROWS = 1000
OK, REFUSED = frozenset({200}), frozenset({422})
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")


@dataclass(frozen=True)
class Req:
    """One generated request, and the statuses its case allows."""

    api: str  # serving | ui
    target: str  # the app: serving-auto, serving-sklearn, ui
    family: str
    auth: str
    method: str
    path: str
    allowed: frozenset[int]
    headers: tuple[tuple[str, str | bytes], ...] = ()
    content: bytes | None = None
    streamed: bool = False
    field: str | None = None  # a field a 422 must name (a mutation of one field)

    def summary(self) -> str:
        body = "" if self.content is None else f" body {self.content[:80]!r}"
        broken = "" if self.field is None else f" (field {self.field[:40]!r})"
        return f"{self.target} {self.family}/{self.auth}{broken}: {self.method} {self.path[:120]}{body}"


@dataclass
class FuzzFigures:
    requests: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    families: dict[str, int] = field(default_factory=dict)
    auth_states: dict[str, int] = field(default_factory=dict)
    server_errors: int = 0
    unexpected_status: int = 0
    unnamed_refusals: int = 0
    path_leaks: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        figures = asdict(self)
        for api, count in self.requests.items():
            figures[f"requests_{api}"] = count
        figures["requests_total"] = sum(self.requests.values())
        return figures


# ---------------------------------------------------------------------------------------------
# The world


def prepare(world: World) -> None:
    """Ingest 22 days, train a random forest on the first 21 (the gate promotes it), score the last."""
    from tools.reliability import tasks

    for n in range((SCORED_DAY - FIRST_DAY).days + 1):
        tasks.ingest((FIRST_DAY + dt.timedelta(days=n)).isoformat(), "fuzz")
    trained = tasks.train(
        TRAIN_DAY.isoformat(), "fuzz", estimators=["random_forest"], n_trials=1, window_days=21
    )
    if not trained["passed"]:
        raise RuntimeError(f"the fuzz world's champion did not pass the gate: {trained}")
    tasks.score(SCORED_DAY.isoformat(), "fuzz")


def base_rows(spec) -> list[dict[str, Any]]:
    """The scored day's rows as a client sends them (entity id and features), JSON-plain."""
    from include.config import Settings
    from include.io.connections import store_for
    from include.io.lake import read_days
    from include.serving.rows import frame_to_rows

    lake = store_for(Settings.from_env().lake_conn_id)
    frame, _ = read_days(lake, "raw", spec.name, SCORED_DAY, SCORED_DAY)
    return json.loads(json.dumps(frame_to_rows(frame, spec), default=float))


# ---------------------------------------------------------------------------------------------
# The service's requests

SERVING_AUTH = {  # state -> Authorization header (None: no header)
    "none": None,
    "wrong": "Bearer not-the-token",
    "empty_bearer": "Bearer ",
    "basic": "Basic ZnV6ejpmdXp6",
    "other_scheme": f"Token {SERVING_TOKEN}",
    "not_latin1": b"Bearer \xff\xfe\x00",
    "valid": f"Bearer {SERVING_TOKEN}",
    "valid_lower_scheme": f"bearer {SERVING_TOKEN}",
}
TOKEN_STATES = ("valid", "valid_lower_scheme")
ODD_NAMES = (  # use case names (path segments, as sent): unknown, traversing, huge, not UTF-8
    "fraud",
    "CHURN",
    "churn ",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%2f..%2f..%2fetc%2fpasswd",
    "..%5c..%5cwindows",
    "%252e%252e%252f",
    "churn%00",
    "%ff%fe",
    "%c3%28",
    "%ed%a0%80",
    "x" * 5000,
    quote("ü" * 300),
    "%20",
    "churn%2fscore",
    "{use_case}",
    "$(id)",
    quote("<script>alert(1)</script>"),
)


def _json(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _wrong_types(column) -> list[Any]:
    text: list[Any] = [[], {}, [1], {"a": 1}, True, False]
    if column.type == "string":
        text += [0, 1, -1.5, 1e300]
    else:
        text += ["1", "", "12.5", "NaN", "Infinity", "0x10"]
    if column.type == "float":
        text.remove(True)  # a bool is refused as a float too; kept one of them
    if not column.nullable:
        text.append(None)
    return text


def _bad_values(column) -> list[Any]:
    """Values of the column's JSON type that its spec refuses (ingest would quarantine them)."""
    bad: list[Any] = []
    if column.type in ("integer", "float"):
        if column.min is not None:
            bad += [column.min - 1, -(10**6)]
        if column.max is not None:
            bad += [column.max + 1, 10**9]
        if column.type == "float":
            bad += [1e300, -1e300, 1e39, 3.5e38, -3.5e38, 1.7976931348623157e308]
        if column.type == "integer":
            bad += [2**53, -(2**53), 2**63, 2**64, 10**30]
        if column.allowed:
            bad += [max(v for v in column.allowed if isinstance(v, int | float)) + 1]
    elif column.type == "string":
        bad += ["", " ", "\t", "\u00a0", "\u0000", "\ud800", "a\udfffb", "x" * 10_000]
        if column.allowed:
            first = str(column.allowed[0])
            bad += [f" {first}", f"{first} ", first.upper() + "!", first.lower() + "?", "Other"]
        if column.pattern:
            bad += ["not-matching", "../../etc/passwd", "0000-AAAAAA", "%s%s%s"]
    return bad


class ServingCases:
    """The service's request families; each returns a case and the field it must name, if any."""

    def __init__(self, spec, rows: list[dict[str, Any]]) -> None:
        self.spec = spec
        self.rows = rows
        self.features = list(spec.features.all)

    def row(self, rng: random.Random, with_id: bool | None = None) -> dict[str, Any]:
        row = dict(rng.choice(self.rows))
        if not (rng.random() < 0.5 if with_id is None else with_id):
            row.pop(self.spec.entity_id, None)
        return row

    def body(self, rng: random.Random, n: int | None = None) -> list[dict[str, Any]]:
        n = n or rng.choice((1, 1, 1, 2, 3, 5, 20))
        return [self.row(rng) for _ in range(n)]

    # Families: each returns (method, path, content, content type, allowed with a valid token, field)

    def valid(self, rng):
        return "POST", "/v1/churn/score", _json({"rows": self.body(rng)}), None, OK, None

    def valid_edges(self, rng):
        rows = self.body(rng, rng.choice((1, 2, 4)))
        edge = rng.choice(rows)
        for name in self.features:
            column = self.spec.columns[name]
            if column.type == "float" and rng.random() < 0.5:
                edge[name] = rng.choice([0.0, -0.0, 5e-324, 3.4e38, 3.4028234e38, 1, 0])
            elif column.type == "integer" and column.allowed is None and rng.random() < 0.5:
                edge[name] = rng.choice([int(column.min or 0), int(column.max or 0)])
            elif column.nullable and rng.random() < 0.5:
                edge[name] = None
        return "POST", "/v1/churn/score", _json({"rows": rows}), None, OK, None

    def missing(self, rng):
        rows = self.body(rng)
        k = rng.randrange(len(rows))
        gone = rng.sample(self.features, rng.choice((1, 1, 2, len(self.features))))
        rows[k] = {n: v for n, v in rows[k].items() if n not in gone}
        return "POST", "/v1/churn/score", _json({"rows": rows}), None, REFUSED, gone[0]

    def extra(self, rng):
        rows = self.body(rng)
        name = rng.choice(
            ["colour", "", "__proto__", "constructor", "Churn", "tenure ", "x" * 1000, "ü", "\u0000", "1"]
        )
        rows[rng.randrange(len(rows))][name] = rng.choice([1, "x", None, [], {}])
        return "POST", "/v1/churn/score", _json({"rows": rows}), None, REFUSED, name

    def wrong_type(self, rng):
        rows = self.body(rng)
        name = rng.choice(self.features)
        rows[rng.randrange(len(rows))][name] = rng.choice(_wrong_types(self.spec.columns[name]))
        return "POST", "/v1/churn/score", _json({"rows": rows}), None, REFUSED, name

    def out_of_spec(self, rng):
        rows = self.body(rng)
        name = rng.choice([*self.features, self.spec.entity_id])
        values = _bad_values(self.spec.columns[name]) or ["never-valid"]
        rows[rng.randrange(len(rows))][name] = rng.choice(values)
        return "POST", "/v1/churn/score", _json({"rows": rows}), None, REFUSED, name

    def huge(self, rng):
        """A number far beyond float32 (or an integer field's range), a text of up to 200 k characters,
        or as many rows as a request may hold."""
        kind = rng.choice(("number", "number", "text", "rows"))
        if kind == "rows":
            return "POST", "/v1/churn/score", _json({"rows": self.body(rng, MAX_ROWS)}), None, OK, None
        rows = self.body(rng)
        if kind == "number":
            name = rng.choice([n for n in self.features if self.spec.columns[n].type in ("integer", "float")])
            column = self.spec.columns[name]
            if column.type == "float":
                value: Any = rng.choice([1e39, 1e300, 1.7976931348623157e308, 3.5e38, 1e100])
            else:
                beyond = [int(column.max) * 1000 + 1] if column.max is not None else []
                value = rng.choice([2**31, 2**53, 2**63, 10**30, *beyond])
        else:
            name = rng.choice([n for n in self.features if self.spec.columns[n].type == "string"])
            value = rng.choice("xÿ€𝄞 ") * rng.choice((1_000, 10_000, 200_000))
        rows[rng.randrange(len(rows))][name] = value
        return "POST", "/v1/churn/score", _json({"rows": rows}), None, REFUSED, name

    def non_finite(self, rng):
        rows = self.body(rng)
        numeric = [n for n in self.features if self.spec.columns[n].type in ("integer", "float")]
        name = rng.choice(numeric)
        rows[rng.randrange(len(rows))][name] = "@@VALUE@@"
        literal = rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400])
        content = _json({"rows": rows}).replace(b'"@@VALUE@@"', literal.encode())
        return "POST", "/v1/churn/score", content, None, REFUSED, name

    def deep(self, rng):
        kind = rng.choice(("field", "body", "rows", "body"))
        depth = rng.choice((2, 10, 100, 900, 1000, 5000, 50_000))
        if kind == "field":
            rows = self.body(rng)
            name = rng.choice(self.features)
            rows[0][name] = "@@VALUE@@"
            nested = (
                (b"[" * depth + b"]" * depth)
                if rng.random() < 0.5
                else (b'{"a":' * depth + b"1" + b"}" * depth)
            )
            content = _json({"rows": rows}).replace(b'"@@VALUE@@"', nested)
            # Deeper than the JSON reader goes, the body as a whole is refused (json_too_deep).
            return "POST", "/v1/churn/score", content, None, REFUSED, name if depth < 500 else None
        if kind == "rows":
            content = b'{"rows": ' + b"[" * depth + b"]" * depth + b"}"
        else:
            content = (
                b"[" * depth + b"]" * depth
                if rng.random() < 0.5
                else b'{"rows":' * depth + b"[]" + b"}" * depth
            )
        return "POST", "/v1/churn/score", content, None, REFUSED, None

    def not_utf8(self, rng):
        rows = self.body(rng)
        text_fields = [
            n for n in [*self.features, self.spec.entity_id] if self.spec.columns[n].type == "string"
        ]
        name = rng.choice(text_fields)
        rows[0][name] = "@@VALUE@@"
        bad = rng.choice(
            [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80abc", b"caf\xe9", b"\xf8\x88\x80\x80\x80"]
        )
        content = _json({"rows": rows}).replace(b"@@VALUE@@", bad)
        if rng.random() < 0.2:  # the whole body in another encoding
            encoding = rng.choice(("utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"))
            text = json.dumps({"rows": self.body(rng, 1)}, ensure_ascii=False) + rng.choice(("", "é", "ü€"))
            try:
                content = text.encode(encoding)
            except UnicodeEncodeError:
                content = text.encode("latin-1", errors="replace")
            # UTF-16 and UTF-32 are JSON's other encodings (Python's reader detects them): such a
            # body may be read and scored; the answer must still be 200 or a 422 naming why.
            return "POST", "/v1/churn/score", content, None, frozenset({200, 422}), None
        return "POST", "/v1/churn/score", content, None, REFUSED, None

    def shape(self, rng):
        bodies = [
            b"[]",
            b'"rows"',
            b"0",
            b"null",
            b"true",
            b"{}",
            b'{"rows": null}',
            b'{"rows": {}}',
            b'{"rows": "x"}',
            b'{"rows": []}',
            b'{"rows": [1, "a", null, [], true]}',
            _json({"rows": self.body(rng, 1), "debug": True}),
            _json({"ROWS": self.body(rng, 1)}),
            _json([{"rows": self.body(rng, 1)}]),
            _json({"rows": [self.row(rng) for _ in range(MAX_ROWS + 1)]}),
        ]
        return "POST", "/v1/churn/score", rng.choice(bodies), None, REFUSED, None

    def malformed(self, rng):
        good = _json({"rows": self.body(rng, 1)})
        bodies = [
            b"",
            good[: rng.randrange(1, len(good))],
            good + b"}",
            good + b" trailing",
            good.replace(b'"', b"'"),
            b'{"rows": [/* comment */]}',
            b'{"rows": [],}',
            b'{"rows": [{"tenure": 01}]}',
            b"\x00" * 10,
            bytes(rng.randrange(256) for _ in range(rng.choice((1, 10, 1000)))),
        ]
        return "POST", "/v1/churn/score", rng.choice(bodies), None, REFUSED, None

    def content_type(self, rng):
        kind = rng.choice(
            [
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=fuzz",
                "application/xml",
                "",
                "application/json; charset=latin-1",
                "application/vnd.api+json",
                "application/json; charset=utf-8",
                "APPLICATION/JSON",
                "application/json, text/plain",
            ]
        )
        base = kind.split(";")[0].strip().lower()
        sub = base.split("/")[-1]
        json_like = base.startswith("application/") and (sub == "json" or sub.endswith("+json"))
        content = _json({"rows": self.body(rng, 1)})
        return "POST", "/v1/churn/score", content, kind, OK if json_like else REFUSED, None

    def duplicate_keys(self, rng):
        row = self.row(rng, with_id=False)
        name = rng.choice([n for n in self.features if self.spec.columns[n].type == "integer"])
        last = rng.choice([row[name], -5])
        text = json.dumps({"rows": [row]})[:-3] + f', "{name}": {json.dumps(last)}' + "}]}"
        return "POST", "/v1/churn/score", text.encode(), None, OK if last == row[name] else REFUSED, None

    def query_and_headers(self, rng):
        query = rng.choice(
            ["?debug=1", "?rows=1&rows=2", "?" + "a=" + "b" * 10_000, "?%ff=%fe", "?engine=sklearn", "?x=%00"]
        )
        return "POST", "/v1/churn/score" + query, _json({"rows": self.body(rng)}), None, OK, None

    def use_case_path(self, rng):
        name = rng.choice(ODD_NAMES)
        method, route = rng.choice((("POST", "score"), ("GET", "model")))
        content = _json({"rows": self.body(rng, 1)}) if method == "POST" else None
        return method, f"/v1/{name}/{route}", content, None, frozenset({404}), None

    def model(self, rng):
        return "GET", "/v1/churn/model", None, None, OK, None

    def open_routes(self, rng):
        path = rng.choice(["/health", "/health?verbose=1", "/openapi.json", "/health?%ff"])
        return "GET", path, None, None, OK, None

    def wrong_method(self, rng):
        method, path = rng.choice(
            [
                ("GET", "/v1/churn/score"),
                ("PUT", "/v1/churn/score"),
                ("DELETE", "/v1/churn/score"),
                ("PATCH", "/v1/churn/score"),
                ("POST", "/v1/churn/model"),
                ("DELETE", "/v1/churn/model"),
                ("POST", "/health"),
                ("HEAD", "/health"),
                ("OPTIONS", "/v1/churn/score"),
                ("PUT", "/openapi.json"),
            ]
        )
        return method, path, None, None, frozenset({405}), None

    def unknown_path(self, rng):
        path = rng.choice(
            [
                "/v2/churn/score",
                "/v1/churn/score/extra",
                "/v1",
                "/",
                "/docs",
                "/redoc",
                "/admin",
                "/%ff",
                "/v1/churn/model/../../../etc/passwd",
                "/v1/churn/%2e%2e/%2e%2e/etc/passwd",
                "/..%2f..%2fetc%2fpasswd",
                "/v1//churn/score",
                "/" + "a" * 10_000,
            ]
        )
        return rng.choice(("GET", "POST")), path, None, None, frozenset({404, 405}), None

    def trailing_slash(self, rng):
        # Starlette redirects a path that differs only by its trailing slash (307), not followed here.
        path = rng.choice(["/v1/churn/score/", "/v1/churn/model/", "/health/"])
        return "GET" if "score" not in path else "POST", path, None, None, frozenset({307, 404, 405}), None

    def body_limit(self, rng):
        return "POST", "/v1/churn/score", b"[" + b" " * MAX_BODY + b"]", None, frozenset({413}), None


SERVING_FAMILIES: tuple[tuple[str, float], ...] = (
    ("valid", 12),
    ("valid_edges", 5),
    ("missing", 6),
    ("extra", 5),
    ("wrong_type", 9),
    ("out_of_spec", 12),
    ("huge", 6),
    ("non_finite", 5),
    ("deep", 6),
    ("not_utf8", 6),
    ("shape", 5),
    ("malformed", 5),
    ("content_type", 4),
    ("duplicate_keys", 2),
    ("query_and_headers", 3),
    ("use_case_path", 5),
    ("model", 3),
    ("open_routes", 3),
    ("wrong_method", 3),
    ("unknown_path", 3),
    ("trailing_slash", 1),
    ("body_limit", 1),
)


def serving_requests(spec, rows: list[dict[str, Any]], count: int, rng: random.Random) -> list[Req]:
    """`count` requests to the service, seeded by `rng`."""
    cases = ServingCases(spec, rows)
    names, weights = zip(*SERVING_FAMILIES, strict=True)
    auth_states, auth_weights = list(SERVING_AUTH), [4, 2, 1, 1, 1, 1, 18, 2]
    requests = []
    for _ in range(count):
        family = rng.choices(names, weights)[0]
        auth = rng.choices(auth_states, auth_weights)[0]
        method, path, content, content_type, allowed, name = getattr(cases, family)(rng)
        headers: list[tuple[str, str | bytes]] = []
        if SERVING_AUTH[auth] is not None:
            headers.append(("Authorization", SERVING_AUTH[auth]))
        if content is not None and content_type != "":
            headers.append(("Content-Type", content_type or "application/json"))
        streamed = family == "body_limit" and rng.random() < 0.5
        if content is not None and len(content) > MAX_BODY:  # a huge text's escapes can pass the limit
            family, allowed = "body_limit", frozenset({413})
        protected = path.startswith("/v1/")
        allowed = _serving_allowed(family, path, protected, auth in TOKEN_STATES, streamed, allowed)
        requests.append(
            Req(
                "serving",
                "serving-sklearn" if rng.random() < 0.25 else "serving-auto",
                family,
                auth,
                method,
                path,
                allowed,
                tuple(headers),
                content,
                streamed,
                name if allowed == REFUSED else None,
            )
        )
    return requests


def _serving_allowed(
    family: str, path: str, protected: bool, token: bool, streamed: bool, allowed: frozenset[int]
) -> frozenset[int]:
    """What a request may get, given its auth: the token is checked before anything of the body."""
    if family == "body_limit" and not streamed:
        return allowed  # a declared Content-Length over the limit: 413 before anything else
    if family in ("unknown_path", "wrong_method", "trailing_slash") or not protected or token:
        return allowed
    if family == "use_case_path":
        return frozenset({401, 404})  # 404 when the name holds a '/' (no route takes it), else 401
    return frozenset({401})


# ---------------------------------------------------------------------------------------------
# The UI's requests

UI_PRIVILEGED = ("viewer", "user", "op", "admin")
UI_NO_RIGHTS = ("no_role", "unknown_role", "role_not_a_name")
UI_UNAUTHENTICATED = ("none", "forged", "expired", "garbage", "empty", "alg_none")
# pydantic reads a path integer as Python does: "+1" is 1, "1_000" is 1000.
VERSIONS_OK = ("1", "+1", "01")
VERSIONS_UNKNOWN = ("2", "99", "2147483647", "1_000")
VERSIONS_BAD = (
    "0",
    "-1",
    "2147483648",
    "9223372036854775808",
    "1" + "0" * 40,
    "1.5",
    "1e3",
    "abc",
    "%20",
    "%ff",
    "%00",
    "0x10",
    "NaN",
    "inf",
    quote("١"),
    quote("１"),
)


class UiTokens:
    """Tokens for every auth state, signed by Airflow's auth manager (or forged)."""

    def __init__(self, manager) -> None:
        import jwt
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        def signed(role: str | None, **kwargs: Any) -> str:
            return manager.generate_jwt(SimpleAuthManagerUser(username=f"fuzz-{role}", role=role), **kwargs)

        self.tokens: dict[str, str | None] = {
            "none": None,
            "forged": jwt.encode({"sub": "admin", "role": "admin"}, "not-the-secret", algorithm="HS512"),
            "expired": signed("admin", expiration_time_in_seconds=-60),
            "garbage": "not-a-jwt",
            "empty": "",
            "alg_none": jwt.encode({"sub": "admin", "role": "admin"}, None, algorithm="none"),
            "no_role": signed(None),
            "unknown_role": signed("wizard"),
            "role_not_a_name": signed(["admin"]),  # validly signed, but no role name at all
            **{role: signed(role) for role in UI_PRIVILEGED},
        }


def ui_requests(routes: list[str], count: int, rng: random.Random) -> list[Req]:
    """`count` requests to the UI app, seeded by `rng` (tokens are attached when they are sent)."""
    states = [*UI_UNAUTHENTICATED, *UI_NO_RIGHTS, *UI_PRIVILEGED]
    weights = [3, 2, 2, 1, 1, 1, 2, 2, 1, 6, 3, 2, 3]
    requests = []
    for _ in range(count):
        auth = rng.choices(states, weights)[0]
        roll = rng.random()
        if roll < 0.07:
            requests.append(_ui_unknown_path(rng, auth))
            continue
        template = rng.choice(routes)
        name, known = ("churn", True) if rng.random() < 0.6 else (rng.choice(ODD_NAMES), False)
        version_kind = rng.choices(("ok", "unknown", "bad"), (5, 2, 3))[0]
        version = rng.choice(
            {"ok": VERSIONS_OK, "unknown": VERSIONS_UNKNOWN, "bad": VERSIONS_BAD}[version_kind]
        )
        path = template.replace("{use_case}", name).replace("{version}", version)
        method = "GET" if rng.random() < 0.9 else rng.choice(METHODS[1:])
        query = rng.choice(["", "", "", "?limit=-1", "?use_case=../../etc", "?%ff=1", "?x=" + "y" * 5000])
        content = None
        if rng.random() < 0.1:  # a body the GET routes never read
            content = rng.choice([b"\xff\xfe", b"[" * 10_000, b'{"version": 1}', bytes(range(256))])
        if method != "GET":
            family = "method"
        elif not known:
            family = "use_case"
        else:
            family = f"version_{version_kind}" if "{version}" in template else "route"
        allowed = _ui_allowed(template, method, auth, known, version_kind)
        requests.append(Req("ui", "ui", family, auth, method, path + query, allowed, content=content))
    return requests


def _ui_allowed(template: str, method: str, auth: str, known: bool, version_kind: str) -> frozenset[int]:
    odd = not known  # an odd name may hold a '/' once decoded: then no route takes the path (404)
    if method != "GET":
        # HEAD is not a FastAPI GET route's method: 405, as any other; a path no route takes, 404.
        return frozenset({404, 405}) if odd else frozenset({405})
    per_use_case = "{use_case}" in template
    if auth in UI_UNAUTHENTICATED:
        return frozenset({401, 404}) if odd and per_use_case else frozenset({401})
    if not per_use_case:
        return OK
    if auth in UI_NO_RIGHTS or odd:
        return frozenset({404})  # the same answer as an unknown use case
    if "{version}" not in template:
        return OK
    return {"ok": OK, "unknown": frozenset({404}), "bad": REFUSED}[version_kind]


# Bodies of a champion move: valid ones (refused or not by the registry's rules), and malformed ones.
MOVE_BODIES = (
    b'{"version": 1, "kind": "promote", "reason": "fuzz"}',
    b'{"version": 1, "kind": "rollback", "reason": "fuzz", "ds": "2099-01-01"}',
    b'{"version": 99, "kind": "promote", "reason": "fuzz"}',
    b'{"version": 1, "kind": "promote", "reason": ""}',
    b'{"version": 1, "kind": "steal", "reason": "x"}',
    b'{"version": -1, "kind": "promote", "reason": "x"}',
    b'{"version": 1, "kind": "promote", "reason": "x", "ds": "2025-02-30"}',
    b'{"version": 1, "kind": "promote", "reason": "x", "extra": 1}',
    b"[" * 10_000,
    b"\xff\xfe",
)


def champion_moves(count: int, rng: random.Random) -> list[Req]:
    """`count` POSTs of a champion move, seeded by `rng`: only a user who may edit the training DAG
    gets past 403; nothing is a server error."""
    states = [*UI_UNAUTHENTICATED, *UI_NO_RIGHTS, *UI_PRIVILEGED]
    requests = []
    for _ in range(count):
        auth = rng.choice(states)
        if auth in UI_UNAUTHENTICATED:
            allowed = frozenset({401})
        elif auth in UI_NO_RIGHTS:
            allowed = frozenset({404})
        else:
            allowed = frozenset({201, 403, 404, 422})
        body = rng.choice(MOVE_BODIES)
        path = "/api/use-cases/churn/champion"
        requests.append(Req("ui", "ui", "champion_move", auth, "POST", path, allowed, content=body))
    return requests


def _ui_unknown_path(rng: random.Random, auth: str) -> Req:
    path = rng.choice(
        [
            "/api/use-cases/churn/nothing",
            "/api/use-cases/churn/versions/1/extra",
            "/api/use-cases/churn/versions/",
            "/api",
            "/static/../../etc/passwd",
            "/churn/versions",
            "/api/use-cases/churn/overview/x",
            "/docs",
            "/redoc",
        ]
    )
    return Req(
        "ui", "ui", "unknown_path", auth, rng.choice(("GET", "POST")), path, frozenset({307, 401, 404, 405})
    )


# ---------------------------------------------------------------------------------------------
# Running and judging


def run_fuzz(world: World, serving: int, ui: int, seed: int = 23) -> FuzzFigures:
    """`serving` requests to the service (both paths) and `ui` to the UI app, generated from `seed`.

    The world must be prepared (`prepare`) with its env applied, and Airflow's metadata database
    migrated (the UI's auth manager reads revoked tokens from it).
    """
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from fastapi.routing import APIRoute
    from fastapi.testclient import TestClient

    from include.serving.app import create_app as serving_app
    from include.serving.champion import ChampionSource
    from include.serving.service import ScoringService
    from include.serving.settings import ServingSettings
    from include.ui.app import create_app as ui_app
    from include.usecases.spec import get_spec

    spec = get_spec("churn")
    rng = random.Random(seed)
    rows = base_rows(spec)
    page_app = ui_app()
    routes = sorted(r.path for r in page_app.routes if isinstance(r, APIRoute) and "GET" in r.methods)
    requests = serving_requests(spec, rows, serving, rng) + ui_requests(routes, ui, rng)
    requests += champion_moves(max(ui // 20, 1), rng)
    leaks = (str(world.root), str(REPO), "Traceback")
    figures = FuzzFigures()
    manager = init_auth_manager()
    try:
        tokens = UiTokens(manager).tokens
        settings = ServingSettings(poll_seconds=3600)
        apps: dict[str, Any] = {
            f"serving-{engine}": serving_app(
                ScoringService([spec], ChampionSource.from_settings(), engine, 3600), SERVING_TOKEN, settings
            )
            for engine in ("auto", "sklearn")
        }
        apps["ui"] = page_app
        clients = {
            name: TestClient(app, raise_server_exceptions=False, follow_redirects=False)
            for name, app in apps.items()
        }
        for client in clients.values():
            client.__enter__()
        try:
            for req in requests:
                _judge(req, _send(clients[req.target], req, tokens), figures, leaks)
        finally:
            for client in clients.values():
                client.__exit__(None, None, None)
    finally:
        purge_cached_app()
    return figures


def _send(client, req: Req, tokens: dict[str, str | None]):
    headers = list(req.headers)
    if req.api == "ui" and tokens.get(req.auth) is not None:
        token = tokens[req.auth]
        # Half by the UI's cookie, half by a Bearer header (the header wins over the cookie).
        if hash((req.path, req.method)) % 2:
            headers.append(("Authorization", f"Bearer {token}"))
        else:
            headers.append(("Cookie", f"_token={token}"))
    content: bytes | Iterator[bytes] | None = req.content
    if req.streamed and req.content is not None:
        body = req.content
        content = (body[i : i + 65_536] for i in range(0, len(body), 65_536))
    return client.request(req.method, req.path, headers=headers, content=content)


def _judge(req: Req, response, figures: FuzzFigures, leaks: tuple[str, ...]) -> None:
    status = response.status_code
    figures.requests[req.api] = figures.requests.get(req.api, 0) + 1
    counts = figures.statuses.setdefault(req.api, {})
    counts[str(status)] = counts.get(str(status), 0) + 1
    figures.families[f"{req.api}/{req.family}"] = figures.families.get(f"{req.api}/{req.family}", 0) + 1
    figures.auth_states[f"{req.api}/{req.auth}"] = figures.auth_states.get(f"{req.api}/{req.auth}", 0) + 1
    problems = []
    if status >= 500:
        figures.server_errors += 1
        problems.append("server error")
    if status not in req.allowed:
        figures.unexpected_status += 1
        problems.append(f"expected {sorted(req.allowed)}")
    if 400 <= status < 500 and req.method != "HEAD" and not _names_reason(response, req):  # HEAD: no body
        figures.unnamed_refusals += 1
        problems.append("refusal names no reason" + (f" (field {req.field!r})" if req.field else ""))
    anonymous = req.auth not in (*TOKEN_STATES, *UI_PRIVILEGED, *UI_NO_RIGHTS)
    if (status >= 400 or anonymous or req.path.startswith("/health")) and any(
        p in response.text for p in leaks
    ):
        figures.path_leaks += 1
        problems.append("a server path in the answer")
    if problems and (len(figures.problems) < 50 or status >= 500):  # every server error is shown
        figures.problems.append(f"{req.summary()} -> {status} {response.text[:300]!r}: {'; '.join(problems)}")


def _names_reason(response, req: Req) -> bool:
    """Whether a refusal's JSON body says why: a `detail`, and for a 422 each error's message (and the
    field a one-field mutation broke)."""
    try:
        body = response.json()
    except ValueError:
        return False
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI's own 422 (the UI): each error's location and message
        return bool(detail) and all(isinstance(e, dict) and e.get("msg") and e.get("loc") for e in detail)
    if not isinstance(detail, str) or not detail.strip():
        return False
    errors = body.get("errors")
    if response.status_code == 422 and req.api == "serving":
        if not errors or not all(e.get("message") and e.get("type") for e in errors):
            return False
        if req.field is not None:
            return any(e.get("field") == req.field for e in errors)
    return True


def run_section(root: Path, serving: int, ui: int, seed: int = 23) -> dict[str, Any]:
    """The suite's `fuzz` section: a process of its own with a fresh Airflow home (migrated here), so
    the auth manager and its tables are the section's whatever this process has imported; its figures."""
    import os
    import subprocess
    import sys

    home = root / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(REPO),
    }
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    out = root / "fuzz.json"
    command = [sys.executable, "-m", "tools.reliability.fuzz", "--root", str(root / "world")]
    command += ["--serving", str(serving), "--ui", str(ui), "--seed", str(seed), "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the fuzz run failed ({done.returncode}): {(done.stdout + done.stderr)[-3000:]}")
    return json.loads(out.read_text())


def _main() -> None:
    """`python -m tools.reliability.fuzz --root DIR --serving N --ui M --out FILE`: the section's run in
    a process of its own (its own Airflow home, migrated by the caller)."""
    import argparse
    import logging

    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--serving", type=int, required=True)
    parser.add_argument("--ui", type=int, required=True)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.disable(logging.WARNING)  # the refused requests log warnings by design
    from tools.reliability.world import make_world

    world = make_world(args.root).use()
    prepare(world)
    figures = run_fuzz(world, args.serving, args.ui, args.seed)
    args.out.write_text(json.dumps(figures.to_dict(), indent=2))


if __name__ == "__main__":
    _main()
