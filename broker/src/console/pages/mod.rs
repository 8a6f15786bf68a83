//! The console's pages: pure functions from the model to the full HTML document, one
//! module per section, plus the value formatting they share (bytes, rates, times).
//!
//! Every value from the cluster goes through `html::escape` (text and attributes) or
//! `html::encode` (URLs) here; callers pass model data, never markup.

pub mod brokers;
pub mod forms;
pub mod groups;
pub mod messages;
pub mod overview;
pub mod topics;

use super::html::{encode, escape, layout, push_escaped};
use super::model::{ConfigRow, ConfigSource, PageContext, Unit};

/// What a page shows for a value that is not known right now.
pub(crate) const DASH: &str = "–";

/// A page saying what went wrong (unknown topic, a failed call); `message` is text.
pub fn error(ctx: &PageContext, message: &str) -> String {
    let main = format!(
        "<h1>Not available</h1>\n<p id=\"error\" class=\"error-text\">{}</p>\n\
         <p><a href=\"/ui\">Back to the overview</a></p>",
        escape(message)
    );
    layout(ctx, &main)
}

/// An optional number, or "–".
pub(crate) fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => DASH.to_string(),
    }
}

const BINARY_UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// A byte count in binary units ("512 B", "1.5 MiB").
pub(crate) fn bytes(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    // u64 to f64 loses precision only beyond 2^53 bytes, far below a visible digit.
    human_bytes(n as f64)
}

/// `bytes` for a measured amount (a rate), which may be fractional.
pub(crate) fn bytes_f(v: f64) -> String {
    if !v.is_finite() {
        return DASH.to_string();
    }
    if v.abs() < 1024.0 {
        return format!("{} B", trim_number(v));
    }
    human_bytes(v)
}

fn human_bytes(v: f64) -> String {
    let mut scaled = v / 1024.0;
    let mut unit = BINARY_UNITS[0];
    for next in &BINARY_UNITS[1..] {
        if scaled.abs() < 1024.0 {
            break;
        }
        scaled /= 1024.0;
        unit = next;
    }
    format!("{scaled:.1} {unit}")
}

/// A number with at most one decimal, without a trailing ".0".
fn trim_number(v: f64) -> String {
    let s = format!("{v:.1}");
    match s.strip_suffix(".0") {
        Some(whole) => whole.to_string(),
        None => s,
    }
}

/// A count in compact form for chart axes ("950", "12.3k", "4.5M").
fn compact(v: f64) -> String {
    const STEPS: [(f64, &str); 6] = [
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
    ];
    if !v.is_finite() {
        return DASH.to_string();
    }
    if v.abs() >= 1e21 {
        return format!("{v:.2e}");
    }
    if v.abs() < 1e4 {
        return trim_number(v);
    }
    for (size, suffix) in STEPS {
        if v.abs() >= size {
            return format!("{}{suffix}", trim_number(v / size));
        }
    }
    trim_number(v)
}

/// A per-second rate as a plain number (messages per second), or "–".
pub(crate) fn rate(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.1}"),
        _ => DASH.to_string(),
    }
}

/// A chart value in its unit.
pub(crate) fn unit_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Count => compact(v),
        Unit::PerSecond => format!("{}/s", compact(v)),
        Unit::BytesPerSecond => format!("{}/s", bytes_f(v)),
    }
}

/// A table cell with a byte size: human text, the exact number in `title`.
pub(crate) fn bytes_cell(col: &str, v: Option<u64>) -> String {
    match v {
        Some(n) => format!("<td data-col=\"{col}\" title=\"{n}\">{}</td>", bytes(n)),
        None => format!("<td data-col=\"{col}\">{DASH}</td>"),
    }
}

/// A table cell with a rate in bytes per second: human text, the exact number in `title`.
pub(crate) fn byte_rate_cell(col: &str, v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!(
            "<td data-col=\"{col}\" title=\"{v:.0}\">{}/s</td>",
            bytes_f(v)
        ),
        _ => format!("<td data-col=\"{col}\">{DASH}</td>"),
    }
}

/// A table cell whose content is already HTML.
pub(crate) fn td(col: &str, inner_html: &str) -> String {
    format!("<td data-col=\"{col}\">{inner_html}</td>")
}

/// A table cell with text from the cluster.
pub(crate) fn td_text(col: &str, text: &str) -> String {
    format!("<td data-col=\"{col}\">{}</td>", escape(text))
}

