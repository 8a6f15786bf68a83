//! The console's memory of the recent past: one ring buffer of points per series (a
//! topic's rates, a group's lag on a topic), so that lag over time and throughput can be
//! charted without Prometheus. Bounded in points per series and in series.

use std::collections::{HashMap, VecDeque};

use super::model::Point;

/// The most series kept: a cluster with more topics and group-topic pairs than this
/// charts the first ones seen (each series is at most `points` × 16 bytes).
pub const MAX_SERIES: usize = 1000;

/// What a topic series measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    MessagesIn,
    BytesIn,
    BytesOut,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SeriesKey {
    /// Per second, over the cluster.
    Topic { topic: String, measure: Measure },
    /// Records a group is behind on a topic (sum over its partitions).
    Lag { group: String, topic: String },
}

impl SeriesKey {
    fn topic(&self) -> &str {
        match self {
            SeriesKey::Topic { topic, .. } | SeriesKey::Lag { topic, .. } => topic,
        }
    }
}

#[derive(Debug)]
pub struct History {
    points: usize,
    series: HashMap<SeriesKey, VecDeque<Point>>,
    /// Series not kept because MAX_SERIES was reached.
    pub dropped: u64,
}

impl History {
    pub fn new(points: usize) -> History {
        History {
            points: points.max(2),
            series: HashMap::new(),
            dropped: 0,
        }
    }

    /// Adds a point; the oldest goes once the series is full. A point not later than
    /// the series' last (a clock step back) replaces nothing and is ignored.
    pub fn push(&mut self, key: SeriesKey, at_ms: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        if !self.series.contains_key(&key) && self.series.len() >= MAX_SERIES {
            self.dropped += 1;
            return;
        }
        let points = self.points;
        let series = self.series.entry(key).or_default();
        if series.back().is_some_and(|(last, _)| *last >= at_ms) {
            return;
        }
        if series.len() == points {
            series.pop_front();
        }
        series.push_back((at_ms, value));
    }

    pub fn series(&self, key: &SeriesKey) -> Vec<Point> {
        self.series
            .get(key)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    pub fn latest(&self, key: &SeriesKey) -> Option<f64> {
        self.series.get(key).and_then(|s| s.back()).map(|p| p.1)
    }

    /// The lag series of one group, by topic.
    pub fn lag_of_group(&self, group: &str) -> Vec<(String, Vec<Point>)> {
        let mut out: Vec<(String, Vec<Point>)> = self
            .series
            .iter()
            .filter_map(|(k, s)| match k {
                SeriesKey::Lag { group: g, topic } if g == group => {
                    Some((topic.clone(), s.iter().copied().collect()))
                }
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Forgets the series of topics that no longer exist and of groups not seen in the
    /// last listing (`groups` None: the listing was incomplete, keep them all).
    pub fn retain(&mut self, topic_exists: impl Fn(&str) -> bool, groups: Option<&[String]>) {
        self.series.retain(|k, _| {
            topic_exists(k.topic())
                && match (k, groups) {
                    (SeriesKey::Lag { group, .. }, Some(gs)) => gs.contains(group),
                    _ => true,
                }
        });
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// Per-second rates from counters read at successive times: a counter that went back
/// (its broker restarted) gives no rate for that interval rather than a negative one.
#[derive(Debug)]
pub struct Rates<K> {
    last: HashMap<K, (i64, u64)>,
}

impl<K> Default for Rates<K> {
    fn default() -> Self {
        Rates {
            last: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> Rates<K> {
    pub fn new() -> Rates<K> {
        Rates {
            last: HashMap::new(),
        }
    }

    /// Records `value` at `at_ms`; the rate since the previous reading, if any.
    pub fn observe(&mut self, key: K, at_ms: i64, value: u64) -> Option<f64> {
        let previous = self.last.insert(key, (at_ms, value));
        let (then, before) = previous?;
        let elapsed = at_ms.checked_sub(then).filter(|ms| *ms > 0)?;
        let delta = value.checked_sub(before)?;
        Some(delta as f64 * 1000.0 / elapsed as f64)
    }

    /// Forgets keys not read in the last round.
    pub fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        self.last.retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(group: &str, topic: &str) -> SeriesKey {
        SeriesKey::Lag {
            group: group.into(),
            topic: topic.into(),
        }
    }

    #[test]
    fn a_series_keeps_the_newest_points_only() {
        let mut h = History::new(3);
        for i in 0..5 {
            h.push(lag("g", "t"), i * 1000, i as f64);
        }
        assert_eq!(
            h.series(&lag("g", "t")),
            vec![(2000, 2.0), (3000, 3.0), (4000, 4.0)]
        );
        assert_eq!(h.latest(&lag("g", "t")), Some(4.0));
    }

    #[test]
    fn points_out_of_order_or_not_finite_are_ignored() {
        let mut h = History::new(10);
        h.push(lag("g", "t"), 2000, 1.0);
        h.push(lag("g", "t"), 1000, 5.0);
        h.push(lag("g", "t"), 2000, 6.0);
        h.push(lag("g", "t"), 3000, f64::NAN);
        h.push(lag("g", "t"), 3000, f64::INFINITY);
        assert_eq!(h.series(&lag("g", "t")), vec![(2000, 1.0)]);
    }

    #[test]
    fn series_are_bounded_in_number() {
        let mut h = History::new(2);
        for i in 0..MAX_SERIES + 5 {
            h.push(lag("g", &format!("t{i}")), 1, 1.0);
        }
        assert_eq!(h.len(), MAX_SERIES);
        assert_eq!(h.dropped, 5);
    }

    #[test]
    fn retain_forgets_gone_topics_and_unlisted_groups() {
        let mut h = History::new(2);
        h.push(lag("a", "t"), 1, 1.0);
        h.push(lag("b", "t"), 1, 1.0);
        h.push(lag("a", "gone"), 1, 1.0);
        let topic = SeriesKey::Topic {
            topic: "t".into(),
            measure: Measure::BytesIn,
        };
        h.push(topic.clone(), 1, 1.0);
        h.retain(|t| t == "t", None);
        assert_eq!(h.len(), 3);
        h.retain(|t| t == "t", Some(&["a".to_string()]));
        assert_eq!(h.len(), 2);
        assert_eq!(h.lag_of_group("a"), vec![("t".to_string(), vec![(1, 1.0)])]);
        assert!(h.lag_of_group("b").is_empty());
        assert_eq!(h.latest(&topic), Some(1.0));
    }

    #[test]
    fn rates_need_two_readings_and_skip_a_counter_reset() {
        let mut r = Rates::new();
        assert_eq!(r.observe("t", 0, 100), None);
        assert_eq!(r.observe("t", 2000, 300), Some(100.0));
        assert_eq!(r.observe("t", 3000, 50), None, "restarted broker");
        assert_eq!(r.observe("t", 4000, 150), Some(100.0));
        assert_eq!(r.observe("t", 4000, 160), None, "no time passed");
        r.retain(|_| false);
        assert_eq!(r.observe("t", 5000, 200), None);
    }
}
