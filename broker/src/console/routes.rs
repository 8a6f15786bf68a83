//! The console's HTTP side: pages (GET, plain HTML), actions (POST, then 303 to the page
//! with a notice), live refreshes and static files, behind one guard that checks the
//! Host header, issues the CSRF cookie and sets the security headers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Extension, Form, Router};
use base64::Engine;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use super::actions::{self, Kind};
use super::model::{Format, MessageQuery, Notice, PageContext, Start};
use super::{csrf, events, gather, html, pages, Console};

/// Forms are small; anything bigger is not one of ours.
const MAX_FORM_BYTES: usize = 64 * 1024;
const NOTICE_COOKIE: &str = "runnel_notice";
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    // Not no-referrer: with it, Chromium sends `Origin: null` on the console's own form
    // posts, which the CSRF check must refuse.
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
];

#[derive(Clone)]
struct AppState {
    console: Arc<Console>,
    shutdown: watch::Receiver<bool>,
}

/// What the guard learnt about a request, for its handler.
#[derive(Debug, Clone)]
struct RequestInfo {
    /// The token this browser's forms carry (new when it had no cookie).
    token: String,
    /// The token of the cookie the request carried, if any.
    cookie: Option<String>,
    host: String,
    notice: Option<Notice>,
}

pub async fn serve(listener: TcpListener, console: Arc<Console>, shutdown: watch::Receiver<bool>) {
    let state = AppState {
        console,
        shutdown: shutdown.clone(),
    };
    let app = Router::new()
        .route("/", get(|| async { redirect("/ui", None) }))
        .route("/ui", get(overview))
        .route("/ui/", get(|| async { redirect("/ui", None) }))
        .route("/ui/topics", get(topics).post(create_topic))
        .route("/ui/topics/{topic}", get(topic))
        .route("/ui/topics/{topic}/messages", get(messages))
        .route(
            "/ui/topics/{topic}/partitions",
            action_on(Kind::AddPartitions),
        )
        .route("/ui/topics/{topic}/configs", action_on(Kind::Configs))
        .route(
            "/ui/topics/{topic}/delete-records",
            action_on(Kind::DeleteRecords),
        )
        .route("/ui/groups", get(groups))
        .route("/ui/groups/{group}", get(group))
        .route("/ui/groups/{group}/reset", action_on(Kind::ResetOffsets))
        .route("/ui/groups/{group}/delete", action_on(Kind::DeleteGroup))
        .route("/ui/brokers", get(brokers))
        .route("/ui/brokers/{id}", get(broker))
        .route("/ui/events", get(live))
        .route("/ui/static/console.css", get(css))
        .route("/ui/static/console.js", get(js))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state);
    let mut stop = shutdown;
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(err) = axum::serve(listener, service)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(error = %err, "the console's listener failed");
    }
}

fn notice_cookie(notice: &Notice) -> String {
    let text = format!("{}{}", if notice.ok { 'o' } else { 'e' }, notice.text);
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text.as_bytes());
    format!("{NOTICE_COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=60")
}

fn notice_from(headers: &HeaderMap) -> Option<Notice> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == NOTICE_COOKIE)?
        .1;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut chars = text.chars();
    let ok = match chars.next()? {
        'o' => true,
        'e' => false,
        _ => return None,
    };
    Some(Notice {
        ok,
        text: chars.as_str().chars().take(2000).collect(),
    })
}

fn cookie_header(headers: &HeaderMap) -> Option<String> {
    let all: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!all.is_empty()).then(|| all.join("; "))
}

async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if !state.console.hosts.allows(host.as_deref()) {
        warn!(host = ?host, "the console refused a request for a host it does not serve");
        return secure(
            (
                StatusCode::MISDIRECTED_REQUEST,
                "this console does not serve that host name (console.allowed.hosts)\n",
            )
                .into_response(),
        );
    }
    let headers = request.headers();
    let cookie = csrf::from_cookies(cookie_header(headers).as_deref());
    let notice = notice_from(headers);
    // Only under /ui, where the cookie is sent back: a browser's /favicon.ico carries
    // none, and a new token there would orphan the forms of the page already shown.
    let issue = cookie.is_none() && request.uri().path().starts_with("/ui");
    let had_notice = notice.is_some();
    let token = cookie.clone().unwrap_or_else(csrf::new_token);
    let is_get = request.method() == Method::GET;
    request.extensions_mut().insert(RequestInfo {
        token: token.clone(),
        cookie,
        host: host.unwrap_or_default(),
        notice,
    });
    let mut response = next.run(request).await;
    let sets_notice = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.as_bytes().starts_with(NOTICE_COOKIE.as_bytes()));
    if issue {
        append_cookie(&mut response, &csrf::set_cookie(&token));
    }
    if had_notice && is_get && !sets_notice && response.status().is_success() {
        append_cookie(
            &mut response,
            &format!("{NOTICE_COOKIE}=; Path=/ui; Max-Age=0"),
        );
    }
    secure(response)
}

