//! From a request frame's bytes to a header and a body ready to decode, and from a
//! response body to the bytes on the wire.
//!
//! Rules, as Kafka applies them: an unknown API key, an unsupported version (including
//! Produce v0–v2, which are advertised but refused) or a header that does not decode
//! closes the connection; an ApiVersions request above the advertised maximum is
//! answered in v0 with UNSUPPORTED_VERSION and the full key list (KIP-511), so the
//! client can retry with a version both sides know. The body is decoded by the handler's
//! dispatch, and trailing bytes after it are refused too.

use bytes::{Buf, BufMut, Bytes};
use proto_kafka::error::ProtoError;
use proto_kafka::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use proto_kafka::protocol::{decode_request_header_from_buffer, Encodable, SegmentedBuf};

use super::api_versions::{advertised, api_name, support};
use crate::error::{Error, Result};

/// A request frame sorted into what the connection must do with it.
#[derive(Debug)]
pub enum Inbound {
    Request {
        header: RequestHeader,
        body: Bytes,
    },
    /// ApiVersions at a version above the table: answer v0 with UNSUPPORTED_VERSION.
    ApiVersionsFallback {
        correlation_id: i32,
    },
}

/// Why a frame closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    TooShort(usize),
    UnknownApi(i16),
    UnsupportedVersion {
        api: i16,
        version: i16,
    },
    BadHeader(String),
    BadBody {
        api: i16,
        version: i16,
        reason: String,
    },
}

impl Rejection {
    /// A static reason for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Rejection::TooShort(_) => "too_short",
            Rejection::UnknownApi(_) => "unknown_api",
            Rejection::UnsupportedVersion { .. } => "unsupported_version",
            Rejection::BadHeader(_) => "bad_header",
            Rejection::BadBody { .. } => "bad_body",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::TooShort(n) => write!(f, "a {n}-byte frame cannot hold a request header"),
            Rejection::UnknownApi(k) => write!(f, "API key {k} is not supported"),
            Rejection::UnsupportedVersion { api, version } => {
                write!(f, "{} v{version} is not supported", api_name(*api))
            }
            Rejection::BadHeader(reason) => write!(f, "request header does not decode: {reason}"),
            Rejection::BadBody {
                api,
                version,
                reason,
            } => write!(
                f,
                "{} v{version} body does not decode: {reason}",
                api_name(*api)
            ),
        }
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Sorts a frame (without its length prefix).
pub fn classify(frame: Bytes) -> Result<Inbound, Rejection> {
    if frame.len() < 8 {
        return Err(Rejection::TooShort(frame.len()));
    }
    let api_key = be_i16(&frame, 0);
    let version = be_i16(&frame, 2);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Some(support) = support(api_key) else {
        return Err(Rejection::UnknownApi(api_key));
    };
    if support.key == ApiKey::ApiVersions && version > support.max {
        return Ok(Inbound::ApiVersionsFallback { correlation_id });
    }
    if version < support.min_accepted || version > support.max {
        return Err(Rejection::UnsupportedVersion {
            api: api_key,
            version,
        });
    }
    let mut body = frame;
    let header = decode_request_header_from_buffer(&mut body)
        .map_err(|e| Rejection::BadHeader(e.to_string()))?;
    Ok(Inbound::Request { header, body })
}

/// Encodes a response: length prefix, response header, body. Byte fields are not copied:
/// a Fetch response's record batches stay in the buffers they were read into and are
/// written from there (one copy of the data per response, where encoding into one buffer
/// held two, `fetch.max.bytes` each).
pub fn encode_response<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<SegmentedBuf> {
    let fail = |source| Error::EncodeResponse {
        api: api_name(api as i16),
        version,
        source,
    };
    let mut buf = SegmentedBuf::new();
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api.response_header_version(version))
        .map_err(fail)?;
    body.encode(&mut buf, version).map_err(fail)?;
    let len = i32::try_from(buf.remaining() - 4).map_err(|_| {
        fail(ProtoError::FieldTooLarge {
            field: "response",
            size: buf.remaining(),
        })
    })?;
    buf.patch_i32(0, len).map_err(fail)?;
    Ok(buf)
}

