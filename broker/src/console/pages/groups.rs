//! The consumer groups page and a group's page (members, committed offsets and lag, the
//! lag chart, reset and delete).

use super::super::chart;
use super::super::html::{escape, layout, push_escaped};
use super::super::model::{GroupDetail, GroupOffsetRow, GroupRow, MemberRow, PageContext};
use super::{
    dd, empty, forms, group_link, id_list, opt, opt_broker_link, table_close, table_open, td,
    td_text, topic_link, DASH,
};

/// The groups page; `complete` false when some coordinator did not answer, so the list
/// may miss groups.
pub fn list(ctx: &PageContext, groups: &[GroupRow], complete: bool) -> String {
    let mut main = String::from("<h1>Consumer groups</h1>\n");
    if !complete {
        main.push_str(
            "<p id=\"groups-incomplete\" class=\"warning\" role=\"alert\"><strong>Incomplete:</strong> \
             some brokers did not answer, so groups they coordinate are missing from this list.</p>\n",
        );
    }
    if groups.is_empty() {
        main.push_str(&empty("No consumer groups."));
    } else {
        main.push_str(&groups_table(groups));
    }
    layout(ctx, &main)
}

fn groups_table(groups: &[GroupRow]) -> String {
    let mut out = table_open(
        "groups",
        "Consumer groups",
        &[
            "Group",
            "State",
            "Protocol",
            "Coordinator",
            "Members",
            "Lag",
            "Topics",
        ],
    );
    for g in groups {
        out.push_str(&format!("<tr data-group=\"{}\">", escape(&g.id)));
        out.push_str(&td("group", &group_link(&g.id)));
        out.push_str(&td("state", &state_badge(&g.state)));
        out.push_str(&protocol_cell(g));
        out.push_str(&td("coordinator", &opt_broker_link(g.coordinator)));
        out.push_str(&td("members", &g.members.to_string()));
        out.push_str(&td("lag", &opt(g.lag)));
        out.push_str(&td("topics", &topic_links(&g.topics)));
        out.push_str("</tr>\n");
    }
    out.push_str(table_close());
    out
}

/// The assignor (`range`, `cooperative-sticky`), with the protocol type in `title`.
fn protocol_cell(g: &GroupRow) -> String {
    let text = if g.protocol.is_empty() {
        DASH.to_string()
    } else {
        escape(&g.protocol)
    };
    if g.protocol_type.is_empty() {
        return td("protocol", &text);
    }
    format!(
        "<td data-col=\"protocol\" title=\"protocol type: {}\">{text}</td>",
        escape(&g.protocol_type)
    )
}

/// Kafka's state name in a badge: Stable is fine, rebalancing is in motion, Dead is gone.
fn state_badge(state: &str) -> String {
    let kind = match state {
        "Stable" => "ok",
        "PreparingRebalance" | "CompletingRebalance" => "warn",
        "Dead" => "bad",
        _ => "muted",
    };
    let text = if state.is_empty() {
        DASH.to_string()
    } else {
        escape(state)
    };
    format!("<span class=\"badge badge-{kind}\">{text}</span>")
}

fn topic_links(topics: &[String]) -> String {
    let links: Vec<String> = topics.iter().map(|t| topic_link(t)).collect();
    links.join(", ")
}

