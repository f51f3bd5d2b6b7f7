package pokazy.bot;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.avro.Schema;
import org.apache.avro.data.TimeConversions;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.avro.message.SchemaStore;

/**
 * pokazy's Avro schemas, read at run time from the repository's {@code schemas/} directory.
 *
 * <p>The current version of each record type is {@code <dir>/<full name>.avsc}; earlier versions
 * are {@code <dir>/history/<full name>/v<N>.avsc}. Messages are Avro single-object encoding (two
 * marker bytes C3 01, the writer schema's CRC-64-AVRO fingerprint, the binary datum), which
 * Avro's {@link BinaryMessageEncoder} writes and {@link BinaryMessageDecoder} reads. A decoder
 * here knows every version of its record type by fingerprint and resolves a message written
 * with any of them to the current schema, so fields added later get their defaults.
 */
public final class Schemas {

  /** Generic records with {@code Instant} timestamps and {@code LocalDate} dates. */
  public static final GenericData MODEL = model();

  private final Path dir;
  private final Map<String, Schema> current = new TreeMap<>();
  private final Map<String, List<Schema>> history = new TreeMap<>();

  private Schemas(Path dir) {
    this.dir = dir;
  }

  /** Loads {@code <dir>/*.avsc} and {@code <dir>/history/*}{@code /v*.avsc}. */
  public static Schemas load(Path dir) {
    Schemas schemas = new Schemas(dir);
    for (Path file : list(dir, "*.avsc")) {
      Schema schema = parse(file);
      String expected = schema.getFullName() + ".avsc";
      if (!file.getFileName().toString().equals(expected)) {
        throw new IllegalArgumentException(file + ": must be named " + expected);
      }
      schemas.current.put(schema.getFullName(), schema);
    }
    if (schemas.current.isEmpty()) {
      throw new IllegalArgumentException(dir + ": no *.avsc schemas found");
    }
    Path historyDir = dir.resolve("history");
    if (Files.isDirectory(historyDir)) {
      for (Path versions : list(historyDir, "*")) {
        for (Path file : list(versions, "v*.avsc")) {
          Schema schema = parse(file);
          if (!schemas.current.containsKey(schema.getFullName())) {
            throw new IllegalArgumentException(file + ": no current schema of that name");
          }
          schemas.history
              .computeIfAbsent(schema.getFullName(), name -> new ArrayList<>())
              .add(schema);
        }
      }
    }
    return schemas;
  }

  /** Parses one {@code .avsc} file (each with a parser of its own: files repeat named types). */
  public static Schema parse(Path file) {
    try {
      return new Schema.Parser().parse(file.toFile());
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + file, e);
    }
  }

  /** The directory the schemas came from. */
  public Path dir() {
    return dir;
  }

  /** The current schema of a record type, by full name ({@code pokazy.ReadingSubmitted}). */
  public Schema current(String fullName) {
    Schema schema = current.get(fullName);
    if (schema == null) {
      throw new IllegalArgumentException(
          "unknown record type " + fullName + " (known: " + current.keySet() + ")");
    }
    return schema;
  }

  /** An encoder that writes messages with the given writer schema. */
  public static BinaryMessageEncoder<GenericRecord> encoder(Schema writer) {
    return new BinaryMessageEncoder<>(MODEL, writer);
  }

  /**
   * A decoder that reads messages written with any known version of {@code fullName}, as records
   * of its current schema. A message of another record type, or of an unknown version, throws
   * {@link org.apache.avro.message.MissingSchemaException}.
   */
  public BinaryMessageDecoder<GenericRecord> decoder(String fullName) {
    Schema reader = current(fullName);
    SchemaStore.Cache versions = new SchemaStore.Cache();
    versions.addSchema(reader);
    for (Schema older : history.getOrDefault(fullName, List.of())) {
      versions.addSchema(older);
    }
    return new BinaryMessageDecoder<>(MODEL, reader, versions);
  }

  private static List<Path> list(Path dir, String glob) {
    List<Path> paths = new ArrayList<>();
    try (DirectoryStream<Path> stream = Files.newDirectoryStream(dir, glob)) {
      stream.forEach(paths::add);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list " + dir, e);
    }
    paths.sort(null);
    return paths;
  }

  private static GenericData model() {
    GenericData model = new GenericData();
    model.addLogicalTypeConversion(new TimeConversions.TimestampMillisConversion());
    model.addLogicalTypeConversion(new TimeConversions.DateConversion());
    return model;
  }
}
