//! What replicas sharing one store tell each other beyond the authorization server's state (which
//! `smart-auth` keeps itself): vendor change events (a webhook received by one replica evicts every
//! replica's cache) and the vendors' rate budgets (counted together, since a vendor's limit is per
//! account, not per process).

use std::sync::Arc;

use adapter::resilience::SharedBudgets;
use adapter::{AdapterError, ChangeEvent, ChangeKind, ResourceType};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::sources::Sources;

/// The store topic change events travel on.
pub const CHANGES: &str = "cache.change";

/// How long a change event is kept for replicas to hear of (they poll every half second).
const CHANGE_TTL_SECS: i64 = 60;

/// A change event as stored.
#[derive(Serialize, Deserialize)]
struct WireChange {
    source: String,
    account: String,
    resource_type: String,
    native_id: String,
    kind: String,
}

fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Created => "created",
        ChangeKind::Updated => "updated",
        ChangeKind::Deleted => "deleted",
    }
}

/// The stored form of a change event.
fn encode(event: &ChangeEvent) -> String {
    serde_json::to_string(&WireChange {
        source: event.source.to_owned(),
        account: event.account.clone(),
        resource_type: event.resource_type.as_str().to_owned(),
        native_id: event.native_id.clone(),
        kind: kind_name(event.kind).to_owned(),
    })
    .unwrap_or_default()
}

/// A stored change event for one of `sources` (events of sources this replica does not serve
/// are ignored).
fn decode(payload: &str, sources: &Sources) -> Option<ChangeEvent> {
    let wire: WireChange = serde_json::from_str(payload).ok()?;
    let source = sources.by_source(&wire.source)?.source();
    let kind = match wire.kind.as_str() {
        "created" => ChangeKind::Created,
        "updated" => ChangeKind::Updated,
        "deleted" => ChangeKind::Deleted,
        _ => return None,
    };
    Some(ChangeEvent {
        source,
        account: wire.account,
        resource_type: wire.resource_type.parse::<ResourceType>().ok()?,
        native_id: wire.native_id,
        kind,
    })
}

/// Announces a change: through the store when there is one (every replica's follower, this one's
/// at once, puts it on its change channel), else straight on this process's channel. A store that
/// cannot be written is logged, and the change still applies here.
pub async fn announce(store: Option<&store::Store>, changes: &broadcast::Sender<ChangeEvent>, event: ChangeEvent) {
    if let Some(store) = store {
        match store
            .publish(CHANGES, &encode(&event), store::now() + CHANGE_TTL_SECS)
            .await
        {
            Ok(_) => return,
            Err(e) => tracing::error!(error = %e, "a change event could not reach the other replicas"),
        }
    }
    let _ = changes.send(event);
}

/// The caches' [`crate::cache::Announce`]: a write through one replica's cache is published as a
/// change event, on which the other replicas evict the resource too (the writer already has). The
/// publication runs off the write's path; a store that cannot be written is logged.
pub fn write_announcer(store: &store::Store) -> crate::cache::Announce {
    let store = store.clone();
    Arc::new(move |event: ChangeEvent| {
        let store = store.clone();
        tokio::spawn(async move {
            if let Err(e) = store
                .publish(CHANGES, &encode(&event), store::now() + CHANGE_TTL_SECS)
                .await
            {
                tracing::error!(error = %e, "a write's change could not reach the other replicas");
            }
        });
    })
}

/// Puts every change event any replica announces on this process's change channel, until the
/// channel is gone.
pub async fn follow_changes(store: store::Store, changes: broadcast::Sender<ChangeEvent>, sources: Sources) {
    let mut feed = store.follow();
    loop {
        match feed.recv().await {
            Ok(event) if event.topic == CHANGES => {
                if let Some(change) = decode(&event.payload, &sources)
                    && changes.send(change).is_err()
                    && changes.receiver_count() == 0
                {
                    // Nothing listens (no cache): nothing to do, but keep following.
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "change events from other replicas were lost");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Deletes the store's expired records, events and budget windows (codes, refresh families,
/// throttle counters, revocations past their token's expiry…), at start and hourly. Every replica
/// sweeps; a sweep deletes only what has expired, so they cannot disagree.
pub async fn sweep_expired(store: store::Store) {
    loop {
        match store.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "expired store entries deleted"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired store entries failed; trying again later"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

/// The vendors' rate budgets in the store.
#[derive(Debug, Clone)]
pub struct StoreBudgets(pub store::Store);

#[async_trait::async_trait]
impl SharedBudgets for StoreBudgets {
    async fn take(&self, name: &str, window: i64, limit: u32) -> Result<bool, AdapterError> {
        self.0
            .budget_take(name, window, limit)
            .await
            .map_err(|e| AdapterError::TokenStore { reason: e.to_string() })
    }
}

/// A shared handle for adapters.
pub fn shared_budgets(store: &store::Store) -> Arc<dyn SharedBudgets> {
    Arc::new(StoreBudgets(store.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_events_round_trip_through_the_store_form() {
        let sources = crate::run::reference_sources().unwrap();
        let event = ChangeEvent {
            source: "drchrono",
            account: "acct".into(),
            resource_type: ResourceType::Patient,
            native_id: "17".into(),
            kind: ChangeKind::Updated,
        };
        assert_eq!(decode(&encode(&event), &sources), Some(event));
        let unknown = encode(&ChangeEvent {
            source: "elsewhere",
            account: "a".into(),
            resource_type: ResourceType::Patient,
            native_id: "1".into(),
            kind: ChangeKind::Deleted,
        });
        assert_eq!(decode(&unknown, &sources), None);
        assert_eq!(decode("not json", &sources), None);
    }
}
