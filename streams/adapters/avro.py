"""Avro codec for pokazy's events: single-object encoding, schema resolution, the JSON form.

Every message on the wire is Avro *single-object encoding*: the two magic bytes ``C3 01``, the
8-byte little-endian CRC-64-AVRO (Rabin) fingerprint of the writer schema's parsing canonical
form, then the plain Avro binary body. A reader finds the writer's schema by that fingerprint
among the current schemas in ``schemas/`` and every earlier version kept under
``schemas/history/<full name>/v<N>.avsc``, and resolves the body to the *current* schema of the
same name, so adding a field with a default never breaks old messages.

``encode`` validates before writing (a walk stricter than fastavro's validator that names the
offending field precisely); ``decode`` never lets anything but `DecodeError` escape, whatever the
bytes. ``from_json``/``to_json`` convert the documented JSON form (ISO-8601 UTC timestamps,
``YYYY-MM-DD`` dates, missing optional fields = null) used by the command line.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from streams.errors import ConfigError, DecodeError, InvalidEvent

__all__ = ["MAGIC", "AvroCodec", "default_codec"]

#: The two marker bytes that start every single-object encoded message (Avro spec).
MAGIC = b"\xc3\x01"
_HEADER_LEN = len(MAGIC) + 8
_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
# Timestamps and dates a reader can turn back into Python values (years 1 to 9999): outside
# these, fastavro writes happily but no reader can decode the message.
_MIN_TIME = dt.datetime.min.replace(tzinfo=dt.UTC)
_MAX_TIME = dt.datetime.max.replace(tzinfo=dt.UTC)
_MILLIS_RANGE = (-62_135_596_800_000, 253_402_300_799_999)  # _MIN_TIME, _MAX_TIME in ms
_DAYS_RANGE = (dt.date.min.toordinal() - _EPOCH_DAY, dt.date.max.toordinal() - _EPOCH_DAY)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_HISTORY_FILE = re.compile(r"v(\d+)\.avsc")

Schema = Any  # a fastavro-parsed schema: a name, a union list or a dict
Datum = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Precise validation, in place of fastavro's validator: that one names the record type rather
# than the path (no array index), costs more than writing the record, and quietly accepts
# things that would corrupt data: a naive datetime is taken as the *host's* local time, a date
# may be any ISO string, an unknown (misspelt) field is dropped. This walk is compiled once per
# schema into closures; it returns None for a valid datum, or a `_Problem` whose path is
# collected on the way back up, so the happy path allocates nothing. The tests check that
# whatever it accepts, fastavro's validator and writer accept too.
# ---------------------------------------------------------------------------------------------


class _Problem:
    """One validation failure: a message and the path to it, innermost segment first."""

    __slots__ = ("message", "path")

    def __init__(self, message: str) -> None:
        self.message = message
        self.path: list[str] = []

    def at(self, segment: str) -> _Problem:
        self.path.append(segment)
        return self

    def field(self) -> str | None:
        return "".join(reversed(self.path)).lstrip(".") or None


_Check = Callable[[Any], "_Problem | None"]


def _show(value: Any) -> str:
    """A short repr of an offending value for error messages (user input may be huge)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _mismatch(expected: str, value: Any) -> _Problem:
    return _Problem(f"expected {expected}, got {_show(value)}")


@dataclass(frozen=True, slots=True)
class _Node:
    """A compiled schema node: what it accepts (for messages) and its check."""

    expected: str
    check: _Check


def _compile(schema: Schema, named: dict[str, _Node]) -> _Node:
    """Compile a parsed schema into a `_Node` (named types are registered in `named`)."""
    if isinstance(schema, str):
        if schema in named:
            return named[schema]
        return _primitive(schema)
    if isinstance(schema, list):
        return _union([_compile(branch, named) for branch in schema])
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical == "timestamp-millis" and kind == "long":
        return _Node("timezone-aware datetime", _check_timestamp)
    if logical == "date" and kind == "int":
        return _Node("datetime.date", _check_date)
    if kind == "record" or kind == "error":
        return _record(schema, named)
    if kind == "enum":
        symbols = frozenset(schema["symbols"])
        node = _Node(
            "one of " + ", ".join(schema["symbols"]),
            lambda v: None if isinstance(v, str) and v in symbols else _mismatch(node.expected, v),
        )
        named[schema["name"]] = node
        return node
    if kind == "array":
        return _array(_compile(schema["items"], named))
    if kind == "map":
        return _map(_compile(schema["values"], named))
    if kind == "fixed":
        size = schema["size"]
        node = _Node(
            f"{size} bytes",
            lambda v: (
                None if isinstance(v, bytes) and len(v) == size else _mismatch(node.expected, v)
            ),
        )
        named[schema["name"]] = node
        return node
    return _primitive(kind)  # {"type": "long"} and unknown logical types: the underlying type


