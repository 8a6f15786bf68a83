//! The action forms: create a topic, add partitions, set or delete a config, delete
//! records, reset a group's offsets, delete a group. Each posts to its action URL with the
//! CSRF token and a required confirmation checkbox (the server refuses without either),
//! and none is rendered when the console is read-only.

use super::super::html::escape;
use super::super::model::{PageContext, PartitionRow};
use super::{group_href, topic_href};

/// How a form looks and what its confirmation says.
struct FormSpec<'a> {
    id: &'a str,
    action: &'a str,
    legend: &'a str,
    /// Destructive: styled as such, and console.js asks before submitting.
    danger: bool,
    /// The confirmation checkbox's label (text, escaped here).
    confirm: &'a str,
    submit: &'a str,
}

fn form(ctx: &PageContext, spec: &FormSpec<'_>, fields_html: &str) -> String {
    let class = if spec.danger {
        "action danger"
    } else {
        "action"
    };
    let confirm_attr = if spec.danger {
        format!(" data-confirm=\"{}\"", escape(spec.confirm))
    } else {
        String::new()
    };
    let id = spec.id;
    format!(
        "<form id=\"{id}\" class=\"{class}\" method=\"post\" action=\"{action}\"{confirm_attr}>\n\
         <fieldset>\n<legend>{legend}</legend>\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         {fields_html}\
         <p class=\"field confirm\"><input type=\"checkbox\" id=\"{id}-confirm\" name=\"confirm\" \
         value=\"yes\" required> <label for=\"{id}-confirm\">{confirm}</label></p>\n\
         <p><button type=\"submit\">{submit}</button></p>\n\
         </fieldset>\n</form>\n",
        action = spec.action,
        legend = escape(spec.legend),
        csrf = escape(&ctx.csrf_token),
        confirm = escape(spec.confirm),
        submit = escape(spec.submit),
    )
}

/// A labelled input; `attrs` are extra attributes, already HTML.
fn input(form_id: &str, name: &str, label: &str, attrs: &str) -> String {
    format!(
        "<p class=\"field\"><label for=\"{form_id}-{name}\">{label}</label> \
         <input id=\"{form_id}-{name}\" name=\"{name}\" {attrs}></p>\n"
    )
}

/// A labelled select; `options` are (value, text) pairs, escaped here.
fn select(form_id: &str, name: &str, label: &str, options: &[(String, String)]) -> String {
    let mut out = format!(
        "<p class=\"field\"><label for=\"{form_id}-{name}\">{label}</label> \
         <select id=\"{form_id}-{name}\" name=\"{name}\">"
    );
    for (value, text) in options {
        out.push_str(&format!(
            "<option value=\"{}\">{}</option>",
            escape(value),
            escape(text)
        ));
    }
    out.push_str("</select></p>\n");
    out
}

/// The create-topic form on the topics page.
pub(crate) fn create_topic(ctx: &PageContext) -> String {
    if ctx.read_only {
        return String::new();
    }
    let id = "create-topic";
    let mut fields = input(
        id,
        "name",
        "Name",
        "type=\"text\" required maxlength=\"249\" pattern=\"[a-zA-Z0-9._\\-]+\" \
         autocomplete=\"off\" aria-describedby=\"create-topic-name-help\"",
    );
    fields.push_str(
        "<p class=\"help\" id=\"create-topic-name-help\">Letters, digits, <code>.</code>, \
         <code>_</code> and <code>-</code>; at most 249 characters.</p>\n",
    );
    fields.push_str(&input(
        id,
        "partitions",
        "Partitions (empty: the broker's num.partitions)",
        "type=\"number\" min=\"1\" step=\"1\"",
    ));
    fields.push_str(&input(
        id,
        "replication_factor",
        "Replication factor (empty: the broker's default.replication.factor)",
        "type=\"number\" min=\"1\" step=\"1\"",
    ));
    fields.push_str(
        "<p class=\"field\"><label for=\"create-topic-configs\">Configs (one \
         <code>key=value</code> per line, optional)</label>\n<textarea id=\"create-topic-configs\" \
         name=\"configs\" rows=\"3\" cols=\"40\" placeholder=\"retention.ms=86400000\"></textarea></p>\n",
    );
    let spec = FormSpec {
        id,
        action: "/ui/topics",
        legend: "Create a topic",
        danger: false,
        confirm: "Yes, create this topic",
        submit: "Create topic",
    };
    form(ctx, &spec, &fields)
}