fn append_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn secure(mut response: Response) -> Response {
    for (name, value) in SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

fn redirect(to: &str, notice: Option<&Notice>) -> Response {
    let mut response =
        (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response();
    if let Some(n) = notice {
        append_cookie(&mut response, &notice_cookie(n));
    }
    response
}

fn context(
    console: &Console,
    info: &RequestInfo,
    title: String,
    section: &'static str,
) -> PageContext {
    PageContext {
        title,
        section,
        cluster_id: console.cache.image().cluster_id.clone().unwrap_or_default(),
        broker_id: console.broker_id,
        read_only: console.config.read_only,
        csrf_token: info.token.clone(),
        notice: info.notice.clone(),
    }
}

fn error_page(
    console: &Console,
    info: &RequestInfo,
    status: StatusCode,
    section: &'static str,
    message: &str,
) -> Response {
    let ctx = context(
        console,
        info,
        status.canonical_reason().unwrap_or("Error").to_string(),
        section,
    );
    (status, Html(pages::error(&ctx, message))).into_response()
}

async fn overview(State(s): State<AppState>, Extension(info): Extension<RequestInfo>) -> Response {
    let _slot = s.console.page_slots.acquire().await;
    let data = gather::overview(&s.console).await;
    let ctx = context(&s.console, &info, "Overview".into(), "overview");
    Html(pages::overview::render(&ctx, &data)).into_response()
}

async fn topics(State(s): State<AppState>, Extension(info): Extension<RequestInfo>) -> Response {
    let _slot = s.console.page_slots.acquire().await;
    let data = gather::topics(&s.console).await;
    let ctx = context(&s.console, &info, "Topics".into(), "topics");
    Html(pages::topics::list(&ctx, &data)).into_response()
}

async fn topic(
    State(s): State<AppState>,
    Extension(info): Extension<RequestInfo>,
    Path(name): Path<String>,
) -> Response {
    let _slot = s.console.page_slots.acquire().await;
    match gather::topic(&s.console, &name).await {
        Some(data) => {
            let ctx = context(&s.console, &info, format!("Topic {name}"), "topics");
            Html(pages::topics::detail(&ctx, &data)).into_response()
        }
        None => error_page(
            &s.console,
            &info,
            StatusCode::NOT_FOUND,
            "topics",
            &format!("There is no topic named {name}."),
        ),
    }
}

/// Reads the message browser's query; the reason as an error.
fn message_query(topic: String, q: &HashMap<String, String>) -> Result<MessageQuery, String> {
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let partition = match get("partition") {
        Some(p) => p
            .parse()
            .map_err(|_| format!("partition must be a number, not {p:?}"))?,
        None => 0,
    };
    let limit: usize = match get("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| format!("limit must be a number, not {l:?}"))?,
        None => 20,
    };
    if limit == 0 || limit > gather::MAX_PAGE {
        return Err(format!("limit must be between 1 and {}", gather::MAX_PAGE));
    }
    let start =
        match get("from").unwrap_or("earliest") {
            "earliest" => Start::Earliest,
            "latest" => Start::Latest,
            "offset" => {
                let o = get("offset").ok_or("from=offset needs an offset")?;
                Start::Offset(
                    o.parse()
                        .map_err(|_| format!("offset must be a number, not {o:?}"))?,
                )
            }
            "timestamp" => {
                let t = get("timestamp").ok_or("from=timestamp needs a timestamp")?;
                Start::Timestamp(super::timestamp::parse(t).ok_or(
                    "the timestamp is neither milliseconds nor YYYY-MM-DDTHH:MM[:SS] (UTC)",
                )?)
            }
            other => {
                return Err(format!(
                    "from must be earliest, latest, offset or timestamp, not {other:?}"
                ))
            }
        };
    let format = match get("format").unwrap_or("text") {
        "text" => Format::Text,
        "json" => Format::Json,
        "hex" => Format::Hex,
        other => return Err(format!("format must be text, json or hex, not {other:?}")),
    };
    Ok(MessageQuery {
        topic,
        partition,
        start,
        limit,
        format,
    })
}

async fn messages(
    State(s): State<AppState>,
    Extension(info): Extension<RequestInfo>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = match message_query(name.clone(), &q) {
        Ok(query) => query,
        Err(reason) => {
            return error_page(
                &s.console,
                &info,
                StatusCode::BAD_REQUEST,
                "topics",
                &reason,
            )
        }
    };
    let _slot = s.console.page_slots.acquire().await;
    match gather::messages(&s.console, query).await {
        Some(page) => {
            let ctx = context(&s.console, &info, format!("Messages of {name}"), "topics");
            Html(pages::messages::render(&ctx, &page)).into_response()
        }
        None => error_page(
            &s.console,
            &info,
            StatusCode::NOT_FOUND,
            "topics",
            &format!("There is no topic named {name}."),
        ),
    }
}

async fn groups(State(s): State<AppState>, Extension(info): Extension<RequestInfo>) -> Response {
    let _slot = s.console.page_slots.acquire().await;
    let (rows, complete) = gather::groups(&s.console).await;
    let ctx = context(&s.console, &info, "Consumer groups".into(), "groups");
    Html(pages::groups::list(&ctx, &rows, complete)).into_response()
}

async fn group(
    State(s): State<AppState>,
    Extension(info): Extension<RequestInfo>,
    Path(id): Path<String>,
) -> Response {
    let _slot = s.console.page_slots.acquire().await;
    match gather::group(&s.console, &id).await {
        Ok(Some(data)) => {
            let ctx = context(&s.console, &info, format!("Group {id}"), "groups");
            Html(pages::groups::detail(&ctx, &data)).into_response()
        }
        Ok(None) => error_page(
            &s.console,
            &info,
            StatusCode::NOT_FOUND,
            "groups",
            &format!("There is no consumer group {id}."),
        ),
        Err(err) => error_page(
            &s.console,
            &info,
            StatusCode::BAD_GATEWAY,
            "groups",
            &err.to_string(),
        ),
    }
}

async fn brokers(State(s): State<AppState>, Extension(info): Extension<RequestInfo>) -> Response {
    let _slot = s.console.page_slots.acquire().await;
    let rows = gather::brokers(&s.console).await;
    let ctx = context(&s.console, &info, "Brokers".into(), "brokers");
    Html(pages::brokers::list(&ctx, &rows)).into_response()
}

async fn broker(
    State(s): State<AppState>,
    Extension(info): Extension<RequestInfo>,
    Path(id): Path<String>,
) -> Response {
    let found = match id.parse::<i32>() {
        Ok(id) => {
            let _slot = s.console.page_slots.acquire().await;
            gather::broker(&s.console, id).await
        }
        Err(_) => None,
    };
    match found {
        Some(data) => {
            let ctx = context(&s.console, &info, format!("Broker {id}"), "brokers");
            Html(pages::brokers::detail(&ctx, &data)).into_response()
        }
        None => error_page(
            &s.console,
            &info,
            StatusCode::NOT_FOUND,
            "brokers",
            &format!("There is no broker {id}."),
        ),
    }
}

async fn live(State(s): State<AppState>) -> Response {
    match events::StreamSlot::take(&s.console.streams) {
        Some(slot) => events::stream(&s.console, slot, s.shutdown.clone()).into_response(),
        // EventSource retries by itself; pages still read without live updates.
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live pages are open on this broker\n",
        )
            .into_response(),
    }
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::CONSOLE_CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        html::CONSOLE_JS,
    )
        .into_response()
}

