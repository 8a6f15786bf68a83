//! The message browser: a GET form (partition, start, limit, format), one page of
//! records, and the link to the next page. Keys, values and headers are arbitrary bytes,
//! shown as text, JSON or a hex dump, always escaped.

use super::super::gather::MAX_PAGE;
use super::super::html::{escape, layout, push_escaped, push_escaped_char};
use super::super::model::{Format, MessagePage, MessageQuery, MessageRow, PageContext, Start};
use super::{empty, iso_utc, opt, table_close, table_open, topic_href, DASH};

/// Bytes shown of one key, value or header: a page of 100 large records would otherwise
/// grow to hundreds of megabytes of markup.
const MAX_SHOWN: usize = 16 * 1024;
/// Headers shown per record (Kafka sets no limit on their number).
const MAX_HEADERS_SHOWN: usize = 32;
/// The HTML a page of records may take: escapes and pretty-printing can make the
/// rendering many times larger than the bytes, so the whole page is bounded too.
const PAGE_HTML_BUDGET: usize = 4 << 20;
/// Deeper JSON is indented as if at this depth (serde allows 128 levels).
const MAX_INDENT: usize = 16;

/// The message browser page.
pub fn render(ctx: &PageContext, page: &MessagePage) -> String {
    let q = &page.query;
    let mut main = String::from("<h1>Messages in <span class=\"name\">");
    push_escaped(&mut main, &q.topic);
    main.push_str("</span></h1>\n");
    main.push_str(&format!(
        "<p><a href=\"{}\">Back to the topic</a></p>\n",
        topic_href(&q.topic)
    ));
    main.push_str(&browse_form(page));
    main.push_str(&format!(
        "<p id=\"log-range\">Partition {}: log start {}, log end {}.</p>\n",
        q.partition,
        opt(page.log_start),
        opt(page.log_end)
    ));
    if let Some(error) = &page.error {
        main.push_str("<p id=\"browse-error\" class=\"error-text\" role=\"alert\">");
        push_escaped(&mut main, error);
        main.push_str("</p>\n");
    }
    if page.rows.is_empty() {
        if page.error.is_none() {
            main.push_str(&empty("No messages from here."));
        }
    } else {
        main.push_str(&messages_table(&page.rows, q.format));
    }
    if let Some(next) = page.next {
        main.push_str(&format!(
            "<p><a id=\"next-page\" rel=\"next\" href=\"{}\">Next page (from offset {next})</a></p>\n",
            escape(&next_href(q, next))
        ));
    }
    layout(ctx, &main)
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Text => "text",
        Format::Json => "json",
        Format::Hex => "hex",
    }
}

/// The URL of the page starting at `next`, with the same partition, limit and format.
fn next_href(q: &MessageQuery, next: i64) -> String {
    format!(
        "{}/messages?partition={}&from=offset&offset={next}&limit={}&format={}",
        topic_href(&q.topic),
        q.partition,
        q.limit,
        format_name(q.format)
    )
}

fn option(value: &str, text: &str, selected: bool) -> String {
    let selected = if selected { " selected" } else { "" };
    format!(
        "<option value=\"{}\"{selected}>{}</option>",
        escape(value),
        escape(text)
    )
}

