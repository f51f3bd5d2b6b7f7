package pokazy.bot;

import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/** The command line: a command, then {@code --name value} options. */
record Options(String command, Map<String, String> values) {

  private static final Set<String> NAMES = Set.of(
      "bootstrap", "topic-prefix", "schemas", "input", "writer-schema", "client-config",
      "replies-json", "timeout", "vectors");

  static Options parse(String[] args) {
    if (args.length == 0) {
      throw new UsageError("no command given");
    }
    Map<String, String> values = new HashMap<>();
    for (int i = 1; i < args.length; i += 2) {
      String name = args[i].startsWith("--") ? args[i].substring(2) : "";
      if (!NAMES.contains(name)) {
        throw new UsageError("unknown option " + args[i]);
      }
      if (i + 1 == args.length) {
        throw new UsageError(args[i] + " needs a value");
      }
      values.put(name, args[i + 1]);
    }
    return new Options(args[0], values);
  }

  /** A command line this program does not understand. */
  static final class UsageError extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    UsageError(String message) {
      super(message);
    }
  }

  boolean has(String name) {
    return values.containsKey(name);
  }

  /** The option's value, or null. */
  String value(String name) {
    return values.get(name);
  }

  /** The option's value, else the environment variable's (if named and set), else the default. */
  String value(String name, String env, String fallback) {
    String value = values.get(name);
    if (value == null && env != null) {
      value = System.getenv(env);
    }
    return value == null || value.isEmpty() ? fallback : value;
  }
}
