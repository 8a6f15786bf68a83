//! Producer ids for idempotent producers, handed out from blocks reserved in the
//! metadata store: a block is claimed by compare-and-set on one counter key before any
//! id from it is used, so ids are never reused across restarts or brokers.

use std::sync::Mutex;

use super::schema::{decode, encode, Keys};
use super::store::{Compare, MetadataStore, Op, Txn};
use crate::error::Result;

/// Ids claimed per store write.
pub const BLOCK_SIZE: i64 = 1000;

#[derive(Debug)]
pub struct ProducerIds {
    keys: Keys,
    /// The unused part of the current block: [next, end).
    block: Mutex<(i64, i64)>,
    /// One claim at a time.
    claiming: tokio::sync::Mutex<()>,
}

impl ProducerIds {
    pub fn new(keys: Keys) -> ProducerIds {
        ProducerIds {
            keys,
            block: Mutex::new((0, 0)),
            claiming: tokio::sync::Mutex::new(()),
        }
    }

    fn take(&self) -> Option<i64> {
        let mut block = self.block.lock().unwrap_or_else(|e| e.into_inner());
        (block.0 < block.1).then(|| {
            block.0 += 1;
            block.0 - 1
        })
    }

    /// A producer id never handed out before.
    pub async fn next(&self, store: &dyn MetadataStore) -> Result<i64> {
        if let Some(id) = self.take() {
            return Ok(id);
        }
        let _claiming = self.claiming.lock().await;
        if let Some(id) = self.take() {
            return Ok(id);
        }
        let key = self.keys.producer_id_block();
        loop {
            let current = store.get(&key).await?;
            let (start, guard) = match &current {
                Some(kv) => (
                    decode::<i64>("producer id block", &key, &kv.value)?,
                    Compare::mod_revision(key.clone(), kv.mod_revision),
                ),
                None => (0, Compare::absent(key.clone())),
            };
            let end = start + BLOCK_SIZE;
            let txn = Txn::when(vec![guard]).and_then(vec![Op::put(
                key.clone(),
                encode("producer id block", &key, &end)?,
            )]);
            if store.txn(txn).await?.succeeded {
                *self.block.lock().unwrap_or_else(|e| e.into_inner()) = (start + 1, end);
                return Ok(start);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::RealFs;
    use crate::metadata::embedded::EmbeddedStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn ids_are_unique_and_never_reused_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::new("/t/");
        let store = EmbeddedStore::open(Arc::new(RealFs), dir.path()).unwrap();
        let ids = ProducerIds::new(keys.clone());
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2500 {
            assert!(seen.insert(ids.next(store.as_ref()).await.unwrap()));
        }
        store.close();
        drop(store);
        let store = EmbeddedStore::open(Arc::new(RealFs), dir.path()).unwrap();
        let ids = ProducerIds::new(keys);
        let after = ids.next(store.as_ref()).await.unwrap();
        assert!(
            after > *seen.iter().max().unwrap(),
            "a restart starts a new block"
        );
    }
}
