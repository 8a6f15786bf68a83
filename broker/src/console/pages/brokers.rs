//! The brokers page, a broker's page, and the brokers table the overview shares.

use super::super::html::{escape, layout, push_escaped};
use super::super::model::{BrokerDetail, BrokerRow, BrokerState, LogDirRow, PageContext};
use super::{
    badge, broker_link, bytes_cell, configs_table, dd, duration, empty, iso_utc, table_close,
    table_open, td, td_text, DASH,
};

/// The state as the contract spells it, and the badge colour that goes with it.
pub(crate) fn state_text(state: BrokerState) -> (&'static str, &'static str) {
    match state {
        BrokerState::Live => ("live", "ok"),
        BrokerState::ShuttingDown => ("shutting down", "warn"),
        BrokerState::Offline => ("offline", "bad"),
    }
}

/// The `brokers` table (overview and brokers page).
pub(crate) fn brokers_table(brokers: &[BrokerRow]) -> String {
    if brokers.is_empty() {
        return format!("<h2>Brokers</h2>\n{}", empty("No broker is registered."));
    }
    let mut out = table_open(
        "brokers",
        "Brokers",
        &[
            "Id",
            "State",
            "Role",
            "Rack",
            "Address",
            "Replicas",
            "Leaders",
            "Disk used",
            "Disk free",
        ],
    );
    for b in brokers {
        let controller = if b.controller {
            " data-controller=\"true\""
        } else {
            ""
        };
        out.push_str(&format!("<tr data-broker=\"{}\"{controller}>", b.id));
        out.push_str(&td("id", &broker_link(b.id)));
        let (text, kind) = state_text(b.state);
        out.push_str(&td("state", &badge(kind, text)));
        out.push_str(&td("role", if b.controller { "controller" } else { "" }));
        out.push_str(&td_text("rack", b.rack.as_deref().unwrap_or(DASH)));
        if b.address.is_empty() {
            out.push_str(&td("address", DASH));
        } else {
            out.push_str(&td_text("address", &b.address));
        }
        out.push_str(&td("replicas", &b.replicas.to_string()));
        out.push_str(&td("leaders", &b.leaders.to_string()));
        out.push_str(&bytes_cell("disk-used", b.disk_used));
        out.push_str(&bytes_cell("disk-free", b.disk_free));
        out.push_str("</tr>\n");
    }
    out.push_str(table_close());
    out
}

/// The brokers page.
pub fn list(ctx: &PageContext, brokers: &[BrokerRow]) -> String {
    let mut main = String::from("<h1>Brokers</h1>\n");
    main.push_str(&brokers_table(brokers));
    layout(ctx, &main)
}

/// A broker's page: version, uptime, state, configuration and log directories.
pub fn detail(ctx: &PageContext, b: &BrokerDetail) -> String {
    let row = &b.row;
    let mut main = format!(
        "<h1>Broker {}</h1>\n<dl id=\"broker-summary\" class=\"summary\">\n",
        row.id
    );
    let version = match &b.version {
        Some(v) => escape(v),
        None => DASH.to_string(),
    };
    main.push_str(&dd("broker-version", "Version", &version));
    let uptime = match b.uptime_secs {
        Some(secs) => format!("<span title=\"{secs} s\">{}</span>", duration(secs)),
        None => DASH.to_string(),
    };
    main.push_str(&dd("broker-uptime", "Uptime", &uptime));
    let (text, kind) = state_text(row.state);
    main.push_str(&dd("broker-state", "State", &badge(kind, text)));
    let started = match b.started_at_ms {
        Some(ms) => {
            let iso = iso_utc(ms);
            format!("<time datetime=\"{iso}\">{iso}</time>")
        }
        None => DASH.to_string(),
    };
    main.push_str(&dd("broker-started", "Started", &started));
    main.push_str(&dd(
        "broker-role",
        "Controller",
        if row.controller { "yes" } else { "no" },
    ));
    main.push_str(&dd(
        "broker-rack",
        "Rack",
        &escape(row.rack.as_deref().unwrap_or(DASH)),
    ));
    let address = if row.address.is_empty() {
        DASH.to_string()
    } else {
        escape(&row.address)
    };
    main.push_str(&dd("broker-address", "Address", &address));
    main.push_str(&dd(
        "broker-replicas",
        "Replicas",
        &row.replicas.to_string(),
    ));
    main.push_str(&dd("broker-leaders", "Leaders", &row.leaders.to_string()));
    main.push_str("</dl>\n");
    main.push_str(&log_dirs_table(&b.log_dirs));
    main.push_str(&configs_table("Configuration", &b.configs));
    layout(ctx, &main)
}

