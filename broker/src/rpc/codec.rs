//! The protobuf codec of the broker's gRPC services: prost, refusing a message that
//! carries fields this version does not know. Prost would drop them silently, and a
//! caller that believes it set something the broker ignored is worse off than one told
//! no. A message is taken as decoded only when it encodes back to as many bytes as came
//! in: prost encodes canonically, so any other length means fields were dropped (or the
//! sender's encoding is not canonical, which is refused too).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

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
        use bytes::Buf;
        let received = buf.remaining();
        let message = U::decode(buf).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let understood = message.encoded_len();
        if understood != received {
            REFUSED_UNKNOWN_FIELDS.fetch_add(1, Ordering::Relaxed);
            return Err(Status::invalid_argument(format!(
                "the message has {} bytes this broker does not understand (fields of a newer version?); refusing it rather than ignoring them",
                received.saturating_sub(understood)
            )));
        }
        Ok(Some(message))
    }
}

/// Messages refused because they carried fields this version does not know (counted per
/// process: the generated service builds its codec with `Default`, so no per-broker
/// counter can travel with it).
pub fn refused_unknown_fields() -> u64 {
    REFUSED_UNKNOWN_FIELDS.load(Ordering::Relaxed)
}
