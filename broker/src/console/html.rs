//! HTML building blocks shared by every page: escaping, URL encoding and the document
//! around a page's `<main>` (header, navigation, notice).
//!
//! Everything a page shows comes from the cluster or from a client (topic names, group
//! ids, client ids, message bytes), so nothing reaches the markup without `escape`, and
//! nothing reaches a URL without `encode`.

use super::model::PageContext;

/// The console's stylesheet, served at `/ui/static/console.css`.
pub const CONSOLE_CSS: &str = include_str!("static/console.css");
/// The console's script, served at `/ui/static/console.js`: live refresh and confirm
/// prompts, never needed to read a page.
pub const CONSOLE_JS: &str = include_str!("static/console.js");

/// The navigation entries: section (as in `PageContext::section`), label, href.
const NAV: [(&str, &str, &str); 4] = [
    ("overview", "Overview", "/ui"),
    ("topics", "Topics", "/ui/topics"),
    ("groups", "Consumer groups", "/ui/groups"),
    ("brokers", "Brokers", "/ui/brokers"),
];

/// Escapes text for use in element content and in quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped(&mut out, s);
    out
}

/// `escape`, appending to `out` (saves an allocation per value on big tables).
pub(crate) fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        push_escaped_char(out, c);
    }
}

pub(crate) fn push_escaped_char(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

/// Percent-encodes `s` as one URL path segment or one query value: everything but
/// RFC 3986's unreserved characters, so a group id with `/`, `?`, `#` or `%` stays one
/// segment. The result is plain ASCII, safe in an attribute without further escaping.
pub fn encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// The full document around a page's main content (`main` is already HTML).
pub fn layout(ctx: &PageContext, main: &str) -> String {
    let mut out = String::with_capacity(main.len() + 2048);
    out.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<title>");
    push_escaped(&mut out, &ctx.title);
    out.push_str(" · Runnel</title>\n");
    out.push_str("<link rel=\"stylesheet\" href=\"/ui/static/console.css\">\n");
    // No favicon request per page (the console has none to serve).
    out.push_str("<link rel=\"icon\" href=\"data:,\">\n");
    out.push_str("<script src=\"/ui/static/console.js\" defer></script>\n");
    out.push_str("</head>\n<body data-live=\"/ui/events\">\n");
    out.push_str("<a class=\"skip-link\" href=\"#main\">Skip to content</a>\n");
    out.push_str("<header class=\"site-header\">\n<div class=\"brand-row\">\n");
    out.push_str("<p class=\"brand\"><a href=\"/ui\">Runnel</a></p>\n");
    out.push_str("<p class=\"serving\">Cluster <code id=\"cluster-id\">");
    push_escaped(&mut out, &ctx.cluster_id);
    out.push_str(&format!(
        "</code> · served by broker <a id=\"serving-broker\" href=\"/ui/brokers/{id}\">{id}</a>",
        id = ctx.broker_id
    ));
    if ctx.read_only {
        out.push_str(" <span class=\"badge badge-muted\" id=\"read-only\">read-only</span>");
    }
    out.push_str("</p>\n</div>\n");
    push_nav(&mut out, ctx.section);
    out.push_str("</header>\n");
    if let Some(notice) = &ctx.notice {
        let class = if notice.ok { "ok" } else { "error" };
        out.push_str(&format!(
            "<p id=\"notice\" role=\"status\" class=\"notice {class}\">"
        ));
        push_escaped(&mut out, &notice.text);
        out.push_str("</p>\n");
    }
    out.push_str("<main id=\"main\">\n");
    out.push_str(main);
    out.push_str("\n</main>\n</body>\n</html>\n");
    out
}

fn push_nav(out: &mut String, section: &str) {
    out.push_str("<nav aria-label=\"Console\">\n<ul>\n");
    for (key, label, href) in NAV {
        let current = if key == section {
            " aria-current=\"page\""
        } else {
            ""
        };
        out.push_str(&format!(
            "<li><a href=\"{href}\"{current}>{label}</a></li>\n"
        ));
    }
    out.push_str("</ul>\n</nav>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::model::Notice;

    fn ctx() -> PageContext {
        PageContext {
            title: "Topics <&>".to_string(),
            section: "topics",
            cluster_id: "c<\"1\">".to_string(),
            broker_id: 2,
            read_only: false,
            csrf_token: "tok".to_string(),
            notice: Some(Notice {
                ok: false,
                text: "failed: <b>'x'</b> & \"y\"".to_string(),
            }),
        }
    }

    #[test]
    fn escape_replaces_the_five_special_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn encode_keeps_unreserved_and_encodes_the_rest() {
        assert_eq!(encode("orders.v1_x-y~"), "orders.v1_x-y~");
        assert_eq!(encode("a/b?c#d%e f"), "a%2Fb%3Fc%23d%25e%20f");
        assert_eq!(encode("\"&<>'"), "%22%26%3C%3E%27");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn layout_has_the_document_frame_and_escapes_context() {
        let html = layout(&ctx(), "<h1>x</h1>");
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<html lang=\"en\">"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("name=\"viewport\""));
        assert!(html.contains("<title>Topics &lt;&amp;&gt; · Runnel</title>"));
        assert!(html.contains("href=\"/ui/static/console.css\""));
        assert!(html.contains("<script src=\"/ui/static/console.js\" defer></script>"));
        assert!(html.contains("<body data-live=\"/ui/events\">"));
        assert!(html.contains("href=\"#main\""));
        assert!(html.contains("c&lt;&quot;1&quot;&gt;"));
        assert!(html.contains("<nav aria-label=\"Console\">"));
        assert!(html.contains("<a href=\"/ui/topics\" aria-current=\"page\">Topics</a>"));
        assert!(html.contains("<a href=\"/ui\">Overview</a>"));
        assert!(html.contains("<a href=\"/ui/groups\">Consumer groups</a>"));
        assert!(html.contains("<a href=\"/ui/brokers\">Brokers</a>"));
        assert_eq!(html.matches("aria-current").count(), 1);
        assert!(html.contains(
            "<p id=\"notice\" role=\"status\" class=\"notice error\">failed: &lt;b&gt;&#39;x&#39;&lt;/b&gt; &amp; &quot;y&quot;</p>"
        ));
        assert!(html.contains("<main id=\"main\">\n<h1>x</h1>\n</main>"));
    }

    #[test]
    fn layout_without_notice_has_no_notice_and_marks_read_only() {
        let mut c = ctx();
        c.notice = None;
        c.read_only = true;
        let html = layout(&c, "");
        assert!(!html.contains("id=\"notice\""));
        assert!(html.contains("read-only"));
    }

    #[test]
    fn static_files_are_embedded() {
        assert!(CONSOLE_CSS.contains(":focus-visible"));
        assert!(CONSOLE_JS.contains("EventSource"));
    }
}
