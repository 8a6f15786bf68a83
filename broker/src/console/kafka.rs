//! The console's Kafka-protocol client: one request per TCP connection, as a Kafka admin
//! client would send it, with a connect timeout and a whole-call timeout.
//!
//! One connection per call keeps the console stateless: there is no pool to go stale
//! when a broker restarts, and the calls are few (a page load, a history sample).

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use proto_kafka::error::ResponseError;
use proto_kafka::messages::{ApiKey, RequestHeader, ResponseHeader};
use proto_kafka::protocol::{encode_request_header_into_buffer, Decodable, Request, StrBytes};
use proto_kafka::ProtoError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::protocol::api_versions::api_name;
use crate::protocol::error_code;

/// The client id every console request carries (it shows in the brokers' request logs).
pub const CLIENT_ID: &str = "runnel-console";

/// The largest response frame read. A fetch is bounded by its `max_bytes`, everything
/// else is small; a larger length prefix is a broken or hostile peer, not data.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Correlation ids only need to differ between calls for the brokers' logs to tell them
/// apart; each connection carries one request.
static CORRELATION: AtomicI32 = AtomicI32::new(1);

/// Why a call to a broker failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("failed to connect to broker {broker} at {address}: {source}")]
    Connect {
        broker: i32,
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("failed to encode a {api} request: {source}")]
    Encode {
        api: &'static str,
        #[source]
        source: ProtoError,
    },
    #[error("failed to send {api} to broker {broker}: {source}")]
    Send {
        api: &'static str,
        broker: i32,
        #[source]
        source: io::Error,
    },
    #[error("failed to read the {api} answer of broker {broker}: {source}")]
    Read {
        api: &'static str,
        broker: i32,
        #[source]
        source: io::Error,
    },
    #[error("failed to decode the {api} answer of broker {broker}: {detail}")]
    Decode {
        api: &'static str,
        broker: i32,
        detail: String,
    },
    #[error("failed to get an answer to {api} from broker {broker} within {after:?}")]
    Timeout {
        api: &'static str,
        broker: i32,
        after: Duration,
    },
    /// The broker answered with a Kafka error code.
    #[error("failed to {action}: {name} ({code}){}", message_suffix(.message))]
    Kafka {
        /// What was attempted, e.g. "create topic orders".
        action: String,
        code: i16,
        /// Kafka's name for the code, e.g. `TOPIC_ALREADY_EXISTS`.
        name: String,
        /// The broker's error message, when it sent one.
        message: Option<String>,
    },
    /// The answer left out the item asked about.
    #[error("failed to find {item} in the {api} answer of broker {broker}")]
    MissingAnswer {
        api: &'static str,
        broker: i32,
        item: String,
    },
    #[error("failed to find partition {topic}-{partition} in the metadata")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("failed to find a live leader for partition {topic}-{partition}")]
    NoLeader { topic: String, partition: i32 },
    #[error("failed to reach broker {broker}: it is not live")]
    BrokerNotLive { broker: i32 },
    #[error("failed to find a live broker to ask")]
    NoLiveBroker,
    #[error("failed to find a live coordinator for group {group}")]
    NoCoordinator { group: String },
}

