#!/usr/bin/env bash
# Fetches Apache Kafka's jars (broker, tools, clients and their dependencies) from Maven
# Central into a cache outside the repository, keyed by version, and prints the
# directory. Re-runs reuse the cache.
#   scripts/kafka-jars.sh [version]      (default 4.1.1)
set -euo pipefail
version=${1:-4.1.1}
cache=${RUNNEL_CACHE:-$HOME/.cache/runnel}/kafka-$version
if [ -f "$cache/.complete" ]; then
  echo "$cache"
  exit 0
fi
command -v mvn >/dev/null || { echo "kafka-jars: Maven (mvn) is required" >&2; exit 1; }
mkdir -p "$cache/libs"
work=$(mktemp -d)
cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.runnel</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
POM
echo "kafka-jars: fetching Apache Kafka $version from Maven Central" >&2
mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies -DoutputDirectory="$cache/libs" -DincludeScope=runtime >&2
rm -rf "$work"
touch "$cache/.complete"
echo "$cache"
