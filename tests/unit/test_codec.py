"""The Avro codec: schemas, single-object encoding, evolution, JSON form, errors, fuzzing."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import re
import shutil
import struct
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form
from fastavro.validation import validate as fastavro_validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.adapters.avro import MAGIC, AvroCodec, default_codec
from streams.errors import ConfigError, DecodeError, InvalidEvent

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
UTC = dt.UTC
RS = "pokazy.ReadingSubmitted"

SAMPLES: dict[str, dict[str, Any]] = {
    RS: {
        "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "account_id": "0123456789",
        "meter_id": "GAMA-100200",
        "channel": "viber",
        "sender_id": "u-77",
        "submitted_at": dt.datetime(2023, 5, 30, 9, 15, 0, 123000, tzinfo=UTC),
        "readings": [
            {"zone": None, "register": "1.8.2", "value": 12345, "raw_text": "день 12345"},
            {"zone": "night", "register": None, "value": 0, "raw_text": None},
        ],
    },
    "pokazy.MeterInstalled": {
        "account_id": "0123456789",
        "meter_id": "GAMA-100200",
        "zones": ["day", "night"],
        "digits": 6,
        "initial": {"day": 12000, "night": 6500},
        "installed_on": dt.date(2021, 3, 15),
        "dso": "dtek-kem",
    },
    "pokazy.MeterRemoved": {
        "account_id": "0123456789",
        "meter_id": "GAMA-100200",
        "final": {"day": 15321, "night": 8012},
        "removed_on": dt.date(2023, 7, 12),
    },
    "pokazy.SubmissionOutcome": {
        "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "account_id": "0123456789",
        "status": "partially_accepted",
        "readings": [
            {
                "zone": "day",
                "register": "1.8.2",
                "value": 12345,
                "accepted": True,
                "reason": None,
                "kind": "in_window",
                "period": "2023-05",
                "kwh": -12,
                "message_uk": "Прийнято",
                "message_en": "Accepted",
            },
            {
                "zone": None,
                "register": "9.9.9",
                "value": 1,
                "accepted": False,
                "reason": "UNKNOWN_REGISTER",
                "kind": None,
                "period": None,
                "kwh": None,
                "message_uk": "Невідомий регістр",
                "message_en": "Unknown register",
            },
        ],
        "message_uk": "Частково прийнято",
        "message_en": "Partially accepted",
        "processed_at": dt.datetime(2023, 5, 30, 9, 15, 1, tzinfo=UTC),
    },
    "pokazy.PeriodCloseRequested": {
        "period": "2023-05",
        "requested_at": dt.datetime(2023, 6, 4, 0, 0, tzinfo=UTC),
        "requested_by": "billing",
        "signature": "9f" * 32,
    },
}


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec.load(SCHEMAS)


def sample(name: str) -> dict[str, Any]:
    return copy.deepcopy(SAMPLES[name])


# --- schemas ---------------------------------------------------------------------------------


def test_every_record_type_has_a_sample(codec: AvroCodec) -> None:
    assert codec.names == sorted(SAMPLES)


def test_default_codec_is_cached_and_uses_repo_schemas() -> None:
    assert default_codec() is default_codec()
    assert default_codec().names == sorted(SAMPLES)


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.avsc")), ids=lambda p: p.name)
def test_schema_files_are_documented_pokazy_records(path: Path) -> None:
    raw = json.loads(path.read_text())
    assert raw["namespace"] == "pokazy"
    assert path.name == f"pokazy.{raw['name']}.avsc"
    assert raw["doc"]
    assert all(field["doc"] for field in raw["fields"])


def _named_definitions(node: Any, out: dict[str, list[Any]]) -> None:
    if isinstance(node, list):
        for item in node:
            _named_definitions(item, out)
    elif isinstance(node, dict):
        if node.get("type") in ("enum", "record", "fixed"):
            out.setdefault(node["name"], []).append(node)
        for value in node.values():
            _named_definitions(value, out)


def test_shared_named_types_are_defined_identically_in_every_file() -> None:
    definitions: dict[str, list[Any]] = {}
    for path in SCHEMAS.glob("*.avsc"):  # history versions differ from today's by design
        _named_definitions(json.loads(path.read_text()), definitions)
    assert len(definitions["Zone"]) == 3  # ReadingSubmitted, MeterInstalled, SubmissionOutcome
    for found in definitions.values():
        assert all(d == found[0] for d in found[1:]), found[0]["name"]
    v1: dict[str, list[Any]] = {}
    _named_definitions(json.loads((SCHEMAS / "history" / RS / "v1.avsc").read_text()), v1)
    assert v1["Zone"] == definitions["Zone"][:1]


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_binary_round_trip(codec: AvroCodec, name: str) -> None:
    assert codec.decode(codec.encode(name, sample(name))) == (name, SAMPLES[name])


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_json_round_trip(codec: AvroCodec, name: str) -> None:
    line = orjson.dumps(codec.to_json(name, sample(name)))
    assert codec.from_json(name, orjson.loads(line)) == SAMPLES[name]


def test_short_names_are_accepted(codec: AvroCodec) -> None:
    payload = codec.encode("ReadingSubmitted", sample(RS))
    assert payload == codec.encode(RS, sample(RS))
    assert codec.decode(payload)[0] == RS


def test_decoded_values_are_aware_utc_datetimes_and_dates(codec: AvroCodec) -> None:
    _, reading = codec.decode(codec.encode(RS, sample(RS)))
    assert reading["submitted_at"].utcoffset() == dt.timedelta(0)
    _, installed = codec.decode(
        codec.encode("pokazy.MeterInstalled", sample("pokazy.MeterInstalled"))
    )
    assert type(installed["installed_on"]) is dt.date


def test_spec_example_lines(codec: AvroCodec) -> None:
    line = (
        '{"event_id":"1b4e28ba-2fa1-11d2-883f-0016d3cca427","account_id":"0123456789",'
        '"channel":"viber","sender_id":"u-77","submitted_at":"2023-05-30T09:15:00Z",'
        '"readings":[{"register":"1.8.2","value":12345},{"register":"1.8.1","value":6789}]}'
    )
    datum = codec.from_json(RS, json.loads(line))
    assert datum["meter_id"] is None
    assert datum["submitted_at"] == dt.datetime(2023, 5, 30, 9, 15, tzinfo=UTC)
    assert datum["readings"][1] == {
        "zone": None,
        "register": "1.8.1",
        "value": 6789,
        "raw_text": None,
    }
    registry = (
        '{"type":"MeterInstalled","account_id":"0123456789","meter_id":"GAMA-100200",'
        '"zones":["day","night"],"digits":6,"initial":{"day":12000,"night":6500},'
        '"installed_on":"2021-03-15"}'
    )
    installed = codec.from_json("pokazy.MeterInstalled", json.loads(registry))
    assert installed["dso"] == "dtek-kem"  # the schema default
    assert installed["installed_on"] == dt.date(2021, 3, 15)
    assert "type" not in installed


def test_json_timestamps(codec: AvroCodec) -> None:
    obj = codec.to_json(RS, sample(RS))
    obj["submitted_at"] = "2023-05-30T12:15:00.5+03:00"  # any offset is converted to UTC
    got = codec.from_json(RS, obj)["submitted_at"]
    assert got == dt.datetime(2023, 5, 30, 9, 15, 0, 500000, tzinfo=UTC)
    assert got.tzinfo is UTC
    assert codec.to_json(RS, {**sample(RS), "submitted_at": got})["submitted_at"] == (
        "2023-05-30T09:15:00.500Z"
    )
    whole = {**sample(RS), "submitted_at": dt.datetime(2023, 5, 30, 9, 15, tzinfo=UTC)}
    assert codec.to_json(RS, whole)["submitted_at"] == "2023-05-30T09:15:00Z"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"submitted_at": "2023-05-30T09:15:00"}, "submitted_at", "no UTC offset"),
        ({"submitted_at": "30.05.2023 09:15"}, "submitted_at", "not an ISO-8601 timestamp"),
        ({"submitted_at": 1685438100000}, "submitted_at", "expected an ISO-8601 timestamp"),
        ({"channel": "sms"}, "channel", "expected one of viber, telegram, web, other"),
        ({"readings": [{"zone": "day", "value": 1.5}]}, "readings[0].value", "expected long"),
        ({"readings": [{"zone": "day"}]}, "readings[0].value", "required field is missing"),
        ({"readings": [{"value": 1, "raw": "x"}]}, "readings[0].raw", "unknown field"),
        ({"sender": "u-77"}, "sender", "unknown field"),
        ({"type": "MeterInstalled"}, "type", "this is a pokazy.ReadingSubmitted line"),
    ],
)
def test_from_json_names_the_bad_field(
    codec: AvroCodec, change: dict[str, Any], field: str, message: str
) -> None:
    obj = {**codec.to_json(RS, sample(RS)), **change}
    with pytest.raises(InvalidEvent, match=message) as caught:
        codec.from_json(RS, obj)
    assert caught.value.field == field


def test_from_json_dates_must_be_iso(codec: AvroCodec) -> None:
    obj = codec.to_json("pokazy.MeterRemoved", sample("pokazy.MeterRemoved"))
    for bad in ("2023-7-12", "20230712", "2023-02-30", 19000):
        with pytest.raises(InvalidEvent) as caught:
            codec.from_json("pokazy.MeterRemoved", {**obj, "removed_on": bad})
        assert caught.value.field == "removed_on"
    missing = {k: v for k, v in obj.items() if k != "removed_on"}
    with pytest.raises(InvalidEvent, match="removed_on: required field is missing"):
        codec.from_json("pokazy.MeterRemoved", missing)


# --- the wire format -------------------------------------------------------------------------

_EMPTY64 = 0xC15D213AA4D7A795


def crc64_avro(data: bytes) -> int:
    """The Avro spec's reference CRC-64-AVRO (Rabin) fingerprint, written out independently."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY64 & -(fp & 1))
        table.append(fp)
    fp = _EMPTY64
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize(
    ("canonical", "expected"),
    [  # from apache/avro share/test/data/schema-tests.txt (Java's signed longs)
        ('"null"', 7195948357588979594),
        ('{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
        ('{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245),
        ('{"type":"map","values":"string"}', -8732877298790414990),
    ],
)
def test_reference_fingerprint_matches_avro_test_vectors(canonical: str, expected: int) -> None:
    assert crc64_avro(canonical.encode()) == expected % 2**64


def test_canonical_form_of_a_small_schema(codec: AvroCodec) -> None:
    raw = json.loads((SCHEMAS / "pokazy.PeriodCloseRequested.avsc").read_text())
    assert to_parsing_canonical_form(raw) == (
        '{"name":"pokazy.PeriodCloseRequested","type":"record","fields":['
        '{"name":"period","type":"string"},{"name":"requested_at","type":"long"},'
        '{"name":"requested_by","type":"string"},{"name":"signature","type":"string"}]}'
    )


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_header_is_magic_and_little_endian_crc64_of_canonical_form(
    codec: AvroCodec, name: str
) -> None:
    raw = json.loads((SCHEMAS / f"{name}.avsc").read_text())
    canonical = to_parsing_canonical_form(raw)
    expected = struct.pack("<Q", crc64_avro(canonical.encode()))
    assert expected.hex() == fastavro_fingerprint(canonical, "CRC-64-AVRO")
    assert codec.fingerprint(name) == expected
    payload = codec.encode(name, sample(name))
    assert payload[:2] == b"\xc3\x01" == MAGIC
    assert payload[2:10] == expected
    body = BytesIO()
    schemaless_writer(body, parse_schema(raw), sample(name))
    assert payload[10:] == body.getvalue()  # the rest is the plain Avro binary body


# --- schema evolution ------------------------------------------------------------------------


def _write_with(path: Path, datum: dict[str, Any]) -> bytes:
    """A message as an older producer would write it: with that version's schema."""
    raw = json.loads(path.read_text())
    canonical = to_parsing_canonical_form(raw)
    out = BytesIO()
    out.write(MAGIC + struct.pack("<Q", crc64_avro(canonical.encode())))
    schemaless_writer(out, parse_schema(raw), datum)
    return out.getvalue()


def test_v1_reading_submitted_reads_with_the_current_schema(codec: AvroCodec) -> None:
    v1 = SCHEMAS / "history" / RS / "v1.avsc"
    old = sample(RS)
    del old["meter_id"]
    for reading in old["readings"]:
        del reading["raw_text"]
    payload = _write_with(v1, old)
    assert payload[2:10] != codec.fingerprint(RS)
    name, datum = codec.decode(payload)
    assert name == RS
    expected = sample(RS)
    expected["meter_id"] = None  # the fields added since v1 take their defaults
    for reading in expected["readings"]:
        reading["raw_text"] = None
    assert datum == expected


def test_an_unknown_schema_version_is_refused(codec: AvroCodec, tmp_path: Path) -> None:
    future = json.loads((SCHEMAS / f"{RS}.avsc").read_text())
    future["fields"].append({"name": "lang", "type": "string", "default": "uk"})
    path = tmp_path / "v3.avsc"
    path.write_text(json.dumps(future))
    payload = _write_with(path, {**sample(RS), "lang": "en"})
    with pytest.raises(DecodeError, match="unknown schema fingerprint"):
        codec.decode(payload)


def test_loading_checks_the_layout(tmp_path: Path) -> None:
    shutil.copytree(SCHEMAS, tmp_path / "ok")
    assert AvroCodec.load(tmp_path / "ok").names == sorted(SAMPLES)

    misnamed = tmp_path / "misnamed"
    shutil.copytree(SCHEMAS, misnamed)
    (misnamed / "pokazy.MeterRemoved.avsc").rename(misnamed / "MeterRemoved.avsc")
    with pytest.raises(ConfigError, match=r"must be named pokazy\.MeterRemoved\.avsc"):
        AvroCodec.load(misnamed)

    stray = tmp_path / "stray"
    shutil.copytree(SCHEMAS, stray)
    shutil.copy(stray / "history" / RS / "v1.avsc", stray / "history" / RS / "old.avsc")
    with pytest.raises(ConfigError, match=r"v<N>\.avsc"):
        AvroCodec.load(stray)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pokazy.X.avsc").write_text('{"type": "record", "name": "X", "fields": [{}]}')
    with pytest.raises(ConfigError, match="not a valid Avro schema"):
        AvroCodec.load(broken)

    with pytest.raises(ConfigError, match="no"):
        AvroCodec.load(tmp_path / "nothing-here")


# --- decode errors ---------------------------------------------------------------------------


def test_decode_errors(codec: AvroCodec) -> None:
    good = codec.encode(RS, sample(RS))
    cases = {
        b"": "empty payload",
        b"\x00\x01" + good[2:]: "not Avro single-object encoding",
        b'{"event_id": 1}': "not Avro single-object encoding",
        b"\xc3": "truncated header",
        good[:9]: "truncated header",
        MAGIC + b"\x00" * 8 + good[10:]: "unknown schema fingerprint 0000000000000000",
        good[:10]: "corrupt pokazy.ReadingSubmitted body",
        good[:-3]: "corrupt pokazy.ReadingSubmitted body",
        good + b"\x00": "1 trailing bytes after record",
        # channel enum index 9 (zigzag 18) where the schema has four symbols
        good[:10] + b"\x02a\x02b\x00\x12": "corrupt pokazy.ReadingSubmitted body",
        good[:10] + b"\x04\xff\xfe": "corrupt pokazy.ReadingSubmitted body",  # not UTF-8
    }
    for payload, message in cases.items():
        with pytest.raises(DecodeError, match=message):
            codec.decode(payload)


def test_decode_accepts_bytes_like_and_refuses_other_types(codec: AvroCodec) -> None:
    good = codec.encode(RS, sample(RS))
    assert codec.decode(bytearray(good))[0] == RS
    assert codec.decode(memoryview(good))[0] == RS
    with pytest.raises(DecodeError, match="expected bytes"):
        codec.decode("not bytes")  # type: ignore[arg-type]


# --- encode validation -----------------------------------------------------------------------


def _set(path: list[Any], value: Any) -> Any:
    def change(datum: dict[str, Any]) -> None:
        target: Any = datum
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(*path: Any) -> Any:
    def change(datum: dict[str, Any]) -> None:
        target: Any = datum
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        (RS, _set(["readings", 1, "value"], "abc"), "readings[1].value: expected long, got 'abc'"),
        (RS, _set(["readings", 0, "value"], True), "readings[0].value: expected long, got True"),
        (RS, _set(["readings", 0, "value"], 2**63), "readings[0].value: expected long"),
        (RS, _set(["readings", 0, "zone"], "evening"), "readings[0].zone: expected one of total,"),
        (RS, _set(["readings", 0, "oops"], 1), "readings[0].oops: unknown field"),
        (RS, _delete("readings", 1, "value"), "readings[1].value: required field is missing"),
        (RS, _set(["readings"], None), "readings: expected array of pokazy.RegisterReading"),
        (RS, _set(["readings", 0], "x"), "readings[0]: expected pokazy.RegisterReading record"),
        (RS, _set(["meter_id"], 7), "meter_id: expected string or null, got 7"),
        (RS, _set(["channel"], "sms"), "channel: expected one of viber, telegram, web, other"),
        (RS, _delete("event_id"), "event_id: required field is missing"),
        (RS, _set(["submitted_at"], dt.datetime(2023, 5, 30)), "submitted_at: naive datetime"),
        (RS, _set(["submitted_at"], "2023-05-30T09:15:00Z"), "submitted_at: expected timezone"),
        ("pokazy.MeterInstalled", _set(["digits"], 2**31), "digits: expected int"),
        ("pokazy.MeterInstalled", _set(["zones", 1], "noon"), "zones[1]: expected one of"),
        ("pokazy.MeterInstalled", _set(["initial", "day"], -1.0), "initial['day']: expected"),
        ("pokazy.MeterInstalled", _set(["installed_on"], "2021-03-15"), "installed_on: expected"),
        (
            "pokazy.MeterRemoved",
            _set(["removed_on"], dt.datetime(2023, 7, 12, tzinfo=UTC)),
            "removed_on: expected datetime.date",
        ),
        (RS, _set(["submitted_at"], 2**62), "submitted_at: 4611686018427387904 epoch millis"),
        (
            RS,
            _set(["submitted_at"], dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
            "is outside years 1 to 9999 in UTC",
        ),
        ("pokazy.MeterRemoved", _set(["removed_on"], -719163), "removed_on: -719163 epoch days"),
        ("pokazy.SubmissionOutcome", _set(["readings", 1, "kwh"], "5"), "readings[1].kwh"),
        ("pokazy.SubmissionOutcome", _set(["status"], None), "status: expected one of accepted"),
        ("pokazy.PeriodCloseRequested", _set(["requested_by"], b"x"), "requested_by: expected"),
    ],
)
def test_invalid_event_names_the_field(
    codec: AvroCodec, name: str, change: Any, message: str
) -> None:
    datum = sample(name)
    change(datum)
    with pytest.raises(InvalidEvent, match=re.escape(message)):
        codec.encode(name, datum)


def test_invalid_event_field_attribute_and_root_errors(codec: AvroCodec) -> None:
    datum = sample(RS)
    datum["readings"][1]["value"] = "abc"
    with pytest.raises(InvalidEvent) as caught:
        codec.encode(RS, datum)
    assert caught.value.field == "readings[1].value"
    assert str(caught.value) == "readings[1].value: expected long, got 'abc'"
    with pytest.raises(InvalidEvent, match=r"expected pokazy\.ReadingSubmitted record"):
        codec.encode(RS, ["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent, match=r"unknown record type 'pokazy\.Nope'"):
        codec.encode("pokazy.Nope", {})


def test_optional_fields_may_be_omitted_and_epoch_values_are_accepted(codec: AvroCodec) -> None:
    datum = sample(RS)
    del datum["meter_id"]
    datum["readings"] = [{"zone": "total", "value": 7}]
    datum["submitted_at"] = 1685438100000  # epoch milliseconds
    _, back = codec.decode(codec.encode(RS, datum))
    assert back["meter_id"] is None
    assert back["readings"] == [{"zone": "total", "register": None, "value": 7, "raw_text": None}]
    assert back["submitted_at"] == dt.datetime(2023, 5, 30, 9, 15, tzinfo=UTC)


# --- property tests and fuzzing --------------------------------------------------------------

_MILLIS = st.integers(0, 999).map(lambda ms: ms * 1000)
_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "string": st.text(max_size=12),
}


def datums(
    schema: Any, named: dict[str, st.SearchStrategy[Any]] | None = None
) -> st.SearchStrategy[Any]:
    """Valid datums for a fastavro-parsed schema (timestamps at millisecond precision)."""
    named = {} if named is None else named
    if isinstance(schema, str):
        return named[schema] if schema in named else _PRIMITIVES[schema]
    if isinstance(schema, list):
        return st.one_of(*(datums(branch, named) for branch in schema))
    logical = schema.get("logicalType")
    if logical == "timestamp-millis":
        instants = st.datetimes(timezones=st.just(UTC))
        return st.tuples(instants, _MILLIS).map(lambda t: t[0].replace(microsecond=t[1]))
    if logical == "date":
        return st.dates()
    kind = schema["type"]
    if kind == "enum":
        named[schema["name"]] = st.sampled_from(schema["symbols"])
        return named[schema["name"]]
    if kind == "array":
        return st.lists(datums(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=6), datums(schema["values"], named), max_size=3)
    if kind == "record":
        fields = {f["name"]: datums(f["type"], named) for f in schema["fields"]}
        named[schema["name"]] = st.fixed_dictionaries(fields)
        return named[schema["name"]]
    return _PRIMITIVES[kind]


_CODEC = AvroCodec.load(SCHEMAS)
_ANY_MESSAGE = st.sampled_from(_CODEC.names).flatmap(
    lambda name: st.tuples(st.just(name), datums(_CODEC.schema(name)))
)
_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.datetimes(),
    st.dates(),
)
_FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_PROPERTY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _places(datum: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position inside a datum (dict keys and list indices), outermost first."""
    found = [path] if path else []
    if isinstance(datum, dict):
        for key, value in datum.items():
            found += _places(value, (*path, key))
    elif isinstance(datum, list):
        for index, value in enumerate(datum):
            found += _places(value, (*path, index))
    return found


@_PROPERTY
@given(_ANY_MESSAGE)
def test_any_valid_datum_round_trips_in_both_forms(message: tuple[str, dict[str, Any]]) -> None:
    name, datum = message
    assert fastavro_validate(datum, _CODEC.schema(name))
    assert _CODEC.decode(_CODEC.encode(name, datum)) == (name, datum)
    line = orjson.dumps(_CODEC.to_json(name, datum))
    assert _CODEC.from_json(name, orjson.loads(line)) == datum


@_PROPERTY
@given(_ANY_MESSAGE, st.data())
def test_encode_refuses_what_fastavro_refuses(
    message: tuple[str, dict[str, Any]], data: st.DataObject
) -> None:
    """Mutate one value (or drop or add a key): encode raises InvalidEvent, or the datum is
    one fastavro's own validator accepts and it round-trips."""
    name, datum = message
    places = _places(datum)
    if places:
        path = data.draw(st.sampled_from(places))
        parent: Any = datum
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = data.draw(_JUNK)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.text(min_size=1, max_size=4))] = data.draw(_JUNK)
    try:
        payload = _CODEC.encode(name, datum)
    except InvalidEvent as err:
        assert str(err)
        return
    assert fastavro_validate(datum, _CODEC.schema(name), raise_errors=False)
    assert _CODEC.decode(payload)[0] == name