/// A group's page.
pub fn detail(ctx: &PageContext, g: &GroupDetail) -> String {
    let row = &g.row;
    let mut main = String::from("<h1>Consumer group <span class=\"name\">");
    push_escaped(&mut main, &row.id);
    main.push_str("</span></h1>\n<dl id=\"group-summary\" class=\"summary\">\n");
    main.push_str(&dd("group-state", "State", &state_badge(&row.state)));
    main.push_str(&dd("total-lag", "Total lag", &opt(row.lag)));
    main.push_str(&dd(
        "group-coordinator",
        "Coordinator",
        &opt_broker_link(row.coordinator),
    ));
    main.push_str(&dd("group-members", "Members", &row.members.to_string()));
    let protocol = match (row.protocol_type.is_empty(), row.protocol.is_empty()) {
        (true, true) => DASH.to_string(),
        (false, true) => escape(&row.protocol_type),
        (true, false) => escape(&row.protocol),
        (false, false) => format!("{} ({})", escape(&row.protocol_type), escape(&row.protocol)),
    };
    main.push_str(&dd("group-protocol", "Protocol", &protocol));
    main.push_str("</dl>\n");
    main.push_str(&members_table(&g.members));
    main.push_str(&offsets_table(&g.offsets));
    if !g.charts.is_empty() {
        main.push_str("<section class=\"charts\" aria-labelledby=\"charts-heading\">\n<h2 id=\"charts-heading\">Lag over time</h2>\n");
        for c in &g.charts {
            main.push_str(&chart::render(c));
        }
        main.push_str("</section>\n");
    }
    main.push_str(&forms::group_forms(ctx, &row.id, &row.topics));
    layout(ctx, &main)
}

/// `topic: 0,1; other: 2`, each topic escaped.
fn assignment(assigned: &[(String, Vec<i32>)]) -> String {
    let parts: Vec<String> = assigned
        .iter()
        .map(|(topic, partitions)| format!("{}: {}", escape(topic), id_list(partitions)))
        .collect();
    parts.join("; ")
}

fn members_table(members: &[MemberRow]) -> String {
    if members.is_empty() {
        return format!("<h2>Members</h2>\n{}", empty("No active members."));
    }
    let mut out = table_open(
        "members",
        "Members",
        &[
            "Member id",
            "Client id",
            "Client host",
            "Instance id",
            "Assignment",
        ],
    );
    for m in members {
        out.push_str(&format!("<tr data-member=\"{}\">", escape(&m.member_id)));
        out.push_str(&td(
            "member-id",
            &format!("<code>{}</code>", escape(&m.member_id)),
        ));
        out.push_str(&td_text("client-id", &m.client_id));
        out.push_str(&td_text("client-host", &m.client_host));
        out.push_str(&td_text(
            "instance-id",
            m.group_instance_id.as_deref().unwrap_or(DASH),
        ));
        out.push_str(&td("assignment", &assignment(&m.assignment)));
        out.push_str("</tr>\n");
    }
    out.push_str(table_close());
    out
}

