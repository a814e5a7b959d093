//! Whole search answers, cached at the gateway level: the Bundle bytes one canonical search page
//! rendered to, for the callers who all see the same page.
//!
//! The sources' caches below already hold the vendor pages, but a hit there still evaluates the
//! search on every resource, checks each against the caller's grant and writes the Bundle. Here the
//! written Bundle is kept, keyed by a SHA-256 digest of the search's canonical parameters, its
//! position (first page or a paging link's), `_pretty`, and the sum of the sources' change
//! generations, so any change a source's cache learns of (a vendor webhook, a write through the
//! gateway, another replica's event, a clear) makes every page cached before it unreachable.
//!
//! Only pages every caller who may ask would see alike are kept: the caller sees every record of the
//! type (`AccessPolicy::sees_all`: no compartment, no constraint), nothing is redacted for them (not
//! patient-facing), the page includes nothing (`_include`/`_revinclude` reach other types), and it
//! is whole (no source failed, nothing was served stale). They live for half the sources' search
//! TTL, so a page is never older than one and a half times what the sources' caches allow.

use std::sync::Arc;
use std::time::Duration;

use adapter::ResourceType;
use bytes::Bytes;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::cache::Cached;
use crate::paging::Position;

/// The gateway's cache of rendered search pages.
pub struct PageCache {
    pages: Cache<[u8; 32], Bytes>,
    sources: Vec<Arc<Cached>>,
}

impl std::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCache")
            .field("entries", &self.pages.entry_count())
            .finish()
    }
}

impl PageCache {
    /// Pages of at most `max_bytes` together, each kept for `ttl`, over the sources' caches.
    pub fn new(sources: Vec<Arc<Cached>>, max_bytes: u64, ttl: Duration) -> Self {
        let pages = Cache::builder()
            .max_capacity(max_bytes.max(1))
            .weigher(|_: &[u8; 32], v: &Bytes| u32::try_from(v.len() + 64).unwrap_or(u32::MAX))
            .time_to_live(ttl)
            .build();
        Self { pages, sources }
    }

    /// The key of one search page as the sources stand now; taken before the page is computed, so a
    /// change during the computation leaves what it stores unreachable.
    pub fn key(&self, t: ResourceType, query: &[(String, String)], position: &Position, pretty: bool) -> [u8; 32] {
        let generation: u64 = self.sources.iter().map(|c| c.changes()).fold(0, u64::wrapping_add);
        let mut h = Sha256::new();
        h.update(b"fhir-gateway page v1\0");
        h.update(t.as_str().as_bytes());
        h.update([0, u8::from(pretty)]);
        h.update(generation.to_be_bytes());
        h.update((query.len() as u64).to_be_bytes());
        for (name, value) in query {
            for part in [name, value] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part.as_bytes());
            }
        }
        h.update(serde_json::to_vec(position).unwrap_or_default());
        h.finalize().into()
    }

    pub async fn get(&self, key: &[u8; 32]) -> Option<Bytes> {
        self.pages.get(key).await
    }

    pub async fn put(&self, key: [u8; 32], page: Bytes) {
        self.pages.insert(key, page).await;
    }
}
