//! The web console over HTTP against an in-process broker: pages answer, the guards
//! refuse what they must (foreign Host, missing or wrong CSRF token, read-only,
//! unconfirmed actions, oversized message pages) and an action does what it says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use runnel_broker::broker::Broker;
use runnel_broker::fsio::RealFs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The `runnel_notice=...` pair an action's answer sets, ready for a Cookie header.
    fn notice(&self) -> String {
        self.cookies()
            .into_iter()
            .find(|c| c.starts_with("runnel_notice="))
            .expect("an action's outcome travels in a cookie")
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }
}

/// One HTTP/1.0 request with the given extra headers and form body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.0\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: localhost:{}\r\n", addr.port()));
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(body) = body {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head.push_str(body.unwrap_or(""));
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, &[], None).await
}

/// The CSRF cookie a first visit issues, as `name=value`.
async fn csrf_cookie(addr: SocketAddr) -> (String, String) {
    let answer = get(addr, "/ui").await;
    let cookie = answer
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("runnel_csrf="))
        .expect("a first visit gets the CSRF cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let token = cookie.trim_start_matches("runnel_csrf=").to_string();
    (cookie, token)
}

async fn broker_with(dir: &std::path::Path, extra: &[(&str, &str)]) -> (Broker, SocketAddr) {
    let broker = start(test_config(dir, extra), Arc::new(RealFs)).await;
    let addr = broker.console_addr.expect("the console is on by default");
    (broker, addr)
}

