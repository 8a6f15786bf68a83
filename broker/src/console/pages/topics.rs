//! The topics page and a topic's page (partitions, charts, consumers, configuration and
//! the forms that change it).

use super::super::chart;
use super::super::html::{escape, layout};
use super::super::model::{PageContext, PartitionRow, TopicConsumer, TopicDetail, TopicRow};
use super::{
    badge, byte_rate_cell, bytes, bytes_cell, configs_table, count_with_badge, dd, empty, forms,
    group_link, id_list, opt, opt_broker_link, rate, table_close, table_open, td, topic_href,
    topic_link, DASH,
};

/// The topics page, with the create-topic form unless read-only.
pub fn list(ctx: &PageContext, topics: &[TopicRow]) -> String {
    let mut main = String::from("<h1>Topics</h1>\n");
    if topics.is_empty() {
        main.push_str(&empty("No topics yet."));
    } else {
        main.push_str(&topics_table(topics));
    }
    main.push_str(&forms::create_topic(ctx));
    layout(ctx, &main)
}

fn topics_table(topics: &[TopicRow]) -> String {
    let mut out = table_open(
        "topics",
        "Topics",
        &[
            "Name",
            "Partitions",
            "Replication factor",
            "Under-replicated",
            "Offline",
            "Messages",
            "Size",
            "Messages in/s",
            "Bytes in/s",
            "Bytes out/s",
        ],
    );
    for t in topics {
        out.push_str(&format!("<tr data-topic=\"{}\">", escape(&t.name)));
        let internal = if t.internal {
            " <span class=\"badge badge-muted\">internal</span>"
        } else {
            ""
        };
        out.push_str(&td("name", &format!("{}{internal}", topic_link(&t.name))));
        out.push_str(&td("partitions", &t.partitions.to_string()));
        out.push_str(&td("replication-factor", &t.replication_factor.to_string()));
        out.push_str(&td(
            "under-replicated",
            &count_with_badge(t.under_replicated, "warn"),
        ));
        out.push_str(&td("offline", &count_with_badge(t.offline, "bad")));
        out.push_str(&td("messages", &opt(t.messages)));
        out.push_str(&bytes_cell("size", t.size));
        out.push_str(&td("messages-in", &rate(t.rates.messages_in)));
        out.push_str(&byte_rate_cell("bytes-in", t.rates.bytes_in));
        out.push_str(&byte_rate_cell("bytes-out", t.rates.bytes_out));
        out.push_str("</tr>\n");
    }
    out.push_str(table_close());
    out
}

/// A topic's page.
pub fn detail(ctx: &PageContext, t: &TopicDetail) -> String {
    let row = &t.row;
    let mut main = format!(
        "<h1>Topic <span class=\"name\">{}</span>",
        escape(&row.name)
    );
    if row.internal {
        main.push_str(" <span class=\"badge badge-muted\">internal</span>");
    }
    main.push_str("</h1>\n");
    main.push_str(&format!(
        "<p><a id=\"browse-messages\" href=\"{}/messages\">Browse messages</a></p>\n",
        topic_href(&row.name)
    ));
    main.push_str(&summary(t));
    main.push_str(&partitions_table(&t.partitions));
    if !t.charts.is_empty() {
        main.push_str("<section class=\"charts\" aria-labelledby=\"charts-heading\">\n<h2 id=\"charts-heading\">Throughput</h2>\n");
        for c in &t.charts {
            main.push_str(&chart::render(c));
        }
        main.push_str("</section>\n");
    }
    main.push_str(&consumers_table(&t.consumers));
    main.push_str(&configs_table("Configuration", &t.configs));
    main.push_str(&forms::topic_forms(
        ctx,
        &row.name,
        row.internal,
        &t.partitions,
    ));
    layout(ctx, &main)
}

