//! On-disk format of the embedded metadata store: a write-ahead log of committed
//! revisions and an occasional snapshot of the whole key space.
//!
//! WAL record: `length: u32 | crc32c(payload): u32 | payload`, payload =
//! `revision: i64 | change count: u32 | changes`, a change being `1 | key | value |
//! create_revision: i64 | version: i64 | lease: i64` for a put or `2 | key` for a delete
//! (strings and values as `u32 length | bytes`). A record is written and fsynced before
//! its revision is applied, so after a crash the WAL holds every acknowledged revision,
//! possibly followed by one torn record, which replay cuts.
//!
//! Snapshot: `"RNLSNAP1" | revision: i64 | count: u32 | puts | crc32c: u32`, written
//! atomically (temp file, fsync, rename, fsync directory).

use bytes::{Buf, BufMut};

use super::store::{KeyValue, Revision};

const SNAPSHOT_MAGIC: &[u8; 8] = b"RNLSNAP1";
const PUT: u8 = 1;
const DELETE: u8 = 2;

/// One change of a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(KeyValue),
    Delete(String),
}

/// One committed revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub revision: Revision,
    pub changes: Vec<Change>,
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

fn get_bytes(buf: &mut &[u8]) -> Option<Vec<u8>> {
    if buf.remaining() < 4 {
        return None;
    }
    let len = buf.get_u32() as usize;
    if buf.remaining() < len {
        return None;
    }
    let bytes = buf[..len].to_vec();
    buf.advance(len);
    Some(bytes)
}

fn get_i64(buf: &mut &[u8]) -> Option<i64> {
    (buf.remaining() >= 8).then(|| buf.get_i64())
}

fn put_kv(out: &mut Vec<u8>, kv: &KeyValue) {
    put_bytes(out, kv.key.as_bytes());
    put_bytes(out, &kv.value);
    out.put_i64(kv.create_revision);
    out.put_i64(kv.version);
    out.put_i64(kv.lease);
}

fn get_kv(buf: &mut &[u8], mod_revision: Revision) -> Option<KeyValue> {
    let key = String::from_utf8(get_bytes(buf)?).ok()?;
    let value = get_bytes(buf)?;
    Some(KeyValue {
        key,
        value,
        create_revision: get_i64(buf)?,
        version: get_i64(buf)?,
        lease: get_i64(buf)?,
        mod_revision,
    })
}

/// Encodes a record with its length and CRC.
pub fn encode_record(record: &Record) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.put_i64(record.revision);
    payload.put_u32(record.changes.len() as u32);
    for change in &record.changes {
        match change {
            Change::Put(kv) => {
                payload.put_u8(PUT);
                put_kv(&mut payload, kv);
            }
            Change::Delete(key) => {
                payload.put_u8(DELETE);
                put_bytes(&mut payload, key.as_bytes());
            }
        }
    }
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.put_u32(payload.len() as u32);
    out.put_u32(crc32c::crc32c(&payload));
    out.extend_from_slice(&payload);
    out
}

fn decode_payload(mut buf: &[u8]) -> Option<Record> {
    let revision = get_i64(&mut buf)?;
    if buf.remaining() < 4 {
        return None;
    }
    let count = buf.get_u32() as usize;
    // Each change is at least 5 bytes: refuse counts the payload cannot hold.
    if count > buf.remaining() / 5 {
        return None;
    }
    let mut changes = Vec::with_capacity(count);
    for _ in 0..count {
        if buf.remaining() < 1 {
            return None;
        }
        match buf.get_u8() {
            PUT => changes.push(Change::Put(get_kv(&mut buf, revision)?)),
            DELETE => changes.push(Change::Delete(
                String::from_utf8(get_bytes(&mut buf)?).ok()?,
            )),
            _ => return None,
        }
    }
    buf.is_empty().then_some(Record { revision, changes })
}

/// Decodes the records of a WAL; returns them and the length of the valid prefix
/// (anything after it is a torn or corrupt tail).
pub fn decode_records(wal: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while wal.len() - pos >= 8 {
        let mut head = &wal[pos..pos + 8];
        let len = head.get_u32() as usize;
        let crc = head.get_u32();
        let Some(payload) = wal.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Some(record) = decode_payload(payload) else {
            break;
        };
        records.push(record);
        pos += 8 + len;
    }
    (records, pos)
}

/// Encodes a snapshot of every key at `revision`.
pub fn encode_snapshot(revision: Revision, kvs: &[&KeyValue]) -> Vec<u8> {
    let mut out = Vec::from(&SNAPSHOT_MAGIC[..]);
    out.put_i64(revision);
    out.put_u32(kvs.len() as u32);
    for kv in kvs {
        put_kv(&mut out, kv);
        out.put_i64(kv.mod_revision);
    }
    let crc = crc32c::crc32c(&out);
    out.put_u32(crc);
    out
}

/// Decodes a snapshot, or `None` if it is damaged.
pub fn decode_snapshot(raw: &[u8]) -> Option<(Revision, Vec<KeyValue>)> {
    if raw.len() < SNAPSHOT_MAGIC.len() + 16 || &raw[..8] != SNAPSHOT_MAGIC {
        return None;
    }
    let (body, mut tail) = raw.split_at(raw.len() - 4);
    if crc32c::crc32c(body) != tail.get_u32() {
        return None;
    }
    let mut buf = &body[8..];
    let revision = get_i64(&mut buf)?;
    if buf.remaining() < 4 {
        return None;
    }
    let count = buf.get_u32() as usize;
    if count > buf.remaining() / 8 {
        return None;
    }
    let mut kvs = Vec::with_capacity(count);
    for _ in 0..count {
        let mut kv = get_kv(&mut buf, 0)?;
        kv.mod_revision = get_i64(&mut buf)?;
        kvs.push(kv);
    }
    buf.is_empty().then_some((revision, kvs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: b"v".to_vec(),
            create_revision: 3,
            mod_revision: 4,
            version: 2,
            lease: 0,
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_cut() {
        let a = Record {
            revision: 4,
            changes: vec![Change::Put(kv("a")), Change::Delete("b".into())],
        };
        let b = Record {
            revision: 5,
            changes: vec![Change::Delete("a".into())],
        };
        let mut wal = encode_record(&a);
        let first = wal.len();
        wal.extend(encode_record(&b));
        let whole = wal.len();
        let (records, valid) = decode_records(&wal);
        assert_eq!(records, vec![a.clone(), b]);
        assert_eq!(valid, whole);

        wal.truncate(whole - 3);
        let (records, valid) = decode_records(&wal);
        assert_eq!(records, vec![a]);
        assert_eq!(valid, first);
    }

    #[test]
    fn snapshots_round_trip_and_detect_damage() {
        let a = kv("a");
        let mut snap = encode_snapshot(9, &[&a]);
        assert_eq!(decode_snapshot(&snap), Some((9, vec![a])));
        snap[12] ^= 1;
        assert_eq!(decode_snapshot(&snap), None);
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        let mut payload = Vec::new();
        payload.put_i64(1);
        payload.put_u32(u32::MAX);
        let mut wal = Vec::new();
        wal.put_u32(payload.len() as u32);
        wal.put_u32(crc32c::crc32c(&payload));
        wal.extend(payload);
        assert_eq!(decode_records(&wal).1, 0);
    }
}