fn offsets_table(offsets: &[GroupOffsetRow]) -> String {
    if offsets.is_empty() {
        return format!(
            "<h2>Committed offsets</h2>\n{}",
            empty("No committed offsets.")
        );
    }
    let mut out = table_open(
        "offsets",
        "Committed offsets",
        &["Topic", "Partition", "Committed", "Log end", "Lag", "Owner"],
    );
    for o in offsets {
        out.push_str(&format!(
            "<tr data-topic=\"{}\" data-partition=\"{}\">",
            escape(&o.topic),
            o.partition
        ));
        out.push_str(&td("topic", &topic_link(&o.topic)));
        out.push_str(&td("partition", &o.partition.to_string()));
        out.push_str(&td("committed", &opt(o.committed)));
        out.push_str(&td("log-end", &opt(o.log_end)));
        out.push_str(&td("lag", &opt(o.lag)));
        out.push_str(&td_text("owner", o.owner.as_deref().unwrap_or(DASH)));
        out.push_str("</tr>\n");
    }
    out.push_str(table_close());
    out
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{
        assert_escaped, assert_no_forms, chart, ctx, group_row, EVIL_GROUP, EVIL_TOPIC,
    };
    use super::*;

    const EVIL_GROUP_HREF: &str = "/ui/groups/g%22r%27p%26%3Cx%3E";

    fn model(group: &str, topic: &str) -> GroupDetail {
        GroupDetail {
            row: group_row(group, topic),
            members: vec![MemberRow {
                member_id: format!("{group}-member-1"),
                group_instance_id: None,
                client_id: format!("client<{group}>"),
                client_host: "/10.0.0.1".to_string(),
                assignment: vec![
                    (topic.to_string(), vec![0, 1]),
                    ("other".to_string(), vec![2]),
                ],
            }],
            offsets: vec![GroupOffsetRow {
                topic: topic.to_string(),
                partition: 0,
                committed: Some(10),
                log_end: Some(17),
                lag: Some(7),
                owner: Some(format!("client<{group}>")),
            }],
            charts: vec![chart("lag", topic)],
        }
    }

    #[test]
    fn list_has_the_contract_table() {
        let html = list(&ctx(false), &[group_row("g1", "orders")], true);
        for s in [
            "<table id=\"groups\">",
            "<tr data-group=\"g1\">",
            "<td data-col=\"group\"><a href=\"/ui/groups/g1\">g1</a></td>",
            ">Stable</span>",
            "<td data-col=\"protocol\" title=\"protocol type: consumer\">range</td>",
            "<td data-col=\"coordinator\"><a href=\"/ui/brokers/2\">2</a></td>",
            "<td data-col=\"members\">1</td>",
            "<td data-col=\"lag\">7</td>",
            "<td data-col=\"topics\"><a href=\"/ui/topics/orders\">orders</a></td>",
        ] {
            assert!(html.contains(s), "{s}");
        }
        assert!(!html.contains("groups-incomplete"));
        assert!(!html.contains("<form"));
    }

    #[test]
    fn incomplete_list_warns() {
        let html = list(&ctx(false), &[], false);
        assert!(html.contains("id=\"groups-incomplete\""));
        assert!(html.contains("did not answer"));
    }

    #[test]
    fn list_escapes_group_ids_everywhere() {
        let html = list(&ctx(false), &[group_row(EVIL_GROUP, EVIL_TOPIC)], true);
        assert_escaped(&html, EVIL_GROUP);
        assert_escaped(&html, EVIL_TOPIC);
        assert!(html.contains(&format!("href=\"{EVIL_GROUP_HREF}\"")));
        assert!(html.contains("data-group=\"g&quot;r&#39;p&amp;&lt;x&gt;\""));
    }

    #[test]
    fn detail_has_the_contract_markup() {
        let html = detail(&ctx(false), &model("g1", "orders"));
        for s in [
            "<dl id=\"group-summary\"",
            "<dd id=\"group-state\"><span class=\"badge badge-ok\">Stable</span></dd>",
            "<dd id=\"total-lag\">7</dd>",
            "<dd id=\"group-coordinator\"><a href=\"/ui/brokers/2\">2</a></dd>",
            "<table id=\"members\">",
            "<tr data-member=\"g1-member-1\">",
            "<td data-col=\"client-id\">client&lt;g1&gt;</td>",
            "<td data-col=\"client-host\">/10.0.0.1</td>",
            "<td data-col=\"instance-id\">–</td>",
            "<td data-col=\"assignment\">orders: 0,1; other: 2</td>",
            "<table id=\"offsets\">",
            "<tr data-topic=\"orders\" data-partition=\"0\">",
            "<td data-col=\"committed\">10</td>",
            "<td data-col=\"log-end\">17</td>",
            "<td data-col=\"owner\">client&lt;g1&gt;</td>",
            "id=\"chart-lag\"",
            "<form id=\"reset-offsets\"",
            "<form id=\"delete-group\"",
            "action=\"/ui/groups/g1/reset\"",
        ] {
            assert!(html.contains(s), "{s}");
        }
        assert_eq!(html.matches("<h1>").count(), 1);
    }

    #[test]
    fn detail_escapes_group_and_topic_everywhere() {
        let html = detail(&ctx(false), &model(EVIL_GROUP, EVIL_TOPIC));
        assert_escaped(&html, EVIL_GROUP);
        assert_escaped(&html, EVIL_TOPIC);
        assert!(html.contains(&format!("action=\"{EVIL_GROUP_HREF}/delete\"")));
        assert!(html.contains("href=\"/ui/topics/%3Cscript%3Ealert%281%29%3C%2Fscript%3E\""));
        assert!(html.contains("<option value=\"&lt;script&gt;alert(1)&lt;/script&gt;\">"));
    }

    #[test]
    fn detail_read_only_has_no_forms() {
        assert_no_forms(&detail(&ctx(true), &model("g1", "orders")));
    }
}