fn summary(t: &TopicDetail) -> String {
    let row = &t.row;
    let mut out = String::from("<dl id=\"topic-summary\" class=\"summary\">\n");
    out.push_str(&dd(
        "topic-id",
        "Topic id",
        &format!("<code>{}</code>", escape(&t.id)),
    ));
    out.push_str(&dd(
        "topic-partitions",
        "Partitions",
        &row.partitions.to_string(),
    ));
    out.push_str(&dd(
        "topic-replication-factor",
        "Replication factor",
        &row.replication_factor.to_string(),
    ));
    out.push_str(&dd(
        "topic-under-replicated",
        "Under-replicated partitions",
        &count_with_badge(row.under_replicated, "warn"),
    ));
    out.push_str(&dd(
        "topic-offline",
        "Offline partitions",
        &count_with_badge(row.offline, "bad"),
    ));
    out.push_str(&dd("topic-messages", "Messages", &opt(row.messages)));
    let size = match row.size {
        Some(n) => format!("<span title=\"{n}\">{}</span>", bytes(n)),
        None => DASH.to_string(),
    };
    out.push_str(&dd("topic-size", "Size", &size));
    out.push_str(&dd(
        "topic-messages-in",
        "Messages in per second",
        &rate(row.rates.messages_in),
    ));
    out.push_str("</dl>\n");
    out
}

fn partitions_table(partitions: &[PartitionRow]) -> String {
    if partitions.is_empty() {
        return format!("<h2>Partitions</h2>\n{}", empty("No partitions."));
    }
    let mut out = table_open(
        "partitions",
        "Partitions",
        &[
            "Partition",
            "Status",
            "Leader",
            "Leader epoch",
            "Replicas",
            "In-sync replicas",
            "Log start",
            "Log end",
            "Size",
        ],
    );
    for p in partitions {
        out.push_str(&format!("<tr data-partition=\"{}\">", p.partition));
        out.push_str(&td("partition", &p.partition.to_string()));
        let status = if p.offline {
            badge("bad", "offline")
        } else if p.under_replicated {
            badge("warn", "under-replicated")
        } else {
            badge("ok", "ok")
        };
        out.push_str(&td("status", &status));
        let leader = if p.offline || p.leader < 0 {
            "none".to_string()
        } else {
            opt_broker_link(Some(p.leader))
        };
        out.push_str(&td("leader", &leader));
        out.push_str(&td("leader-epoch", &p.leader_epoch.to_string()));
        out.push_str(&td("replicas", &id_list(&p.replicas)));
        out.push_str(&td("isr", &id_list(&p.isr)));
        out.push_str(&td("log-start", &opt(p.log_start)));
        out.push_str(&td("log-end", &opt(p.log_end)));
        out.push_str(&bytes_cell("size", p.size));
        out.push_str("</tr>\n");
    }
    out.push_str(table_close());
    out
}

