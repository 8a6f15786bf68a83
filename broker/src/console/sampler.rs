//! Takes the history's points every `console.history.interval.ms`: each topic's
//! messages in per second (from its partitions' log end offsets, so the rate survives
//! leader changes and restarts), clients' bytes in and out per second (from every
//! broker's counters, DescribeBroker) and each group's lag per topic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::calls::{Committed, LogRange};
use super::events::Refresh;
use super::history::{Measure, Rates, SeriesKey};
use super::Console;
use crate::clock::now_ms;

/// Records a group is behind on one partition (a committed offset past the end, after
/// records were deleted, is no lag).
pub fn partition_lag(committed: i64, end: i64) -> i64 {
    end.saturating_sub(committed).max(0)
}

/// A group's lag per topic; a topic with a partition whose end is unknown is left out
/// rather than under-reported.
pub fn lag_by_topic(
    committed: &[Committed],
    offsets: &HashMap<(String, i32), LogRange>,
) -> BTreeMap<String, i64> {
    let mut lag: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for c in committed {
        let end = offsets.get(&(c.topic.clone(), c.partition)).map(|r| r.end);
        let entry = lag.entry(c.topic.clone()).or_insert(Some(0));
        *entry = match (*entry, end) {
            (Some(sum), Some(end)) => Some(sum + partition_lag(c.offset, end)),
            _ => None,
        };
    }
    lag.into_iter()
        .filter_map(|(topic, lag)| Some((topic, lag?)))
        .collect()
}

/// The counters one round reads, kept between rounds to turn them into rates.
#[derive(Debug, Default)]
struct Counters {
    /// Per topic: the sum of its partitions' log end offsets.
    ends: Rates<String>,
    /// Per broker, topic and measure: that broker's counter.
    traffic: Rates<(i32, String, Measure)>,
}

pub async fn run(console: Arc<Console>, mut shutdown: watch::Receiver<bool>) {
    let mut counters = Counters::default();
    let mut ticker = tokio::time::interval(console.config.history_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let revision = sample(&console, &mut counters).await;
        let _ = console.events.send(Refresh {
            reason: "sample",
            revision,
        });
    }
}

/// One round; returns the metadata revision it sampled at.
async fn sample(console: &Console, counters: &mut Counters) -> i64 {
    let image = console.cache.image();
    let wanted: Vec<(String, i32)> = image
        .partitions
        .iter()
        .flat_map(|(t, ps)| ps.keys().map(move |p| (t.clone(), *p)))
        .collect();
    let (offsets, listing, traffic) = tokio::join!(
        console.calls.offsets(&wanted),
        console.calls.list_groups(),
        console.traffic.describe_all(),
    );
    let group_ids: Vec<String> = listing.groups.iter().map(|g| g.id.clone()).collect();
    let committed = console.calls.committed_offsets(&group_ids).await;
    let now = now_ms();

    let mut points: Vec<(SeriesKey, f64)> = Vec::new();
    for (topic, partitions) in &image.partitions {
        let ends: Option<i64> = partitions
            .keys()
            .map(|p| offsets.get(&(topic.clone(), *p)).map(|r| r.end))
            .sum();
        if let Some(rate) =
            ends.and_then(|e| counters.ends.observe(topic.clone(), now, e.max(0) as u64))
        {
            points.push((topic_key(topic, Measure::MessagesIn), rate));
        }
    }
    // A topic's byte rate is the sum over brokers; with a broker silent or restarted
    // (its counter went back) the sum would dip, so the topic gets no point this round.
    let mut bytes: BTreeMap<(String, Measure), Option<f64>> = BTreeMap::new();
    let everyone = traffic.len() >= image.brokers.len();
    for broker in &traffic {
        for t in &broker.topics {
            for (measure, value) in [
                (Measure::BytesIn, t.bytes_in),
                (Measure::BytesOut, t.bytes_out),
            ] {
                let key = (broker.broker_id, t.topic.clone(), measure);
                let rate = counters.traffic.observe(key, now, value);
                let sum = bytes.entry((t.topic.clone(), measure)).or_insert(Some(0.0));
                *sum = sum.zip(rate).map(|(s, r)| s + r);
            }
        }
    }
    for ((topic, measure), rate) in bytes {
        if let Some(rate) = rate.filter(|_| everyone && image.topics.contains_key(&topic)) {
            points.push((topic_key(&topic, measure), rate));
        }
    }
    for (group, committed) in &committed {
        for (topic, lag) in lag_by_topic(committed, &offsets) {
            let key = SeriesKey::Lag {
                group: group.clone(),
                topic,
            };
            points.push((key, lag as f64));
        }
    }

    counters.ends.retain(|t| image.topics.contains_key(t));
    // A registered broker that did not answer keeps its last reading: its next answer
    // continues the rate unless it restarted meanwhile (its counter then went back).
    counters
        .traffic
        .retain(|(b, t, _)| image.topics.contains_key(t) && image.brokers.contains_key(b));
    let listed = listing.complete.then_some(group_ids.as_slice());
    let mut history = console.history();
    for (key, value) in points {
        history.push(key, now, value);
    }
    history.retain(|t| image.topics.contains_key(t), listed);
    image.revision
}

fn topic_key(topic: &str, measure: Measure) -> SeriesKey {
    SeriesKey::Topic {
        topic: topic.to_string(),
        measure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(topic: &str, partition: i32, offset: i64) -> Committed {
        Committed {
            topic: topic.into(),
            partition,
            offset,
        }
    }

    #[test]
    fn lag_sums_partitions_and_leaves_out_topics_with_an_unknown_end() {
        let offsets: HashMap<(String, i32), LogRange> = [
            (("a".to_string(), 0), LogRange { start: 0, end: 10 }),
            (("a".to_string(), 1), LogRange { start: 0, end: 5 }),
            (("b".to_string(), 0), LogRange { start: 0, end: 7 }),
        ]
        .into_iter()
        .collect();
        let lag = lag_by_topic(
            &[
                committed("a", 0, 4),
                committed("a", 1, 9),
                committed("b", 0, 1),
                committed("b", 1, 0),
            ],
            &offsets,
        );
        assert_eq!(lag, [("a".to_string(), 6)].into_iter().collect());
        assert_eq!(partition_lag(3, 10), 7);
        assert_eq!(partition_lag(12, 10), 0);
        assert_eq!(partition_lag(i64::MIN, i64::MAX), i64::MAX);
    }
}
