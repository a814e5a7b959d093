//! Webhooks as DrChrono sends them (`API Webhooks` in the vendor doc):
//!
//! - verification ("Verify webhook"): a `GET {callback}?msg=…` that must be answered with a 200
//!   JSON `{"secret_token": hex(HMAC-SHA256(secret token, msg))}`; hooks go only to a callback URL
//!   that passed it (a changed URL needs it again);
//! - deliveries: a `POST` with `X-drchrono-event` (the event or `PING`), `X-drchrono-signature`
//!   (the webhook's secret token itself) and `X-drchrono-delivery` (the delivery's id), and the
//!   body `{"receiver": the webhook, "object": the object in the API's serialization}`.
//!
//! Hooks are queued and sent in order by one tokio task, once each (DrChrono's redeliveries come
//! hours later); every delivery and verification is logged.

use crate::delivery::DeliveryLog;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use data_encoding::HEXLOWER;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::{DrChronoSimConfig, lock};

const LOG_CAPACITY: usize = 10_000;

/// The event name a verification is logged under.
pub const VERIFICATION: &str = "VERIFY";

/// The id of the simulated webhook (the `receiver` of every hook).
const WEBHOOK_ID: u64 = 1;

/// How long one verification or delivery may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What became of one verification or delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The callback URL answered the `msg` verification correctly.
    Verified,
    /// The callback URL answered the verification wrongly or not at all.
    VerificationFailed,
    /// The hook was answered with a 2xx.
    Delivered,
    /// The hook got no answer or a status other than 2xx.
    Failed,
    /// Not sent: the callback URL has not passed verification.
    Refused,
    /// Not sent: no callback URL is configured (or the simulator was shut down).
    NotConfigured,
}

/// One entry of [`super::SimHandle::webhook_log`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The event name ([`VERIFICATION`] for a verification).
    pub event: String,
    pub url: Option<String>,
    /// The `X-drchrono-delivery` id (0 for a verification).
    pub delivery_id: u64,
    /// The status of the answer, if any.
    pub status: Option<u16>,
    pub outcome: DeliveryOutcome,
    /// The JSON body as sent (or as it would have been); for a verification, the `msg`.
    pub body: String,
}

struct Job {
    event: String,
    delivery_id: u64,
    body: String,
}

struct Inner {
    url: Mutex<Option<String>>,
    secret: String,
    /// The URL that last passed verification.
    verified: Mutex<Option<String>>,
    deliveries: DeliveryLog<WebhookDelivery>,
}

impl Inner {
    fn record(&self, entry: WebhookDelivery) {
        self.deliveries.record(entry);
    }

    fn done(&self) {
        self.deliveries.done();
    }
}

pub(crate) struct Webhooks {
    inner: Arc<Inner>,
    sender: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    closed: AtomicBool,
    next_delivery: AtomicU64,
}