fn log_dirs_table(dirs: &[LogDirRow]) -> String {
    if dirs.is_empty() {
        return format!(
            "<h2>Log directories</h2>\n{}",
            empty("No log directory could be read.")
        );
    }
    let mut out = table_open(
        "log-dirs",
        "Log directories",
        &["Path", "Partitions", "Size", "Usable", "Total", "Error"],
    );
    for d in dirs {
        out.push_str(&format!("<tr data-dir=\"{}\">", escape(&d.path)));
        out.push_str("<td data-col=\"path\"><code>");
        push_escaped(&mut out, &d.path);
        out.push_str("</code></td>");
        out.push_str(&td("partitions", &d.partitions.to_string()));
        out.push_str(&bytes_cell("size", Some(d.size)));
        out.push_str(&bytes_cell("usable", d.usable));
        out.push_str(&bytes_cell("total", d.total));
        match &d.error {
            Some(e) => out.push_str(&td("error", &badge("bad", &escape(e)))),
            None => out.push_str(&td("error", "none")),
        }
        out.push_str("</tr>\n");
    }
    out.push_str(table_close());
    out
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{assert_escaped, broker, config, ctx};
    use super::*;
    use crate::console::model::ConfigSource;

    fn detail_model() -> BrokerDetail {
        BrokerDetail {
            row: broker(1, BrokerState::Live),
            version: Some("0.1.0 <dev>".to_string()),
            started_at_ms: Some(0),
            uptime_secs: Some(3700),
            configs: vec![config("log.dirs", Some("/data/<x>"), ConfigSource::Broker)],
            log_dirs: vec![LogDirRow {
                path: "/data/\"a\"&b".to_string(),
                error: None,
                partitions: 3,
                size: 2048,
                total: Some(1 << 30),
                usable: None,
            }],
        }
    }

    #[test]
    fn list_has_the_contract_table() {
        let html = list(
            &ctx(false),
            &[
                broker(1, BrokerState::Live),
                broker(2, BrokerState::ShuttingDown),
                broker(3, BrokerState::Offline),
            ],
        );
        assert!(html.contains("<table id=\"brokers\">"));
        assert!(html.contains("<tr data-broker=\"1\" data-controller=\"true\">"));
        assert!(html.contains("<tr data-broker=\"2\">"));
        assert!(html.contains("<td data-col=\"id\"><a href=\"/ui/brokers/3\">3</a></td>"));
        assert!(html.contains(">live</span>"));
        assert!(html.contains(">shutting down</span>"));
        assert!(html.contains(">offline</span>"));
        assert!(html.contains("<td data-col=\"disk-used\" title=\"1572864\">1.5 MiB</td>"));
        assert!(html.contains("<td data-col=\"disk-free\">–</td>"));
        assert!(html.contains("<td data-col=\"address\">host-1:9092</td>"));
        assert_escaped(&html, "rack-<a>");
        assert_eq!(html.matches("<h1>").count(), 1);
        assert!(!html.contains("<form"));
    }

    #[test]
    fn detail_has_the_contract_ids() {
        let html = detail(&ctx(false), &detail_model());
        for id in [
            "<dl id=\"broker-summary\"",
            "<dd id=\"broker-version\">0.1.0 &lt;dev&gt;</dd>",
            "<dd id=\"broker-uptime\"><span title=\"3700 s\">1h 1m</span></dd>",
            "<dd id=\"broker-state\">",
            "<table id=\"configs\">",
            "<table id=\"log-dirs\">",
            "<td data-col=\"error\">none</td>",
            "<td data-col=\"total\" title=\"1073741824\">1.0 GiB</td>",
            "1970-01-01T00:00:00.000Z",
        ] {
            assert!(html.contains(id), "{id}");
        }
        assert_escaped(&html, "/data/\"a\"&b");
        assert!(html.contains("<tr data-dir=\"/data/&quot;a&quot;&amp;b\">"));
        assert_escaped(&html, "/data/<x>");
        assert_eq!(html.matches("<h1>").count(), 1);
    }

    #[test]
    fn detail_shows_dashes_when_the_broker_did_not_answer() {
        let mut b = detail_model();
        b.version = None;
        b.uptime_secs = None;
        b.started_at_ms = None;
        b.row.state = BrokerState::Offline;
        b.row.address = String::new();
        let html = detail(&ctx(true), &b);
        assert!(html.contains("<dd id=\"broker-version\">–</dd>"));
        assert!(html.contains("<dd id=\"broker-uptime\">–</dd>"));
        assert!(html.contains(">offline</span>"));
        assert!(!html.contains("<form"));
    }
}
