//! The simulators' webhook delivery bookkeeping: a bounded log of what was sent (or not) and a count
//! of deliveries still under way, so tests can wait until every queued hook was attempted.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::lock;

/// A bounded log of deliveries and the number still pending.
pub(crate) struct DeliveryLog<T> {
    entries: Mutex<VecDeque<T>>,
    capacity: usize,
    pending: watch::Sender<usize>,
}

impl<T: Clone> DeliveryLog<T> {
    /// A log keeping the newest `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            capacity,
            pending: watch::channel(0usize).0,
        }
    }

    /// Records a delivery (dropping the oldest entry when full).
    pub(crate) fn record(&self, entry: T) {
        let mut entries = lock(&self.entries);
        if entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Every entry, oldest first.
    pub(crate) fn entries(&self) -> Vec<T> {
        lock(&self.entries).iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        lock(&self.entries).clear();
    }

    /// One more delivery is under way.
    pub(crate) fn queued(&self) {
        self.pending.send_modify(|n| *n += 1);
    }

    /// A delivery was attempted to the end (delivered, failed, or given up on).
    pub(crate) fn done(&self) {
        self.pending.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Waits until nothing is pending; `false` when `timeout` passed first.
    pub(crate) async fn wait_idle(&self, timeout: Duration) -> bool {
        let mut pending = self.pending.subscribe();
        matches!(
            tokio::time::timeout(timeout, pending.wait_for(|n| *n == 0)).await,
            Ok(Ok(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_and_waits_for_pending() {
        let log = DeliveryLog::new(2);
        for i in 0..3 {
            log.record(i);
        }
        assert_eq!(log.entries(), [1, 2]);
        log.queued();
        assert!(!log.wait_idle(Duration::from_millis(20)).await);
        log.done();
        assert!(log.wait_idle(Duration::from_millis(20)).await);
        log.clear();
        assert!(log.entries().is_empty());
    }
}