#[tokio::test]
async fn pages_answer_with_their_markup_and_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = broker_with(dir.path(), &[]).await;
    let mut client = Client::connect(broker.kafka_addrs[0]).await;
    assert_eq!(client.create_topic("orders", 2).await, 0);
    client
        .produce(
            "orders",
            0,
            batch(
                &[b"<b>bold</b>", b"{\"a\":1}"],
                proto_kafka::records::Compression::None,
            ),
            -1,
        )
        .await;

    assert_eq!(get(addr, "/").await.status, 303);
    for (path, marker) in [
        ("/ui", "id=\"under-replicated\""),
        ("/ui/topics", "data-topic=\"orders\""),
        ("/ui/topics/orders", "id=\"partitions\""),
        ("/ui/topics/orders/messages?partition=0", "id=\"messages\""),
        ("/ui/groups", "aria-current=\"page\""),
        ("/ui/brokers", "data-broker=\"0\""),
        ("/ui/brokers/0", "id=\"log-dirs\""),
    ] {
        let answer = get(addr, path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert!(answer.body.contains(marker), "{path} lacks {marker}");
        let csp = answer.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
    let messages = get(addr, "/ui/topics/orders/messages?partition=0&from=earliest").await;
    assert!(
        messages.body.contains("&lt;b&gt;bold&lt;/b&gt;"),
        "a record's markup is escaped"
    );
    assert!(!messages.body.contains("<b>bold</b>"));
    assert_eq!(get(addr, "/ui/topics/missing").await.status, 404);
    assert_eq!(get(addr, "/ui/brokers/7").await.status, 404);
    assert_eq!(get(addr, "/ui/static/console.js").await.status, 200);
    let favicon = get(addr, "/favicon.ico").await;
    assert_eq!(favicon.status, 404);
    assert!(
        favicon.cookies().is_empty(),
        "no token outside /ui, where it would not come back"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_guards_refuse_what_they_must() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = broker_with(dir.path(), &[]).await;

    let foreign = request(
        addr,
        "GET",
        "/ui",
        &[("Host", "rebound.example:9097")],
        None,
    )
    .await;
    assert_eq!(foreign.status, 421);
    assert_eq!(
        request(addr, "GET", "/ui", &[("Host", "")], None)
            .await
            .status,
        421
    );

    let too_big = get(addr, "/ui/topics/t/messages?limit=100000").await;
    assert_eq!(too_big.status, 400, "{}", too_big.body);

    let (cookie, token) = csrf_cookie(addr).await;
    let form = |token: &str| {
        format!("csrf={token}&confirm=yes&name=made&partitions=1&replication_factor=1")
    };
    let create = |headers: Vec<(&'static str, String)>, body: String| async move {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        request(addr, "POST", "/ui/topics", &headers, Some(&body)).await
    };
    // No cookie, no token, a wrong token, a foreign Origin: all refused, nothing made.
    assert_eq!(create(vec![], form(&token)).await.status, 403);
    assert_eq!(
        create(
            vec![("Cookie", cookie.clone())],
            "confirm=yes&name=made&partitions=1&replication_factor=1".into()
        )
        .await
        .status,
        403
    );
    assert_eq!(
        create(vec![("Cookie", cookie.clone())], form(&"0".repeat(32)))
            .await
            .status,
        403
    );
    assert_eq!(
        create(
            vec![
                ("Cookie", cookie.clone()),
                ("Origin", "http://evil.example".into())
            ],
            form(&token)
        )
        .await
        .status,
        403
    );
    let unconfirmed = format!("csrf={token}&name=made&partitions=1&replication_factor=1");
    assert_eq!(
        create(vec![("Cookie", cookie.clone())], unconfirmed)
            .await
            .status,
        400
    );
    assert!(
        broker.cache.image().topic("made").is_none(),
        "a refused action changed nothing"
    );

    let done = create(
        vec![
            ("Cookie", cookie.clone()),
            ("Origin", format!("http://localhost:{}", addr.port())),
        ],
        form(&token),
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), Some("/ui/topics/made"));
    let notice = done.notice();
    assert!(
        broker.cache.image().topic("made").is_some(),
        "the topic exists"
    );
    let page = request(
        addr,
        "GET",
        "/ui/topics/made",
        &[("Cookie", &format!("{cookie}; {notice}"))],
        None,
    )
    .await;
    assert!(page.body.contains("id=\"notice\""), "{}", page.body);
    assert!(page.body.contains("Created topic made"));

    let internal = format!("csrf={token}&confirm=yes&op=set&key=retention.ms&value=1");
    let refused = request(
        addr,
        "POST",
        "/ui/topics/__consumer_offsets/configs",
        &[("Cookie", &cookie)],
        Some(&internal),
    )
    .await;
    assert_eq!(refused.status, 303);
    assert_eq!(
        refused.header("location"),
        Some("/ui/topics/__consumer_offsets")
    );
    let notice = refused.notice();
    let page = request(
        addr,
        "GET",
        "/ui/topics/__consumer_offsets",
        &[("Cookie", &format!("{cookie}; {notice}"))],
        None,
    )
    .await;
    assert!(page.body.contains("notice error"), "{}", page.body);
    assert!(page.body.contains("internal topic"));
    let image = broker.cache.image();
    let changed = image
        .topic("__consumer_offsets")
        .is_some_and(|t| t.configs.get("retention.ms").map(String::as_str) == Some("1"));
    assert!(!changed, "the internal topic's config is untouched");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_read_only_console_has_no_forms_and_refuses_actions() {
    let writable_dir = tempfile::tempdir().unwrap();
    let (writable, writable_addr) = broker_with(writable_dir.path(), &[]).await;
    let page = get(writable_addr, "/ui/topics").await;
    assert!(
        page.body.contains("method=\"post\""),
        "the check below can fail"
    );
    writable.shutdown().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (broker, addr) = broker_with(dir.path(), &[("console.read.only", "true")]).await;
    let (cookie, token) = csrf_cookie(addr).await;
    let page = get(addr, "/ui/topics").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("method=\"post\""), "no action forms");
    assert!(!page.body.contains("id=\"create-topic\""));
    let body = format!("csrf={token}&confirm=yes&name=ro&partitions=1&replication_factor=1");
    let refused = request(
        addr,
        "POST",
        "/ui/topics",
        &[("Cookie", &cookie)],
        Some(&body),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(broker.cache.image().topic("ro").is_none());
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_console_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(
        test_config(dir.path(), &[("console.enable", "false")]),
        Arc::new(RealFs),
    )
    .await;
    assert!(broker.console_addr.is_none());
    broker.shutdown().await.unwrap();
}