/// A `<dt>`/`<dd>` pair in its own `<div>` (so the summary grid keeps each pair
/// together); `value_html` is already HTML.
pub(crate) fn dd(id: &str, label: &str, value_html: &str) -> String {
    format!("<div><dt>{label}</dt><dd id=\"{id}\">{value_html}</dd></div>\n")
}

/// Opens a table with its caption, inside a region that scrolls sideways on narrow
/// screens (focusable, so keyboard users can scroll it too).
pub(crate) fn table_open(id: &str, caption: &str, headers: &[&str]) -> String {
    let mut out = format!(
        "<div class=\"table-wrap\" role=\"region\" aria-labelledby=\"{id}-caption\" tabindex=\"0\">\n\
         <table id=\"{id}\">\n<caption id=\"{id}-caption\">{caption}</caption>\n<thead><tr>"
    );
    for h in headers {
        out.push_str(&format!("<th scope=\"col\">{h}</th>"));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    out
}

pub(crate) fn table_close() -> &'static str {
    "</tbody>\n</table>\n</div>\n"
}

/// A paragraph standing in for an empty table.
pub(crate) fn empty(text: &str) -> String {
    format!("<p class=\"empty\">{text}</p>\n")
}

pub(crate) fn topic_href(topic: &str) -> String {
    format!("/ui/topics/{}", encode(topic))
}

pub(crate) fn group_href(group: &str) -> String {
    format!("/ui/groups/{}", encode(group))
}

/// A link to a topic, text escaped.
pub(crate) fn topic_link(topic: &str) -> String {
    format!("<a href=\"{}\">{}</a>", topic_href(topic), escape(topic))
}

/// A link to a group, text escaped; an empty id still gets a visible link text.
pub(crate) fn group_link(group: &str) -> String {
    let text = if group.is_empty() {
        "(empty id)".to_string()
    } else {
        escape(group)
    };
    format!("<a href=\"{}\">{text}</a>", group_href(group))
}

pub(crate) fn broker_link(id: i32) -> String {
    format!("<a href=\"/ui/brokers/{id}\">{id}</a>")
}

/// A broker id as a link, or "–" when none.
pub(crate) fn opt_broker_link(id: Option<i32>) -> String {
    match id {
        Some(id) if id >= 0 => broker_link(id),
        _ => DASH.to_string(),
    }
}

/// Ids joined by commas without spaces (the contract's `replicas`, `isr`, assignments).
pub(crate) fn id_list(ids: &[i32]) -> String {
    let parts: Vec<String> = ids.iter().map(i32::to_string).collect();
    parts.join(",")
}

pub(crate) fn config_source(source: ConfigSource) -> &'static str {
    match source {
        ConfigSource::Default => "default",
        ConfigSource::Broker => "broker",
        ConfigSource::ClusterDynamic => "cluster",
        ConfigSource::BrokerDynamic => "broker dynamic",
        ConfigSource::Topic => "topic",
        ConfigSource::Unknown => "unknown",
    }
}

/// The `configs` table of a topic or a broker.
pub(crate) fn configs_table(caption: &str, configs: &[ConfigRow]) -> String {
    if configs.is_empty() {
        return format!(
            "<h2>{caption}</h2>\n{}",
            empty("No configuration could be read.")
        );
    }
    let mut out = table_open("configs", caption, &["Name", "Value", "Source"]);
    for c in configs {
        out.push_str(&format!("<tr data-config=\"{}\">", escape(&c.name)));
        out.push_str(&td_text("name", &c.name));
        match &c.value {
            Some(v) => {
                out.push_str("<td data-col=\"value\"><code>");
                push_escaped(&mut out, v);
                out.push_str("</code></td>");
            }
            None => {
                out.push_str("<td data-col=\"value\"><span class=\"muted\">(hidden)</span></td>")
            }
        }
        let ro = if c.read_only {
            " <span class=\"badge badge-muted\">read-only</span>"
        } else {
            ""
        };
        out.push_str(&format!(
            "<td data-col=\"source\"><span class=\"source\">{}</span>{ro}</td>",
            config_source(c.source)
        ));
        out.push_str("</tr>\n");
    }
    out.push_str(table_close());
    out
}

/// Milliseconds since the epoch as ISO-8601 UTC with milliseconds
/// (`2026-11-29T08:30:00.000Z`).
pub(crate) fn iso_utc(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let secs = in_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        in_day % 1000
    )
}

