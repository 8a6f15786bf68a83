//! The protobuf codec of the broker's gRPC services: prost, refusing a request that
//! carries fields this version does not know. Prost would drop them silently, and a
//! caller that believes it set something the broker ignored is worse off than one told
//! no. The top-level field numbers that came in are compared with those of the decoded
//! message encoded again; a number only the sender had is a field this version lacks.
//! Unknown fields inside nested messages are not seen (that would need the schema at
//! run time). Answers are decoded leniently (see `StrictDecoder`).

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Buf;
use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

/// Messages refused for unknown fields, for `/metrics`.
static REFUSED_UNKNOWN_FIELDS: AtomicU64 = AtomicU64::new(0);

/// [`tonic_prost::ProstCodec`] with the strict decoder.
#[derive(Debug, Clone)]
pub struct StrictCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        StrictCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder { _pd: PhantomData }
    }
}

/// Decodes `U` and refuses unknown (dropped) fields.
#[derive(Debug, Clone)]
pub struct StrictDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let received = buf.copy_to_bytes(buf.remaining());
        let message =
            U::decode(received.clone()).map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Only what callers send is checked: an answer from a newer broker (a rolling
        // upgrade) may carry fields this one does not know, and those it may ignore.
        if !std::any::type_name::<U>().ends_with("Request") {
            return Ok(Some(message));
        }
        let unknown = unknown_fields::<U>(&received, &message.encode_to_vec())
            .ok_or_else(|| Status::invalid_argument("the message is not valid protobuf"))?;
        if !unknown.is_empty() {
            REFUSED_UNKNOWN_FIELDS.fetch_add(1, Ordering::Relaxed);
            return Err(Status::invalid_argument(format!(
                "the request has fields {unknown:?} this broker does not know (a newer version?); refusing it rather than ignoring them"
            )));
        }
        Ok(Some(message))
    }
}

/// The top-level field numbers in `received` that `U` does not know. A number missing
/// from the re-encoded message is either unknown or a known field holding its default
/// (prost leaves those out; Go and C++ write a map entry's default key or value, and
/// may write an explicit default), so each such number is probed: the field alone,
/// with a value that is not the default, decoded as `U` and encoded again keeps its
/// number only if `U` knows it. `None` when `received` is not protobuf.
fn unknown_fields<U: Message + Default>(
    received: &[u8],
    understood: &[u8],
) -> Option<BTreeSet<u32>> {
    let sent = fields(received)?;
    let kept = fields(understood)?;
    let mut unknown = BTreeSet::new();
    for (number, raw) in sent {
        if kept.contains_key(&number) || knows::<U>(number, raw) {
            continue;
        }
        unknown.insert(number);
    }
    Some(unknown)
}

/// Whether `U` keeps field `number` when it holds a value that is not its default.
fn knows<U: Message + Default>(number: u32, raw: &[u8]) -> bool {
    let wire = raw.first().map_or(0, |b| b & 7);
    let mut probe = Vec::new();
    prost::encoding::encode_key(number, wire_type(wire), &mut probe);
    match wire {
        0 => probe.push(1),
        1 => probe.extend_from_slice(&1u64.to_le_bytes()),
        5 => probe.extend_from_slice(&1u32.to_le_bytes()),
        // Length-delimited: the sender's own value (a message, a string, a map entry).
        _ => probe = raw.to_vec(),
    }
    U::decode(probe.as_slice())
        .is_ok_and(|m| fields(&m.encode_to_vec()).is_some_and(|f| f.contains_key(&number)))
}

fn wire_type(wire: u8) -> prost::encoding::WireType {
    use prost::encoding::WireType;
    match wire {
        0 => WireType::Varint,
        1 => WireType::SixtyFourBit,
        5 => WireType::ThirtyTwoBit,
        _ => WireType::LengthDelimited,
    }
}

/// Each top-level field number with the raw bytes (key and value) of its first
/// occurrence: a walk of the wire format, no schema.
fn fields(mut bytes: &[u8]) -> Option<BTreeMap<u32, &[u8]>> {
    let mut found = BTreeMap::new();
    while !bytes.is_empty() {
        let start = bytes;
        let key = varint(&mut bytes)?;
        let number = u32::try_from(key >> 3).ok()?;
        let skip = match key & 7 {
            0 => {
                varint(&mut bytes)?;
                0
            }
            1 => 8,
            2 => usize::try_from(varint(&mut bytes)?).ok()?,
            5 => 4,
            // Groups (3, 4) are not proto3; anything else is not protobuf.
            _ => return None,
        };
        bytes = bytes.get(skip..)?;
        let used = start.len() - bytes.len();
        found.entry(number).or_insert(&start[..used]);
    }
    Some(found)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Messages refused because they carried fields this version does not know (counted per
/// process: the generated service builds its codec with `Default`, so no per-broker
/// counter can travel with it).
pub fn refused_unknown_fields() -> u64 {
    REFUSED_UNKNOWN_FIELDS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::proto;

    fn request() -> proto::CreateTopicsRequest {
        proto::CreateTopicsRequest {
            topics: vec![proto::TopicSpec {
                name: "t".into(),
                partitions: 1,
                replication_factor: 1,
                configs: [("cleanup.policy".to_string(), String::new())].into(),
                assignments: Default::default(),
            }],
            validate_only: false,
            forwarded: None,
        }
    }

    #[test]
    fn a_field_this_version_lacks_is_found() {
        let mut bytes = request().encode_to_vec();
        // Field 99, a string: what a newer caller might add.
        prost::encoding::string::encode(99, &"spread".to_string(), &mut bytes);
        let decoded = proto::CreateTopicsRequest::decode(bytes.as_slice()).unwrap();
        let unknown =
            unknown_fields::<proto::CreateTopicsRequest>(&bytes, &decoded.encode_to_vec());
        assert_eq!(unknown, Some(BTreeSet::from([99])));
    }

    #[test]
    fn explicit_defaults_written_by_other_encoders_are_not_unknown() {
        let mut bytes = request().encode_to_vec();
        // validate_only = false written out, as an encoder with explicit presence may.
        prost::encoding::bool::encode(2, &false, &mut bytes);
        let decoded = proto::CreateTopicsRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded, request());
        let unknown =
            unknown_fields::<proto::CreateTopicsRequest>(&bytes, &decoded.encode_to_vec());
        assert_eq!(unknown, Some(BTreeSet::new()));
    }

    #[test]
    fn garbage_is_not_protobuf() {
        assert_eq!(
            unknown_fields::<proto::CreateTopicsRequest>(&[0x0b, 0xff], &[]),
            None
        );
    }
}
