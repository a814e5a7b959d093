//! What the adapter remembers between calls: the summaries the doctor verified (they no longer
//! change unless recovered or regenerated) and the EHR patient of each episode.
//!
//! Both are bounded: when full, the oldest entry is forgotten first. Locks are never held across
//! an `.await`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

use crate::map::codes::SessionStatus;
use crate::wire;

/// Verified summaries kept at most.
pub(crate) const MAX_SUMMARIES: usize = 10_000;

/// Episode patients kept at most.
pub(crate) const MAX_EPISODES: usize = 50_000;

/// A map that forgets its oldest entry when full.
struct Bounded<K, V> {
    entries: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Clone + Eq + Hash, V: Clone> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        self.entries.get(key).cloned()
    }

    fn insert(&mut self, key: K, value: V) {
        if self.entries.insert(key.clone(), value).is_some() {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    fn remove(&mut self, key: &K) -> bool {
        if self.entries.remove(key).is_none() {
            return false;
        }
        self.order.retain(|k| k != key);
        true
    }
}

/// The summaries of verified sessions, by session id.
///
/// A summary is kept only when it says the session is Verified or EmptySummaryVerified and the
/// doctor approved it. Dropping one (a recovery or regeneration started, or the session is no
/// longer verified) also makes stores of fetches that began before the drop fail, so a fetch that
/// raced a regeneration never brings the old summary back.
pub(crate) struct SummaryMemo {
    inner: Mutex<SummaryInner>,
}

struct SummaryInner {
    summaries: Bounded<String, wire::Summary>,
    /// Bumped by every drop.
    epoch: u64,
    /// Sessions whose summary a webhook is fetching.
    fetching: HashSet<String>,
}

impl SummaryMemo {
    pub(crate) fn new() -> Self {
        Self::with_capacity(MAX_SUMMARIES)
    }

    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(SummaryInner {
                summaries: Bounded::new(capacity),
                epoch: 0,
                fetching: HashSet::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SummaryInner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, session_id: &str) -> Option<wire::Summary> {
        self.lock().summaries.get(&session_id.to_owned())
    }

    pub(crate) fn contains(&self, session_id: &str) -> bool {
        self.lock().summaries.entries.contains_key(session_id)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().summaries.entries.len()
    }

    /// The current epoch, to hand back to [`SummaryMemo::store`] after a fetch.
    pub(crate) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Keeps `summary` when it is verified and approved and nothing was dropped since `epoch`.
    pub(crate) fn store(&self, session_id: &str, summary: &wire::Summary, epoch: u64) -> bool {
        let verified = SessionStatus::from_wire(&summary.status).is_some_and(SessionStatus::is_verified);
        if !verified || !summary.doctor_approved {
            return false;
        }
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return false;
        }
        inner.summaries.insert(session_id.to_owned(), summary.clone());
        true
    }

    /// Drops a session's summary (it may change). True when one was kept.
    pub(crate) fn forget(&self, session_id: &str) -> bool {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.summaries.remove(&session_id.to_owned())
    }

    /// Drops a session's summary only when one is kept (a read saw the session no longer verified).
    pub(crate) fn forget_if_kept(&self, session_id: &str) -> bool {
        let mut inner = self.lock();
        if !inner.summaries.entries.contains_key(session_id) {
            return false;
        }
        inner.epoch += 1;
        inner.summaries.remove(&session_id.to_owned())
    }

    /// Starts a webhook's fetch of a session's summary; `None` when it is kept already or being
    /// fetched, else the epoch to store with.
    pub(crate) fn begin_fetch(&self, session_id: &str) -> Option<u64> {
        let mut inner = self.lock();
        if inner.summaries.entries.contains_key(session_id) || !inner.fetching.insert(session_id.to_owned()) {
            return None;
        }
        Some(inner.epoch)
    }

    pub(crate) fn end_fetch(&self, session_id: &str) {
        self.lock().fetching.remove(session_id);
    }
}

/// The EHR patient (native id) of each episode, as read from the episode's Appointment. Only
/// found patients are kept (a failed read is asked again next time).
pub(crate) struct EpisodeMemo {
    inner: Mutex<Bounded<String, String>>,
}

impl EpisodeMemo {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Bounded::new(MAX_EPISODES)),
        }
    }

    pub(crate) fn get(&self, episode: &str) -> Option<String> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&episode.to_owned())
    }

    pub(crate) fn insert(&self, episode: &str, patient: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(episode.to_owned(), patient.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(status: &str, approved: bool) -> wire::Summary {
        wire::Summary {
            status: status.into(),
            doctor_approved: approved,
            ..Default::default()
        }
    }

    #[test]
    fn only_verified_approved_summaries_are_kept() {
        let memo = SummaryMemo::new();
        let e = memo.epoch();
        assert!(!memo.store("a", &summary("Summarized", false), e));
        assert!(!memo.store("a", &summary("Verified", false), e));
        assert!(memo.store("a", &summary("Verified", true), e));
        assert!(memo.store("b", &summary("EmptySummaryVerified", true), e));
        assert_eq!(memo.get("a").unwrap().status, "Verified");
        assert!(memo.forget("a"));
        assert!(!memo.forget("a"));
        assert_eq!(memo.get("a"), None);
    }

    #[test]
    fn a_drop_defeats_fetches_that_began_before_it() {
        let memo = SummaryMemo::new();
        let e = memo.begin_fetch("a").unwrap();
        assert_eq!(memo.begin_fetch("a"), None, "one fetch at a time");
        memo.forget("a");
        assert!(!memo.store("a", &summary("Verified", true), e));
        memo.end_fetch("a");
        let e = memo.begin_fetch("a").unwrap();
        assert!(memo.store("a", &summary("Verified", true), e));
        memo.end_fetch("a");
        assert_eq!(memo.begin_fetch("a"), None, "already kept");
    }

    #[test]
    fn the_memo_is_bounded() {
        let memo = SummaryMemo::with_capacity(3);
        for i in 0..5 {
            let e = memo.epoch();
            assert!(memo.store(&i.to_string(), &summary("Verified", true), e));
        }
        assert_eq!(memo.len(), 3);
        assert!(!memo.contains("0") && !memo.contains("1") && memo.contains("4"));
        let episodes = EpisodeMemo::new();
        episodes.insert("9001", "12");
        assert_eq!(episodes.get("9001").as_deref(), Some("12"));
        assert_eq!(episodes.get("9002"), None);
    }
}