/// The forms of a topic's page: add partitions, set and delete a config, delete records.
/// Empty when read-only or for an internal topic (the console never changes those).
pub(crate) fn topic_forms(
    ctx: &PageContext,
    topic: &str,
    internal: bool,
    partitions: &[PartitionRow],
) -> String {
    if ctx.read_only || internal {
        return String::new();
    }
    let href = topic_href(topic);
    let mut out = String::from("<section class=\"actions\" aria-labelledby=\"topic-actions\">\n<h2 id=\"topic-actions\">Change this topic</h2>\n");

    let current = i32::try_from(partitions.len()).unwrap_or(i32::MAX);
    let fields = input(
        "add-partitions",
        "count",
        "New total number of partitions",
        &format!(
            "type=\"number\" required min=\"{min}\" step=\"1\" value=\"{min}\"",
            min = current.saturating_add(1)
        ),
    );
    let confirm = format!("Yes, raise the partition count of {topic} (this cannot be undone)");
    out.push_str(&form(
        ctx,
        &FormSpec {
            id: "add-partitions",
            action: &format!("{href}/partitions"),
            legend: "Add partitions",
            danger: false,
            confirm: &confirm,
            submit: "Add partitions",
        },
        &fields,
    ));

    let mut fields = String::from("<input type=\"hidden\" name=\"op\" value=\"set\">\n");
    fields.push_str(&input(
        "set-config",
        "key",
        "Config name",
        "type=\"text\" required autocomplete=\"off\" placeholder=\"retention.ms\"",
    ));
    fields.push_str(&input(
        "set-config",
        "value",
        "Value",
        "type=\"text\" required autocomplete=\"off\"",
    ));
    let confirm = format!("Yes, set this config on {topic}");
    out.push_str(&form(
        ctx,
        &FormSpec {
            id: "set-config",
            action: &format!("{href}/configs"),
            legend: "Set a config",
            danger: false,
            confirm: &confirm,
            submit: "Set config",
        },
        &fields,
    ));

    let mut fields = String::from("<input type=\"hidden\" name=\"op\" value=\"delete\">\n");
    fields.push_str(&input(
        "delete-config",
        "key",
        "Config name",
        "type=\"text\" required autocomplete=\"off\"",
    ));
    fields.push_str("<input type=\"hidden\" name=\"value\" value=\"\">\n");
    let confirm = format!("Yes, remove this override from {topic} (the default applies again)");
    out.push_str(&form(
        ctx,
        &FormSpec {
            id: "delete-config",
            action: &format!("{href}/configs"),
            legend: "Delete a config override",
            danger: true,
            confirm: &confirm,
            submit: "Delete config",
        },
        &fields,
    ));

    let options: Vec<(String, String)> = partitions
        .iter()
        .map(|p| (p.partition.to_string(), p.partition.to_string()))
        .collect();
    let mut fields = select("delete-records", "partition", "Partition", &options);
    fields.push_str(&input(
        "delete-records",
        "offset",
        "Delete records before offset",
        "type=\"number\" required min=\"0\" step=\"1\"",
    ));
    let confirm = format!(
        "Yes, delete records of the selected partition of {topic} before this offset, for good"
    );
    out.push_str(&form(
        ctx,
        &FormSpec {
            id: "delete-records",
            action: &format!("{href}/delete-records"),
            legend: "Delete records",
            danger: true,
            confirm: &confirm,
            submit: "Delete records",
        },
        &fields,
    ));
    out.push_str("</section>\n");
    out
}