/// The time of day of `ms` in UTC ("08:30:05"), for chart axes.
pub(crate) fn time_of_day(ms: i64) -> String {
    let secs = ms.rem_euclid(86_400_000) / 1000;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
///
/// Works in 400-year eras (146097 days, a whole number of weeks and leap cycles) counted
/// from 0000-03-01, so that the leap day falls at the end of each shifted year and the
/// month lengths from March on follow a linear formula.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Days from 0000-03-01 to 1970-01-01.
    const SHIFT: i64 = 719_468;
    const ERA_DAYS: i64 = 146_097;
    let z = days.saturating_add(SHIFT);
    let era = z.div_euclid(ERA_DAYS);
    let day_of_era = z.rem_euclid(ERA_DAYS);
    // Years of 365 days, less one day every 4 years, plus one every 100, less the last
    // day of the era (which belongs to year 399).
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: 31,30,31,30,31,31,30,31,30,31,31,29|28 fit (153*m+2)/5.
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    (year, month as u32, day as u32)
}

/// A duration in its two largest units ("3d 4h", "5m 12s", "12s").
pub(crate) fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// A count that draws the eye when it is not zero (the number itself says it too).
pub(crate) fn count_with_badge(n: usize, kind: &str) -> String {
    if n == 0 {
        "0".to_string()
    } else {
        badge(kind, &n.to_string())
    }
}