fn consumers_table(consumers: &[TopicConsumer]) -> String {
    if consumers.is_empty() {
        return format!(
            "<h2>Consumer groups</h2>\n{}",
            empty("No consumer group has committed offsets on this topic.")
        );
    }
    let mut out = table_open("consumers", "Consumer groups", &["Group", "Lag"]);
    for c in consumers {
        out.push_str(&format!("<tr data-group=\"{}\">", escape(&c.group)));
        out.push_str(&td("group", &group_link(&c.group)));
        out.push_str(&td("lag", &opt(c.lag)));
        out.push_str("</tr>\n");
    }
    out.push_str(table_close());
    out
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{
        assert_escaped, assert_no_forms, chart, config, ctx, topic_row, EVIL_GROUP, EVIL_TOPIC,
    };
    use super::*;
    use crate::console::model::ConfigSource;

    const EVIL_HREF: &str = "/ui/topics/%3Cscript%3Ealert%281%29%3C%2Fscript%3E";

    fn partition(p: i32, offline: bool) -> PartitionRow {
        PartitionRow {
            partition: p,
            leader: if offline { -1 } else { 2 },
            leader_epoch: 4,
            replicas: vec![1, 2, 3],
            isr: if offline { vec![] } else { vec![2, 3] },
            log_start: Some(0),
            log_end: if offline { None } else { Some(42) },
            size: Some(1024),
            under_replicated: !offline,
            offline,
        }
    }

    fn model(name: &str, group: &str) -> TopicDetail {
        TopicDetail {
            row: topic_row(name),
            id: "AAAAAAAAAAAAAAAAAAAAAA".to_string(),
            partitions: vec![partition(0, false), partition(1, true)],
            configs: vec![config("retention.ms", Some("1000"), ConfigSource::Topic)],
            consumers: vec![TopicConsumer {
                group: group.to_string(),
                lag: Some(5),
            }],
            charts: vec![
                chart("messages-in", name),
                chart("bytes-in", name),
                chart("bytes-out", name),
            ],
        }
    }

    #[test]
    fn list_has_the_contract_table_and_form() {
        let html = list(&ctx(false), &[topic_row("orders.v1_x-y")]);
        assert!(html.contains("<table id=\"topics\">"));
        assert!(html.contains("<tr data-topic=\"orders.v1_x-y\">"));
        assert!(html.contains(
            "<td data-col=\"name\"><a href=\"/ui/topics/orders.v1_x-y\">orders.v1_x-y</a></td>"
        ));
        for col in [
            "partitions",
            "replication-factor",
            "under-replicated",
            "offline",
            "messages",
            "size",
            "messages-in",
            "bytes-in",
            "bytes-out",
        ] {
            assert!(html.contains(&format!("data-col=\"{col}\"")), "{col}");
        }
        assert!(html.contains("<td data-col=\"messages\">42</td>"));
        assert!(html.contains("<td data-col=\"bytes-out\">–</td>"));
        assert!(html.contains("<form id=\"create-topic\""));
        assert!(html.contains("<caption"));
        assert_eq!(html.matches("<h1>").count(), 1);
    }

    #[test]
    fn list_escapes_names_everywhere() {
        let html = list(&ctx(false), &[topic_row(EVIL_TOPIC)]);
        assert_escaped(&html, EVIL_TOPIC);
        assert!(html.contains(&format!("href=\"{EVIL_HREF}\"")));
        assert!(html.contains("data-topic=\"&lt;script&gt;alert(1)&lt;/script&gt;\""));
    }

    #[test]
    fn list_read_only_has_no_form() {
        assert_no_forms(&list(&ctx(true), &[topic_row("t")]));
    }

    #[test]
    fn detail_has_the_contract_markup() {
        let html = detail(&ctx(false), &model("orders", "g1"));
        for s in [
            "<table id=\"partitions\">",
            "<tr data-partition=\"0\">",
            "<td data-col=\"leader\"><a href=\"/ui/brokers/2\">2</a></td>",
            "<td data-col=\"leader\">none</td>",
            "<td data-col=\"leader-epoch\">4</td>",
            "<td data-col=\"replicas\">1,2,3</td>",
            "<td data-col=\"isr\">2,3</td>",
            "<td data-col=\"isr\"></td>",
            "<td data-col=\"log-start\">0</td>",
            "<td data-col=\"log-end\">–</td>",
            "<td data-col=\"size\" title=\"1024\">1.0 KiB</td>",
            "<table id=\"configs\">",
            "<tr data-config=\"retention.ms\">",
            "<td data-col=\"source\"><span class=\"source\">topic</span></td>",
            "<table id=\"consumers\">",
            "<tr data-group=\"g1\">",
            "<td data-col=\"group\"><a href=\"/ui/groups/g1\">g1</a></td>",
            "<td data-col=\"lag\">5</td>",
            "<a id=\"browse-messages\" href=\"/ui/topics/orders/messages\">",
            "id=\"chart-messages-in\"",
            "id=\"chart-bytes-in\"",
            "id=\"chart-bytes-out\"",
            "<form id=\"add-partitions\"",
            "<form id=\"set-config\"",
            "<form id=\"delete-config\"",
            "<form id=\"delete-records\"",
            ">offline</span>",
            ">under-replicated</span>",
        ] {
            assert!(html.contains(s), "{s}");
        }
        assert_eq!(html.matches("<h1>").count(), 1);
    }

    #[test]
    fn detail_escapes_topic_and_group_everywhere() {
        let html = detail(&ctx(false), &model(EVIL_TOPIC, EVIL_GROUP));
        assert_escaped(&html, EVIL_TOPIC);
        assert_escaped(&html, EVIL_GROUP);
        assert!(html.contains(&format!("href=\"{EVIL_HREF}/messages\"")));
        assert!(html.contains(&format!("action=\"{EVIL_HREF}/partitions\"")));
        assert!(html.contains("href=\"/ui/groups/g%22r%27p%26%3Cx%3E\""));
        assert!(html.contains("data-group=\"g&quot;r&#39;p&amp;&lt;x&gt;\""));
    }

    #[test]
    fn detail_read_only_or_internal_has_no_forms() {
        assert_no_forms(&detail(&ctx(true), &model("orders", "g")));
        let mut internal = model("__consumer_offsets", "g");
        internal.row.internal = true;
        let html = detail(&ctx(false), &internal);
        assert_no_forms(&html);
        assert!(html.contains("internal"));
    }
}
