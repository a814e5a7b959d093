//! argon2id password and client-secret hashes (PHC strings).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Hashes a password or client secret into an argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`)
/// with a random salt, for configuration tooling and the demo users and clients. Returns an empty
/// string (which every setting refuses) only if the system has no randomness to salt with.
pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Checks that `phc` is an argon2 PHC string.
pub(crate) fn check_phc(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|_| "not a PHC password hash string".to_owned())?;
    let alg = parsed.algorithm.as_str();
    if !["argon2id", "argon2i", "argon2d"].contains(&alg) {
        return Err(format!("hash algorithm '{alg}' is not argon2"));
    }
    Ok(())
}

/// True when `password` matches `phc` (CPU-heavy: call from a blocking thread).
pub(crate) fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Callers that may queue for a slot, per slot.
const WAITERS_PER_SLOT: usize = 4;
/// The most slots a setting may ask for.
pub(crate) const MAX_SLOTS: usize = 256;

/// A password check found every slot taken and none freed in time: the caller answers 503 with
/// `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are in progress")]
pub(crate) struct Busy;

/// The bounded pool every Argon2 check goes through (about one per CPU, each holding some 19 MiB
/// while it runs), so a flood of wrong secrets or unknown names costs bounded memory and CPU. A
/// check that finds every slot taken waits a short while in a short queue, then gives up with
/// [`Busy`].
pub(crate) struct PasswordChecks {
    /// The threads the checks run on, one per slot for the life of the pool: Argon2 takes 19 MiB
    /// a check, and the allocator keeps what a thread freed for that thread, so checks spread over
    /// the runtime's growing blocking pool would hold that much per thread ever used. `None` when
    /// no thread could be started (the checks then run on the blocking pool).
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    slots: Arc<Semaphore>,
    /// Callers waiting for a slot now.
    waiting: AtomicUsize,
    max_waiting: usize,
    wait: Duration,
}

/// A place in the wait queue, given back on drop.
/// One check, with its slot, for a worker thread.
type Job = Box<dyn FnOnce() + Send>;

struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordChecks {
    /// `slots` checks at once (at least one), waiting at most `wait` for a slot.
    pub(crate) fn new(slots: usize, wait: Duration) -> Self {
        let slots = slots.clamp(1, MAX_SLOTS);
        let (send, receive) = std::sync::mpsc::channel::<Job>();
        let receive = Arc::new(std::sync::Mutex::new(receive));
        let started = (0..slots)
            .filter(|i| {
                let receive = Arc::clone(&receive);
                std::thread::Builder::new()
                    .name(format!("password-check-{i}"))
                    .spawn(move || {
                        // Ends when the pool (the sender) is dropped.
                        loop {
                            let job = match receive.lock() {
                                Ok(r) => r.recv(),
                                Err(_) => return,
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    })
                    .is_ok()
            })
            .count();
        Self {
            jobs: (started > 0).then_some(send),
            slots: Arc::new(Semaphore::new(slots)),
            waiting: AtomicUsize::new(0),
            max_waiting: slots * WAITERS_PER_SLOT,
            wait,
        }
    }

    /// A slot, at once or after a short wait in a bounded queue.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, Busy> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        if self.wait.is_zero() {
            return Err(Busy);
        }
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _queued = Queued(&self.waiting);
        if before >= self.max_waiting {
            return Err(Busy);
        }
        match tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Busy),
        }
    }

    /// Verifies on the blocking pool so the async runtime keeps serving. The slot is held by the
    /// blocking task itself, so a caller that goes away does not free it before the work ends.
    /// Runs `check` on a worker thread, holding `permit` until it is done (also when the caller
    /// stops waiting).
    async fn run<T: Send + 'static>(
        &self,
        permit: OwnedSemaphorePermit,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = check();
            // Free the slot before answering, so the caller's next check finds it free.
            drop(permit);
            let _ = done.send(result);
        });
        match &self.jobs {
            Some(jobs) => {
                jobs.send(job).ok()?;
            }
            None => {
                tokio::task::spawn_blocking(job);
            }
        }
        answer.await.ok()
    }

    pub(crate) async fn verify_password_async(&self, password: String, phc: String) -> Result<bool, Busy> {
        let permit = self.slot().await?;
        Ok(self
            .run(permit, move || verify_password(&password, &phc))
            .await
            .unwrap_or(false))
    }

    /// Spends the time of one verification (unknown user names take as long as known ones).
    pub(crate) async fn burn_verification(&self, password: String) -> Result<(), Busy> {
        static DUMMY: OnceLock<String> = OnceLock::new();
        let permit = self.slot().await?;
        self.run(permit, move || {
            let phc = DUMMY.get_or_init(|| hash_password("dummy-password-for-timing"));
            verify_password(&password, phc)
        })
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_refuse() {
        let h = hash_password("s3cret");
        assert!(h.starts_with("$argon2id$"));
        assert!(check_phc(&h).is_ok());
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret!", &h));
        assert!(!verify_password("s3cret", "not a hash"));
        assert!(check_phc("plain-text").is_err());
        assert!(check_phc("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
    }

    #[tokio::test]
    async fn a_full_pool_answers_busy_and_frees_its_slots() {
        let checks = PasswordChecks::new(1, Duration::from_millis(20));
        let held = checks.slot().await.unwrap();
        assert_eq!(
            checks.verify_password_async("x".into(), "not a hash".into()).await,
            Err(Busy)
        );
        assert_eq!(checks.burn_verification("x".into()).await, Err(Busy));
        assert_eq!(
            checks.waiting.load(Ordering::Acquire),
            0,
            "the queue places are given back"
        );
        drop(held);
        assert_eq!(
            checks.verify_password_async("x".into(), "not a hash".into()).await,
            Ok(false)
        );
        assert_eq!(
            checks.slots.available_permits(),
            1,
            "the blocking task gave its slot back"
        );
        let refuse_at_once = PasswordChecks::new(1, Duration::ZERO);
        let _held = refuse_at_once.slot().await.unwrap();
        assert_eq!(refuse_at_once.slot().await.err(), Some(Busy));
    }

    #[tokio::test]
    async fn the_wait_queue_is_bounded_and_a_freed_slot_goes_to_a_waiter() {
        let checks = Arc::new(PasswordChecks::new(1, Duration::from_secs(30)));
        let held = checks.slot().await.unwrap();
        let waiters: Vec<_> = (0..WAITERS_PER_SLOT)
            .map(|_| {
                let checks = Arc::clone(&checks);
                tokio::spawn(async move { checks.slot().await.map(drop) })
            })
            .collect();
        while checks.waiting.load(Ordering::Acquire) < WAITERS_PER_SLOT {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The queue is full: the next caller is refused without waiting.
        let next = tokio::time::timeout(Duration::from_secs(5), checks.slot()).await;
        assert_eq!(next.ok().and_then(|r| r.err()), Some(Busy));
        drop(held);
        for waiter in waiters {
            assert_eq!(waiter.await.ok(), Some(Ok(())), "each waiter gets the slot in turn");
        }
        assert_eq!(checks.waiting.load(Ordering::Acquire), 0);
    }
}
