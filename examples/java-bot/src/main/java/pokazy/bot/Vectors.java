package pokazy.bot;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericRecord;

/**
 * Holds Avro's own encoder and decoder to pokazy's test vectors ({@code schemas/vectors/}).
 *
 * <p>Each schema file {@code schemas/X.avsc} has a vector {@code schemas/vectors/X.json} (the same
 * path, {@code .json}): {@code schema} (the writer schema file, relative to {@code schemas/}),
 * {@code fingerprint} (its CRC-64-AVRO, hex, as on the wire: little-endian), {@code datum} (a
 * record in its JSON form), {@code hex} (that record's exact single-object message) and, for an
 * older version, {@code read} (the record as a reader of the current schema sees it). Checked:
 * encode(datum) = hex, the header's fingerprint, and decode(hex) = read, else datum.
 */
final class Vectors {

  private static final HexFormat HEX = HexFormat.of();

  private Vectors() {}

  /** Checks every schema's vector; prints one line per vector; 0 if all hold, else 1. */
  static int check(Schemas schemas, Path vectors, PrintStream out) throws IOException {
    int failures = 0;
    List<Path> schemaFiles;
    try (Stream<Path> files = Files.walk(schemas.dir())) {
      schemaFiles = files
          .filter(path -> path.toString().endsWith(".avsc"))
          .filter(path -> !path.startsWith(vectors))
          .sorted()
          .toList();
    }
    for (Path schemaFile : schemaFiles) {
      String relative = schemas.dir().relativize(schemaFile).toString();
      Path vectorFile = vectors.resolve(relative.replaceFirst("\\.avsc$", ".json"));
      String problem;
      if (!Files.isRegularFile(vectorFile)) {
        problem = "no vector " + vectorFile;
      } else {
        problem = problem(schemas, relative, PokazyBot.MAPPER.readTree(vectorFile.toFile()));
      }
      if (problem == null) {
        out.println("ok   " + relative);
      } else {
        out.println("FAIL " + relative + ": " + problem);
        failures++;
      }
    }
    out.printf("%d vectors, %d failed%n", schemaFiles.size(), failures);
    return failures == 0 ? 0 : 1;
  }

  /** What is wrong with one vector, or null. */
  private static String problem(Schemas schemas, String relative, JsonNode vector)
      throws IOException {
    if (!relative.equals(vector.path("schema").asText())) {
      return "its schema is " + vector.path("schema") + ", expected \"" + relative + "\"";
    }
    Schema writer = Schemas.parse(schemas.dir().resolve(relative));
    byte[] message = HEX.parseHex(vector.path("hex").asText());

    String fingerprint = HEX.formatHex(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
        .putLong(SchemaNormalization.parsingFingerprint64(writer)).array());
    if (!fingerprint.equals(vector.path("fingerprint").asText())) {
      return "fingerprint is " + fingerprint + ", vector has " + vector.path("fingerprint");
    }

    GenericRecord datum = JsonForm.toRecord(writer, vector.path("datum"));
    String encoded = HEX.formatHex(PokazyBot.bytes(Schemas.encoder(writer).encode(datum)));
    if (!encoded.equals(HEX.formatHex(message))) {
      return "encode(datum) is " + encoded + ", vector has " + HEX.formatHex(message);
    }

    GenericRecord read = schemas.decoder(writer.getFullName()).decode(message);
    // Through text and back, so a long that fits an int compares equal to the file's number.
    JsonNode readJson = PokazyBot.MAPPER.readTree(
        PokazyBot.MAPPER.writeValueAsString(JsonForm.toJson(read.getSchema(), read)));
    JsonNode expected = vector.has("read") ? vector.get("read") : vector.get("datum");
    if (!readJson.equals(expected)) {
      return "decode(hex) is " + readJson + ", vector has " + expected;
    }
    return null;
  }
}
