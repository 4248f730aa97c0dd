"""Config values outside their choices, said with the choices, before msgspec validates the rest.

A mistyped ``level = "deep"`` or an unknown ``[gate] fail_on`` key is the most common config error;
its message lists what is valid, in the file's own terms (``[images] level``, ``[[datasets]] #2
kind``). The choices are read from the config types themselves (``msgspec.inspect``), so a new
``Literal`` field is covered without a list to keep in step. Foundation layer: no I/O.
"""

from __future__ import annotations

import msgspec.inspect as mi


def choice_problem(data: object, struct: type) -> str | None:
    """The first key or value of ``data`` (a parsed TOML document) outside ``struct``'s choices."""
    return _walk(data, mi.type_info(struct), ())


def _walk(value: object, info: mi.Type, where: tuple[str, ...]) -> str | None:
    if isinstance(info, mi.UnionType):  # e.g. one action or a list of them: follow the value
        shaped = [
            m
            for m in info.types
            if (isinstance(m, mi.StructType) and isinstance(value, dict))
            or (isinstance(m, mi.ListType) and isinstance(value, list))
        ]
        if shaped:
            return _walk(value, shaped[0], where)
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        return _table(value, info, where)
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType) and isinstance(value, list):
        table = isinstance(info.item_type, mi.StructType)
        for number, item in enumerate(value, 1):
            place = (*where[:-1], f"[[{where[-1]}]] #{number}") if table and where else where
            problem = _walk(item, info.item_type, place)
            if problem:
                return problem
        return None
    choices = _choices(info)
    if choices and isinstance(value, str) and value not in choices:
        return f"{_name(where)} {value!r} is not one of: {', '.join(map(str, choices))}"
    return None


_SET_BY_LOADER = {"base_dir"}  # keys the loader fills in, never written in the file


def _table(value: dict[object, object], info: mi.StructType, where: tuple[str, ...]) -> str | None:
    fields = {f.encode_name: f for f in info.fields if f.encode_name not in _SET_BY_LOADER}
    if info.forbid_unknown_fields:
        unknown = [k for k in value if k not in fields]
        if unknown:
            table = _table_name(where) or "the top level"
            return f"{table} has no key {unknown[0]!r} (keys: {', '.join(fields)})"
    for key, field in fields.items():
        if key in value:
            problem = _walk(value[key], field.type, (*where, key))
            if problem:
                return problem
    return None


def _choices(info: mi.Type) -> tuple[object, ...]:
    """The strings a Literal field (alone or in a union without plain ``str``) allows; () else."""
    members = info.types if isinstance(info, mi.UnionType) else (info,)
    if any(isinstance(m, mi.StrType) for m in members):
        return ()
    return tuple(v for m in members if isinstance(m, mi.LiteralType) for v in m.values)


def _table_name(where: tuple[str, ...]) -> str:
    if not where:
        return ""
    head = where[0] if where[0].startswith("[") else f"[{where[0]}]"
    return " ".join([head, *where[1:]])


def _name(where: tuple[str, ...]) -> str:
    """``[images] level``, ``[[datasets]] #2 kind``, ``[use] action``."""
    if len(where) == 1:
        return where[0]
    return f"{_table_name(where[:-1])} {where[-1]}"
