"""Admission of user SQL for /api/v1/query: read-only, one statement, only the tenant's tables.

Three layers, each enough on its own for the common escapes:
1. this lexical check: one SELECT/WITH statement; every table reference (after FROM, JOIN, IN) must
   be one of the fleetpulse tables (optionally qualified with the configured database): no system
   tables, no other databases, no table functions (``file()``, ``url()``, ``remote()``, ``merge()``…),
   no dictionary or join-engine lookups, no SETTINGS/FORMAT/INTO OUTFILE clauses;
2. the query runs with ``additional_table_filters`` forcing ``tenant = <tenant>`` on every table,
   applied by ClickHouse to every read of it, in subqueries, CTEs and joins;
3. ``readonly=1`` (set after the filters, so the query cannot change settings back).
"""

from __future__ import annotations

import re

TABLES = ("samples", "samples_1m", "samples_1h", "events", "inventory", "placements")
_FORBIDDEN_WORDS = {"settings", "format", "into", "outfile", "insert", "alter", "system", "attach", "detach", "drop"}
_FORBIDDEN_FUNCTIONS = re.compile(
    r"^(dictget\w*|dicthas|dictgethierarchy|dictisin|joinget\w*|getsetting|getmacro|file|url|remote\w*|s3\w*|hdfs\w*|input|executable|mysql|postgresql|jdbc|odbc|sqlite|mongodb|redis|azureblobstorage\w*|cluster\w*|merge\w*|numbers\w*|generaterandom|view|viewifpermitted|loop|iceberg\w*|deltalake\w*|hudi\w*|filesystem\w*|currentprofiles|currentroles|enabledprofiles|enabledroles|initialqueryid|globalvariable)$"
)

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<qident>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<number>\d[\w.]*)
  | (?P<param>\{[^}]*\})
  | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)


class QueryRejected(ValueError):
    pass


def _tokens(sql: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if m is None:
            raise QueryRejected(f"cannot tokenize SQL at offset {pos}")
        kind = m.lastgroup or "punct"
        text = m.group()
        pos = m.end()
        if kind in ("ws", "comment"):
            if kind == "comment" and text.startswith("/*") and not text.endswith("*/"):
                raise QueryRejected("unterminated comment")
            continue
        if kind == "qident":
            kind, text = "ident", text[1:-1]
        elif kind == "punct" and text in "'`\"":
            raise QueryRejected("unterminated string or quoted identifier")
        out.append((kind, text))
    return out


_CLAUSE_ENDS = {
    "where", "prewhere", "group", "order", "limit", "having", "union", "except", "intersect",
    "window", "qualify", "settings", "format", "select", "with", "offset", "fetch", "sample",
}  # fmt: skip


def _table_positions(tokens: list[tuple[str, str]]) -> set[int]:
    """Indices of tokens followed by a table reference: FROM, JOIN, IN, and a comma of a FROM list
    (``FROM samples, other_db.t`` is a cross join: its second table needs the same check)."""
    positions = set()
    in_from: list[bool] = [False]  # per parenthesis depth
    for i, (kind, text) in enumerate(tokens):
        low = text.lower() if kind == "ident" else text
        if kind == "punct" and text == "(":
            in_from.append(False)
        elif kind == "punct" and text == ")":
            if len(in_from) > 1:
                in_from.pop()
        elif kind == "ident" and low in ("from", "join", "in"):
            positions.add(i)
            if low == "from":
                in_from[-1] = True
        elif kind == "ident" and low in _CLAUSE_ENDS:
            in_from[-1] = False
        elif kind == "punct" and text == "," and in_from[-1]:
            positions.add(i)
    return positions


def check(sql: str, database: str) -> str:
    """The query (trailing ';' removed) if admissible, else QueryRejected saying why."""
    tokens = _tokens(sql)
    while tokens and tokens[-1] == ("punct", ";"):
        tokens.pop()
    if not tokens:
        raise QueryRejected("empty query")
    if tokens[0][0] != "ident" or tokens[0][1].lower() not in ("select", "with"):
        raise QueryRejected("only SELECT or WITH queries are allowed")
    if ("punct", ";") in tokens:
        raise QueryRejected("only one statement is allowed")
    if any(kind == "param" for kind, _ in tokens):
        raise QueryRejected("query parameters {...} are not supported here")
    cte_names = set()
    for i, (kind, text) in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        low = text.lower()
        if kind == "ident" and low in _FORBIDDEN_WORDS:
            raise QueryRejected(f"{text.upper()} is not allowed in /api/v1/query")
        if kind == "ident" and nxt == ("punct", "(") and _FORBIDDEN_FUNCTIONS.match(low):
            raise QueryRejected(f"function {text}() is not allowed in /api/v1/query")
        if (
            kind == "ident"
            and nxt[0] == "ident"
            and nxt[1].lower() == "as"
            and i + 2 < len(tokens)
            and tokens[i + 2] == ("punct", "(")
        ):
            cte_names.add(text)
    table_positions = _table_positions(tokens)
    for i, (_kind, text) in enumerate(tokens):
        if i not in table_positions:
            continue
        j = i + 1
        if j < len(tokens) and tokens[j][0] == "ident" and tokens[j][1].lower() == "table":  # IN TABLE x
            j += 1
        if j >= len(tokens):
            raise QueryRejected(f"{text.upper()} without a table")
        if tokens[j] == ("punct", "("):
            continue  # subquery or IN (list): its own FROMs are checked in turn
        if tokens[j][0] != "ident":
            if text.lower() == "in":
                continue
            raise QueryRejected(f"unexpected {tokens[j][1]!r} after {text.upper()}")
        name = tokens[j][1]
        qualified = j + 2 < len(tokens) and tokens[j + 1] == ("punct", ".") and tokens[j + 2][0] == "ident"
        if qualified:
            db, table = name, tokens[j + 2][1]
            if db != database or table not in TABLES:
                raise QueryRejected(f"table {db}.{table} is not readable here; tables: {', '.join(TABLES)}")
            after = tokens[j + 3] if j + 3 < len(tokens) else ("", "")
        else:
            if name not in TABLES and name not in cte_names:
                raise QueryRejected(f"table {name!r} is not readable here; tables: {', '.join(TABLES)}")
            after = tokens[j + 1] if j + 1 < len(tokens) else ("", "")
        if after == ("punct", "("):
            raise QueryRejected(f"table function {name}() is not allowed")
    return sql.strip().rstrip(";").strip()


def tenant_settings(database: str, tenant: str, max_rows: int, max_execution_s: float) -> dict[str, object]:
    quoted = tenant.replace("\\", "\\\\").replace("'", "\\'")
    filters = ", ".join(f"'{database}.{t}': 'tenant = \\'{quoted}\\''" for t in TABLES)
    return {
        "additional_table_filters": "{" + filters + "}",
        "max_execution_time": max_execution_s,
        "max_result_rows": max_rows + 1,
        "result_overflow_mode": "break",
        "readonly": 1,
        # samples.value is an ALIAS of the stored decimal (value_m, value_s): keep it in SELECT *.
        "asterisk_include_alias_columns": 1,
    }
