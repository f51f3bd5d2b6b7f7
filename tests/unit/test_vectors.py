"""The wire test vectors (`schemas/vectors/`) hold for the Python codec, in both directions.

Each schema file `schemas/X.avsc` has a vector `schemas/vectors/X.json`: a record in its JSON
form and its exact single-object bytes. Any implementation can check its encoder and decoder
against them without a broker; the Java example checks Apache Avro's own
(tests/integration/test_java_bot.py).
"""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from streams.adapters.avro import MAGIC, default_codec

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
VECTORS = SCHEMAS / "vectors"
SCHEMA_FILES = sorted(p.relative_to(SCHEMAS).as_posix() for p in SCHEMAS.rglob("*.avsc"))
CURRENT = [name for name in SCHEMA_FILES if "/" not in name]
HISTORY = [name for name in SCHEMA_FILES if "/" in name]


def _vector(schema_file: str) -> dict[str, Any]:
    path = VECTORS / schema_file.replace(".avsc", ".json")
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert vector["schema"] == schema_file
    return vector


def test_every_schema_version_has_a_vector() -> None:
    names = {p.relative_to(VECTORS).as_posix() for p in VECTORS.rglob("*.json")}
    assert names == {name.replace(".avsc", ".json") for name in SCHEMA_FILES}
    assert "pokazy.PeriodCloseRequested.avsc" in CURRENT
    assert HISTORY, "schemas/history/ holds the earlier versions"


@pytest.mark.parametrize("schema_file", CURRENT)
def test_current_schema_vector_encodes_and_decodes(schema_file: str) -> None:
    codec = default_codec()
    vector = _vector(schema_file)
    name = schema_file.removesuffix(".avsc")
    payload = bytes.fromhex(vector["hex"])

    assert codec.fingerprint(name).hex() == vector["fingerprint"]
    encoded = codec.encode(name, codec.from_json(name, vector["datum"]))
    assert encoded.hex() == vector["hex"]
    decoded_name, datum = codec.decode(payload)
    assert decoded_name == name
    assert codec.to_json(name, datum) == vector["datum"]


@pytest.mark.parametrize("schema_file", HISTORY)
def test_older_version_vector_is_read_with_the_current_schema(schema_file: str) -> None:
    # The codec writes only current versions; fastavro writes the older one, as an old bot did.
    codec = default_codec()
    vector = _vector(schema_file)
    writer = parse_schema(json.loads((SCHEMAS / schema_file).read_text(encoding="utf-8")), {})
    assert isinstance(writer, dict)
    name = writer["name"]
    digest = bytes.fromhex(fingerprint(to_parsing_canonical_form(writer), "CRC-64-AVRO"))
    assert digest.hex() == vector["fingerprint"]
    assert digest != codec.fingerprint(name)

    # from_json adds the newer fields as null; the older schema does not write them.
    body = BytesIO()
    schemaless_writer(body, writer, codec.from_json(name, vector["datum"]))
    assert (MAGIC + digest + body.getvalue()).hex() == vector["hex"]
    decoded_name, datum = codec.decode(bytes.fromhex(vector["hex"]))
    assert decoded_name == name
    assert codec.to_json(name, datum) == vector["read"]
