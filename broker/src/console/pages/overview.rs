//! The overview page: the cluster at a glance (controller, live brokers, partition
//! health, groups, metadata store) and the brokers table.

use super::super::html::{escape, layout};
use super::super::model::{BrokerState, Overview, PageContext};
use super::brokers::brokers_table;
use super::{broker_link, count_with_badge, dd, opt, rate};

/// The overview page.
pub fn render(ctx: &PageContext, o: &Overview) -> String {
    let mut main = String::from("<h1>Overview</h1>\n<dl id=\"summary\" class=\"summary\">\n");
    main.push_str(&dd(
        "cluster",
        "Cluster id",
        &format!("<code>{}</code>", escape(&o.cluster_id)),
    ));
    let controller = match o.controller {
        Some(id) => broker_link(id),
        None => "none".to_string(),
    };
    main.push_str(&dd("controller", "Controller", &controller));
    let live = o
        .brokers
        .iter()
        .filter(|b| b.state == BrokerState::Live)
        .count();
    main.push_str(&dd("brokers-live", "Live brokers", &live.to_string()));
    main.push_str(&dd(
        "brokers-total",
        "Brokers known",
        &o.brokers.len().to_string(),
    ));
    main.push_str(&dd("topic-count", "Topics", &o.topics.to_string()));
    main.push_str(&dd(
        "partition-count",
        "Partitions",
        &o.partitions.to_string(),
    ));
    main.push_str(&dd(
        "under-replicated",
        "Under-replicated partitions",
        &count_with_badge(o.under_replicated, "warn"),
    ));
    main.push_str(&dd(
        "offline",
        "Offline partitions",
        &count_with_badge(o.offline, "bad"),
    ));
    main.push_str(&dd("group-count", "Consumer groups", &opt(o.groups)));
    main.push_str(&dd(
        "messages-in",
        "Messages in per second",
        &rate(o.messages_in_per_sec),
    ));
    main.push_str(&dd("store-health", "Metadata store", &store_health(o)));
    main.push_str("</dl>\n");
    main.push_str(&brokers_table(&o.brokers));
    layout(ctx, &main)
}

/// Starts with `healthy` or `unhealthy` (the contract), then the kind and how long the
/// probe took, or why it failed.
fn store_health(o: &Overview) -> String {
    let s = &o.store;
    let latency = if s.latency_ms.is_finite() {
        format!("{:.1} ms", s.latency_ms)
    } else {
        "no answer".to_string()
    };
    if s.healthy {
        format!("healthy ({}, {latency})", escape(&s.kind))
    } else {
        let detail = if s.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", escape(&s.detail))
        };
        format!("unhealthy ({}, {latency}){detail}", escape(&s.kind))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{assert_escaped, broker, ctx};
    use super::*;
    use crate::console::model::StoreHealth;

    fn model() -> Overview {
        Overview {
            cluster_id: "c\"<1>".to_string(),
            controller: Some(1),
            brokers: vec![
                broker(1, BrokerState::Live),
                broker(2, BrokerState::Live),
                broker(3, BrokerState::Offline),
            ],
            topics: 4,
            partitions: 12,
            under_replicated: 2,
            offline: 0,
            store: StoreHealth {
                kind: "etcd".to_string(),
                healthy: true,
                latency_ms: 1.25,
                detail: String::new(),
            },
            groups: Some(3),
            messages_in_per_sec: Some(10.0),
        }
    }

    fn text_of(html: &str, id: &str) -> String {
        let open = format!("id=\"{id}\">");
        let start = html.find(&open).map(|i| i + open.len()).unwrap_or(0);
        let end = html[start..]
            .find("</dd>")
            .map(|i| i + start)
            .unwrap_or(start);
        // Drop tags: the tests compare what a reader sees.
        let mut text = String::new();
        let mut in_tag = false;
        for c in html[start..end].chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        text
    }

    #[test]
    fn summary_has_the_contract_ids() {
        let html = render(&ctx(false), &model());
        assert!(html.contains("<dl id=\"summary\""));
        assert_eq!(text_of(&html, "controller"), "1");
        assert_eq!(text_of(&html, "brokers-live"), "2");
        assert_eq!(text_of(&html, "topic-count"), "4");
        assert_eq!(text_of(&html, "partition-count"), "12");
        assert_eq!(text_of(&html, "under-replicated"), "2");
        assert_eq!(text_of(&html, "offline"), "0");
        assert_eq!(text_of(&html, "group-count"), "3");
        assert!(text_of(&html, "store-health").starts_with("healthy (etcd, 1.2"));
        assert!(html.contains("<table id=\"brokers\">"));
        assert!(html.contains("data-controller=\"true\""));
        assert_escaped(&html, "c\"<1>");
        assert_eq!(html.matches("<h1>").count(), 1);
    }

    #[test]
    fn unknowns_and_an_unhealthy_store() {
        let mut o = model();
        o.controller = None;
        o.groups = None;
        o.store.healthy = false;
        o.store.detail = "timed out <after 5s>".to_string();
        let html = render(&ctx(false), &o);
        assert_eq!(text_of(&html, "controller"), "none");
        assert_eq!(text_of(&html, "group-count"), "–");
        assert!(text_of(&html, "store-health").starts_with("unhealthy"));
        assert_escaped(&html, "timed out <after 5s>");
    }
}