/// The forms of a group's page: reset offsets and delete the group.
pub(crate) fn group_forms(ctx: &PageContext, group: &str, topics: &[String]) -> String {
    if ctx.read_only {
        return String::new();
    }
    let href = group_href(group);
    let mut out = String::from("<section class=\"actions\" aria-labelledby=\"group-actions\">\n<h2 id=\"group-actions\">Change this group</h2>\n<p class=\"help\">Kafka allows resetting offsets and deleting a group only when it is empty: stop its consumers first.</p>\n");

    let mut options = vec![(String::new(), "All of the group's topics".to_string())];
    options.extend(topics.iter().map(|t| (t.clone(), t.clone())));
    let mut fields = select("reset-offsets", "topic", "Topic", &options);
    let to = [
        ("earliest", "Earliest offset"),
        ("latest", "Latest offset"),
        ("offset", "A given offset"),
        ("timestamp", "The first offset at or after a time"),
    ]
    .map(|(v, t)| (v.to_string(), t.to_string()));
    fields.push_str(&select("reset-offsets", "to", "Reset to", &to));
    fields.push_str(&input(
        "reset-offsets",
        "value",
        "Offset or time (for \u{201c}a given offset\u{201d}: the offset; for a time: ms \
         since the epoch or YYYY-MM-DDTHH:MM:SS UTC)",
        "type=\"text\" autocomplete=\"off\"",
    ));
    let confirm = format!(
        "Yes, reset the committed offsets of group {group} (only possible while it has no members)"
    );
    out.push_str(&form(
        ctx,
        &FormSpec {
            id: "reset-offsets",
            action: &format!("{href}/reset"),
            legend: "Reset offsets",
            danger: true,
            confirm: &confirm,
            submit: "Reset offsets",
        },
        &fields,
    ));

    let confirm = format!("Yes, delete group {group} and its committed offsets");
    out.push_str(&form(
        ctx,
        &FormSpec {
            id: "delete-group",
            action: &format!("{href}/delete"),
            legend: "Delete this group",
            danger: true,
            confirm: &confirm,
            submit: "Delete group",
        },
        "",
    ));
    out.push_str("</section>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{ctx, EVIL_GROUP, EVIL_TOPIC};
    use super::*;

    fn partition(p: i32) -> PartitionRow {
        PartitionRow {
            partition: p,
            leader: 1,
            leader_epoch: 0,
            replicas: vec![1],
            isr: vec![1],
            log_start: Some(0),
            log_end: Some(10),
            size: Some(100),
            under_replicated: false,
            offline: false,
        }
    }

    #[test]
    fn read_only_renders_no_forms() {
        let c = ctx(true);
        assert_eq!(create_topic(&c), "");
        assert_eq!(topic_forms(&c, "t", false, &[partition(0)]), "");
        assert_eq!(group_forms(&c, "g", &["t".to_string()]), "");
    }

    #[test]
    fn internal_topics_get_no_forms() {
        assert_eq!(
            topic_forms(&ctx(false), "__consumer_offsets", true, &[partition(0)]),
            ""
        );
    }

    #[test]
    fn every_form_carries_csrf_and_a_required_confirmation() {
        let c = ctx(false);
        let html = format!(
            "{}{}{}",
            create_topic(&c),
            topic_forms(&c, "orders", false, &[partition(0), partition(1)]),
            group_forms(&c, "g1", &["orders".to_string()])
        );
        let forms = html.matches("<form ").count();
        assert_eq!(forms, 7);
        assert_eq!(
            html.matches("<input type=\"hidden\" name=\"csrf\" value=\"csrf-token-123\">")
                .count(),
            forms
        );
        assert_eq!(
            html.matches("name=\"confirm\" value=\"yes\" required>")
                .count(),
            forms
        );
        assert_eq!(html.matches("method=\"post\"").count(), forms);
        for id in [
            "create-topic",
            "add-partitions",
            "set-config",
            "delete-config",
            "delete-records",
            "reset-offsets",
            "delete-group",
        ] {
            assert!(html.contains(&format!("<form id=\"{id}\"")), "{id}");
            assert!(
                html.contains(&format!("<label for=\"{id}-confirm\">")),
                "{id}"
            );
        }
        assert!(html.contains("action=\"/ui/topics\""));
        assert!(html.contains("action=\"/ui/topics/orders/partitions\""));
        assert_eq!(
            html.matches("action=\"/ui/topics/orders/configs\"").count(),
            2
        );
        assert!(html.contains("action=\"/ui/topics/orders/delete-records\""));
        assert!(html.contains("action=\"/ui/groups/g1/reset\""));
        assert!(html.contains("action=\"/ui/groups/g1/delete\""));
        assert!(html.contains("name=\"op\" value=\"set\""));
        assert!(html.contains("name=\"op\" value=\"delete\""));
        assert!(html.contains("name=\"replication_factor\""));
        assert!(html.contains("<textarea id=\"create-topic-configs\" name=\"configs\""));
        assert!(html.contains("<option value=\"timestamp\">"));
        assert!(html.contains("<option value=\"earliest\">"));
        assert!(html.contains("<option value=\"latest\">"));
        assert!(html.contains("<option value=\"offset\">"));
        assert!(html.contains("only when it is empty"));
        // The new total starts one above the current count.
        assert!(html.contains("min=\"3\" step=\"1\" value=\"3\""));
        assert!(html.contains("class=\"action danger\""));
    }

    #[test]
    fn every_input_has_a_label() {
        let c = ctx(false);
        let html = format!(
            "{}{}{}",
            create_topic(&c),
            topic_forms(&c, "orders", false, &[partition(0)]),
            group_forms(&c, "g1", &[])
        );
        for chunk in html.split("<input id=\"").skip(1) {
            let id = chunk.split('"').next().unwrap_or_default();
            assert!(html.contains(&format!("<label for=\"{id}\">")), "{id}");
        }
        for chunk in html.split("<select id=\"").skip(1) {
            let id = chunk.split('"').next().unwrap_or_default();
            assert!(html.contains(&format!("<label for=\"{id}\">")), "{id}");
        }
    }

    #[test]
    fn names_are_escaped_and_encoded() {
        let c = ctx(false);
        let html = topic_forms(&c, EVIL_TOPIC, false, &[partition(0)]);
        assert!(!html.contains(EVIL_TOPIC));
        assert!(
            html.contains("action=\"/ui/topics/%3Cscript%3Ealert%281%29%3C%2Fscript%3E/configs\"")
        );
        let html = group_forms(&c, EVIL_GROUP, &[EVIL_TOPIC.to_string()]);
        assert!(!html.contains(EVIL_GROUP) && !html.contains(EVIL_TOPIC));
        assert!(html.contains("action=\"/ui/groups/g%22r%27p%26%3Cx%3E/reset\""));
        assert!(html.contains("g&quot;r&#39;p&amp;&lt;x&gt;"));
    }
}