fn browse_form(page: &MessagePage) -> String {
    let q = &page.query;
    let mut out = format!(
        "<form id=\"browse\" class=\"browse\" method=\"get\" action=\"{}/messages\">\n\
         <fieldset>\n<legend>Where to read</legend>\n",
        topic_href(&q.topic)
    );
    out.push_str(
        "<p class=\"field\"><label for=\"browse-partition\">Partition</label> \
         <select id=\"browse-partition\" name=\"partition\">",
    );
    let known = 0..page.partitions.max(0);
    for p in known.clone() {
        out.push_str(&option(&p.to_string(), &p.to_string(), p == q.partition));
    }
    if !known.contains(&q.partition) {
        // Keep the asked-for partition selectable so the form shows what was asked.
        out.push_str(&option(
            &q.partition.to_string(),
            &q.partition.to_string(),
            true,
        ));
    }
    out.push_str("</select></p>\n");

    let (from, offset, timestamp) = match q.start {
        Start::Earliest => ("earliest", String::new(), String::new()),
        Start::Latest => ("latest", String::new(), String::new()),
        Start::Offset(o) => ("offset", o.to_string(), String::new()),
        Start::Timestamp(t) => ("timestamp", String::new(), t.to_string()),
    };
    out.push_str(
        "<p class=\"field\"><label for=\"browse-from\">Start at</label> \
         <select id=\"browse-from\" name=\"from\">",
    );
    for (value, text) in [
        ("earliest", "The earliest message"),
        ("latest", "The latest messages"),
        ("offset", "An offset"),
        ("timestamp", "A time"),
    ] {
        out.push_str(&option(value, text, value == from));
    }
    out.push_str("</select></p>\n");
    out.push_str(&format!(
        "<p class=\"field\"><label for=\"browse-offset\">Offset (when starting at an offset)</label> \
         <input id=\"browse-offset\" name=\"offset\" type=\"number\" min=\"0\" step=\"1\" value=\"{offset}\"></p>\n"
    ));
    out.push_str(&format!(
        "<p class=\"field\"><label for=\"browse-timestamp\">Time (when starting at a time): ms since \
         the epoch or YYYY-MM-DDTHH:MM[:SS] UTC</label> <input id=\"browse-timestamp\" name=\"timestamp\" \
         type=\"text\" autocomplete=\"off\" value=\"{timestamp}\"></p>\n"
    ));
    out.push_str(&format!(
        "<p class=\"field\"><label for=\"browse-limit\">Messages per page (at most {MAX_PAGE})</label> \
         <input id=\"browse-limit\" name=\"limit\" type=\"number\" min=\"1\" max=\"{MAX_PAGE}\" \
         step=\"1\" value=\"{}\"></p>\n",
        q.limit
    ));
    out.push_str(
        "<p class=\"field\"><label for=\"browse-format\">Show keys, values and headers as</label> \
         <select id=\"browse-format\" name=\"format\">",
    );
    for (format, text) in [
        (Format::Text, "Text"),
        (Format::Json, "JSON"),
        (Format::Hex, "Hex dump"),
    ] {
        out.push_str(&option(format_name(format), text, format == q.format));
    }
    out.push_str(
        "</select></p>\n<p><button type=\"submit\">Browse</button></p>\n</fieldset>\n</form>\n",
    );
    out
}

fn messages_table(rows: &[MessageRow], format: Format) -> String {
    let mut out = table_open(
        "messages",
        "Messages",
        &["Offset", "Timestamp (UTC)", "Key", "Value", "Headers"],
    );
    for r in rows {
        out.push_str(&format!(
            "<tr data-offset=\"{0}\"><td data-col=\"offset\">{0}</td>",
            r.offset
        ));
        if r.timestamp < 0 {
            // Kafka's -1: the producer set no time.
            out.push_str(&format!("<td data-col=\"timestamp\">{DASH}</td>"));
        } else {
            let iso = iso_utc(r.timestamp);
            out.push_str(&format!(
                "<td data-col=\"timestamp\"><time datetime=\"{iso}\">{iso}</time></td>"
            ));
        }
        out.push_str("<td data-col=\"key\"><pre>");
        push_field(&mut out, r.key.as_deref(), format);
        out.push_str("</pre></td><td data-col=\"value\"><pre>");
        push_field(&mut out, r.value.as_deref(), format);
        out.push_str("</pre></td><td data-col=\"headers\"><pre>");
        push_headers(&mut out, &r.headers, format);
        out.push_str("</pre></td></tr>\n");
    }
    out.push_str(table_close());
    out
}

/// A key, value or header value, unless the page is already over its budget.
fn push_field(out: &mut String, bytes: Option<&[u8]>, format: Format) {
    if out.len() > PAGE_HTML_BUDGET {
        out.push_str("<span class=\"note\">(not shown: this page is at its size limit; show fewer records)</span>");
    } else {
        out.push_str(&bytes_html(bytes, format));
    }
}

fn push_headers(out: &mut String, headers: &[(String, Option<Vec<u8>>)], format: Format) {
    for (i, (key, value)) in headers.iter().take(MAX_HEADERS_SHOWN).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("<span class=\"header-key\">");
        let shown: String = key.chars().take(MAX_SHOWN).collect();
        push_text(out, &shown);
        out.push_str("</span>: ");
        push_field(out, value.as_deref(), format);
    }
    if headers.len() > MAX_HEADERS_SHOWN {
        out.push_str(&format!(
            "\n<span class=\"note\">… {} more headers not shown</span>",
            headers.len() - MAX_HEADERS_SHOWN
        ));
    }
}

