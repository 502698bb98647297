"""A replay checkpoint as text: a `ReplayState` written exactly, sealed with versions and checksum.

The text is a header line, then the body. The header names the format, the version of the rules
the state was computed under, and the SHA-256 of the body. `unseal` refuses a text of another
format or rules version, a body that does not match its checksum, and one that does not decode
to exactly the declared types of `ReplayState`: such a checkpoint is never used.

Values are written by their declared types: ints, bools and strings as themselves, Decimals as
their exact text, enums by value, dataclasses as the list of their fields in order, tuples and
lists as lists, sets as sorted lists, dicts keyed by anything but strings as lists of pairs.
Floats are neither written nor read.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from hashlib import sha256
from typing import Any, NoReturn

from ledger.rules.replay_state import ReplayState

__all__ = ["FORMAT", "UnusableCheckpoint", "decode_as", "encode_as", "seal", "unseal"]

FORMAT = 1


class UnusableCheckpoint(ValueError):
    """A checkpoint that must not be trusted: corrupt, stale, or of another format."""


def seal(state: ReplayState, rules_version: str) -> str:
    body = json.dumps(_codec(ReplayState).encode(state), separators=(",", ":"))
    digest = sha256(body.encode()).hexdigest()
    header = json.dumps({"format": FORMAT, "rules": rules_version, "sha256": digest})
    return f"{header}\n{body}"


def unseal(text: str, rules_version: str, customer_id: str) -> ReplayState:
    """The state sealed in `text`, if it is intact, current and the customer's; else raises
    UnusableCheckpoint saying why."""
    header_text, newline, body = text.partition("\n")
    try:
        header = json.loads(header_text)
    except ValueError:
        header = None
    if not newline or not isinstance(header, dict):
        raise UnusableCheckpoint("no header line")
    if header.get("format") != FORMAT:
        raise UnusableCheckpoint(f"format {header.get('format')!r}, not {FORMAT}")
    if header.get("rules") != rules_version:
        raise UnusableCheckpoint(f"computed under rules {header.get('rules')!r}")
    if header.get("sha256") != sha256(body.encode()).hexdigest():
        raise UnusableCheckpoint("the body does not match its checksum")
    try:
        raw = json.loads(body, parse_float=_refuse_float, parse_constant=_refuse_float)
        state: ReplayState = _codec(ReplayState).decode(raw)
    except (ValueError, TypeError) as problem:
        raise UnusableCheckpoint(f"the body does not decode: {problem}") from None
    if state.customer_id != customer_id:
        raise UnusableCheckpoint(f"the state is customer {state.customer_id!r}'s")
    return state


def encode_as(tp: Any, value: Any) -> Any:
    """`value` as JSON by its declared type `tp` (the same forms as a checkpoint's)."""
    return _codec(tp).encode(value)


def decode_as(tp: Any, raw: Any) -> Any:
    """The value of type `tp` written by `encode_as`; raises ValueError or TypeError."""
    return _codec(tp).decode(raw)


def _refuse_float(text: str) -> NoReturn:
    raise ValueError(f"a float ({text}) where only exact numbers are written")


@dataclasses.dataclass(frozen=True, slots=True)
class _Codec:
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


def _expect(value: Any, kind: type | tuple[type, ...], what: object) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise TypeError(f"{value!r} is not {what}")
    return value


def _same(value: Any) -> Any:
    return value


def _scalar(kind: type) -> _Codec:
    return _Codec(_same, lambda value: _expect(value, kind, kind.__name__))


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(_expect(value, str, "a decimal"))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal") from None


def _strings(values: list[Any]) -> list[str]:
    "".join(values)  # raises TypeError, naming the item, unless all are strings (at C speed)
    return values


def _json(value: Any) -> Any:
    """Free-form JSON (an explanation): only strings, ints, bools, None, lists and objects."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if isinstance(value, dict):
        return {_expect(k, str, "a string key"): _json(v) for k, v in value.items()}
    raise TypeError(f"{type(value).__name__} is not exact JSON")


@functools.cache
def _codec(tp: Any) -> _Codec:
    if tp is Any:
        return _Codec(_json, _json)
    if tp in (str, int, bool):
        return _scalar(tp)
    if tp is Decimal:
        return _Codec(str, _decimal)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _Codec(lambda member: member.value, tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        inner = _codec(next(a for a in args if a is not type(None)))
        return _Codec(
            lambda v: None if v is None else inner.encode(v),
            lambda v: None if v is None else inner.decode(v),
        )
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _codec(args[0])
        return _Codec(
            lambda v: [item.encode(x) for x in v],
            lambda v: tuple(item.decode(x) for x in _expect(v, list, "a list")),
        )
    if origin is tuple:
        return _fixed_tuple(tuple(_codec(a) for a in args))
    if origin is list:
        item = _codec(args[0])
        return _Codec(
            lambda v: [item.encode(x) for x in v],
            lambda v: [item.decode(x) for x in _expect(v, list, "a list")],
        )
    if origin is set and args[0] is str:  # the ended subscriptions: thousands, at times
        return _Codec(sorted, lambda v: set(_strings(_expect(v, list, "a list"))))
    if origin is set:
        item = _codec(args[0])
        return _Codec(
            lambda v: sorted(item.encode(x) for x in v),
            lambda v: {item.decode(x) for x in _expect(v, list, "a list")},
        )
    if origin is dict:
        return _dict(_codec(args[0]), _codec(args[1]), string_keys=args[0] is str)
    raise TypeError(f"no checkpoint form for {tp!r}")


def _fixed_tuple(parts: tuple[_Codec, ...]) -> _Codec:
    def decode(value: Any) -> tuple[Any, ...]:
        if len(_expect(value, list, "a list")) != len(parts):
            raise ValueError(f"{value!r} does not have {len(parts)} parts")
        return tuple(part.decode(x) for part, x in zip(parts, value, strict=True))

    return _Codec(lambda v: [part.encode(x) for part, x in zip(parts, v, strict=True)], decode)


def _dict(key: _Codec, value: _Codec, *, string_keys: bool) -> _Codec:
    if string_keys:
        return _Codec(
            lambda v: {k: value.encode(x) for k, x in v.items()},
            lambda v: {
                key.decode(k): value.decode(x) for k, x in _expect(v, dict, "an object").items()
            },
        )
    pair = _fixed_tuple((key, value))
    return _Codec(
        lambda v: [pair.encode(item) for item in v.items()],
        lambda v: dict(pair.decode(item) for item in _expect(v, list, "a list")),
    )


def _dataclass(cls: type) -> _Codec:
    names = [f.name for f in dataclasses.fields(cls)]
    hints = typing.get_type_hints(cls)
    parts = tuple(_codec(hints[name]) for name in names)
    whole = _fixed_tuple(parts)
    return _Codec(
        lambda v: whole.encode([getattr(v, name) for name in names]),
        lambda v: cls(*whole.decode(v)),
    )
