// A produce load generator on Kafka's Java client (default producer settings but acks,
// 1 KiB records of random bytes, microsecond percentiles). Prints one line of key=value
// figures.
//   java Load <bootstrap> <topic> <acks> <records> <rate per s, -1 = max> <warmup records>
//
// Fixed rate (rate > 0): record i of the warmup and measured records together is due at
// start + i / rate, and its latency runs from that due time to its callback, not from the
// moment send() was called. A generator that falls behind (send() blocking on a full
// buffer, a slow broker, a GC pause, a descheduled thread) shows up in the latencies
// instead of being hidden by sending later: no coordinated omission. The warmup records
// share the schedule and are not measured. achieved_per_s is the measured records over the
// time from the first measured record's due time to the last callback; the caller judges
// it against the target (bench/bench.py fails the run below 98%).
//
// Max rate (rate = -1): the warmup records, a flush, then the measured records as fast as
// send() takes them; throughput is the measured records over first send to last callback.
// The send-to-callback times are printed as queue_*_us: with an unbounded offered load a
// record spends them waiting in the producer's buffer behind the records before it, so
// they are producer-buffer queueing time, not broker latency.

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
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            // The topic's metadata before the clock starts: the first send() would otherwise
            // block on it, and at a fixed rate every record after it would start late.
            producer.partitionsFor(topic);
            Run run = new Run(producer, topic, payloads, records);
            if (rate > 0) {
                run.fixedRate(rate, warmup);
            } else {
                run.maxRate(warmup);
            }
        }
    }

    /** One measured run: the latencies of the measured records and when the last was acknowledged. */
    static final class Run {
        final KafkaProducer<byte[], byte[]> producer;
        final String topic;
        final byte[][] payloads;
        final int records;
        final long[] latencies;
        final AtomicLong errors = new AtomicLong();
        final AtomicLong lastAck = new AtomicLong();

        Run(KafkaProducer<byte[], byte[]> producer, String topic, byte[][] payloads, int records) {
            this.producer = producer;
            this.topic = topic;
            this.payloads = payloads;
            this.records = records;
            this.latencies = new long[records];
        }

        /** Sends record i; its latency (if measured, index >= 0) runs from `from` to the callback. */
        void send(int i, int index, long from) {
            producer.send(new ProducerRecord<>(topic, payloads[i % payloads.length]), (metadata, error) -> {
                long now = System.nanoTime();
                if (index < 0) {
                    return;
                }
                if (error != null) {
                    errors.incrementAndGet();
                }
                latencies[index] = (now - from) / 1000;
                lastAck.accumulateAndGet(now, Math::max);
            });
        }

        void fixedRate(double rate, int warmup) {
            long start = System.nanoTime();
            long maxSendLag = 0;
            for (int i = 0; i < warmup + records; i++) {
                long due = start + (long) (i * 1e9 / rate);
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    LockSupport.parkNanos(wait);
                }
                if (i >= warmup) {
                    maxSendLag = Math.max(maxSendLag, System.nanoTime() - due);
                }
                send(i, i - warmup, due);
            }
            producer.flush();
            long firstDue = start + (long) (warmup * 1e9 / rate);
            double seconds = (lastAck.get() - firstDue) / 1e9;
            Arrays.sort(latencies);
            System.out.printf(
                    "records=%d errors=%d seconds=%.3f target_per_s=%.1f achieved_per_s=%.1f mib_per_s=%.2f "
                            + "max_send_lag_us=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d%n",
                    records, errors.get(), seconds, rate, records / seconds, mib(records) / seconds,
                    maxSendLag / 1000, pct(0.50), pct(0.99), pct(0.999), latencies[records - 1]);
        }

        void maxRate(int warmup) {
            for (int i = 0; i < warmup; i++) {
                send(i, -1, 0);
            }
            producer.flush();
            long start = System.nanoTime();
            for (int i = 0; i < records; i++) {
                send(i, i, System.nanoTime());
            }
            producer.flush();
            double seconds = (lastAck.get() - start) / 1e9;
            Arrays.sort(latencies);
            System.out.printf(
                    "records=%d errors=%d seconds=%.3f records_per_s=%.1f mib_per_s=%.2f "
                            + "queue_p50_us=%d queue_p99_us=%d queue_p999_us=%d queue_max_us=%d%n",
                    records, errors.get(), seconds, records / seconds, mib(records) / seconds,
                    pct(0.50), pct(0.99), pct(0.999), latencies[records - 1]);
        }

        long pct(double q) {
            return latencies[Math.min(latencies.length - 1, (int) Math.ceil(q * latencies.length) - 1)];
        }

        static double mib(int records) {
            return records * (double) RECORD_SIZE / (1 << 20);
        }
    }
}