/// A key, value or header value as HTML: `null` (styled apart, so a value that reads
/// "null" is not mistaken for none), `(empty)`, or the bytes in `format`.
pub(crate) fn bytes_html(bytes: Option<&[u8]>, format: Format) -> String {
    let Some(bytes) = bytes else {
        return "<span class=\"null\" title=\"null: no bytes at all\">null</span>".to_string();
    };
    if bytes.is_empty() {
        return "<span class=\"null\" title=\"zero bytes\">(empty)</span>".to_string();
    }
    let shown = &bytes[..bytes.len().min(MAX_SHOWN)];
    let mut out = match format {
        Format::Hex => hex_dump(shown),
        Format::Json if shown.len() == bytes.len() => match json_pretty(shown) {
            Some(pretty) => pretty,
            None => text(shown),
        },
        Format::Json | Format::Text => text(shown),
    };
    if shown.len() < bytes.len() {
        out.push_str(&format!(
            "\n<span class=\"note\">… {} more bytes not shown</span>",
            bytes.len() - shown.len()
        ));
    }
    out
}

/// UTF-8 (invalid sequences as U+FFFD) with control characters written as escapes.
pub(crate) fn text(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(s.len());
    push_text(&mut out, &s);
    out
}

fn push_text(out: &mut String, s: &str) {
    for c in s.chars() {
        push_text_char(out, c);
    }
}

/// Escapes for HTML, and writes control and bidirectional-override characters as Rust
/// style escapes: invisible or reordering characters in a message must not hide what is
/// really there.
fn push_text_char(out: &mut String, c: char) {
    let bidi =
        matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if c.is_control() || bidi {
        out.push_str("<span class=\"esc\">");
        out.push_str(&c.escape_default().to_string());
        out.push_str("</span>");
    } else {
        push_escaped_char(out, c);
    }
}