/// The v0 answer to an ApiVersions request whose version is too new.
pub fn api_versions_fallback(correlation_id: i32) -> Result<SegmentedBuf> {
    let body = ApiVersionsResponse::default()
        .with_error_code(proto_kafka::error::ResponseError::UnsupportedVersion.code())
        .with_api_keys(advertised());
    encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use proto_kafka::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use proto_kafka::messages::{ApiVersionsRequest, FetchResponse, TopicName};
    use proto_kafka::protocol::{encode_request_header_into_buffer, Decodable, StrBytes};

    fn frame(api: ApiKey, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        encode_request_header_into_buffer(&mut buf, &header).unwrap();
        ApiVersionsRequest::default()
            .encode(&mut buf, version.min(4))
            .unwrap();
        buf.freeze()
    }

    #[test]
    fn known_requests_are_sorted_with_their_header() {
        match classify(frame(ApiKey::ApiVersions, 3)).unwrap() {
            Inbound::Request { header, .. } => {
                assert_eq!(header.correlation_id, 7);
                assert_eq!(header.request_api_version, 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_too_new_api_versions_gets_the_v0_fallback() {
        let mut raw = BytesMut::new();
        raw.put_i16(ApiKey::ApiVersions as i16);
        raw.put_i16(9);
        raw.put_i32(42);
        raw.put_slice(b"garbage the broker cannot decode");
        match classify(raw.freeze()).unwrap() {
            Inbound::ApiVersionsFallback { correlation_id } => assert_eq!(correlation_id, 42),
            other => panic!("{other:?}"),
        }
        let mut response = api_versions_fallback(42).unwrap();
        let mut body = response.copy_to_bytes(response.remaining()).slice(8..);
        let decoded = ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert_eq!(decoded.error_code, 35);
        assert!(!decoded.api_keys.is_empty());
    }

    #[test]
    fn a_fetch_response_carries_its_records_uncopied_and_encodes_as_one_buffer_would() {
        let records = Bytes::from(vec![7u8; 100_000]);
        let partition = PartitionData::default()
            .with_partition_index(3)
            .with_high_watermark(10)
            .with_records(Some(records.clone()));
        let topic = FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![partition]);
        let body = FetchResponse::default().with_responses(vec![topic]);
        for version in [4, 11, 12, 16] {
            let mut wire = encode_response(ApiKey::Fetch, version, 9, &body).unwrap();
            let mut slices = [std::io::IoSlice::new(&[]); 8];
            let n = wire.chunks_vectored(&mut slices);
            assert!(
                slices[..n].iter().any(|s| s.as_ptr() == records.as_ptr()),
                "v{version}: the records were copied"
            );
            let mut expected = BytesMut::new();
            expected.put_i32(0);
            ResponseHeader::default()
                .with_correlation_id(9)
                .encode(
                    &mut expected,
                    ApiKey::Fetch.response_header_version(version),
                )
                .unwrap();
            body.encode(&mut expected, version).unwrap();
            let len = (expected.len() - 4) as i32;
            expected[..4].copy_from_slice(&len.to_be_bytes());
            assert_eq!(
                wire.copy_to_bytes(wire.remaining()),
                expected.freeze(),
                "v{version}"
            );
        }
    }

    #[test]
    fn unknown_keys_old_produce_and_short_frames_are_rejected() {
        let mut raw = BytesMut::new();
        raw.put_i16(9999);
        raw.put_i16(0);
        raw.put_i32(1);
        assert_eq!(
            classify(raw.freeze()).unwrap_err(),
            Rejection::UnknownApi(9999)
        );
        let mut raw = BytesMut::new();
        raw.put_i16(ApiKey::Produce as i16);
        raw.put_i16(2);
        raw.put_i32(1);
        raw.put_i16(-1);
        assert!(matches!(
            classify(raw.freeze()).unwrap_err(),
            Rejection::UnsupportedVersion { version: 2, .. }
        ));
        assert_eq!(
            classify(Bytes::from_static(b"abc")).unwrap_err(),
            Rejection::TooShort(3)
        );
    }
}