/// A status badge: text always says the state, the class only colours it.
pub(crate) fn badge(kind: &str, text: &str) -> String {
    format!("<span class=\"badge badge-{kind}\">{text}</span>")
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Model values shared by the page tests, with hostile names in them.

    use crate::console::model::*;

    pub(crate) const EVIL_TOPIC: &str = "<script>alert(1)</script>";
    pub(crate) const EVIL_GROUP: &str = "g\"r'p&<x>";

    pub(crate) fn ctx(read_only: bool) -> PageContext {
        PageContext {
            title: "Test".to_string(),
            section: "topics",
            cluster_id: "cluster-1".to_string(),
            broker_id: 1,
            read_only,
            csrf_token: "csrf-token-123".to_string(),
            notice: None,
        }
    }

    pub(crate) fn broker(id: i32, state: BrokerState) -> BrokerRow {
        BrokerRow {
            id,
            rack: Some("rack-<a>".to_string()),
            state,
            address: format!("host-{id}:9092"),
            replicas: 3,
            leaders: 1,
            disk_used: Some(1_572_864),
            disk_free: None,
            controller: id == 1,
        }
    }

    pub(crate) fn topic_row(name: &str) -> TopicRow {
        TopicRow {
            name: name.to_string(),
            internal: false,
            partitions: 2,
            replication_factor: 3,
            under_replicated: 1,
            offline: 0,
            messages: Some(42),
            size: Some(2048),
            rates: Rates {
                messages_in: Some(1.5),
                bytes_in: Some(2048.0),
                bytes_out: None,
            },
        }
    }

    pub(crate) fn chart(id: &str, label: &str) -> Chart {
        Chart {
            id: id.to_string(),
            title: format!("Chart {id}"),
            unit: Unit::PerSecond,
            series: vec![Series {
                label: label.to_string(),
                points: vec![(1_000, 1.0), (2_000, 3.0), (3_000, 2.0)],
            }],
        }
    }

    pub(crate) fn config(name: &str, value: Option<&str>, source: ConfigSource) -> ConfigRow {
        ConfigRow {
            name: name.to_string(),
            value: value.map(str::to_string),
            source,
            read_only: false,
        }
    }

    pub(crate) fn group_row(id: &str, topic: &str) -> GroupRow {
        GroupRow {
            id: id.to_string(),
            state: "Stable".to_string(),
            protocol_type: "consumer".to_string(),
            protocol: "range".to_string(),
            coordinator: Some(2),
            members: 1,
            lag: Some(7),
            topics: vec![topic.to_string()],
        }
    }

    /// Asserts `html` has no raw copy of `evil` and does have its escaped form.
    pub(crate) fn assert_escaped(html: &str, evil: &str) {
        assert!(!html.contains(evil), "raw {evil:?} in the page:\n{html}");
        assert!(
            html.contains(&crate::console::html::escape(evil)),
            "no escaped {evil:?} in the page"
        );
    }

    /// Asserts that no form is rendered at all.
    pub(crate) fn assert_no_forms(html: &str) {
        assert!(
            !html.contains("<form"),
            "a form in a read-only page:\n{html}"
        );
        assert!(!html.contains("csrf-token-123"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_utc_formats_the_epoch_and_known_dates() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(1_795_910_400_000), "2026-11-29T00:00:00.000Z");
        assert_eq!(
            iso_utc(1_795_910_400_000 + 12 * 3_600_000 + 34 * 60_000 + 56_789),
            "2026-11-29T12:34:56.789Z"
        );
        assert_eq!(iso_utc(951_868_800_000), "2000-03-01T00:00:00.000Z");
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn iso_utc_handles_leap_days() {
        // 2024-02-29T12:00:00Z: a leap day in a year divisible by 4.
        assert_eq!(iso_utc(1_709_208_000_000), "2024-02-29T12:00:00.000Z");
        // 2000 is a leap year (divisible by 400), 1900 and 2100 are not.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(-25_508), (1900, 3, 1));
        assert_eq!(civil_from_days(-25_509), (1900, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(365 + 365), (1972, 1, 1));
        assert_eq!(civil_from_days(365 + 365 + 59), (1972, 2, 29));
    }

    #[test]
    fn civil_from_days_agrees_with_a_day_by_day_walk() {
        let mut date = (1969, 1, 1);
        for days in -365..(366 * 60) {
            assert_eq!(civil_from_days(days), date, "day {days}");
            date = next_day(date);
        }
    }

    fn next_day((y, m, d): (i64, u32, u32)) -> (i64, u32, u32) {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = match m {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if d < len {
            (y, m, d + 1)
        } else if m < 12 {
            (y, m + 1, 1)
        } else {
            (y + 1, 1, 1)
        }
    }

    #[test]
    fn iso_utc_does_not_panic_at_the_extremes() {
        assert!(iso_utc(i64::MAX).ends_with('Z'));
        assert!(iso_utc(i64::MIN).ends_with('Z'));
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1_572_864), "1.5 MiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
        assert_eq!(
            bytes_cell("size", Some(1_572_864)),
            "<td data-col=\"size\" title=\"1572864\">1.5 MiB</td>"
        );
        assert_eq!(bytes_cell("size", None), "<td data-col=\"size\">–</td>");
    }

    #[test]
    fn rates_and_units() {
        assert_eq!(rate(Some(2.24)), "2.2");
        assert_eq!(rate(None), DASH);
        assert_eq!(rate(Some(f64::NAN)), DASH);
        assert_eq!(unit_value(Unit::Count, 950.0), "950");
        assert_eq!(unit_value(Unit::Count, 12_345.0), "12.3k");
        assert_eq!(unit_value(Unit::PerSecond, 4_500_000.0), "4.5M/s");
        assert_eq!(unit_value(Unit::BytesPerSecond, 1536.0), "1.5 KiB/s");
        assert_eq!(unit_value(Unit::BytesPerSecond, 12.0), "12 B/s");
        assert_eq!(unit_value(Unit::Count, 1e300), "1.00e300");
        assert_eq!(
            byte_rate_cell("bytes-in", Some(2048.0)),
            "<td data-col=\"bytes-in\" title=\"2048\">2.0 KiB/s</td>"
        );
    }

    #[test]
    fn durations_show_two_units() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(61), "1m 1s");
        assert_eq!(duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(duration(2 * 86_400 + 5 * 3600 + 7), "2d 5h");
    }

    #[test]
    fn opt_shows_a_dash_for_unknown() {
        assert_eq!(opt(Some(-3)), "-3");
        assert_eq!(opt::<i64>(None), "–");
    }

    #[test]
    fn error_page_escapes_its_message() {
        let html = error(&testdata::ctx(false), "no topic named <script>x</script>");
        assert!(html.contains("no topic named &lt;script&gt;x&lt;/script&gt;"));
        assert!(!html.contains("<script>x"));
        assert_eq!(html.matches("<h1>").count(), 1);
    }

    #[test]
    fn configs_table_hides_sensitive_values_and_names_sources() {
        let configs = [
            testdata::config("retention.ms", Some("<1000>"), ConfigSource::Topic),
            testdata::config("sasl.password", None, ConfigSource::BrokerDynamic),
            testdata::config("x\"y", Some("1"), ConfigSource::ClusterDynamic),
        ];
        let html = configs_table("Configuration", &configs);
        assert!(html.contains("<table id=\"configs\">"));
        assert!(html.contains("<tr data-config=\"retention.ms\">"));
        assert!(html.contains("&lt;1000&gt;"));
        assert!(html.contains("(hidden)"));
        assert!(html.contains(">broker dynamic<"));
        assert!(html.contains(">cluster<"));
        assert!(html.contains("<tr data-config=\"x&quot;y\">"));
        assert!(html.contains("scope=\"col\""));
    }
}
