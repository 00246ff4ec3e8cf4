package syncline.bench;

import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.embedded.Connect;
import io.debezium.engine.format.Json;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.storage.Converter;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The Debezium peer of `npm run bench`: the Debezium embedded engine (PostgreSQL connector, pgoutput,
 * an existing slot and publication, no snapshot, offsets in memory) handing each batch of change
 * events to a KafkaProducer (acks=all, idempotent), then marking the batch processed once Kafka
 * acknowledged it, which is what Debezium Server's Kafka sink does. Every event goes to one topic
 * (the benchmark's), keyed by the event key, as JSON without embedded schemas.
 *
 * Usage: java -cp 'classes:lib/*' syncline.bench.DebeziumBench key=value ...
 *   host port db slot publication table (schema.table) topic brokers
 * Options for syncline's kafka-topic source tests (connectors/kafka-topic/): format=json (the
 * default, above) | json-schemas (JSON with embedded schemas, Kafka Connect's JsonConverter) | avro
 * (Apicurio's AvroConverter against registry=<Apicurio v2 API URL>, Confluent wire format: magic
 * byte, 4-byte content id); tombstones=true keeps the tombstone Debezium writes after each delete;
 * snapshot=initial copies the table first; decimal=string|precise|double (decimal.handling.mode);
 * publicationAutocreate=filtered lets Debezium create the publication.
 * Prints "sent N" lines every second and stops on SIGTERM.
 */
public final class DebeziumBench {
    public static void main(String[] args) throws Exception {
        Properties a = new Properties();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq > 0) a.setProperty(arg.substring(0, eq), arg.substring(eq + 1));
        }
        String topic = req(a, "topic");

        Properties p = new Properties();
        p.setProperty("name", "syncline-bench");
        p.setProperty("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
        p.setProperty("offset.storage", "org.apache.kafka.connect.storage.MemoryOffsetBackingStore");
        p.setProperty("offset.flush.interval.ms", "10000");
        p.setProperty("database.hostname", a.getProperty("host", "127.0.0.1"));
        p.setProperty("database.port", a.getProperty("port", "5432"));
        p.setProperty("database.user", a.getProperty("user", "postgres"));
        p.setProperty("database.password", a.getProperty("password", ""));
        p.setProperty("database.dbname", req(a, "db"));
        p.setProperty("topic.prefix", "bench");
        p.setProperty("plugin.name", "pgoutput");
        p.setProperty("slot.name", req(a, "slot"));
        p.setProperty("publication.name", req(a, "publication"));
        p.setProperty("publication.autocreate.mode", a.getProperty("publicationAutocreate", "disabled"));
        p.setProperty("snapshot.mode", a.getProperty("snapshot", "no_data"));
        p.setProperty("decimal.handling.mode", a.getProperty("decimal", "precise"));
        p.setProperty("table.include.list", req(a, "table"));
        p.setProperty("max.batch.size", a.getProperty("maxBatchSize", "2048"));
        p.setProperty("max.queue.size", a.getProperty("maxQueueSize", "8192"));
        p.setProperty("poll.interval.ms", "50");
        p.setProperty("key.converter.schemas.enable", "false");
        p.setProperty("value.converter.schemas.enable", "false");
        p.setProperty("converter.schemas.enable", "false");
        p.setProperty("errors.max.retries", "0");

        Properties kp = new Properties();
        kp.setProperty(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, a.getProperty("brokers", "127.0.0.1:9092"));
        kp.setProperty(ProducerConfig.ACKS_CONFIG, "all");
        kp.setProperty(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        kp.setProperty(ProducerConfig.LINGER_MS_CONFIG, a.getProperty("lingerMs", "5"));
        kp.setProperty(ProducerConfig.COMPRESSION_TYPE_CONFIG, a.getProperty("compression", "none"));
        kp.setProperty(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        kp.setProperty(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(kp);

        AtomicLong sent = new AtomicLong();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        String format = a.getProperty("format", "json");
        boolean tombstones = Boolean.parseBoolean(a.getProperty("tombstones", "false"));
        DebeziumEngine<?> engine = format.equals("json")
                ? jsonEngine(p, producer, topic, sent, failed)
                : connectEngine(p, producer, topic, sent, failed, converter(format, a, true), converter(format, a, false), tombstones);

        ExecutorService exec = Executors.newSingleThreadExecutor();
        exec.execute(engine);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                engine.close();
                exec.shutdown();
                exec.awaitTermination(10, TimeUnit.SECONDS);
            } catch (Exception ignored) {
                // stopping anyway
            }
            producer.close();
        }));
        System.out.println("started");
        System.out.flush();
        long last = -1;
        for (;;) {
            Thread.sleep(1000);
            long n = sent.get();
            if (n != last) {
                System.out.println("sent " + n);
                System.out.flush();
                last = n;
            }
        }
    }

    /** The benchmark's path: the engine's own JSON converter, schemas off, tombstones skipped. */
    private static DebeziumEngine<ChangeEvent<String, String>> jsonEngine(Properties p, KafkaProducer<byte[], byte[]> producer, String topic, AtomicLong sent, AtomicReference<Throwable> failed) {
        return DebeziumEngine.create(Json.class)
                .using(p)
                .notifying((List<ChangeEvent<String, String>> records, DebeziumEngine.RecordCommitter<ChangeEvent<String, String>> committer) -> {
                    for (ChangeEvent<String, String> r : records) {
                        if (r.value() == null) { committer.markProcessed(r); continue; }
                        byte[] key = r.key() == null ? null : r.key().getBytes(StandardCharsets.UTF_8);
                        producer.send(new ProducerRecord<>(topic, key, r.value().getBytes(StandardCharsets.UTF_8)), (md, err) -> {
                            if (err != null) failed.compareAndSet(null, err);
                        });
                    }
                    producer.flush(); // every record of the batch acknowledged (acks=all) before the offsets move
                    if (failed.get() != null) throw new InterruptedException("produce failed: " + failed.get());
                    for (ChangeEvent<String, String> r : records) if (r.value() != null) committer.markProcessed(r);
                    sent.addAndGet(records.size());
                    committer.markBatchFinished();
                })
                .using((success, message, error) -> {
                    if (!success) {
                        System.err.println("engine stopped: " + message + (error != null ? " " + error : ""));
                        System.exit(1);
                    }
                })
                .build();
    }

    /** Kafka Connect records through a converter of our choice (JSON with schemas, Apicurio Avro). */
    private static DebeziumEngine<ChangeEvent<SourceRecord, SourceRecord>> connectEngine(Properties p, KafkaProducer<byte[], byte[]> producer, String topic, AtomicLong sent, AtomicReference<Throwable> failed,
            Converter keyConverter, Converter valueConverter, boolean tombstones) {
        return DebeziumEngine.create(Connect.class)
                .using(p)
                .notifying((List<ChangeEvent<SourceRecord, SourceRecord>> records, DebeziumEngine.RecordCommitter<ChangeEvent<SourceRecord, SourceRecord>> committer) -> {
                    int n = 0;
                    for (ChangeEvent<SourceRecord, SourceRecord> e : records) {
                        SourceRecord r = e.value();
                        if (r == null || (r.value() == null && !tombstones)) continue;
                        byte[] key = r.key() == null ? null : keyConverter.fromConnectData(topic, r.keySchema(), r.key());
                        byte[] value = r.value() == null ? null : valueConverter.fromConnectData(topic, r.valueSchema(), r.value());
                        producer.send(new ProducerRecord<>(topic, key, value), (md, err) -> {
                            if (err != null) failed.compareAndSet(null, err);
                        });
                        n++;
                    }
                    producer.flush(); // every record of the batch acknowledged (acks=all) before the offsets move
                    if (failed.get() != null) throw new InterruptedException("produce failed: " + failed.get());
                    for (ChangeEvent<SourceRecord, SourceRecord> e : records) committer.markProcessed(e);
                    sent.addAndGet(n);
                    committer.markBatchFinished();
                })
                .using((success, message, error) -> {
                    if (!success) {
                        System.err.println("engine stopped: " + message + (error != null ? " " + error : ""));
                        System.exit(1);
                    }
                })
                .build();
    }

    private static Converter converter(String format, Properties a, boolean isKey) {
        Map<String, Object> c = new HashMap<>();
        Converter conv;
        switch (format) {
            case "json-schemas" -> {
                conv = new JsonConverter();
                c.put("schemas.enable", "true");
            }
            case "avro" -> {
                conv = new io.apicurio.registry.utils.converter.AvroConverter<>();
                c.put("apicurio.registry.url", req(a, "registry"));
                c.put("apicurio.registry.auto-register", "true");
                c.put("apicurio.registry.find-latest", "true");
                // The Confluent wire format (magic byte 0, 4-byte id, no headers) with content ids,
                // which is what the registry's Confluent-compatible API serves at /schemas/ids/{id}.
                c.put("apicurio.registry.as-confluent", "true");
                c.put("apicurio.registry.headers.enabled", "false");
                c.put("apicurio.registry.use-id", "contentId");
                c.put("apicurio.registry.id-handler", "io.apicurio.registry.serde.Legacy4ByteIdHandler");
            }
            default -> throw new IllegalArgumentException("format=" + format + ": expected json, json-schemas or avro");
        }
        conv.configure(c, isKey);
        return conv;
    }

    private static String req(Properties a, String k) {
        String v = a.getProperty(k);
        if (v == null || v.isEmpty()) throw new IllegalArgumentException("missing " + k + "=...");
        return v;
    }
}
