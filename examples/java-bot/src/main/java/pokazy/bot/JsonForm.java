package pokazy.bot;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Instant;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.LogicalType;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;

/**
 * pokazy's documented JSON form of a record (SPEC 3.1) to an Avro generic datum and back.
 *
 * <p>The same field names and plain values as the Avro record, with no Avro-JSON union wrapping:
 * an optional field is its value or null (or absent), a timestamp is an ISO-8601 string with an
 * offset ({@code 2023-05-30T09:15:00Z}), a date is {@code YYYY-MM-DD}. An unknown field, a missing
 * required field or a value of the wrong type is an {@link IllegalArgumentException} that names
 * the field, e.g. {@code readings[1].value: expected long, got "abc"}.
 */
public final class JsonForm {

  private static final JsonNodeFactory JSON = JsonNodeFactory.instance;

  private JsonForm() {}

  /** A generic record of {@code schema} from its JSON form. */
  public static GenericRecord toRecord(Schema schema, JsonNode json) {
    return (GenericRecord) toDatum(schema, json, "");
  }

  /** The JSON form of a datum of {@code schema}, every field present (null when unset). */
  public static JsonNode toJson(Schema schema, Object datum) {
    LogicalType logical = schema.getLogicalType();
    if (logical != null && datum instanceof Instant instant) {
      return JSON.textNode(instant.toString()); // ISO-8601 in UTC, milliseconds only if any
    }
    if (logical != null && datum instanceof LocalDate date) {
      return JSON.textNode(date.toString());
    }
    switch (schema.getType()) {
      case RECORD:
        GenericRecord record = (GenericRecord) datum;
        ObjectNode object = JSON.objectNode();
        for (Schema.Field field : schema.getFields()) {
          object.set(field.name(), toJson(field.schema(), record.get(field.name())));
        }
        return object;
      case UNION:
        if (datum == null) {
          return JSON.nullNode();
        }
        return toJson(schema.getTypes().get(Schemas.MODEL.resolveUnion(schema, datum)), datum);
      case ARRAY:
        ArrayNode array = JSON.arrayNode();
        for (Object item : (List<?>) datum) {
          array.add(toJson(schema.getElementType(), item));
        }
        return array;
      case MAP:
        ObjectNode map = JSON.objectNode();
        for (Map.Entry<?, ?> entry : ((Map<?, ?>) datum).entrySet()) {
          map.set(entry.getKey().toString(), toJson(schema.getValueType(), entry.getValue()));
        }
        return map;
      case ENUM:
      case STRING:
        return JSON.textNode(datum.toString()); // Utf8 and EnumSymbol print as their text
      case LONG:
        return JSON.numberNode((Long) datum);
      case INT:
        return JSON.numberNode((Integer) datum);
      case DOUBLE:
        return JSON.numberNode((Double) datum);
      case FLOAT:
        return JSON.numberNode((Float) datum);
      case BOOLEAN:
        return JSON.booleanNode((Boolean) datum);
      case NULL:
        return JSON.nullNode();
      default:
        throw unsupported(schema);
    }
  }

