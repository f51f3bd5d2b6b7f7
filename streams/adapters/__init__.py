"""The formats and systems around the domain: Avro, the events on the wire, ClickHouse, Kafka."""
