"""``where`` filters (see memories.where for the language) compiled to PostgreSQL over a jsonb column.

The same validation and the same meaning as the SQLite version, with every key and value passed
as a query parameter (never spliced into the SQL):

* equality is jsonb containment, ``metadata @> {"key": value}``: typed as the local store is
  (1 never equals "1" or true, 2020 equals 2020.0);
* ranges compare numbers as float8 (SQLite's REAL) and strings byte-wise (``COLLATE "C"``, SQLite's
  BINARY), each only on values of that JSON type, so a numeric range ignores strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from typing_extensions import LiteralString

from memories.errors import MemoryUsageError
from memories.where import OPERATORS, RANGE_OPERATORS, check_key, check_value


def _json(value: object) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)


def _equals(key: str, value: object, params: list[Any]) -> str:
    params.append(_json({key: value}))
    return "metadata @> %s"


def compile_where_pg(where: Mapping[str, Any] | None) -> tuple[LiteralString, list[Any]]:
    """SQL condition over the ``metadata`` jsonb column and its parameters; ``("TRUE", [])`` for none."""
    if not where:
        return "TRUE", []
    if not isinstance(where, Mapping):
        raise MemoryUsageError(f"where must be a mapping of metadata key to condition, not {type(where).__name__}")
    clauses: list[str] = []
    params: list[Any] = []
    for key, condition in where.items():
        check_key(key)
        if not isinstance(condition, Mapping):
            clauses.append(_equals(key, check_value(key, condition), params))
            continue
        if not condition:
            raise MemoryUsageError(f"where '{key}': empty condition: use e.g. {{'gte': 1}}")
        for operator, operand in condition.items():
            clauses.append(_operator(key, operator, operand, params))
    # Every clause is built from this module's fixed fragments; each key and value is a %s parameter, so the
    # text is as safe as a literal (psycopg's typing asks for LiteralString, which pyright cannot follow
    # through the list of clauses).
    return cast(LiteralString, " AND ".join(clauses)), params


def _operator(key: str, operator: str, operand: Any, params: list[Any]) -> str:
    if operator not in OPERATORS:
        known = ", ".join(sorted(OPERATORS))
        raise MemoryUsageError(f"where '{key}': unknown operator {operator!r}: use one of {known}")
    if operator == "eq":
        return _equals(key, check_value(key, operand), params)
    if operator == "ne":  # a record without the key matches, as in the local store
        return f"NOT ({_equals(key, check_value(key, operand), params)})"
    if operator == "exists":
        if not isinstance(operand, bool):
            raise MemoryUsageError(f"where '{key}': exists takes true or false")
        params.append(key)
        return f"{'' if operand else 'NOT '}jsonb_exists(metadata, %s)"
    if operator == "in":
        if isinstance(operand, str | bytes) or not isinstance(operand, list | tuple | set | frozenset):
            raise MemoryUsageError(f"where '{key}': in takes a list of values")
        if not operand:
            return "FALSE"
        parts = [_equals(key, check_value(key, value), params) for value in operand]
        return "(" + " OR ".join(parts) + ")"
    value = check_value(key, operand)
    if isinstance(value, bool):
        raise MemoryUsageError(f"where '{key}': {operator} needs a number or a string, not a boolean")
    sql_operator = RANGE_OPERATORS[operator]
    # CASE, not AND: PostgreSQL may evaluate AND's operands in any order, and casting a string to float8 fails.
    if isinstance(value, str):
        params.extend((key, key, value))
        return (
            f"(CASE WHEN jsonb_typeof(metadata -> %s) = 'string' "
            f'THEN (metadata ->> %s) COLLATE "C" {sql_operator} %s::text ELSE FALSE END)'
        )
    params.extend((key, key, float(value)))
    return (
        f"(CASE WHEN jsonb_typeof(metadata -> %s) = 'number' "
        f"THEN (metadata -> %s)::float8 {sql_operator} %s::float8 ELSE FALSE END)"
    )
