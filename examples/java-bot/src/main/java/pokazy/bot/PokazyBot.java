package pokazy.bot;

import static java.nio.charset.StandardCharsets.UTF_8;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.avro.AvroRuntimeException;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A pokazy bot front end in Java: publishes meter-reading submissions and prints their replies.
 *
 * <pre>
 * java -jar target/pokazy-java-bot.jar publish --input submissions.jsonl
 * java -jar target/pokazy-java-bot.jar check-vectors
 * </pre>
 *
 * <p>{@code publish} reads submissions in their documented JSON form, one per line, sends each to
 * {@code <prefix>readings} as an Avro single-object message keyed by its account id ({@code
 * acks=all}, idempotent producer), and prints the {@code SubmissionOutcome} reply that the worker
 * sends for each on {@code <prefix>replies}, matched by event id. {@code check-vectors} holds
 * Avro's encoder and decoder to the test vectors in {@code schemas/vectors/}.
 */
public final class PokazyBot {

  static final String READING_SUBMITTED = "pokazy.ReadingSubmitted";
  static final String SUBMISSION_OUTCOME = "pokazy.SubmissionOutcome";
  static final ObjectMapper MAPPER = new ObjectMapper();

  private static final String USAGE =
      String.join(
          "\n",
          "usage: pokazy-java-bot publish [options]",
          "       pokazy-java-bot check-vectors [--schemas DIR] [--vectors DIR]",
          "",
          "  --bootstrap HOST:PORT   Kafka brokers (env POKAZY_KAFKA_BOOTSTRAP, 127.0.0.1:9092)",
          "  --topic-prefix P        topic prefix (env POKAZY_TOPIC_PREFIX, pokazy.)",
          "  --schemas DIR           pokazy's schemas/ (env POKAZY_SCHEMAS_DIR, ./schemas)",
          "  --input FILE            submissions as JSON lines; - for stdin (default -)",
          "  --writer-schema FILE    publish with this (older) ReadingSubmitted version",
          "  --client-config FILE    Kafka client properties (security.protocol, sasl.*, ssl.*)",
          "  --replies-json FILE     also write each reply's JSON form there, one per line",
          "  --timeout SECONDS       how long to wait for the replies (default 60)",
          "  --vectors DIR           the test vectors (default <schemas>/vectors)");

  private PokazyBot() {}

