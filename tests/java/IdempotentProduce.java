// Produces records with the Java producer's default settings (idempotence on, acks=all)
// and prints "partition offset value" for each acknowledged record.
// usage: IdempotentProduce <bootstrap> <topic> <count> [flush-every]

import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

public class IdempotentProduce {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.LINGER_MS_CONFIG, "2");
        int count = Integer.parseInt(args[2]);
        int flushEvery = args.length > 3 ? Integer.parseInt(args[3]) : count;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                sent.add(producer.send(new ProducerRecord<>(args[1], "java-" + i)));
                if ((i + 1) % flushEvery == 0) {
                    producer.flush();
                }
            }
            producer.flush();
            for (int i = 0; i < count; i++) {
                RecordMetadata m = sent.get(i).get();
                System.out.println(m.partition() + " " + m.offset() + " java-" + i);
            }
        }
    }
}
