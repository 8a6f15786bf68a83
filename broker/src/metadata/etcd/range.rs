//! Paginated prefix reads on etcd.
//!
//! A page is one Range request: from the page's start key to the end of the prefix,
//! `limit` keys, at the pinned revision (0 for the first page, whose answer names the
//! revision the later pages use). tonic refuses a response over 4 MiB, and etcd values
//! may be up to 1.5 MiB (its `--max-request-bytes`), so a page that does not fit is asked
//! again with half the keys; a smaller page is still a page (`next` says what follows).

use etcd_client::{GetOptions, SortOrder, SortTarget};
use tracing::debug;

use super::convert::{
    header_revision, is_compacted, is_future_revision, is_too_large_to_decode, key_value,
    prefix_end,
};
use super::EtcdStore;
use crate::error::{Error, Result};
use crate::metadata::store::{key_after, PageRequest, RangePage};

/// Reads one page of `page.prefix`, halving the page while it is too large to decode.
pub(super) async fn read_page(store: &EtcdStore, page: &PageRequest) -> Result<RangePage> {
    let start = page.start.as_deref().unwrap_or(&page.prefix);
    let mut limit = page.limit.max(1);
    loop {
        let options = GetOptions::new()
            .with_range(prefix_end(&page.prefix))
            .with_limit(limit as i64)
            .with_revision(page.revision)
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        let mut kv = store.client.kv_client();
        match store
            .call("range", kv.get(start.as_bytes(), Some(options)))
            .await
        {
            Ok(response) => {
                let revision = header_revision(response.header(), "range")?;
                let kvs: Vec<_> = response.kvs().iter().map(key_value).collect();
                let next = match kvs.last() {
                    Some(last) if response.more() => Some(key_after(&last.key)),
                    _ => None,
                };
                return Ok(RangePage {
                    kvs,
                    // The first page learns the revision from etcd; later pages keep it.
                    revision: if page.revision > 0 {
                        page.revision
                    } else {
                        revision
                    },
                    next,
                });
            }
            Err(Error::EtcdRequest { source, .. })
                if is_too_large_to_decode(&source) && limit > 1 =>
            {
                debug!(prefix = %page.prefix, limit, "an etcd page was too large to decode; halving it");
                limit /= 2;
            }
            Err(Error::EtcdRequest { source, .. }) if is_compacted(&source) => {
                return Err(Error::RangeCompacted {
                    revision: page.revision,
                })
            }
            Err(Error::EtcdRequest { source, .. }) if is_future_revision(&source) => {
                return Err(Error::RangeFutureRevision {
                    revision: page.revision,
                })
            }
            Err(err) => return Err(err),
        }
    }
}