  public static void main(String[] args) {
    // Java 17 prints in the platform charset, which may not have Cyrillic: replies are Ukrainian.
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, UTF_8);
    int status;
    try {
      Options options = Options.parse(args);
      String dir = options.value("schemas", "POKAZY_SCHEMAS_DIR", "schemas");
      Schemas schemas = Schemas.load(Path.of(dir));
      status = switch (options.command()) {
        case "publish" -> publish(options, schemas, out);
        case "check-vectors" -> Vectors.check(schemas, vectorsDir(options, schemas), out);
        default -> throw new Options.UsageError("unknown command " + options.command());
      };
    } catch (Options.UsageError e) {
      System.err.println("error: " + e.getMessage() + "\n" + USAGE);
      status = 2;
    } catch (IllegalArgumentException | UncheckedIOException | AvroRuntimeException e) {
      System.err.println("error: " + e.getMessage()); // bad input or schemas, named
      status = 2;
    } catch (IOException | ExecutionException | KafkaException e) {
      System.err.println("error: " + e.getMessage()); // e.g. the brokers did not acknowledge a send
      status = 1;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      status = 130;
    }
    System.exit(status);
  }

  /** Publishes the input's submissions and prints each one's reply; 1 if a reply is missing. */
  static int publish(Options options, Schemas schemas, PrintStream out)
      throws IOException, ExecutionException, InterruptedException {
    Schema writer =
        options.has("writer-schema")
            ? Schemas.parse(Path.of(options.value("writer-schema")))
            : schemas.current(READING_SUBMITTED);
    if (!writer.getFullName().equals(READING_SUBMITTED)) {
      throw new IllegalArgumentException(
          "the writer schema is " + writer.getFullName() + ", not " + READING_SUBMITTED);
    }
    List<GenericRecord> submissions = readSubmissions(options.value("input", null, "-"), writer);
    String prefix = options.value("topic-prefix", "POKAZY_TOPIC_PREFIX", "pokazy.");
    Properties client = clientProperties(options);
    Duration timeout = Duration.ofSeconds(Long.parseLong(options.value("timeout", null, "60")));

    BinaryMessageEncoder<GenericRecord> encoder = Schemas.encoder(writer);
    BinaryMessageDecoder<GenericRecord> decoder = schemas.decoder(SUBMISSION_OUTCOME);
    Map<String, Integer> awaited = new HashMap<>(); // event_id -> replies still to come
    try (KafkaConsumer<String, byte[]> replies = repliesConsumer(client);
        KafkaProducer<String, byte[]> producer = producer(client);
        Writer repliesJson = options.has("replies-json")
            ? Files.newBufferedWriter(Path.of(options.value("replies-json")), UTF_8)
            : Writer.nullWriter()) {
      // 1. Listen first: every reply sent from now on is read, however fast the worker is.
      listenFromNow(replies, prefix + "replies");

      // 2. Publish: key = account_id, value = the single-object message. Each submission's
      //    event_id is its idempotency key: sent again, it is a duplicate, never a second reading.
      List<Future<RecordMetadata>> sends = new ArrayList<>();
      for (GenericRecord submission : submissions) {
        String account = submission.get("account_id").toString();
        byte[] message = bytes(encoder.encode(submission));
        sends.add(producer.send(new ProducerRecord<>(prefix + "readings", account, message)));
        awaited.merge(submission.get("event_id").toString(), 1, Integer::sum);
      }
      producer.flush();
      for (Future<RecordMetadata> send : sends) {
        send.get(); // throws if the brokers did not acknowledge it: nothing is lost in silence
      }
      out.printf("published %d submissions to %sreadings%n", sends.size(), prefix);

      // 3. Read the replies: one per submission sent (a duplicate gets its first reply again).
      Instant deadline = Instant.now().plus(timeout);
      while (!awaited.isEmpty() && Instant.now().isBefore(deadline)) {
        for (ConsumerRecord<String, byte[]> record : replies.poll(Duration.ofMillis(500))) {
          GenericRecord reply;
          try {
            reply = decoder.decode(record.value());
          } catch (IOException | AvroRuntimeException e) {
            System.err.printf("skipped an undecodable reply at %s-%d@%d: %s%n",
                record.topic(), record.partition(), record.offset(), e.getMessage());
            continue;
          }
          String eventId = reply.get("event_id").toString();
          Integer left = awaited.get(eventId);
          if (left == null) {
            continue; // a reply to another bot's submission
          }
          if (left == 1) {
            awaited.remove(eventId);
          } else {
            awaited.put(eventId, left - 1);
          }
          print(reply, out);
          repliesJson.write(MAPPER.writeValueAsString(JsonForm.toJson(reply.getSchema(), reply)));
          repliesJson.write('\n');
        }
      }
    }
    if (!awaited.isEmpty()) {
      System.err.printf("no reply within %ds for %s%n", timeout.toSeconds(), awaited.keySet());
      return 1;
    }
    return 0;
  }

  /** The submissions of a JSON-lines file as records of the writer schema. */
  static List<GenericRecord> readSubmissions(String input, Schema writer) throws IOException {
    List<GenericRecord> submissions = new ArrayList<>();
    try (BufferedReader lines = new BufferedReader(open(input))) {
      int number = 0;
      for (String line = lines.readLine(); line != null; line = lines.readLine()) {
        number++;
        if (line.isBlank()) {
          continue;
        }
        try {
          JsonNode json = MAPPER.readTree(line);
          if (json instanceof ObjectNode object && !object.has("event_id")) {
            object.put("event_id", UUID.randomUUID().toString()); // keep it to retry idempotently
          }
          submissions.add(JsonForm.toRecord(writer, json));
        } catch (JsonProcessingException | IllegalArgumentException e) {
          String source = input.equals("-") ? "stdin" : input;
          throw new IllegalArgumentException(source + " line " + number + ": " + e.getMessage(), e);
        }
      }
    }
    return submissions;
  }

  private static void print(GenericRecord reply, PrintStream out) {
    out.printf("%s %s: %s%n", reply.get("event_id"), reply.get("status"), reply.get("message_uk"));
    for (Object item : (List<?>) reply.get("readings")) {
      GenericRecord reading = (GenericRecord) item;
      boolean accepted = (Boolean) reading.get("accepted");
      Object label = reading.get("register");
      String register = label == null ? "" : " (" + label + ")";
      out.printf("    %s%s %s: %s: %s%n",
          reading.get("zone"), register, reading.get("value"),
          accepted ? "accepted, " + reading.get("kwh") + " kWh" : reading.get("reason"),
          reading.get("message_uk"));
    }
  }

  private static void listenFromNow(KafkaConsumer<String, byte[]> consumer, String topic) {
    List<TopicPartition> partitions = consumer.partitionsFor(topic, Duration.ofSeconds(30))
        .stream()
        .map(info -> new TopicPartition(info.topic(), info.partition()))
        .toList();
    if (partitions.isEmpty()) {
      throw new IllegalArgumentException("no topic " + topic + ": start a worker with this prefix");
    }
    consumer.assign(partitions);
    consumer.seekToEnd(partitions);
    partitions.forEach(consumer::position); // seekToEnd is lazy: fix the end offsets now
  }

  private static KafkaProducer<String, byte[]> producer(Properties client) {
    Properties config = new Properties();
    config.putAll(client);
    config.put(ProducerConfig.CLIENT_ID_CONFIG, "pokazy-java-bot");
    config.put(ProducerConfig.ACKS_CONFIG, "all");
    config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    return new KafkaProducer<>(config, new StringSerializer(), new ByteArraySerializer());
  }

  private static KafkaConsumer<String, byte[]> repliesConsumer(Properties client) {
    Properties config = new Properties();
    config.putAll(client);
    config.put(ConsumerConfig.CLIENT_ID_CONFIG, "pokazy-java-bot-replies");
    config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    return new KafkaConsumer<>(config, new StringDeserializer(), new ByteArrayDeserializer());
  }

  private static Properties clientProperties(Options options) throws IOException {
    Properties client = new Properties();
    if (options.has("client-config")) {
      Path file = Path.of(options.value("client-config"));
      try (Reader reader = Files.newBufferedReader(file, UTF_8)) {
        client.load(reader);
      }
    }
    String bootstrap = options.value("bootstrap", "POKAZY_KAFKA_BOOTSTRAP", "127.0.0.1:9092");
    client.put("bootstrap.servers", bootstrap);
    return client;
  }

  private static Path vectorsDir(Options options, Schemas schemas) {
    return options.has("vectors")
        ? Path.of(options.value("vectors"))
        : schemas.dir().resolve("vectors");
  }

  private static Reader open(String input) throws IOException {
    return input.equals("-")
        ? new InputStreamReader(System.in, UTF_8)
        : Files.newBufferedReader(Path.of(input), UTF_8);
  }

  static byte[] bytes(ByteBuffer buffer) {
    byte[] bytes = new byte[buffer.remaining()];
    buffer.get(bytes);
    return bytes;
  }
}