async fn not_found(State(s): State<AppState>, Extension(info): Extension<RequestInfo>) -> Response {
    error_page(
        &s.console,
        &info,
        StatusCode::NOT_FOUND,
        "overview",
        "There is no such page.",
    )
}

/// Every action: read-only and CSRF checks, the confirmation, then the change, logged
/// with who asked (the client's address and user agent: the console has no users until
/// the cluster has SASL) and what.
async fn act(
    s: AppState,
    info: RequestInfo,
    peer: SocketAddr,
    headers: &HeaderMap,
    kind: Kind,
    target: String,
    form: HashMap<String, String>,
) -> Response {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    if s.console.config.read_only {
        warn!(client = %peer, ?kind, %target, "the console refused an action: console.read.only");
        return error_page(
            &s.console,
            &info,
            StatusCode::FORBIDDEN,
            "overview",
            "This console is read-only (console.read.only=true).",
        );
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let token = form.get("csrf").map(String::as_str);
    if let Err(refusal) = csrf::check(info.cookie.as_deref(), token, origin, &info.host) {
        warn!(client = %peer, user_agent = %agent, ?kind, %target, reason = refusal.describe(), "the console refused an action: CSRF check");
        return error_page(
            &s.console,
            &info,
            StatusCode::FORBIDDEN,
            "overview",
            &format!("Refused: {}.", refusal.describe()),
        );
    }
    if form.get("confirm").map(String::as_str) != Some("yes") {
        return error_page(
            &s.console,
            &info,
            StatusCode::BAD_REQUEST,
            "overview",
            "Refused: the action was not confirmed (tick the confirmation box).",
        );
    }
    let action = match actions::parse(kind, &target, &form) {
        Ok(action) => action,
        Err(reason) => {
            return error_page(
                &s.console,
                &info,
                StatusCode::BAD_REQUEST,
                "overview",
                &reason,
            )
        }
    };
    let outcome = actions::run(&s.console, &action).await;
    match &outcome {
        Ok(done) => {
            info!(client = %peer, user_agent = %agent, action = ?action, outcome = %done, "console action done")
        }
        Err(why) => {
            warn!(client = %peer, user_agent = %agent, action = ?action, error = %why, "console action failed")
        }
    }
    let (to, notice) = match outcome {
        Ok(text) => (action.page(), Notice { ok: true, text }),
        Err(text) => (action.origin(), Notice { ok: false, text }),
    };
    redirect(&to, Some(&notice))
}

async fn create_topic(
    State(s): State<AppState>,
    Extension(info): Extension<RequestInfo>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    act(
        s,
        info,
        peer,
        &headers,
        Kind::CreateTopic,
        String::new(),
        form,
    )
    .await
}

/// The route of an action on the topic or group its path names.
fn action_on(kind: Kind) -> MethodRouter<AppState> {
    axum::routing::post(
        move |State(s): State<AppState>,
              Extension(info): Extension<RequestInfo>,
              ConnectInfo(peer): ConnectInfo<SocketAddr>,
              headers: HeaderMap,
              Path(target): Path<String>,
              Form(form): Form<HashMap<String, String>>| async move {
            act(s, info, peer, &headers, kind, target, form).await
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn message_queries_are_bounded_and_checked() {
        let ok = message_query(
            "t".into(),
            &q(&[
                ("partition", "2"),
                ("from", "offset"),
                ("offset", "5"),
                ("limit", "100"),
                ("format", "hex"),
            ]),
        );
        assert_eq!(
            ok,
            Ok(MessageQuery {
                topic: "t".into(),
                partition: 2,
                start: Start::Offset(5),
                limit: 100,
                format: Format::Hex
            })
        );
        let default = message_query("t".into(), &q(&[]));
        assert_eq!(
            default.map(|m| (m.partition, m.start, m.limit)),
            Ok((0, Start::Earliest, 20))
        );
        for bad in [
            q(&[("limit", "100000")]),
            q(&[("limit", "0")]),
            q(&[("partition", "x")]),
            q(&[("from", "offset")]),
            q(&[("from", "timestamp"), ("timestamp", "soon")]),
            q(&[("format", "xml")]),
        ] {
            assert!(message_query("t".into(), &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn notices_survive_their_cookie() {
        let n = Notice {
            ok: false,
            text: "no; such <topic>".into(),
        };
        let cookie = notice_cookie(&n);
        let pair = cookie.split(';').next().unwrap_or_default().to_string();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {pair}")).unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(notice_from(&headers), Some(n));
        let mut bad = HeaderMap::new();
        bad.insert(
            header::COOKIE,
            HeaderValue::from_static("runnel_notice=!!!"),
        );
        assert_eq!(notice_from(&bad), None);
    }
}