  private static Object toDatum(Schema schema, JsonNode json, String path) {
    LogicalType logical = schema.getLogicalType();
    if (logical != null && logical.getName().equals("timestamp-millis")) {
      return timestamp(json, path);
    }
    if (logical != null && logical.getName().equals("date")) {
      return date(json, path);
    }
    switch (schema.getType()) {
      case RECORD:
        return record(schema, json, path);
      case UNION:
        return union(schema, json, path);
      case ARRAY:
        if (!json.isArray()) {
          throw mismatch(path, "array", json);
        }
        List<Object> items = new ArrayList<>();
        for (int i = 0; i < json.size(); i++) {
          items.add(toDatum(schema.getElementType(), json.get(i), path + "[" + i + "]"));
        }
        return new GenericData.Array<>(schema, items);
      case MAP:
        if (!json.isObject()) {
          throw mismatch(path, "map", json);
        }
        // Insertion order is the order on the wire: the same bytes as any encoder that keeps it.
        Map<String, Object> map = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> entry : json.properties()) {
          String key = entry.getKey();
          map.put(key, toDatum(schema.getValueType(), entry.getValue(), path + "['" + key + "']"));
        }
        return map;
      case ENUM:
        if (!json.isTextual() || !schema.hasEnumSymbol(json.asText())) {
          throw mismatch(path, "one of " + String.join(", ", schema.getEnumSymbols()), json);
        }
        return new GenericData.EnumSymbol(schema, json.asText());
      case STRING:
        if (!json.isTextual()) {
          throw mismatch(path, "string", json);
        }
        return json.asText();
      case LONG:
        if (!json.isIntegralNumber() || !json.canConvertToLong()) {
          throw mismatch(path, "long", json);
        }
        return json.longValue();
      case INT:
        if (!json.isIntegralNumber() || !json.canConvertToInt()) {
          throw mismatch(path, "int", json);
        }
        return json.intValue();
      case DOUBLE:
      case FLOAT:
        if (!json.isNumber()) {
          throw mismatch(path, "number", json);
        }
        return schema.getType() == Schema.Type.DOUBLE ? json.doubleValue() : json.floatValue();
      case BOOLEAN:
        if (!json.isBoolean()) {
          throw mismatch(path, "boolean", json);
        }
        return json.booleanValue();
      case NULL:
        if (!json.isNull()) {
          throw mismatch(path, "null", json);
        }
        return null;
      default:
        throw unsupported(schema);
    }
  }

  private static GenericRecord record(Schema schema, JsonNode json, String path) {
    if (!json.isObject()) {
      throw mismatch(path, schema.getName() + " record", json);
    }
    for (Iterator<String> names = json.fieldNames(); names.hasNext(); ) {
      String name = names.next();
      if (schema.getField(name) == null) {
        throw new IllegalArgumentException(
            join(path, name) + ": unknown field (not in " + schema.getName() + ")");
      }
    }
    GenericData.Record record = new GenericData.Record(schema);
    for (Schema.Field field : schema.getFields()) {
      String fieldPath = join(path, field.name());
      JsonNode value = json.get(field.name());
      if (value != null) {
        record.put(field.pos(), toDatum(field.schema(), value, fieldPath));
      } else if (field.hasDefaultValue()) {
        record.put(field.pos(), GenericData.get().getDefaultValue(field));
      } else if (field.schema().isNullable()) {
        record.put(field.pos(), null);
      } else {
        throw new IllegalArgumentException(fieldPath + ": required field is missing");
      }
    }
    return record;
  }

  private static Object union(Schema schema, JsonNode json, String path) {
    if (json.isNull() && schema.isNullable()) {
      return null;
    }
    List<String> expected = new ArrayList<>();
    IllegalArgumentException only = null;
    for (Schema branch : schema.getTypes()) {
      if (branch.getType() == Schema.Type.NULL) {
        continue;
      }
      boolean named = branch.getType() == Schema.Type.ENUM;
      expected.add(named ? branch.getName() : branch.getType().getName());
      try {
        return toDatum(branch, json, path);
      } catch (IllegalArgumentException e) {
        only = e;
      }
    }
    // ["null", X], pokazy's optional fields: X's own message says precisely what is wrong.
    if (expected.size() == 1 && only != null) {
      throw only;
    }
    throw mismatch(path, String.join(" or ", expected) + " or null", json);
  }

  private static Instant timestamp(JsonNode json, String path) {
    if (!json.isTextual()) {
      throw mismatch(path, "an ISO-8601 timestamp string", json);
    }
    try {
      return OffsetDateTime.parse(json.asText()).toInstant();
    } catch (DateTimeParseException e) {
      throw new IllegalArgumentException(
          path + ": not an ISO-8601 timestamp with an offset (write e.g. ...Z): " + json, e);
    }
  }

  private static LocalDate date(JsonNode json, String path) {
    if (!json.isTextual()) {
      throw mismatch(path, "a YYYY-MM-DD date string", json);
    }
    try {
      return LocalDate.parse(json.asText());
    } catch (DateTimeParseException e) {
      throw new IllegalArgumentException(path + ": not a YYYY-MM-DD date: " + json, e);
    }
  }

  private static IllegalArgumentException unsupported(Schema schema) {
    return new IllegalArgumentException(
        "Avro type " + schema.getType() + " is not in pokazy's schemas");
  }

  private static String join(String path, String name) {
    return path.isEmpty() ? name : path + "." + name;
  }

  private static IllegalArgumentException mismatch(String path, String expected, JsonNode json) {
    String shown = json.toString();
    if (shown.length() > 60) {
      shown = shown.substring(0, 57) + "...";
    }
    return new IllegalArgumentException(
        (path.isEmpty() ? "" : path + ": ") + "expected " + expected + ", got " + shown);
  }
}
