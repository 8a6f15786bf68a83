// A KafkaConsumer in a group that keeps consuming through failures: subscribes, polls
// until it has seen COUNT distinct offsets or TIMEOUT_MS pass, and commits synchronously
// after every poll that returned records. Prints "record <offset> <value>" per record and
// "commit <offset>" after each commit that succeeded (a failed one prints
// "commit-failed <reason>" and the consumer goes on, as an application would).
// usage: GroupFollow <bootstrap> <topic> <group> <count> <timeout-ms>

import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.StringDeserializer;

public class GroupFollow {
    public static void main(String[] args) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, args[2]);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "50");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        int count = Integer.parseInt(args[3]);
        long deadline = System.currentTimeMillis() + Long.parseLong(args[4]);
        Set<Long> seen = new HashSet<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(args[1]));
            while (seen.size() < count && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                long last = -1;
                for (ConsumerRecord<String, String> r : records) {
                    System.out.println("record " + r.offset() + " " + r.value());
                    seen.add(r.offset());
                    last = r.offset();
                }
                if (last >= 0) {
                    try {
                        consumer.commitSync(Duration.ofSeconds(30));
                        System.out.println("commit " + (last + 1));
                    } catch (RuntimeException e) {
                        System.out.println("commit-failed " + e.getClass().getSimpleName());
                    }
                }
                System.out.flush();
            }
        }
    }
}
