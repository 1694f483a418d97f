"""SOQL: a tokenizer, a recursive-descent parser and a compiler to SQLite.

Why compile to SQL instead of filtering in Python: the emulator must answer queries over
a million rows in well under a second, and SQLite evaluates a WHERE clause (with the
indexes on Email and SystemModstamp) far faster than any Python loop. The compiler is
careful about the places where SOQL and SQL disagree:

* ``!=`` and ``NOT IN`` are true for null values in SOQL, ``NOT`` of a comparison with a
  null column is true as well (SQL would say "unknown");
* string comparisons are case-insensitive (columns are ``COLLATE NOCASE``);
* dateTime literals are normalised to the stored fixed-width text form
  ``2024-05-01T17:03:12.000+0000``, so comparing text compares instants;
* ``LIKE`` patterns keep SOQL's ``\\%`` and ``\\_`` escapes.

Errors carry the real Salesforce error codes (``MALFORMED_QUERY``, ``INVALID_FIELD``,
``INVALID_TYPE`` …) and message texts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from optsync.emulator.errors import SalesforceError
from optsync.emulator.ids import BadId, canonical
from optsync.emulator.schema import NUMERIC, FieldDef

MAX_OFFSET = 2000

_KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
    "OFFSET",
    "NULL",
    "TRUE",
    "FALSE",
    "COUNT",
    "GROUP",
    "HAVING",
    "WITH",
    "FOR",
    "INCLUDES",
    "EXCLUDES",
    "USING",
    "TYPEOF",
}
_DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2})"
)
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\dT])")
_NUMBER_RE = re.compile(r"[+-]?\d+(?:\.\d+)?")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_DATE_LITERAL_RE = re.compile(r"(?:LAST|NEXT)_N_DAYS:\d+", re.IGNORECASE)
_SIMPLE_DATE_LITERALS = {"TODAY", "YESTERDAY", "TOMORROW"}
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def format_datetime(value: datetime) -> str:
    """Salesforce's JSON dateTime form: UTC, milliseconds, offset without a colon."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime:
    """Parse an ISO-8601 / SOQL dateTime (``Z``, ``+hh:mm``, ``+hhmm``) into aware UTC."""
    raw = text.strip().replace("Z", "+00:00")
    m = re.match(r"^(.*[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)([+-]\d{2})(:?)(\d{2})$", raw)
    if m:
        raw = f"{m.group(1)}{m.group(2)}:{m.group(4)}"
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass
class Token:
    kind: str  # ident, keyword, string, number, datetime, date, dateliteral, op, eof
    text: str
    pos: int
    value: Any = None
    like: str | None = None


def _malformed(soql: str, pos: int, found: str) -> SalesforceError:
    line = soql.replace("\n", " ")
    caret = " " * pos + "^"
    shown = "<EOF>" if found == "" else f"'{found}'"
    return SalesforceError(
        400,
        "MALFORMED_QUERY",
        f"\n{line}\n{caret}\nERROR at Row:1:Column:{pos + 1}\nunexpected token: {shown}",
    )


def _located(soql: str, pos: int, code: str, text: str) -> SalesforceError:
    line = soql.replace("\n", " ")
    return SalesforceError(
        400, code, f"\n{line}\n{' ' * pos}^\nERROR at Row:1:Column:{pos + 1}\n{text}"
    )


