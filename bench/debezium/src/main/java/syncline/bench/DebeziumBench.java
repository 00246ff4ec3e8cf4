package syncline.bench;

import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.format.Json;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

import java.nio.charset.StandardCharsets;
import java.util.List;
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
        p.setProperty("publication.autocreate.mode", "disabled");
        p.setProperty("snapshot.mode", "no_data");
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
        DebeziumEngine<ChangeEvent<String, String>> engine = DebeziumEngine.create(Json.class)
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

    private static String req(Properties a, String k) {
        String v = a.getProperty(k);
        if (v == null || v.isEmpty()) throw new IllegalArgumentException("missing " + k + "=...");
        return v;
    }
}