impl CallError {
    /// The Kafka error code of a `Kafka` error (callers tell, e.g., NON_EMPTY_GROUP apart).
    pub fn code(&self) -> Option<i16> {
        match self {
            CallError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

fn message_suffix(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

/// Kafka's name for an error code (`UNKNOWN_TOPIC_OR_PARTITION`), `UNKNOWN` for a code
/// this build does not know.
pub fn error_name(code: i16) -> String {
    let label = error_code::label(code);
    if label != "OTHER" {
        return label.to_string();
    }
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => "UNKNOWN".to_string(),
        // The protocol crate names its variants after Kafka's names in camel case.
        Some(e) => screaming_snake(&format!("{e:?}")),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `Ok` for error code 0, else a `CallError::Kafka` naming `action` (built lazily: most
/// answers are fine).
pub fn check(
    code: i16,
    message: Option<&StrBytes>,
    action: impl FnOnce() -> String,
) -> Result<(), CallError> {
    if code == error_code::NONE {
        return Ok(());
    }
    Err(CallError::Kafka {
        action: action(),
        code,
        name: error_name(code),
        message: message.map(|m| m.to_string()),
    })
}

/// A broker to dial: its id (for errors and logs) and advertised endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub broker: i32,
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// How long a call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Connecting, sending and reading the whole answer.
    pub call: Duration,
}

fn api_of<R: Request>() -> &'static str {
    api_name(R::KEY)
}

/// A request frame: length prefix, header (client id `runnel-console`), body.
pub fn encode_frame<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, CallError> {
    let encode = |source| CallError::Encode {
        api: api_of::<R>(),
        source,
    };
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    encode_request_header_into_buffer(&mut buf, &header).map_err(encode)?;
    request.encode(&mut buf, version).map_err(encode)?;
    let len = i32::try_from(buf.len() - 4).map_err(|_| CallError::Encode {
        api: api_of::<R>(),
        source: ProtoError::NotEnoughBytes,
    })?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response frame (without its length prefix) to `R`'s answer.
pub fn decode_frame<R: Request>(
    mut frame: Bytes,
    version: i16,
    correlation_id: i32,
    broker: i32,
) -> Result<R::Response, CallError> {
    let api = api_of::<R>();
    let decode = |detail: String| CallError::Decode {
        api,
        broker,
        detail,
    };
    let key = ApiKey::try_from(R::KEY).map_err(|()| decode(format!("unknown key {}", R::KEY)))?;
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .map_err(|e| decode(format!("header: {e}")))?;
    if header.correlation_id != correlation_id {
        return Err(decode(format!(
            "correlation id {} answers another request (sent {correlation_id})",
            header.correlation_id
        )));
    }
    <R::Response as Decodable>::decode(&mut frame, version).map_err(|e| decode(e.to_string()))
}

/// Sends `request` (as `version`) to `target` on a fresh connection and decodes the answer.
pub async fn call<R: Request>(
    target: &Target,
    request: &R,
    version: i16,
    timeouts: Timeouts,
) -> Result<R::Response, CallError> {
    let api = api_of::<R>();
    let correlation_id = CORRELATION.fetch_add(1, Ordering::Relaxed);
    let frame = encode_frame(request, version, correlation_id)?;
    debug!(api, version, broker = target.broker, "console call");
    let exchange = exchange(target, api, &frame, timeouts.connect);
    let answer = tokio::time::timeout(timeouts.call, exchange)
        .await
        .map_err(|_| CallError::Timeout {
            api,
            broker: target.broker,
            after: timeouts.call,
        })??;
    decode_frame::<R>(answer, version, correlation_id, target.broker)
}

/// Connects, writes one frame and reads one frame back.
async fn exchange(
    target: &Target,
    api: &'static str,
    frame: &[u8],
    connect_timeout: Duration,
) -> Result<Bytes, CallError> {
    let connect_error = |source| CallError::Connect {
        broker: target.broker,
        address: target.address(),
        source,
    };
    let connect = TcpStream::connect((target.host.as_str(), target.port));
    let mut stream = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| connect_error(io::Error::from(io::ErrorKind::TimedOut)))?
        .map_err(connect_error)?;
    // A small request followed by a wait for the answer: Nagle would only add delay.
    let _ = stream.set_nodelay(true);
    let send_error = |source| CallError::Send {
        api,
        broker: target.broker,
        source,
    };
    stream.write_all(frame).await.map_err(send_error)?;
    stream.flush().await.map_err(send_error)?;
    read_frame(&mut stream)
        .await
        .map_err(|source| CallError::Read {
            api,
            broker: target.broker,
            source,
        })
}

async fn read_frame(stream: &mut TcpStream) -> io::Result<Bytes> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await?;
    let len = frame_length(prefix)?;
    let mut body = BytesMut::zeroed(len);
    stream.read_exact(&mut body).await?;
    Ok(body.freeze())
}

/// The body length a frame's prefix announces, refused when negative or over the bound.
pub fn frame_length(prefix: [u8; 4]) -> io::Result<usize> {
    let len = (&prefix[..]).get_i32();
    match usize::try_from(len) {
        Ok(len) if len <= MAX_RESPONSE_BYTES => Ok(len),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a response frame of {len} bytes is outside 0..={MAX_RESPONSE_BYTES}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_kafka::messages::{
        ApiVersionsRequest, CreateTopicsResponse, ListGroupsRequest, ListGroupsResponse,
        MetadataRequest,
    };
    use proto_kafka::protocol::{decode_request_header_from_buffer, Encodable};

    fn response_frame<T: Encodable>(
        key: ApiKey,
        version: i16,
        correlation: i32,
        body: &T,
    ) -> Bytes {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation)
            .encode(&mut buf, key.response_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn frames_carry_the_console_client_id_and_a_correct_length() {
        let frame = encode_frame(&MetadataRequest::default(), 12, 42).unwrap();
        let mut bytes = frame.clone();
        let len = bytes.get_i32() as usize;
        assert_eq!(len, frame.len() - 4);
        let header = decode_request_header_from_buffer(&mut bytes).unwrap();
        assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
        assert_eq!(header.request_api_version, 12);
        assert_eq!(header.correlation_id, 42);
        assert_eq!(header.client_id.unwrap().as_str(), CLIENT_ID);
        assert!(bytes.has_remaining());
    }

    #[test]
    fn answers_decode_with_flexible_and_classic_headers() {
        for version in [0, 3, 5] {
            let body = ListGroupsResponse::default().with_error_code(0);
            let frame = response_frame(ApiKey::ListGroups, version, 7, &body);
            let decoded = decode_frame::<ListGroupsRequest>(frame, version, 7, 1).unwrap();
            assert_eq!(decoded.error_code, 0);
        }
    }

    #[test]
    fn an_answer_to_another_request_is_refused() {
        let frame = response_frame(ApiKey::ListGroups, 5, 8, &ListGroupsResponse::default());
        let err = decode_frame::<ListGroupsRequest>(frame, 5, 7, 3).unwrap_err();
        assert!(matches!(err, CallError::Decode { broker: 3, .. }), "{err}");
    }

    #[test]
    fn truncated_or_garbage_answers_are_errors_not_panics() {
        let body = CreateTopicsResponse::default();
        let frame = response_frame(ApiKey::CreateTopics, 7, 1, &body);
        for cut in 0..frame.len() {
            let _ = decode_frame::<proto_kafka::messages::CreateTopicsRequest>(
                frame.slice(..cut),
                7,
                1,
                1,
            );
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut garbage = vec![0u8; (seed % 64) as usize];
            for b in garbage.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            let _ = decode_frame::<ApiVersionsRequest>(Bytes::from(garbage), 3, 1, 1);
        }
    }

    #[test]
    fn frame_lengths_over_the_bound_or_negative_are_refused() {
        assert_eq!(frame_length(10i32.to_be_bytes()).unwrap(), 10);
        assert!(frame_length((-1i32).to_be_bytes()).is_err());
        assert!(frame_length(((MAX_RESPONSE_BYTES + 1) as i32).to_be_bytes()).is_err());
    }

    #[test]
    fn kafka_errors_keep_code_name_and_message() {
        let message = StrBytes::from_static_str("Topic 'a' already exists.");
        let err = check(36, Some(&message), || "create topic a".into()).unwrap_err();
        assert_eq!(err.code(), Some(36));
        assert_eq!(
            err.to_string(),
            "failed to create topic a: TOPIC_ALREADY_EXISTS (36): Topic 'a' already exists."
        );
        assert!(check(0, None, || unreachable!()).is_ok());
        let err = check(3, None, || "fetch t-0".into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to fetch t-0: UNKNOWN_TOPIC_OR_PARTITION (3)"
        );
    }

    #[test]
    fn error_names_follow_kafka_even_beyond_the_metric_labels() {
        assert_eq!(error_name(69), "GROUP_ID_NOT_FOUND");
        // Not among the broker's metric labels: derived from the protocol crate's name.
        assert_eq!(error_name(37), "INVALID_PARTITIONS");
        assert_eq!(error_name(40), "INVALID_CONFIG");
        assert_eq!(error_name(87), "INVALID_RECORD");
        assert_eq!(error_name(74), "FENCED_LEADER_EPOCH");
        assert_eq!(error_name(58), "SASL_AUTHENTICATION_FAILED");
        assert_eq!(error_name(i16::MAX), "UNKNOWN");
    }

    async fn local_server<F, Fut>(serve: F) -> Target
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            serve(stream).await;
        });
        Target {
            broker: 5,
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(2),
            call: Duration::from_millis(300),
        }
    }

    async fn read_request(stream: &mut TcpStream) -> RequestHeader {
        let mut prefix = [0u8; 4];
        stream.read_exact(&mut prefix).await.unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(prefix) as usize];
        stream.read_exact(&mut body).await.unwrap();
        decode_request_header_from_buffer(&mut Bytes::from(body)).unwrap()
    }

    #[tokio::test]
    async fn a_call_reads_the_answer_of_its_own_connection() {
        let target = local_server(|mut stream| async move {
            let header = read_request(&mut stream).await;
            let body = ListGroupsResponse::default().with_error_code(15);
            let frame = response_frame(ApiKey::ListGroups, 5, header.correlation_id, &body);
            stream
                .write_all(&(frame.len() as i32).to_be_bytes())
                .await
                .unwrap();
            stream.write_all(&frame).await.unwrap();
        })
        .await;
        let answer = call(&target, &ListGroupsRequest::default(), 5, timeouts())
            .await
            .unwrap();
        assert_eq!(answer.error_code, 15);
    }

    #[tokio::test]
    async fn a_silent_broker_times_out() {
        let target = local_server(|mut stream| async move {
            read_request(&mut stream).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let err = call(&target, &ListGroupsRequest::default(), 5, timeouts())
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Timeout { broker: 5, .. }), "{err}");
    }

    #[tokio::test]
    async fn an_oversized_answer_is_refused_before_reading_it() {
        let target = local_server(|mut stream| async move {
            read_request(&mut stream).await;
            let _ = stream.write_all(&i32::MAX.to_be_bytes()).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        })
        .await;
        let err = call(&target, &ListGroupsRequest::default(), 5, timeouts())
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Read { broker: 5, .. }), "{err}");
    }

    #[tokio::test]
    async fn a_closed_connection_is_a_read_error_and_a_closed_port_a_connect_error() {
        let target = local_server(|mut stream| async move {
            read_request(&mut stream).await;
        })
        .await;
        let err = call(&target, &ListGroupsRequest::default(), 5, timeouts())
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Read { .. }), "{err}");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let closed = Target {
            broker: 9,
            host: "127.0.0.1".into(),
            port,
        };
        let err = call(&closed, &ListGroupsRequest::default(), 5, timeouts())
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Connect { broker: 9, .. }), "{err}");
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")));
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let t = Target {
            broker: 1,
            host: "::1".into(),
            port: 9092,
        };
        assert_eq!(t.address(), "[::1]:9092");
    }
}