/// The JSON document re-indented, if `bytes` is one. Re-indents the text rather than
/// re-serialising a parsed value, so key order and number precision stay as sent.
pub(crate) fn json_pretty(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    serde_json::from_str::<serde::de::IgnoredAny>(s).ok()?;
    let mut out = String::with_capacity(s.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    // After an opening bracket, the line break waits for the next token, so that empty
    // containers stay `{}` and `[]`.
    let mut opened = false;
    for c in s.chars() {
        if in_string {
            push_text_char(&mut out, c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c.is_whitespace() {
            continue;
        }
        let closing = matches!(c, '}' | ']');
        if opened && !closing {
            newline(&mut out, depth);
        }
        if closing {
            depth = depth.saturating_sub(1);
            if !opened {
                newline(&mut out, depth);
            }
        }
        opened = false;
        match c {
            '"' => {
                in_string = true;
                out.push_str("&quot;");
            }
            '{' | '[' => {
                out.push(c);
                depth += 1;
                opened = true;
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c => push_escaped_char(&mut out, c),
        }
    }
    Some(out)
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth.min(MAX_INDENT) {
        out.push_str("  ");
    }
}

/// Offset, 16 bytes in hex (two groups of 8), and the printable ASCII of each line.
pub(crate) fn hex_dump(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 5);
    for (line, chunk) in bytes.chunks(16).enumerate() {
        if line > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{:08x} ", line * 16));
        for i in 0..16 {
            if i == 8 {
                out.push(' ');
            }
            match chunk.get(i) {
                Some(&b) => {
                    out.push(' ');
                    out.push(char::from(HEX[usize::from(b >> 4)]));
                    out.push(char::from(HEX[usize::from(b & 0x0f)]));
                }
                None => out.push_str("   "),
            }
        }
        out.push_str("  |");
        for &b in chunk {
            if (0x20..0x7f).contains(&b) {
                push_escaped_char(&mut out, char::from(b));
            } else {
                out.push('.');
            }
        }
        out.push('|');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{assert_escaped, ctx, EVIL_TOPIC};
    use super::*;
    use crate::console::html::encode;

    fn expected_next(topic: &str) -> String {
        format!("/ui/topics/{}/messages", encode(topic))
    }

    fn row(offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> MessageRow {
        MessageRow {
            offset,
            timestamp: 1_795_910_400_000,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: vec![
                ("trace<id>".to_string(), Some(b"a&b".to_vec())),
                ("empty".to_string(), None),
            ],
        }
    }

    fn page(topic: &str, format: Format) -> MessagePage {
        MessagePage {
            query: MessageQuery {
                topic: topic.to_string(),
                partition: 1,
                start: Start::Offset(5),
                limit: 20,
                format,
            },
            partitions: 3,
            rows: vec![
                row(5, Some(b"k1"), Some(b"{\"a\":1}")),
                row(6, None, Some(b"<script>alert(1)</script>")),
            ],
            log_start: Some(0),
            log_end: Some(10),
            next: Some(7),
            error: None,
        }
    }

    #[test]
    fn has_the_contract_markup() {
        let html = render(&ctx(false), &page("orders", Format::Text));
        for s in [
            "<form id=\"browse\" class=\"browse\" method=\"get\" action=\"/ui/topics/orders/messages\">",
            "<option value=\"1\" selected>1</option>",
            "<option value=\"2\">2</option>",
            "<option value=\"offset\" selected>",
            "<option value=\"text\" selected>",
            "name=\"offset\" type=\"number\" min=\"0\" step=\"1\" value=\"5\"",
            "name=\"limit\" type=\"number\" min=\"1\" max=\"100\" step=\"1\" value=\"20\"",
            "<table id=\"messages\">",
            "<tr data-offset=\"5\"><td data-col=\"offset\">5</td>",
            "<td data-col=\"timestamp\"><time datetime=\"2026-11-29T00:00:00.000Z\">",
            "<td data-col=\"key\"><pre>k1</pre></td>",
            "<td data-col=\"key\"><pre><span class=\"null\"",
            "<td data-col=\"headers\"><pre><span class=\"header-key\">trace&lt;id&gt;</span>: a&amp;b",
            "<a id=\"next-page\" rel=\"next\" href=\"/ui/topics/orders/messages?partition=1&amp;from=offset&amp;offset=7&amp;limit=20&amp;format=text\">",
        ] {
            assert!(html.contains(s), "{s}\n{html}");
        }
        assert!(!html.contains("browse-error"));
        assert_eq!(html.matches("<h1>").count(), 1);
        // Every input and select has its label.
        for id in [
            "browse-partition",
            "browse-from",
            "browse-offset",
            "browse-timestamp",
            "browse-limit",
            "browse-format",
        ] {
            assert!(html.contains(&format!("<label for=\"{id}\">")), "{id}");
        }
    }

    #[test]
    fn escapes_topic_and_message_bytes() {
        let html = render(&ctx(false), &page(EVIL_TOPIC, Format::Text));
        assert_escaped(&html, EVIL_TOPIC);
        assert!(html.contains(&format!("action=\"{}\"", expected_next(EVIL_TOPIC))));
        assert!(html.contains(&format!(
            "href=\"{}?partition=1&amp;from=offset",
            expected_next(EVIL_TOPIC)
        )));
        for format in [Format::Text, Format::Json, Format::Hex] {
            let html = render(&ctx(false), &page("t", format));
            assert!(!html.contains("<script>"), "{format:?}");
        }
    }

    #[test]
    fn no_next_link_at_the_end_and_the_error_is_shown() {
        let mut p = page("t", Format::Text);
        p.next = None;
        p.rows.clear();
        p.error = Some("leader <offline>".to_string());
        let html = render(&ctx(true), &p);
        assert!(!html.contains("next-page"));
        assert!(html.contains(
            "<p id=\"browse-error\" class=\"error-text\" role=\"alert\">leader &lt;offline&gt;</p>"
        ));
        assert!(!html.contains("<table id=\"messages\">"));
    }

    #[test]
    fn prefills_timestamp_and_latest() {
        let mut p = page("t", Format::Hex);
        p.query.start = Start::Timestamp(1_700_000_000_000);
        let html = render(&ctx(false), &p);
        assert!(html.contains("<option value=\"timestamp\" selected>"));
        assert!(html.contains("value=\"1700000000000\""));
        assert!(html.contains("<option value=\"hex\" selected>"));
        p.query.start = Start::Latest;
        p.query.partition = 9;
        let html = render(&ctx(false), &p);
        assert!(html.contains("<option value=\"latest\" selected>"));
        assert!(html.contains("<option value=\"9\" selected>9</option>"));
    }

    #[test]
    fn text_escapes_control_and_bidi_characters() {
        assert_eq!(text(b"plain"), "plain");
        assert_eq!(
            text(b"a\nb\tc\x00\x1b<&>"),
            "a<span class=\"esc\">\\n</span>b<span class=\"esc\">\\t</span>c\
             <span class=\"esc\">\\u{0}</span><span class=\"esc\">\\u{1b}</span>&lt;&amp;&gt;"
        );
        assert_eq!(text(&[0x66, 0xff, 0x6f]), "f\u{fffd}o");
        assert_eq!(
            text("x\u{202e}y".as_bytes()),
            "x<span class=\"esc\">\\u{202e}</span>y"
        );
    }

    #[test]
    fn json_is_pretty_printed_keeping_order_and_precision() {
        let pretty = json_pretty(
            br#"{"z":1,"a":[1,2,{}],"n":123456789012345678901234567890,"e":[],"s":"x<y\"}"}"#,
        );
        assert_eq!(
            pretty.as_deref(),
            Some(
                "{\n  &quot;z&quot;: 1,\n  &quot;a&quot;: [\n    1,\n    2,\n    {}\n  ],\n  \
                 &quot;n&quot;: 123456789012345678901234567890,\n  &quot;e&quot;: [],\n  \
                 &quot;s&quot;: &quot;x&lt;y\\&quot;}&quot;\n}"
            )
        );
        assert_eq!(json_pretty(b"  42 ").as_deref(), Some("42"));
        assert_eq!(json_pretty(b"{not json"), None);
        assert_eq!(json_pretty(&[0xff]), None);
        // Not JSON: shown as text.
        assert_eq!(bytes_html(Some(b"<hi>"), Format::Json), "&lt;hi&gt;");
        assert_eq!(bytes_html(Some(b"[1, 2]"), Format::Json), "[\n  1,\n  2\n]");
    }

    #[test]
    fn hex_dump_has_offsets_hex_and_ascii() {
        assert_eq!(
            hex_dump(b"Hello <world>!\n\x00\xffAB"),
            "00000000  48 65 6c 6c 6f 20 3c 77  6f 72 6c 64 3e 21 0a 00  |Hello &lt;world&gt;!..|\n\
             00000010  ff 41 42                                          |.AB|"
        );
        assert_eq!(hex_dump(b""), "");
    }

    #[test]
    fn null_and_empty_differ_from_text() {
        let null = bytes_html(None, Format::Text);
        assert!(null.contains("class=\"null\"") && null.contains(">null<"));
        assert_ne!(null, bytes_html(Some(b"null"), Format::Text));
        assert!(bytes_html(Some(b""), Format::Hex).contains("(empty)"));
    }

    #[test]
    fn large_values_are_cut_with_a_note() {
        let big = vec![b'a'; MAX_SHOWN + 10];
        let html = bytes_html(Some(&big), Format::Json);
        assert!(html.ends_with("… 10 more bytes not shown</span>"));
    }

    #[test]
    fn hostile_records_cannot_make_a_huge_page() {
        let controls = vec![0u8; MAX_SHOWN];
        let headers: Vec<(String, Option<Vec<u8>>)> = (0..200)
            .map(|i| (format!("h{i}"), Some(controls.clone())))
            .collect();
        let rows: Vec<MessageRow> = (0..5)
            .map(|offset| MessageRow {
                offset,
                timestamp: 0,
                key: Some(controls.clone()),
                value: Some(controls.clone()),
                headers: headers.clone(),
            })
            .collect();
        let html = messages_table(&rows, Format::Text);
        assert!(html.len() < 2 * PAGE_HTML_BUDGET, "{} bytes", html.len());
        assert!(html.contains("168 more headers not shown"));
        assert!(html.contains("this page is at its size limit"));
        let deep = format!("{}{}", "[".repeat(120), "]".repeat(120));
        let pretty = json_pretty(deep.as_bytes()).unwrap_or_default();
        assert!(
            pretty.lines().all(|l| l.len() <= 2 * MAX_INDENT + 2),
            "indentation is capped"
        );
    }
}