impl Webhooks {
    pub(crate) fn new(config: &DrChronoSimConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                url: Mutex::new(config.webhook_url.clone().filter(|u| !u.trim().is_empty())),
                secret: config.webhook_secret.clone(),
                verified: Mutex::new(None),
                deliveries: DeliveryLog::new(LOG_CAPACITY),
            }),
            sender: Mutex::new(None),
            closed: AtomicBool::new(false),
            next_delivery: AtomicU64::new(1),
        }
    }

    /// Stops taking hooks; the task ends once the queue is drained.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        lock(&self.sender).take();
    }

    pub(crate) fn set_url(&self, url: Option<String>) {
        *lock(&self.inner.url) = url.filter(|u| !u.trim().is_empty());
    }

    pub(crate) fn log(&self) -> Vec<WebhookDelivery> {
        self.inner.deliveries.entries()
    }

    pub(crate) fn clear_log(&self) {
        self.inner.deliveries.clear();
    }

    pub(crate) async fn wait_idle(&self, timeout: Duration) -> bool {
        self.inner.deliveries.wait_idle(timeout).await
    }

    /// The "Verify webhook" button: a `GET {url}?msg=…`; logs it and says whether it passed.
    pub(crate) async fn verify(&self) -> bool {
        let Some(url) = lock(&self.inner.url).clone() else {
            self.inner.record(WebhookDelivery {
                event: VERIFICATION.into(),
                url: None,
                delivery_id: 0,
                status: None,
                outcome: DeliveryOutcome::NotConfigured,
                body: String::new(),
            });
            return false;
        };
        let msg: String = {
            let mut rng = rand::rng();
            (0..32)
                .map(|_| {
                    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                    char::from(alphabet[rng.random_range(0..alphabet.len())])
                })
                .collect()
        };
        let (status, answer) = match client() {
            Ok(client) => match client.get(&url).query(&[("msg", msg.as_str())]).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    (Some(status), response.text().await.unwrap_or_default())
                }
                Err(error) => {
                    tracing::debug!(%error, "webhook verification failed");
                    (None, String::new())
                }
            },
            Err(error) => {
                tracing::warn!(%error, "drchrono simulator cannot build its webhook client");
                (None, String::new())
            }
        };
        let expected = hmac_hex(&self.inner.secret, msg.as_bytes());
        let passed = status == Some(200)
            && serde_json::from_str::<Value>(&answer)
                .is_ok_and(|a| a.get("secret_token").and_then(Value::as_str) == Some(expected.as_str()));
        *lock(&self.inner.verified) = passed.then(|| url.clone());
        self.inner.record(WebhookDelivery {
            event: VERIFICATION.into(),
            url: Some(url),
            delivery_id: 0,
            status,
            outcome: if passed {
                DeliveryOutcome::Verified
            } else {
                DeliveryOutcome::VerificationFailed
            },
            body: msg,
        });
        passed
    }

    /// Queues `{"receiver": the webhook, "object": object}` for `event`.
    pub(crate) fn fire(&self, event: &str, object: Value) {
        let url = lock(&self.inner.url).clone();
        let body = json!({
            "receiver": { "id": WEBHOOK_ID, "callback_url": url },
            "object": object,
        })
        .to_string();
        let job = Job {
            event: event.to_owned(),
            delivery_id: self.next_delivery.fetch_add(1, Ordering::SeqCst),
            body,
        };
        if self.closed.load(Ordering::SeqCst) {
            self.inner.record(not_sent(&job, None, DeliveryOutcome::NotConfigured));
            return;
        }
        self.inner.deliveries.queued();
        let mut sender = lock(&self.sender);
        if sender.is_none() {
            *sender = spawn_worker(self.inner.clone());
        }
        let refused = match sender.as_ref() {
            Some(tx) => tx.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(job) = refused {
            // No runtime to deliver from.
            self.inner.record(not_sent(&job, url, DeliveryOutcome::Failed));
            self.inner.done();
        }
    }
}

fn not_sent(job: &Job, url: Option<String>, outcome: DeliveryOutcome) -> WebhookDelivery {
    WebhookDelivery {
        event: job.event.clone(),
        url,
        delivery_id: job.delivery_id,
        status: None,
        outcome,
        body: job.body.clone(),
    }
}

fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("drchrono-webhooks/1.0")
        .build()
}

fn spawn_worker(inner: Arc<Inner>) -> Option<mpsc::UnboundedSender<Job>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let (tx, rx) = mpsc::unbounded_channel();
    runtime.spawn(run(inner, rx));
    Some(tx)
}

async fn run(inner: Arc<Inner>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let client = client();
    while let Some(job) = jobs.recv().await {
        match &client {
            Ok(client) => deliver(&inner, client, &job).await,
            Err(error) => {
                tracing::warn!(%error, "drchrono simulator cannot build its webhook client");
                let url = lock(&inner.url).clone();
                inner.record(not_sent(&job, url, DeliveryOutcome::Failed));
            }
        }
        inner.done();
    }
}

async fn deliver(inner: &Inner, client: &reqwest::Client, job: &Job) {
    let Some(url) = lock(&inner.url).clone() else {
        inner.record(not_sent(job, None, DeliveryOutcome::NotConfigured));
        return;
    };
    if lock(&inner.verified).as_deref() != Some(url.as_str()) {
        inner.record(not_sent(job, Some(url), DeliveryOutcome::Refused));
        return;
    }
    let sent = client
        .post(&url)
        .header("content-type", "application/json")
        .header("X-drchrono-event", job.event.as_str())
        .header("X-drchrono-signature", inner.secret.as_str())
        .header("X-drchrono-delivery", job.delivery_id.to_string())
        .body(job.body.clone())
        .send()
        .await;
    let status = match sent {
        Ok(response) => Some(response.status().as_u16()),
        Err(error) => {
            tracing::debug!(%error, "webhook delivery failed");
            None
        }
    };
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    inner.record(WebhookDelivery {
        event: job.event.clone(),
        url: Some(url),
        delivery_id: job.delivery_id,
        status,
        outcome: if ok {
            DeliveryOutcome::Delivered
        } else {
            DeliveryOutcome::Failed
        },
        body: job.body.clone(),
    });
}

/// Hex HMAC-SHA256 of `message` keyed with `secret`: the expected `secret_token` answer.
pub fn verification_token(secret: &str, msg: &str) -> String {
    hmac_hex(secret, msg.as_bytes())
}

fn hmac_hex(secret: &str, message: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(message);
            HEXLOWER.encode(&mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verification_token_matches_a_known_vector() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            verification_token("key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