def _primitive(kind: str) -> _Node:
    def integer(low: int, high: int) -> _Check:
        def check(v: Any) -> _Problem | None:
            if isinstance(v, int) and not isinstance(v, bool) and low <= v <= high:
                return None
            return _mismatch(kind, v)

        return check

    checks: dict[str, _Check] = {
        "null": lambda v: None if v is None else _mismatch("null", v),
        "boolean": lambda v: None if isinstance(v, bool) else _mismatch("boolean", v),
        "string": lambda v: None if isinstance(v, str) else _mismatch("string", v),
        "bytes": lambda v: None if isinstance(v, bytes | bytearray) else _mismatch("bytes", v),
        "int": integer(*_INT_RANGE),
        "long": integer(*_LONG_RANGE),
        "float": lambda v: (
            None if isinstance(v, int | float) and not isinstance(v, bool) else _mismatch(kind, v)
        ),
    }
    checks["double"] = checks["float"]
    if kind not in checks:
        raise ConfigError(f"unsupported Avro type {kind!r}")
    return _Node(kind, checks[kind])


def _check_timestamp(v: Any) -> _Problem | None:
    if isinstance(v, dt.datetime):
        # A naive datetime would be written as the host's local time by fastavro.
        if v.utcoffset() is None:
            return _Problem(f"naive datetime {_show(v)} has no time zone; give an aware UTC one")
        if not _MIN_TIME <= v <= _MAX_TIME:  # e.g. 0001-01-01T00:00+05:00
            return _Problem(f"{_show(v)} is outside years 1 to 9999 in UTC")
        return None
    if isinstance(v, int) and not isinstance(v, bool):  # epoch milliseconds
        if _MILLIS_RANGE[0] <= v <= _MILLIS_RANGE[1]:
            return None
        return _Problem(f"{v} epoch milliseconds is outside years 1 to 9999")
    return _mismatch("timezone-aware datetime", v)


def _check_date(v: Any) -> _Problem | None:
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return None
    if isinstance(v, int) and not isinstance(v, bool):  # days since the epoch
        if _DAYS_RANGE[0] <= v <= _DAYS_RANGE[1]:
            return None
        return _Problem(f"{v} epoch days is outside years 1 to 9999")
    return _mismatch("datetime.date", v)


def _union(branches: list[_Node]) -> _Node:
    others = [b for b in branches if b.expected != "null"]
    nullable = len(others) < len(branches)
    expected = " or ".join([b.expected for b in others] + (["null"] if nullable else []))
    if nullable and len(others) == 1:
        # ["null", X]: an optional field. A wrong value is reported as X's problem, so a bad
        # value inside an optional record still gets its precise path.
        inner = others[0].check

        def optional(v: Any) -> _Problem | None:
            if v is None:
                return None
            problem = inner(v)
            if problem is not None and not problem.path:
                return _mismatch(expected, v)
            return problem

        return _Node(expected, optional)

    def any_branch(v: Any) -> _Problem | None:
        for branch in branches:
            if branch.check(v) is None:
                return None
        return _mismatch(expected, v)

    return _Node(expected, any_branch)


def _array(items: _Node) -> _Node:
    item = items.check

    def check(v: Any) -> _Problem | None:
        if not isinstance(v, list | tuple):
            return _mismatch(f"array of {items.expected}", v)
        for index, element in enumerate(v):
            problem = item(element)
            if problem is not None:
                return problem.at(f"[{index}]")
        return None

    return _Node(f"array of {items.expected}", check)


def _map(values: _Node) -> _Node:
    value_check = values.check

    def check(v: Any) -> _Problem | None:
        if not isinstance(v, Mapping):
            return _mismatch(f"map of {values.expected}", v)
        for key, value in v.items():
            if not isinstance(key, str):
                return _Problem(f"map keys must be strings, got {_show(key)}")
            problem = value_check(value)
            if problem is not None:
                return problem.at(f"[{key!r}]")
        return None

    return _Node(f"map of {values.expected}", check)


