// A produce load generator on Kafka's Java client: like ProducerPerformance (latency is
// send() to its callback, records of random bytes, optional fixed rate) but with a warmup
// phase that is not measured (JIT, connections, metadata) and microsecond percentiles.
// Prints one line of key=value figures.
//   java Load <bootstrap> <topic> <acks> <records> <rate per s, -1 = max> <warmup records>

import java.util.Arrays;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class Load {
    static final int RECORD_SIZE = 1024;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String acks = args[2];
        int records = Integer.parseInt(args[3]);
        double rate = Double.parseDouble(args[4]);
        int warmup = Integer.parseInt(args[5]);

        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("acks", acks);
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());

        Random random = new Random(42);
        byte[][] payloads = new byte[1024][RECORD_SIZE];
        for (byte[] p : payloads) {
            random.nextBytes(p);
        }
        long[] latencies = new long[records];
        AtomicLong errors = new AtomicLong();
        AtomicLong lastAck = new AtomicLong();

        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            send(producer, topic, payloads, warmup, rate, null, errors, lastAck);
            producer.flush();
            errors.set(0);
            long start = System.nanoTime();
            send(producer, topic, payloads, records, rate, latencies, errors, lastAck);
            producer.flush();
            double seconds = (lastAck.get() - start) / 1e9;
            Arrays.sort(latencies);
            System.out.printf(
                    "records=%d errors=%d seconds=%.3f records_per_s=%.1f mib_per_s=%.2f p50_us=%d p99_us=%d p999_us=%d max_us=%d%n",
                    records, errors.get(), seconds, records / seconds, records * (double) RECORD_SIZE / (1 << 20) / seconds,
                    pct(latencies, 0.50), pct(latencies, 0.99), pct(latencies, 0.999), latencies[records - 1]);
        }
    }

    static long pct(long[] sorted, double q) {
        return sorted[Math.min(sorted.length - 1, (int) Math.ceil(q * sorted.length) - 1)];
    }

    static void send(KafkaProducer<byte[], byte[]> producer, String topic, byte[][] payloads, int count, double rate,
            long[] latencies, AtomicLong errors, AtomicLong lastAck) {
        long start = System.nanoTime();
        for (int i = 0; i < count; i++) {
            if (rate > 0) {
                long due = start + (long) (i * 1e9 / rate);
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    LockSupport.parkNanos(wait);
                }
            }
            final int index = i;
            final long sent = System.nanoTime();
            producer.send(new ProducerRecord<>(topic, payloads[i % payloads.length]), (metadata, error) -> {
                long now = System.nanoTime();
                if (error != null) {
                    errors.incrementAndGet();
                }
                if (latencies != null) {
                    latencies[index] = (now - sent) / 1000;
                }
                lastAck.accumulateAndGet(now, Math::max);
            });
        }
    }
}
