//! Webhook delivery as Zoom does it: every request is signed (`x-zm-request-timestamp` and
//! `x-zm-signature: v0=HMAC-SHA256(secret, "v0:{ts}:{body}")` in hex); before the first event to
//! a URL, the `endpoint.url_validation` challenge must be answered with
//! `{"plainToken", "encryptedToken": hex HMAC-SHA256(secret, plainToken)}`; until it is, events
//! are refused (not sent). Failed deliveries (no answer, or a status other than 2xx) are retried.
//!
//! Events are queued and sent in order by one tokio task; every attempt is logged.

use crate::delivery::DeliveryLog;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use data_encoding::HEXLOWER;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::wire::events;
use super::{ZoomSimConfig, lock};

const LOG_CAPACITY: usize = 10_000;

/// What became of one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The URL answered the `endpoint.url_validation` challenge correctly.
    Validated,
    /// The URL answered the challenge wrongly or not at all.
    ValidationFailed,
    /// The event was answered with a 2xx.
    Delivered,
    /// Every attempt failed (no answer, or a non-2xx status).
    Failed,
    /// Not sent: the URL has not passed validation.
    Refused,
    /// Not sent: no webhook URL is configured (or the simulator was shut down).
    NotConfigured,
}

/// One entry of [`super::ZoomSimHandle::webhook_log`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The event name (`endpoint.url_validation` for a handshake).
    pub event: String,
    pub url: Option<String>,
    /// The status of the last answer, if any.
    pub status: Option<u16>,
    /// Requests made (0 when not sent).
    pub attempts: u32,
    pub outcome: DeliveryOutcome,
    /// The JSON body as signed and sent (or as it would have been).
    pub body: String,
}

struct Job {
    event: String,
    body: String,
}

struct Inner {
    url: Mutex<Option<String>>,
    secret: String,
    retries: u32,
    retry_delay: Duration,
    timeout: Duration,
    /// The URL that last passed validation.
    validated: Mutex<Option<String>>,
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
}

impl Webhooks {
    pub(crate) fn new(config: &ZoomSimConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                url: Mutex::new(config.webhook_url.clone().filter(|u| !u.trim().is_empty())),
                secret: config.webhook_secret.clone(),
                retries: config.webhook_retries,
                retry_delay: config.webhook_retry_delay,
                timeout: config.webhook_timeout,
                validated: Mutex::new(None),
                deliveries: DeliveryLog::new(LOG_CAPACITY),
            }),
            sender: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// Starts the delivery task on the current runtime if it is not running.
    pub(crate) fn start(&self) {
        let mut sender = lock(&self.sender);
        if sender.is_none() && !self.closed.load(Ordering::SeqCst) {
            *sender = spawn_worker(self.inner.clone());
        }
    }

    /// Stops taking events; the task ends once the queue is drained.
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

    /// Queues `{"event", "event_ts", "payload": {"account_id", "object"}}`.
    pub(crate) fn fire(&self, event: &str, account_id: &str, object: Value) {
        let body = json!({
            "event": event,
            "event_ts": unix_millis(),
            "payload": { "account_id": account_id, "object": object },
        })
        .to_string();
        let job = Job {
            event: event.to_owned(),
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
            let url = lock(&self.inner.url).clone();
            self.inner.record(not_sent(&job, url, DeliveryOutcome::Failed));
            self.inner.done();
        }
    }
}

fn not_sent(job: &Job, url: Option<String>, outcome: DeliveryOutcome) -> WebhookDelivery {
    WebhookDelivery {
        event: job.event.clone(),
        url,
        status: None,
        attempts: 0,
        outcome,
        body: job.body.clone(),
    }
}

fn spawn_worker(inner: Arc<Inner>) -> Option<mpsc::UnboundedSender<Job>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let (tx, rx) = mpsc::unbounded_channel();
    runtime.spawn(run(inner, rx));
    Some(tx)
}

async fn run(inner: Arc<Inner>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let client = reqwest::Client::builder()
        .timeout(inner.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Zoom Marketplace/1.0a")
        .build();
    while let Some(job) = jobs.recv().await {
        match &client {
            Ok(client) => deliver(&inner, client, &job).await,
            Err(error) => {
                tracing::warn!(%error, "zoom simulator cannot build its webhook client");
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
    let validated = lock(&inner.validated).as_deref() == Some(url.as_str());
    if !validated {
        if validate(inner, client, &url).await {
            *lock(&inner.validated) = Some(url.clone());
        } else {
            inner.record(not_sent(job, Some(url), DeliveryOutcome::Refused));
            return;
        }
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (status, _) = post_signed(client, &url, &inner.secret, &job.body).await;
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        if ok || attempts > inner.retries {
            inner.record(WebhookDelivery {
                event: job.event.clone(),
                url: Some(url),
                status,
                attempts,
                outcome: if ok {
                    DeliveryOutcome::Delivered
                } else {
                    DeliveryOutcome::Failed
                },
                body: job.body.clone(),
            });
            return;
        }
        tokio::time::sleep(inner.retry_delay).await;
    }
}

/// The `endpoint.url_validation` handshake; logs it and says whether it passed.
async fn validate(inner: &Inner, client: &reqwest::Client, url: &str) -> bool {
    let plain_token: String = {
        let mut rng = rand::rng();
        (0..22)
            .map(|_| {
                let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
                char::from(alphabet[rng.random_range(0..alphabet.len())])
            })
            .collect()
    };
    let body = json!({
        "payload": { "plainToken": plain_token },
        "event_ts": unix_millis(),
        "event": events::URL_VALIDATION,
    })
    .to_string();
    let (status, answer) = post_signed(client, url, &inner.secret, &body).await;
    let expected = hmac_hex(&inner.secret, plain_token.as_bytes());
    let passed = status == Some(200)
        && serde_json::from_str::<Value>(&answer).is_ok_and(|answer| {
            answer.get("plainToken").and_then(Value::as_str) == Some(plain_token.as_str())
                && answer.get("encryptedToken").and_then(Value::as_str) == Some(expected.as_str())
        });
    inner.record(WebhookDelivery {
        event: events::URL_VALIDATION.into(),
        url: Some(url.to_owned()),
        status,
        attempts: 1,
        outcome: if passed {
            DeliveryOutcome::Validated
        } else {
            DeliveryOutcome::ValidationFailed
        },
        body,
    });
    passed
}

/// POSTs `body` signed; the status (None when there was no answer) and the answer's body.
async fn post_signed(client: &reqwest::Client, url: &str, secret: &str, body: &str) -> (Option<u16>, String) {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let signature = format!("v0={}", signature(secret, timestamp, body));
    let tracking = {
        let mut rng = rand::rng();
        format!("v=2.0&s={:016x}&c=zoom-sim", rng.random::<u64>())
    };
    let sent = client
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-zm-request-timestamp", timestamp.to_string())
        .header("x-zm-signature", signature)
        .header("x-zm-trackingid", tracking)
        .body(body.to_owned())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (Some(status), text)
        }
        Err(error) => {
            tracing::debug!(%error, "webhook delivery failed");
            (None, String::new())
        }
    }
}

/// Hex HMAC-SHA256 of `v0:{timestamp}:{body}`: what follows `v0=` in `x-zm-signature`.
pub(crate) fn signature(secret: &str, timestamp: u64, body: &str) -> String {
    hmac_hex(secret, format!("v0:{timestamp}:{body}").as_bytes())
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

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            hmac_hex("key", b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_eq!(signature("s", 1, "{}"), hmac_hex("s", b"v0:1:{}"));
    }
}