def _record(schema: Mapping[str, Any], named: dict[str, _Node]) -> _Node:
    name: str = schema["name"]
    expected = f"{name} record"
    fields: list[tuple[str, _Check, bool]] = []
    known: frozenset[str] = frozenset()

    def check(v: Any) -> _Problem | None:
        if not isinstance(v, Mapping):
            return _mismatch(expected, v)
        for key in v:
            if key not in known:
                return _Problem(f"unknown field (not in {name})").at(f".{key}")
        for field_name, field_check, may_be_missing in fields:
            if field_name not in v:
                if may_be_missing:
                    continue
                return _Problem("required field is missing").at(f".{field_name}")
            problem = field_check(v[field_name])
            if problem is not None:
                return problem.at(f".{field_name}")
        return None

    node = named[name] = _Node(expected, check)  # registered first: a self-reference resolves
    for field in schema["fields"]:
        field_type = field["type"]
        # Like fastavro's writer: a missing field takes its default, or null if nullable.
        may_be_missing = "default" in field or (
            isinstance(field_type, list) and "null" in field_type
        )
        fields.append((field["name"], _compile(field_type, named).check, may_be_missing))
    known = frozenset(f[0] for f in fields)
    return node


# ---------------------------------------------------------------------------------------------
# The JSON form: the same field names and plain values (no Avro-JSON union wrapping), with
# ISO-8601 strings for timestamps and dates. Conversion is a walk over the parsed schema; the
# result is then validated like any datum, so type errors get the same precise messages.
# ---------------------------------------------------------------------------------------------