def tokenize(soql: str) -> list[Token]:
    """Split a SOQL statement into tokens; unknown characters are a MALFORMED_QUERY."""
    tokens: list[Token] = []
    i, n = 0, len(soql)
    while i < n:
        ch = soql[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "'":
            start = i
            i += 1
            text: list[str] = []
            like: list[str] = []
            closed = False
            while i < n:
                c = soql[i]
                if c == "\\":
                    if i + 1 >= n:
                        break
                    e = soql[i + 1]
                    if e in _ESCAPES:
                        text.append(_ESCAPES[e])
                        like.append("\\\\" if e == "\\" else _ESCAPES[e])
                    elif e in "%_":
                        text.append(e)
                        like.append("\\" + e)
                    elif e == "u" and i + 5 < n:
                        char = chr(int(soql[i + 2 : i + 6], 16))
                        text.append(char)
                        like.append(char)
                        i += 4
                    else:
                        raise _malformed(soql, i, soql[i : i + 2])
                    i += 2
                    continue
                if c == "'":
                    closed = True
                    i += 1
                    break
                text.append(c)
                like.append(c)
                i += 1
            if not closed:
                raise _malformed(soql, start, soql[start:])
            tokens.append(Token("string", soql[start:i], start, "".join(text), "".join(like)))
            continue
        m = _DATETIME_RE.match(soql, i)
        if m:
            try:
                value = format_datetime(parse_datetime(m.group(0)))
            except ValueError:
                raise _malformed(soql, i, m.group(0)) from None
            tokens.append(Token("datetime", m.group(0), i, value))
            i = m.end()
            continue
        m = _DATE_RE.match(soql, i)
        if m:
            try:
                value = date.fromisoformat(m.group(0)).isoformat()
            except ValueError:
                raise _malformed(soql, i, m.group(0)) from None
            tokens.append(Token("date", m.group(0), i, value))
            i = m.end()
            continue
        m = _DATE_LITERAL_RE.match(soql, i)
        if m:
            tokens.append(Token("dateliteral", m.group(0), i, m.group(0).upper()))
            i = m.end()
            continue
        m = _NUMBER_RE.match(soql, i)
        if m and (ch.isdigit() or (i + 1 < n and soql[i + 1].isdigit())):
            text_ = m.group(0)
            tokens.append(Token("number", text_, i, float(text_) if "." in text_ else int(text_)))
            i = m.end()
            continue
        m = _IDENT_RE.match(soql, i)
        if m:
            word = m.group(0)
            upper = word.upper()
            if upper in _SIMPLE_DATE_LITERALS:
                tokens.append(Token("dateliteral", word, i, upper))
            elif upper in _KEYWORDS:
                tokens.append(Token("keyword", word, i, upper))
            else:
                tokens.append(Token("ident", word, i, word))
            i = m.end()
            continue
        two = soql[i : i + 2]
        if two in ("!=", "<>", "<=", ">="):
            tokens.append(Token("op", two, i, "!=" if two == "<>" else two))
            i += 2
            continue
        if ch in "=<>(),":
            tokens.append(Token("op", ch, i, ch))
            i += 1
            continue
        raise _malformed(soql, i, ch)
    tokens.append(Token("eof", "", n))
    return tokens


# ---------------------------------------------------------------- abstract syntax tree
@dataclass
class Comparison:
    field: str
    field_pos: int
    op: str  # = != < > <= >= LIKE IN NOTIN
    values: list[Token]


@dataclass
class BoolOp:
    op: str  # AND / OR
    items: list[Any]


@dataclass
class Not:
    item: Any


@dataclass
class OrderItem:
    field: str
    pos: int
    desc: bool
    nulls_first: bool | None


@dataclass
class SelectItem:
    """One entry of the SELECT list: a field path, ``COUNT(field)`` or ``FIELDS(kind)``."""

    kind: str  # field, count, fields
    name: str
    pos: int
    alias: str | None = None


@dataclass
class Statement:
    """A parsed SELECT before it is checked against the object's fields."""

    fields: list[tuple[str, int]]
    count_only: bool
    obj: str
    obj_pos: int
    where: Any = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    select: list[SelectItem] = field(default_factory=list)
    group_by: list[tuple[str, int]] = field(default_factory=list)


class _Parser:
    def __init__(self, soql: str):
        self.soql = soql
        self.tokens = tokenize(soql)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def error(self) -> SalesforceError:
        return _malformed(self.soql, self.tok.pos, self.tok.text)

    def is_kw(self, word: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.value == word

    def expect_kw(self, word: str) -> Token:
        if not self.is_kw(word):
            raise self.error()
        return self.take()

    def is_op(self, op: str) -> bool:
        return self.tok.kind == "op" and self.tok.value == op

    def expect_op(self, op: str) -> Token:
        if not self.is_op(op):
            raise self.error()
        return self.take()

    def ident(self) -> Token:
        if self.tok.kind != "ident":
            raise self.error()
        return self.take()

    def parse(self) -> Statement:
        self.expect_kw("SELECT")
        fields: list[tuple[str, int]] = []
        count_only = False
        ahead = self.tokens[self.i + 1 : self.i + 3]
        if self.is_kw("COUNT") and [t.text for t in ahead] == ["(", ")"]:
            self.i += 3
            count_only = True
        select: list[SelectItem] = []
        if not count_only:
            while True:
                select.append(self.select_item())
                if self.is_op(","):
                    self.take()
                    continue
                break
        self.expect_kw("FROM")
        obj = self.ident()
        fields = [(i.name, i.pos) for i in select if i.kind == "field"]
        stmt = Statement(fields, count_only, obj.text, obj.pos, select=select)
        if self.is_kw("WHERE"):
            self.take()
            stmt.where = self.expr()
        if self.is_kw("GROUP"):
            self.take()
            self.expect_kw("BY")
            while True:
                t = self.ident()
                stmt.group_by.append((t.text, t.pos))
                if self.is_op(","):
                    self.take()
                    continue
                break
        if self.is_kw("ORDER"):
            self.take()
            self.expect_kw("BY")
            while True:
                t = self.ident()
                desc = False
                nulls: bool | None = None
                if self.is_kw("ASC"):
                    self.take()
                elif self.is_kw("DESC"):
                    self.take()
                    desc = True
                if self.is_kw("NULLS"):
                    self.take()
                    if self.is_kw("FIRST"):
                        nulls = True
                    elif self.is_kw("LAST"):
                        nulls = False
                    else:
                        raise self.error()
                    self.take()
                stmt.order.append(OrderItem(t.text, t.pos, desc, nulls))
                if self.is_op(","):
                    self.take()
                    continue
                break
        if self.is_kw("LIMIT"):
            self.take()
            stmt.limit = self.integer()
        if self.is_kw("OFFSET"):
            self.take()
            stmt.offset = self.integer()
        if self.tok.kind != "eof":
            raise self.error()
        return stmt

    def select_item(self) -> SelectItem:
        if self.is_kw("COUNT"):
            start = self.take()
            self.expect_op("(")
            name = self.ident()
            self.expect_op(")")
            alias = self.take().text if self.tok.kind == "ident" else None
            return SelectItem("count", name.text, start.pos, alias)
        t = self.ident()
        if t.text.upper() == "FIELDS" and self.is_op("("):
            self.take()
            kind = self.ident()
            if kind.text.upper() not in ("STANDARD", "CUSTOM", "ALL"):
                raise _malformed(self.soql, kind.pos, kind.text)
            self.expect_op(")")
            return SelectItem("fields", kind.text.upper(), t.pos)
        return SelectItem("field", t.text, t.pos)

    def integer(self) -> int:
        t = self.tok
        if t.kind != "number" or not isinstance(t.value, int) or t.value < 0:
            raise self.error()
        self.take()
        return int(t.value)

    def expr(self) -> Any:
        items = [self.and_expr()]
        while self.is_kw("OR"):
            self.take()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("OR", items)

    def and_expr(self) -> Any:
        items = [self.unary()]
        while self.is_kw("AND"):
            self.take()
            items.append(self.unary())
        return items[0] if len(items) == 1 else BoolOp("AND", items)

    def unary(self) -> Any:
        if self.is_kw("NOT"):
            self.take()
            return Not(self.unary())
        if self.is_op("("):
            self.take()
            inner = self.expr()
            self.expect_op(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        f = self.ident()
        if self.tok.kind == "op" and self.tok.value in ("=", "!=", "<", ">", "<=", ">="):
            op = self.take().value
            return Comparison(f.text, f.pos, op, [self.literal()])
        if self.is_kw("LIKE"):
            self.take()
            return Comparison(f.text, f.pos, "LIKE", [self.literal()])
        negated = False
        if self.is_kw("NOT"):
            self.take()
            negated = True
            if not self.is_kw("IN"):
                raise self.error()
        if self.is_kw("IN"):
            self.take()
            self.expect_op("(")
            values = [self.literal()]
            while self.is_op(","):
                self.take()
                values.append(self.literal())
            self.expect_op(")")
            return Comparison(f.text, f.pos, "NOTIN" if negated else "IN", values)
        raise self.error()

    def literal(self) -> Token:
        t = self.tok
        if t.kind in ("string", "number", "datetime", "date", "dateliteral"):
            return self.take()
        if t.kind == "keyword" and t.value in ("NULL", "TRUE", "FALSE"):
            return self.take()
        raise self.error()


def parse(soql: str) -> Statement:
    """Parse one SOQL statement (syntax only)."""
    return _Parser(soql).parse()


# ---------------------------------------------------------------- compilation to SQL
@dataclass
class Column:
    """A selectable path (``Email``, ``Account.Name``) compiled to a SQLite expression."""

    path: str
    sql: str
    field: FieldDef
    bare: bool  # a plain column of the queried table (keeps its collation and index)


@dataclass
class Aggregate:
    """One output of an aggregate query: a grouped field or ``COUNT(field)``."""

    key: str
    sql: str
    field: FieldDef | None  # None for a count
    display: str = ""


@dataclass
class CompiledQuery:
    """A checked query: the object, output fields and a SQLite WHERE/ORDER BY.

    ``fields`` are the selected paths in order; ``relations`` maps each relationship
    prefix (``Account``, ``Account.Owner``) to the object it points at, so the REST
    layer can nest parent fields as Salesforce does. Aggregate queries carry
    ``aggregates`` and ``group_sql`` instead.
    """

    obj: str
    fields: list[str]
    count_only: bool
    where_sql: str
    params: list[Any]
    order_sql: str
    limit: int | None
    offset: int | None
    relations: dict[str, str] = field(default_factory=dict)
    defs: dict[str, FieldDef] = field(default_factory=dict)
    aggregates: list[Aggregate] = field(default_factory=list)
    group_sql: str | None = None


def _day_range(literal: str, today: date) -> tuple[date, date]:
    if literal == "TODAY":
        return today, today + timedelta(days=1)
    if literal == "YESTERDAY":
        return today - timedelta(days=1), today
    if literal == "TOMORROW":
        return today + timedelta(days=1), today + timedelta(days=2)
    kind, n = literal.split(":")
    days = int(n)
    if kind == "LAST_N_DAYS":
        return today - timedelta(days=days), today + timedelta(days=1)
    return today + timedelta(days=1), today + timedelta(days=days + 1)


def field_sql(f: FieldDef, alias: str) -> str:
    """The SQLite expression of ``f`` on table ``alias`` (compound fields are derived)."""
    if not f.components:
        return f'{alias}."{f.name}"'
    parts = dict(f.components)
    if f.type == "address":
        pairs = ", ".join(f"'{k}', {alias}.\"{c}\"" for k, c in f.components)
        empty = " AND ".join(f'{alias}."{c}" IS NULL' for _, c in f.components)
        return f"(CASE WHEN {empty} THEN NULL ELSE json_object({pairs}) END)"
    first, last = parts.get("firstName"), parts.get("lastName")
    return (
        f"nullif(trim(coalesce({alias}.\"{first}\" || ' ', '') || "
        f"coalesce({alias}.\"{last}\", '')), '')"
    )


def resolve_path(
    obj: str,
    path: str,
    fields_for: dict[str, dict[str, FieldDef]],
    *,
    soql: str = "",
    pos: int = 0,
    relations: dict[str, str] | None = None,
) -> Column:
    """Compile a field path of ``obj`` (parent relationships any levels deep).

    ``Account.Name`` on Contact becomes a correlated subquery on the Account table;
    a relationship to an object the org does not serve, or a missing field, fails
    with Salesforce's ``INVALID_FIELD`` text.
    """
    parts = path.split(".")
    alias = f'"{obj}"'
    current = obj
    chain: list[tuple[str, str, str]] = []  # (target object, alias, outer reference sql)
    prefix: list[str] = []
    for depth, rel in enumerate(parts[:-1]):
        by_rel = {
            f.relationship_name.lower(): f
            for f in fields_for[current].values()
            if f.relationship_name and f.type == "reference"
        }
        ref = by_rel.get(rel.lower())
        target = next((t for t in (ref.reference_to if ref else ()) if t in fields_for), None)
        if ref is None or target is None:
            raise _located(
                soql,
                pos,
                "INVALID_FIELD",
                f"Didn't understand relationship '{rel}' in field path. If you "
                "are attempting to use a custom relationship, be sure to append "
                "the '__r' after the custom relationship name. Please reference "
                "your WSDL or the describe call for the appropriate names.",
            )
        assert ref.relationship_name is not None
        prefix.append(ref.relationship_name)
        if relations is not None:
            relations[".".join(prefix)] = target
        inner = f"p{depth}"
        chain.append((target, inner, f'{alias}."{ref.name}"'))
        alias, current = inner, target
    by_lower = {n.lower(): f for n, f in fields_for[current].items()}
    f = by_lower.get(parts[-1].lower())
    if f is None:
        raise _located(
            soql,
            pos,
            "INVALID_FIELD",
            f"No such column '{parts[-1]}' on entity '{current}'. If you are "
            "attempting to use a custom field, be sure to append the '__c' "
            "after the custom field name. Please reference your WSDL or the "
            "describe call for the appropriate names.",
        )
    sql = field_sql(f, alias)
    for target, inner, outer in reversed(chain):
        sql = f'(SELECT {sql} FROM "{target}" {inner} WHERE {inner}."Id" = {outer})'
    canonical_path = ".".join([*prefix, f.name])
    return Column(canonical_path, sql, f, bare=not chain and not f.components)


class _Compiler:
    def __init__(
        self, soql: str, obj: str, fields_for: dict[str, dict[str, FieldDef]], now: datetime
    ):
        self.soql = soql
        self.obj = obj
        self.fields_for = fields_for
        self.params: list[Any] = []
        self.now = now
        self.relations: dict[str, str] = {}

    def column(self, name: str, pos: int) -> Column:
        return resolve_path(
            self.obj, name, self.fields_for, soql=self.soql, pos=pos, relations=self.relations
        )

    def field(self, name: str, pos: int) -> FieldDef:
        return self.column(name, pos).field

    def type_error(self, f: FieldDef, tok: Token, pos: int) -> SalesforceError:
        wanted = {
            "boolean": "boolean",
            "datetime": "dateTime",
            "date": "date",
            "double": "double",
            "currency": "double",
            "percent": "double",
            "int": "int",
        }.get(f.type, "string")
        if wanted == "string":
            text = (
                f"value of filter criterion for field '{f.name}' must be of type "
                f"{wanted} and should be enclosed in quotes"
            )
        else:
            text = (
                f"value of filter criterion for field '{f.name}' must be of type "
                f"{wanted} and should not be enclosed in quotes"
            )
        return _located(self.soql, tok.pos, "INVALID_FIELD", text)

    def value(self, f: FieldDef, tok: Token, pos: int) -> Any:
        """Convert a literal to the stored representation of ``f``, or fail as SOQL does."""
        if tok.kind == "keyword" and tok.value == "NULL":
            return None
        if f.is_boolean:
            if tok.kind == "keyword" and tok.value in ("TRUE", "FALSE"):
                return 1 if tok.value == "TRUE" else 0
            raise self.type_error(f, tok, pos)
        if f.type == "datetime":
            if tok.kind == "datetime":
                return tok.value
            raise self.type_error(f, tok, pos)
        if f.type == "date":
            if tok.kind == "date":
                return tok.value
            raise self.type_error(f, tok, pos)
        if f.type in NUMERIC:
            if tok.kind == "number":
                return tok.value
            raise self.type_error(f, tok, pos)
        if f.type == "address":
            raise _located(
                self.soql,
                pos,
                "INVALID_FIELD",
                f"field '{f.name}' can not be filtered in a query call",
            )
        if tok.kind != "string":
            raise self.type_error(f, tok, pos)
        if f.type in ("id", "reference"):
            try:
                return canonical(tok.value)
            except BadId:
                raise _located(
                    self.soql,
                    tok.pos,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    f"invalid ID field: {tok.value}",
                ) from None
        return tok.value

    def compile(self, node: Any) -> str:
        if isinstance(node, BoolOp):
            return "(" + f" {node.op} ".join(self.compile(i) for i in node.items) + ")"
        if isinstance(node, Not):
            return f"(NOT coalesce({self.compile(node.item)}, 0))"
        return self.comparison(node)

    def date_literal(self, f: FieldDef, col: str, c: Comparison) -> str:
        if f.type not in ("datetime", "date"):
            raise self.type_error(f, c.values[0], c.field_pos)
        start, end = _day_range(c.values[0].value, self.now.astimezone(UTC).date())
        if f.type == "datetime":
            lo = format_datetime(datetime(start.year, start.month, start.day, tzinfo=UTC))
            hi = format_datetime(datetime(end.year, end.month, end.day, tzinfo=UTC))
        else:
            lo, hi = start.isoformat(), end.isoformat()
        sql = {
            "=": f"({col} >= ? AND {col} < ?)",
            "!=": f"({col} IS NULL OR {col} < ? OR {col} >= ?)",
            "<": f"{col} < ?",
            "<=": f"{col} < ?",
            ">": f"{col} >= ?",
            ">=": f"{col} >= ?",
        }[c.op]
        params = {"=": [lo, hi], "!=": [lo, hi], "<": [lo], "<=": [hi], ">": [hi], ">=": [lo]}[c.op]
        self.params.extend(params)
        return sql

    def comparison(self, c: Comparison) -> str:
        column = self.column(c.field, c.field_pos)
        f = column.field
        col = column.sql
        if not column.bare and f.is_string and f.type not in ("id", "reference"):
            col = f"{col} COLLATE NOCASE"  # derived text keeps SOQL's case-insensitivity
        if c.op in ("IN", "NOTIN"):
            values = [self.value(f, v, c.field_pos) for v in c.values]
            non_null = [v for v in values if v is not None]
            has_null = len(non_null) != len(values)
            marks = ", ".join("?" for _ in non_null)
            self.params.extend(non_null)
            if c.op == "IN":
                parts = [f"{col} IN ({marks})"] if non_null else []
                if has_null:
                    parts.append(f"{col} IS NULL")
                return "(" + " OR ".join(parts) + ")" if parts else "0"
            if not non_null:
                return f"{col} IS NOT NULL"
            if has_null:
                return f"({col} IS NOT NULL AND {col} NOT IN ({marks}))"
            return f"({col} IS NULL OR {col} NOT IN ({marks}))"
        tok = c.values[0]
        if c.op == "LIKE":
            if not f.is_string or f.type in ("id", "reference"):
                raise _located(
                    self.soql,
                    c.field_pos,
                    "INVALID_FIELD",
                    f"invalid operator on {f.type} field: LIKE",
                )
            if tok.kind != "string":
                raise self.type_error(f, tok, c.field_pos)
            self.params.append(tok.like)
            return f"{col} LIKE ? ESCAPE '\\'"
        if tok.kind == "dateliteral":
            return self.date_literal(f, col, c)
        value = self.value(f, tok, c.field_pos)
        if value is None:
            if c.op == "=":
                return f"{col} IS NULL"
            if c.op == "!=":
                return f"{col} IS NOT NULL"
            raise _located(
                self.soql, tok.pos, "INVALID_FIELD", f"invalid operator on null value: {c.op}"
            )
        if f.is_boolean and c.op not in ("=", "!="):
            raise _located(
                self.soql,
                c.field_pos,
                "INVALID_FIELD",
                f"invalid operator on boolean field: {c.op}",
            )
        self.params.append(value)
        if c.op == "!=":
            return f"{col} IS NOT ?"
        return f"{col} {c.op} ?"


FIELDS_LIMIT = 200


def _expand_fields(stmt: Statement, fields: dict[str, FieldDef]) -> list[tuple[str, int]]:
    """The SELECT list with ``FIELDS(STANDARD|CUSTOM|ALL)`` expanded, in describe order."""
    out: list[tuple[str, int]] = []
    for item in stmt.select:
        if item.kind == "field":
            out.append((item.name, item.pos))
        elif item.kind == "fields":
            if item.name != "STANDARD" and (stmt.limit is None or stmt.limit > FIELDS_LIMIT):
                raise SalesforceError(
                    400,
                    "MALFORMED_QUERY",
                    f"The SOQL FIELDS function must have a LIMIT of at most {FIELDS_LIMIT}",
                )
            for f in fields.values():
                wanted = item.name == "ALL" or (f.custom == (item.name == "CUSTOM"))
                if wanted and f.name not in (n for n, _ in out):
                    out.append((f.name, item.pos))
    return out


def _compile_aggregate(stmt: Statement, comp: _Compiler, q: CompiledQuery) -> None:
    """``SELECT g, COUNT(Id) [alias] FROM … [GROUP BY g]``: the simple aggregates."""
    grouped: dict[str, Column] = {}
    for name, pos in stmt.group_by:
        col = comp.column(name, pos)
        if not _groupable(col.field):
            raise _located(
                comp.soql,
                pos,
                "MALFORMED_QUERY",
                f"field '{col.field.name}' can not be grouped in a query call",
            )
        grouped[col.path.lower()] = col
    expr = 0
    for item in stmt.select:
        if item.kind == "fields":
            raise _located(
                comp.soql, item.pos, "MALFORMED_QUERY", "FIELDS() is not supported with GROUP BY"
            )
        if item.kind == "count":
            col = comp.column(item.name, item.pos)
            key = item.alias or f"expr{expr}"
            expr += 1
            q.aggregates.append(Aggregate(key, f"count({col.sql})", None, f"COUNT({col.path})"))
            continue
        col = comp.column(item.name, item.pos)
        if col.path.lower() not in grouped:
            raise _located(
                comp.soql,
                item.pos,
                "MALFORMED_QUERY",
                f"Field must be grouped or aggregated: {col.field.name}",
            )
        q.aggregates.append(Aggregate(col.field.name, col.sql, col.field, col.path))
    q.group_sql = ", ".join(c.sql for c in grouped.values()) or None
    order = []
    for o in stmt.order:
        found = grouped.get(comp.column(o.field, o.pos).path.lower())
        if found is None:
            raise _located(
                comp.soql, o.pos, "MALFORMED_QUERY", "Ordered field must be grouped or aggregated"
            )
        nulls_first = o.nulls_first if o.nulls_first is not None else not o.desc
        order.append(
            f"{found.sql} {'DESC' if o.desc else 'ASC'} NULLS {'FIRST' if nulls_first else 'LAST'}"
        )
    q.order_sql = ", ".join(order) or (q.group_sql or "1")


def _groupable(f: FieldDef) -> bool:
    return f.type not in ("datetime", "double", "currency", "percent", "address") and not (
        f.type == "textarea" and f.length > 255
    )


def compile_query(
    soql: str,
    fields_for: dict[str, dict[str, FieldDef]],
    *,
    now: datetime | None = None,
) -> CompiledQuery:
    """Parse and check ``soql`` against the visible fields of each object.

    ``fields_for`` maps canonical object names to the fields the running user can see,
    so fields hidden by field-level security fail exactly like missing ones.
    """
    if len(soql) > 100_000:
        raise SalesforceError(
            400, "MALFORMED_QUERY", "SOQL statements cannot be longer than 100000 characters"
        )
    stmt = parse(soql)
    canonical_names = {name.lower(): name for name in fields_for}
    obj = canonical_names.get(stmt.obj.lower())
    if obj is None:
        raise _located(
            soql,
            stmt.obj_pos,
            "INVALID_TYPE",
            f"sObject type '{stmt.obj}' is not supported. If you are attempting "
            "to use a custom object, be sure to append the '__c' after the entity "
            "name. Please reference your WSDL or the describe call for the "
            "appropriate names.",
        )
    comp = _Compiler(soql, obj, fields_for, now or datetime.now(UTC))
    if stmt.offset is not None and stmt.offset > MAX_OFFSET:
        raise SalesforceError(
            400, "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}"
        )
    if stmt.count_only and stmt.order:
        raise _located(
            soql, stmt.order[0].pos, "MALFORMED_QUERY", "ORDER BY is not supported with COUNT()"
        )
    q = CompiledQuery(obj, [], stmt.count_only, "1", comp.params, "", stmt.limit, stmt.offset)
    q.where_sql = comp.compile(stmt.where) if stmt.where is not None else "1"
    if stmt.group_by or any(i.kind == "count" for i in stmt.select):
        _compile_aggregate(stmt, comp, q)
        q.relations = comp.relations
        return q
    names: list[str] = []
    for name, pos in _expand_fields(stmt, fields_for[obj]):
        col = comp.column(name, pos)
        if col.path in names:
            raise _located(soql, pos, "MALFORMED_QUERY", f"duplicate field selected: {col.path}")
        names.append(col.path)
        q.defs[col.path] = col.field
    order_parts = []
    for item in stmt.order:
        col = comp.column(item.field, item.pos)
        nulls_first = item.nulls_first if item.nulls_first is not None else not item.desc
        direction = "DESC" if item.desc else "ASC"
        order_parts.append(f"{col.sql} {direction} NULLS {'FIRST' if nulls_first else 'LAST'}")
    order_parts.append("rowid ASC")
    q.fields = names
    q.order_sql = ", ".join(order_parts)
    q.relations = comp.relations
    return q