def _decode_or_decode_error(payload: bytes) -> None:
    try:
        name, datum = _CODEC.decode(payload)
    except DecodeError as err:
        assert str(err)
    else:
        assert name in _CODEC.names
        assert isinstance(datum, dict)


_HEADERS = st.sampled_from([_CODEC.fingerprint(n) for n in _CODEC.names]).map(lambda f: MAGIC + f)


@_FUZZ
@given(st.one_of(st.binary(max_size=64), st.tuples(_HEADERS, st.binary(max_size=96))))
def test_decode_of_random_bytes_raises_only_decode_error(
    payload: bytes | tuple[bytes, bytes],
) -> None:
    _decode_or_decode_error(payload if isinstance(payload, bytes) else payload[0] + payload[1])


@_FUZZ
@given(_ANY_MESSAGE, st.data())
def test_decode_of_mutated_payloads_raises_only_decode_error(
    message: tuple[str, dict[str, Any]], data: st.DataObject
) -> None:
    payload = bytearray(_CODEC.encode(*message))
    for _ in range(data.draw(st.integers(1, 3))):
        # Mostly in the body: a damaged header is refused before any parsing.
        at = data.draw(
            st.integers(0, len(payload)) | st.integers(min(10, len(payload)), len(payload))
        )
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if kind == "flip" and at < len(payload):
            payload[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and at < len(payload):
            payload[at] = data.draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
        elif kind == "insert":
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=9))
        elif kind == "delete":
            del payload[at : at + data.draw(st.integers(1, 4))]
        else:
            del payload[at:]
    _decode_or_decode_error(bytes(payload))


def test_an_unsigned_close_request_of_the_first_version_reads_with_an_empty_signature(
    codec: AvroCodec,
) -> None:
    from fastavro import parse_schema, schemaless_writer
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    v1 = json.loads((SCHEMAS / "history" / "pokazy.PeriodCloseRequested" / "v1.avsc").read_text())
    body = io.BytesIO()
    datum = {"period": "2023-05", "requested_at": dt.datetime(2023, 6, 4, tzinfo=UTC),
             "requested_by": "billing"}  # fmt: skip
    schemaless_writer(body, parse_schema(v1), datum)
    payload = (
        b"\xc3\x01"
        + bytes.fromhex(fingerprint(to_parsing_canonical_form(v1), "CRC-64-AVRO"))
        + body.getvalue()
    )
    name, decoded = codec.decode(payload)
    assert name == "pokazy.PeriodCloseRequested"
    assert decoded == {**datum, "signature": ""}