def _parse_timestamp(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 timestamp string, got {_show(value)}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO-8601 timestamp: {_show(value)}") from None
    if parsed.utcoffset() is None:
        raise ValueError(f"timestamp {_show(value)} has no UTC offset (write e.g. ...Z)")
    return parsed.astimezone(dt.UTC)


def _parse_date(value: Any) -> Any:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError(f"expected a YYYY-MM-DD date string, got {_show(value)}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a valid date: {_show(value)}") from None


def _format_timestamp(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        value = _EPOCH + dt.timedelta(milliseconds=value)
    if isinstance(value, dt.datetime) and value.utcoffset() is not None:
        value = value.astimezone(dt.UTC)
        spec = "milliseconds" if value.microsecond else "seconds"
        return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"
    return value


def _format_date(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        value = dt.date.fromordinal(_EPOCH_DAY + value)
    return value.isoformat() if isinstance(value, dt.date) else value


def _convert(
    schema: Schema,
    value: Any,
    path: str,
    named: Mapping[str, Any],
    convert: Mapping[str, Callable[[Any], Any]],
    strict: bool,
) -> Any:
    """Walk `value` along `schema`, applying `convert[logicalType]` to logical-type values.

    `strict` (from JSON): unknown fields and missing required fields raise `InvalidEvent`, and
    missing optional ones are filled with their default. Values of the wrong shape are passed
    through untouched for the validator to report.
    """
    if isinstance(schema, str):
        if schema not in named:
            return value
        schema = named[schema]
    if isinstance(schema, list):
        if value is None:
            return None
        branches = [b for b in schema if b != "null"]
        return (
            _convert(branches[0], value, path, named, convert, strict)
            if len(branches) == 1
            else value
        )
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical in convert:
        try:
            return convert[logical](value)
        except (ValueError, OverflowError) as err:  # OverflowError: epoch values out of range
            raise InvalidEvent(str(err), field=path or None) from None
    if kind == "array" and isinstance(value, list | tuple):
        return [
            _convert(schema["items"], v, f"{path}[{i}]", named, convert, strict)
            for i, v in enumerate(value)
        ]
    if kind == "map" and isinstance(value, Mapping):
        return {
            k: _convert(schema["values"], v, f"{path}[{k!r}]", named, convert, strict)
            for k, v in value.items()
        }
    if kind == "record" and isinstance(value, Mapping):
        out: Datum = {}
        fields = {f["name"]: f for f in schema["fields"]}
        for key in value:
            if strict and key not in fields:
                raise InvalidEvent(
                    f"unknown field (not in {schema['name']})", field=_join(path, key)
                )
        for field_name, field in fields.items():
            field_path = _join(path, field_name)
            if field_name in value:
                out[field_name] = _convert(
                    field["type"], value[field_name], field_path, named, convert, strict
                )
            elif not strict:
                continue
            elif "default" in field:
                out[field_name] = copy.deepcopy(field["default"])
            elif isinstance(field["type"], list) and "null" in field["type"]:
                out[field_name] = None
            else:
                raise InvalidEvent("required field is missing", field=field_path)
        return out
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_FROM_JSON = {"timestamp-millis": _parse_timestamp, "date": _parse_date}
_TO_JSON = {"timestamp-millis": _format_timestamp, "date": _format_date}


# ---------------------------------------------------------------------------------------------
# The codec
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Version:
    """One schema version: parsed, fingerprinted, with its precomputed message header."""

    name: str  # full name, e.g. "pokazy.ReadingSubmitted"
    parsed: Schema
    named: Mapping[str, Any]  # named types defined in it, for the JSON walk
    canonical: str
    fingerprint: bytes
    header: bytes  # MAGIC + fingerprint
    source: Path


def _load_version(path: Path) -> _Version:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        named: dict[str, Any] = {}
        parsed = parse_schema(raw, named)
        canonical = to_parsing_canonical_form(parsed)
    except Exception as err:  # any parse failure is a broken deployment, reported by file
        raise ConfigError(f"{path}: not a valid Avro schema: {err}") from err
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ConfigError(f"{path}: the top level must be a record schema")
    digest = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    return _Version(parsed["name"], parsed, named, canonical, digest, MAGIC + digest, path)


class AvroCodec:
    """Encodes and decodes pokazy's events as Avro single-object encoding.

    Knows the current (reader) schema of each record type and every writer schema version by
    fingerprint. Record types are addressed by full name (``pokazy.ReadingSubmitted``); the
    short name (``ReadingSubmitted``) is accepted too.
    """

    def __init__(self, current: Mapping[str, _Version], history: list[_Version]) -> None:
        self._current: dict[str, _Version] = {}
        self._checks: dict[str, _Check] = {}
        self._writers: dict[bytes, _Version] = {}
        for version in [*current.values(), *history]:
            known = self._writers.setdefault(version.fingerprint, version)
            if known.canonical != version.canonical:
                raise ConfigError(
                    f"fingerprint collision between {known.source} and {version.source}"
                )
        for name, version in current.items():
            short = name.rpartition(".")[2]
            check = _compile(version.parsed, {}).check
            for alias in (name, short):
                self._current[alias] = version
                self._checks[alias] = check
        # A reader whose writer is the current schema needs no resolution (much faster).
        self._resolve: dict[bytes, Schema] = {
            v.fingerprint: None if v is current[v.name] else current[v.name].parsed
            for v in self._writers.values()
        }

    @classmethod
    def load(cls, schemas_dir: Path | None = None) -> AvroCodec:
        """Load ``<dir>/*.avsc`` (current schemas) and ``<dir>/history/<name>/v<N>.avsc``.

        The default directory is the repository's ``schemas/``. Raises `ConfigError` if a
        schema is invalid, a file is not named by its schema's full name, or a history
        directory has no current schema.
        """
        root = schemas_dir or Path(__file__).resolve().parents[2] / "schemas"
        current: dict[str, _Version] = {}
        for path in sorted(root.glob("*.avsc")):
            version = _load_version(path)
            if path.stem != version.name:
                raise ConfigError(f"{path}: must be named {version.name}.avsc")
            current[version.name] = version
        if not current:
            raise ConfigError(f"{root}: no *.avsc schemas found")
        history: list[_Version] = []
        for path in sorted((root / "history").glob("*/*.avsc")):
            if not _HISTORY_FILE.fullmatch(path.name):
                raise ConfigError(f"{path}: history files must be named v<N>.avsc")
            version = _load_version(path)
            if path.parent.name != version.name or version.name not in current:
                raise ConfigError(
                    f"{path}: holds {version.name}, expected a version of a current "
                    f"schema in a directory named by its full name"
                )
            history.append(version)
        return cls(current, history)

    @property
    def names(self) -> list[str]:
        """Full names of the record types this codec knows, sorted."""
        return sorted({v.name for v in self._current.values()})

    def schema(self, name: str) -> dict[str, Any]:
        """A copy of the current (fastavro-parsed) schema of a record type."""
        return cast(dict[str, Any], copy.deepcopy(self._version(name).parsed))

    def fingerprint(self, name: str) -> bytes:
        """The 8-byte CRC-64-AVRO fingerprint of a record type's current schema."""
        return self._version(name).fingerprint

    def _version(self, name: str) -> _Version:
        try:
            return self._current[name]
        except KeyError:
            raise InvalidEvent(
                f"unknown record type {name!r} (known: {', '.join(self.names)})"
            ) from None

    def validate(self, name: str, datum: Any) -> None:
        """Raise `InvalidEvent` naming the offending field if `datum` does not fit the schema.

        Stricter than fastavro's validator (which the tests hold it against): also refuses
        naive datetimes, non-date values for dates and unknown fields.
        """
        problem = self._checks[self._version(name).name](datum)
        if problem is not None:
            raise InvalidEvent(problem.message, field=problem.field())

    def encode(self, name: str, datum: Mapping[str, Any], *, trusted: bool = False) -> bytes:
        """Validate `datum` against the current schema of `name` and return the message bytes.

        Raises `InvalidEvent` (naming the field, e.g. ``readings[1].value: expected long, got
        'abc'``) for an unknown record type or a datum that does not fit the schema. `trusted`
        skips pokazy's own validator for records the worker builds itself (replies), which
        tests hold to the schema; fastavro's writer still refuses what it cannot write.
        """
        if not trusted:
            self.validate(name, datum)
        version = self._current[name]
        out = BytesIO()
        out.write(version.header)
        try:
            schemaless_writer(out, version.parsed, datum)
        except Exception as err:  # validated above, so this is a validator gap: still bad input
            raise InvalidEvent(f"{version.name}: cannot be written: {err}") from err
        return out.getvalue()

    def decode(self, payload: bytes | bytearray | memoryview) -> tuple[str, Datum]:
        """Read one message: return its record's full name and the datum in the current schema.

        The writer's schema is found by fingerprint and resolved to the current schema of the
        same name (fields added since get their defaults). Timestamps come back as aware UTC
        datetimes, dates as `datetime.date`. Raises `DecodeError`, and nothing else, for any
        bytes that are not exactly one such message.
        """
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise DecodeError(f"expected bytes, got {type(payload).__name__}")
        payload = bytes(payload)
        if not payload:
            raise DecodeError("empty payload")
        if not MAGIC.startswith(payload[:2]):  # a lone C3 is a truncated header, below
            raise DecodeError(
                f"not Avro single-object encoding: starts {payload[:2].hex(' ')}, expected c3 01"
            )
        if len(payload) < _HEADER_LEN:
            raise DecodeError(f"truncated header: {len(payload)} bytes, need {_HEADER_LEN}")
        digest = payload[2:_HEADER_LEN]
        writer = self._writers.get(digest)
        if writer is None:
            raise DecodeError(f"unknown schema fingerprint {digest.hex()}: not a pokazy schema")
        body = BytesIO(payload)
        body.seek(_HEADER_LEN)
        try:
            datum = schemaless_reader(body, writer.parsed, self._resolve[digest])
        except Exception as err:  # EOF, bad varint, bad UTF-8, enum index, ...: all corrupt
            raise DecodeError(
                f"corrupt {writer.name} body ({type(err).__name__}: {_show(str(err))})"
            ) from err
        extra = len(payload) - body.tell()
        if extra:
            raise DecodeError(f"corrupt {writer.name} body: {extra} trailing bytes after record")
        if not isinstance(datum, dict):  # cannot happen for a record schema; keeps typing honest
            raise DecodeError(f"corrupt {writer.name} body: not a record")
        return writer.name, datum

    def from_json(self, name: str, obj: Mapping[str, Any]) -> Datum:
        """Convert the documented JSON form of a record into a datum for `encode`.

        Timestamps are ISO-8601 strings with an offset (``2023-05-30T09:15:00Z``; any offset
        is converted to UTC, a naive one is invalid), dates ``YYYY-MM-DD``; a missing optional
        field takes its default (null). A top-level ``"type"`` naming this record (as registry
        lines carry) is ignored. Raises `InvalidEvent` naming the field on bad input.
        """
        version = self._version(name)
        if not isinstance(obj, Mapping):
            raise InvalidEvent(f"expected a JSON object for {version.name}, got {_show(obj)}")
        tag = obj.get("type")
        if "type" in obj and "type" not in {f["name"] for f in version.parsed["fields"]}:
            if tag not in (version.name, version.name.rpartition(".")[2]):
                raise InvalidEvent(f"this is a {version.name} line, not {_show(tag)}", field="type")
            obj = {k: v for k, v in obj.items() if k != "type"}
        datum = _convert(version.parsed, obj, "", version.named, _FROM_JSON, strict=True)
        self.validate(name, datum)
        return cast(Datum, datum)

    def to_json(self, name: str, datum: Mapping[str, Any]) -> Datum:
        """The documented JSON form of a datum: timestamps as ISO-8601 with Z, dates as ISO.

        The result holds only JSON types (given a valid datum) and round-trips through
        `from_json`.
        """
        version = self._version(name)
        return cast(Datum, _convert(version.parsed, datum, "", version.named, _TO_JSON, False))


@functools.cache
def default_codec() -> AvroCodec:
    """The codec for the repository's ``schemas/`` directory, loaded once per process."""
    return AvroCodec.load()
