"""Apache Kafka's own command-line tools (kafka-topics, kafka-configs, kafka-log-dirs,
kafka-delete-records, kafka-get-offsets) from the Maven jars, run against the broker.

Where a tool reports an error, the broker's error counter shows the broker refused the
request. Bad topic configs never get that far (kafka-topics validates them itself);
test_confluent_kafka.py sends those through an admin client."""

import json
import shutil
import subprocess

import pytest
from kafka import KafkaProducer

from standalone import Broker

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="a JRE is required")

TOPICS = "org.apache.kafka.tools.TopicCommand"
CONFIGS = "kafka.admin.ConfigCommand"
LOG_DIRS = "org.apache.kafka.tools.LogDirsCommand"
DELETE_RECORDS = "org.apache.kafka.tools.DeleteRecordsCommand"
GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell"


@pytest.fixture(scope="module")
def cli(kafka_jars, tmp_path_factory):
    """Runs one tool class; returns (exit code, stdout, stderr)."""
    logs = tmp_path_factory.mktemp("log4j")
    # The tools ship both log4j 1 (reload4j) and log4j 2; quiet both so stdout is the tool's.
    (logs / "log4j.properties").write_text(
        "log4j.rootLogger=ERROR, e\n"
        "log4j.appender.e=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.e.Target=System.err\n"
        "log4j.appender.e.layout=org.apache.log4j.SimpleLayout\n"
    )
    (logs / "log4j2.properties").write_text(
        "rootLogger.level=ERROR\nrootLogger.appenderRef.e.ref=E\n"
        "appender.e.type=Console\nappender.e.name=E\nappender.e.target=SYSTEM_ERR\n"
    )

    def run(tool, *args):
        result = subprocess.run(
            [
                "java",
                f"-Dlog4j.configuration=file:{logs / 'log4j.properties'}",
                f"-Dlog4j2.configurationFile={logs / 'log4j2.properties'}",
                "-cp",
                f"{kafka_jars}/*",
                tool,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        return result.returncode, result.stdout, result.stderr

    return run


def ok(result):
    code, out, err = result
    assert code == 0, f"exit {code}\nstdout: {out[-2000:]}\nstderr: {err[-3000:]}"
    return out


def produce(bootstrap, topic, count, partition=None):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(count):
        producer.send(topic, f"v{i}".encode(), partition=partition)
    producer.flush()
    producer.close()


def offsets(cli, bootstrap, topic, time):
    out = ok(cli(GET_OFFSETS, "--bootstrap-server", bootstrap, "--topic", topic, "--time", str(time)))
    rows = (line.rsplit(":", 2) for line in out.splitlines() if line.startswith(topic + ":"))
    return {int(p): int(o) for _, p, o in rows}


def test_kafka_topics_creates_describes_alters_and_deletes(broker, cli, topic):
    b = ["--bootstrap-server", broker.bootstrap]
    assert "Created topic" in ok(cli(TOPICS, *b, "--create", "--topic", topic, "--partitions", "3"))
    assert topic in ok(cli(TOPICS, *b, "--list")).split()

    described = ok(cli(TOPICS, *b, "--describe", "--topic", topic))
    assert "PartitionCount: 3" in described
    first_id = described.split("TopicId: ")[1].split()[0]
    assert described.count("Leader: 0") == 3

    ok(cli(TOPICS, *b, "--alter", "--topic", topic, "--partitions", "5"))
    assert "PartitionCount: 5" in ok(cli(TOPICS, *b, "--describe", "--topic", topic))
    produce(broker.bootstrap, topic, 5, partition=4)
    assert offsets(cli, broker.bootstrap, topic, -1)[4] == 5

    before = broker.errors("CreatePartitions", "INVALID_PARTITIONS")
    code, _, err = cli(TOPICS, *b, "--alter", "--topic", topic, "--partitions", "2")
    assert code == 1 and "InvalidPartitionsException" in err, err[-2000:]
    assert broker.errors("CreatePartitions", "INVALID_PARTITIONS") == before + 1

    # A single broker has every replica in sync.
    described = ok(cli(TOPICS, *b, "--describe", "--topic", topic))
    assert [line.split("Isr: ")[1].split()[0] for line in described.splitlines() if "Isr: " in line] == ["0"] * 5
    assert ok(cli(TOPICS, *b, "--describe", "--under-replicated-partitions")).strip() == ""

    ok(cli(TOPICS, *b, "--delete", "--topic", topic))
    assert topic not in ok(cli(TOPICS, *b, "--list")).split()
    assert not list((broker.dir / "data").glob(f"{topic}-*")), "deleted topic's data is still on disk"

    ok(cli(TOPICS, *b, "--create", "--topic", topic, "--partitions", "1"))
    described = ok(cli(TOPICS, *b, "--describe", "--topic", topic))
    assert described.split("TopicId: ")[1].split()[0] != first_id, "a recreated topic reuses the old id"
    assert offsets(cli, broker.bootstrap, topic, -1) == {0: 0}, "a recreated topic sees old records"


def test_kafka_topics_reports_the_brokers_refusals(broker, cli, topic):
    b = ["--bootstrap-server", broker.bootstrap]
    before = broker.errors("CreateTopics", "INVALID_REPLICATION_FACTOR")
    code, _, err = cli(TOPICS, *b, "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "3")
    assert code == 1 and "InvalidReplicationFactorException" in err, err[-2000:]
    assert broker.errors("CreateTopics", "INVALID_REPLICATION_FACTOR") == before + 1
    assert topic not in ok(cli(TOPICS, *b, "--list")).split()

    # kafka-topics looks the topic up in the broker's metadata and sends no DeleteTopics.
    code, _, err = cli(TOPICS, *b, "--delete", "--topic", topic)
    assert code == 1 and f"Topic '{topic}' does not exist as expected" in err, err[-2000:]


def test_kafka_configs_layers_topic_broker_and_cluster_default(cli, topic):
    broker = Broker()
    try:
        b = ["--bootstrap-server", broker.bootstrap]
        ok(cli(TOPICS, *b, "--create", "--topic", topic, "--partitions", "1"))

        def topic_config(key):
            out = ok(cli(CONFIGS, *b, "--entity-type", "topics", "--entity-name", topic, "--describe", "--all"))
            return next(line.strip() for line in out.splitlines() if line.strip().startswith(key + "="))

        assert topic_config("retention.ms").startswith("retention.ms=604800000 ")

        ok(cli(CONFIGS, *b, "--entity-type", "brokers", "--entity-default", "--alter", "--add-config", "log.retention.ms=120000"))
        assert "DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=120000" in topic_config("retention.ms")
        assert topic_config("retention.ms").startswith("retention.ms=120000 ")

        ok(cli(CONFIGS, *b, "--entity-type", "brokers", "--entity-name", "0", "--alter", "--add-config", "log.retention.ms=90000"))
        assert topic_config("retention.ms").startswith("retention.ms=90000 ")

        ok(cli(CONFIGS, *b, "--entity-type", "topics", "--entity-name", topic, "--alter", "--add-config", "retention.ms=60000,cleanup.policy=delete"))
        line = topic_config("retention.ms")
        assert line.startswith("retention.ms=60000 ")
        # Synonyms come most specific first, the order kafka-configs prints and resolves by.
        assert line.index("DYNAMIC_TOPIC_CONFIG") < line.index("DYNAMIC_BROKER_CONFIG") < line.index("DEFAULT_CONFIG:log")

        ok(cli(CONFIGS, *b, "--entity-type", "topics", "--entity-name", topic, "--alter", "--delete-config", "retention.ms"))
        assert topic_config("retention.ms").startswith("retention.ms=90000 ")

        dynamic = ok(cli(CONFIGS, *b, "--entity-type", "brokers", "--entity-name", "0", "--describe"))
        assert "log.retention.ms=90000" in dynamic

        before = broker.errors("IncrementalAlterConfigs", "INVALID_REQUEST")
        code, _, err = cli(CONFIGS, *b, "--entity-type", "brokers", "--entity-name", "0", "--alter", "--add-config", "log.dirs=/elsewhere")
        assert code == 1 and "InvalidRequestException: log.dirs cannot be changed at runtime" in err, err[-2000:]
        assert broker.errors("IncrementalAlterConfigs", "INVALID_REQUEST") == before + 1
        before = broker.errors("IncrementalAlterConfigs", "INVALID_CONFIG")
        code, _, err = cli(CONFIGS, *b, "--entity-type", "topics", "--entity-name", topic, "--alter", "--add-config", "retention.ms=abc")
        assert code == 1 and "InvalidConfigurationException: retention.ms: expected an integer" in err, err[-2000:]
        assert broker.errors("IncrementalAlterConfigs", "INVALID_CONFIG") == before + 1
        assert topic_config("retention.ms").startswith("retention.ms=90000 ")

        # Dynamic configs live in the metadata store: a restart keeps them.
        broker.stop()
        broker = Broker(data_dir=broker.dir)
        b = ["--bootstrap-server", broker.bootstrap]
        assert topic_config("retention.ms").startswith("retention.ms=90000 ")
        assert topic_config("cleanup.policy").startswith("cleanup.policy=delete ")
    finally:
        assert broker.stop() == 0


def test_kafka_delete_records_moves_the_log_start_and_survives_restart(cli, topic, tmp_path):
    broker = Broker()
    try:
        ok(cli(TOPICS, "--bootstrap-server", broker.bootstrap, "--create", "--topic", topic, "--partitions", "2"))
        produce(broker.bootstrap, topic, 300, partition=0)
        produce(broker.bootstrap, topic, 10, partition=1)

        plan = tmp_path / "delete.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "offset": 120}]}))
        out = ok(cli(DELETE_RECORDS, "--bootstrap-server", broker.bootstrap, "--offset-json-file", str(plan)))
        assert f"partition: {topic}-0\tlow_watermark: 120" in out
        assert offsets(cli, broker.bootstrap, topic, -2) == {0: 120, 1: 0}

        plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 1, "offset": 11}]}))
        before = broker.errors("DeleteRecords", "OFFSET_OUT_OF_RANGE")
        code, out, err = cli(DELETE_RECORDS, "--bootstrap-server", broker.bootstrap, "--offset-json-file", str(plan))
        # The tool reports a partition's error and exits 0.
        assert code == 0 and f"partition: {topic}-1\terror: " in out, out + err[-2000:]
        assert "OffsetOutOfRangeException" in out, out
        assert broker.errors("DeleteRecords", "OFFSET_OUT_OF_RANGE") == before + 1

        logdirs = ok(cli(LOG_DIRS, "--bootstrap-server", broker.bootstrap, "--describe", "--topic-list", topic))
        report = json.loads(next(line for line in logdirs.splitlines() if line.startswith("{")))
        [dir_report] = report["brokers"][0]["logDirs"]
        assert dir_report["error"] is None
        sizes = {p["partition"]: p["size"] for p in dir_report["partitions"]}
        assert set(sizes) == {f"{topic}-0", f"{topic}-1"} and sizes[f"{topic}-0"] > sizes[f"{topic}-1"] > 0

        broker.stop()
        broker = Broker(data_dir=broker.dir)
        assert offsets(cli, broker.bootstrap, topic, -2) == {0: 120, 1: 0}
        assert offsets(cli, broker.bootstrap, topic, -1) == {0: 300, 1: 10}
    finally:
        assert broker.stop() == 0
