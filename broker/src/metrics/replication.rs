//! Replication at scrape time: ISR changes, truncations, fenced follower fetches, fetch
//! sessions, and each follower's lag behind a partition this broker leads.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::live::{counter, gauge, LiveStats};
use crate::partition::replication::FollowerLag;
use crate::partition::{Partition, Role};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FollowerLabels {
    topic: String,
    partition: String,
    follower: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

impl LiveStats {
    pub(super) fn encode_replication(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        partitions: &[Arc<Partition>],
    ) -> Result<(), std::fmt::Error> {
        counter(
            encoder,
            "runnel_replication_truncations",
            "Times a log here was truncated to where it diverged from its leader's",
            partitions
                .iter()
                .map(|p| p.truncations.load(Ordering::Relaxed))
                .sum(),
        )?;
        counter(
            encoder,
            "runnel_replication_truncated_bytes",
            "Bytes removed by those truncations",
            partitions
                .iter()
                .map(|p| p.bytes_truncated.load(Ordering::Relaxed))
                .sum(),
        )?;
        self.encode_follower_lag(encoder, partitions)?;
        let Some((stats, fetchers)) = self.replication.get() else {
            return Ok(());
        };
        gauge(
            encoder,
            "runnel_replication_fetch_sessions",
            "Partitions this broker follows with a running fetch session",
            fetchers.session_count() as i64,
        )?;
        for (name, help, value) in [
            (
                "runnel_replication_isr_shrinks",
                "ISR shrinks this broker wrote as leader",
                &stats.isr_shrinks,
            ),
            (
                "runnel_replication_isr_expands",
                "ISR expansions this broker wrote as leader",
                &stats.isr_expands,
            ),
            (
                "runnel_replication_isr_write_failures",
                "ISR writes refused by their compare or failed",
                &stats.isr_write_failures,
            ),
            (
                "runnel_replication_follower_fetch_bytes",
                "Record bytes this broker fetched as follower",
                &stats.follower_fetch_bytes,
            ),
            (
                "runnel_replication_follower_reconnects",
                "Fetch sessions this broker had to open again as follower",
                &stats.follower_reconnects,
            ),
        ] {
            counter(encoder, name, help, value.load(Ordering::Relaxed))?;
        }
        let mut fenced = encoder.encode_descriptor(
            "runnel_replication_fenced_fetches",
            "Follower fetches this broker refused as leader, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in [
            ("stale_broker_epoch", &stats.fenced_stale_broker_epoch),
            ("leader_epoch", &stats.fenced_leader_epoch),
            ("not_leader", &stats.fenced_not_leader),
        ] {
            ConstCounter::new(value.load(Ordering::Relaxed)).encode(fenced.encode_family(
                &ReasonLabels {
                    reason: reason.into(),
                },
            )?)?;
        }
        Ok(())
    }

    fn encode_follower_lag(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        partitions: &[Arc<Partition>],
    ) -> Result<(), std::fmt::Error> {
        let led: Vec<(&Arc<Partition>, i64, Vec<FollowerLag>)> = partitions
            .iter()
            .filter(|p| p.state().role == Role::Leader)
            .map(|p| (p, p.offsets().log_end, p.follower_lag()))
            .collect();
        let mut messages = encoder.encode_descriptor(
            "runnel_replication_follower_lag_messages",
            "Records a follower is behind the leader's log end (partitions led here)",
            None,
            MetricType::Gauge,
        )?;
        for (p, log_end, followers) in &led {
            for lag in followers {
                let labels = FollowerLabels {
                    topic: p.topic.to_string(),
                    partition: p.index.to_string(),
                    follower: lag.broker.to_string(),
                };
                ConstGauge::new((log_end - lag.log_end).max(0))
                    .encode(messages.encode_family(&labels)?)?;
            }
        }
        let mut millis = encoder.encode_descriptor(
            "runnel_replication_follower_lag_ms",
            "Milliseconds since a follower last had everything the leader had",
            None,
            MetricType::Gauge,
        )?;
        for (p, _, followers) in &led {
            for lag in followers {
                let labels = FollowerLabels {
                    topic: p.topic.to_string(),
                    partition: p.index.to_string(),
                    follower: lag.broker.to_string(),
                };
                ConstGauge::new(lag.since_caught_up.as_millis() as i64)
                    .encode(millis.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
