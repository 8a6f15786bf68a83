//! Fuzzes request decoding: any frame must decode or be rejected, never panic or
//! allocate beyond its size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = runnel_broker::protocol::request::decode(bytes::Bytes::copy_from_slice(data));
});
