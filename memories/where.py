"""``where`` filters: metadata conditions compiled to SQL over the records' JSON metadata.

Syntax (all conditions are ANDed)::

    {"source": "notes.md"}                     equality (str, int, float or bool)
    {"year": {"gte": 2020, "lt": 2024}}       ranges: gt, gte, lt, lte (numbers, or strings such
                                              as ISO dates, compared as text)
    {"kind": {"in": ["faq", "howto"]}}        any of several values
    {"kind": {"ne": "draft"}}                 not equal (records without the key match too)
    {"reviewed": {"exists": True}}            the key is present (False: absent)
    {"year": {"eq": 2021}}                    the explicit spelling of equality

Comparisons are typed: 1 never equals "1" or true, and a range on numbers ignores string values.
The filter runs in SQLite before any top-k, so a filtered search returns ``limit`` hits whenever
that many records match.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from memories.errors import MemoryUsageError

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,127}$")
RANGE_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
OPERATORS = {"eq", "ne", "in", "exists", *RANGE_OPERATORS}


def check_key(key: object) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise MemoryUsageError(
            f"invalid metadata key {key!r}: use letters, digits, '_', '-', '.' or spaces (at most 128)"
        )
    return key


def check_value(key: str, value: object) -> str | int | float | bool:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MemoryUsageError(f"metadata '{key}': {value} is not a finite number")
        return value
    raise MemoryUsageError(
        f"metadata '{key}': {type(value).__name__} values are not supported: use str, int, float or bool"
    )


def _json_types(value: object) -> tuple[str, ...]:
    # SQLite's json_type() names; bool first since bool is an int in Python.
    if isinstance(value, bool):
        return ("true",) if value else ("false",)
    if isinstance(value, int | float):
        return ("integer", "real")
    return ("text",)


def _equals(path: str, value: object, params: list[Any]) -> str:
    types = _json_types(value)
    params.append(path)
    marks = ", ".join("?" for _ in types)
    params.extend(types)
    if isinstance(value, bool):  # the type is the value
        return f"json_type(metadata, ?) IN ({marks})"
    params.extend((path, value))
    return f"(json_type(metadata, ?) IN ({marks}) AND json_extract(metadata, ?) = ?)"


def compile_where(where: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
    """SQL condition over the ``metadata`` column and its parameters; ``("1", [])`` for no filter."""
    if not where:
        return "1", []
    if not isinstance(where, Mapping):
        raise MemoryUsageError(f"where must be a mapping of metadata key to condition, not {type(where).__name__}")
    clauses: list[str] = []
    params: list[Any] = []
    for key, condition in where.items():
        path = '$."' + check_key(key) + '"'
        if not isinstance(condition, Mapping):
            clauses.append(_equals(path, check_value(key, condition), params))
            continue
        if not condition:
            raise MemoryUsageError(f"where '{key}': empty condition: use e.g. {{'gte': 1}}")
        for operator, operand in condition.items():
            clauses.append(_operator(key, path, operator, operand, params))
    return " AND ".join(clauses), params


def _operator(key: str, path: str, operator: str, operand: Any, params: list[Any]) -> str:
    if operator not in OPERATORS:
        known = ", ".join(sorted(OPERATORS))
        raise MemoryUsageError(f"where '{key}': unknown operator {operator!r}: use one of {known}")
    if operator == "eq":
        return _equals(path, check_value(key, operand), params)
    if operator == "ne":
        return f"NOT COALESCE({_equals(path, check_value(key, operand), params)}, 0)"  # missing key: NULL
    if operator == "exists":
        if not isinstance(operand, bool):
            raise MemoryUsageError(f"where '{key}': exists takes true or false")
        params.append(path)
        return f"json_type(metadata, ?) IS {'NOT ' if operand else ''}NULL"
    if operator == "in":
        if isinstance(operand, str | bytes) or not isinstance(operand, list | tuple | set | frozenset):
            raise MemoryUsageError(f"where '{key}': in takes a list of values")
        if not operand:
            return "0"
        parts = [_equals(path, check_value(key, value), params) for value in operand]
        return "(" + " OR ".join(parts) + ")"
    value = check_value(key, operand)
    if isinstance(value, bool):
        raise MemoryUsageError(f"where '{key}': {operator} needs a number or a string, not a boolean")
    types = _json_types(value)
    params.append(path)
    params.extend(types)
    params.extend((path, value))
    marks = ", ".join("?" for _ in types)
    return f"(json_type(metadata, ?) IN ({marks}) AND json_extract(metadata, ?) {RANGE_OPERATORS[operator]} ?)"
