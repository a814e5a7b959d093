//! Webhook delivery: every status change except to New is POSTed as JSON (no signature: the
//! URL carries the secret) to the session's `webhookUrl`, else the consumer's default. One tokio
//! task sends them in the order they were queued; a failed attempt (no answer, or a status
//! other than 2xx) is retried twice after a short pause. Every delivery is logged.

use crate::delivery::DeliveryLog;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::lock;
use super::wire::WebhookEvent;

const LOG_CAPACITY: usize = 10_000;
const RETRIES: u32 = 2;
const RETRY_DELAY: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_secs(5);

/// What became of one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Answered with a 2xx.
    Delivered,
    /// Every attempt failed (no answer, or a non-2xx status).
    Failed,
    /// Not sent: neither the session nor the consumer has a webhook URL (or the simulator was
    /// shut down).
    NotConfigured,
}

/// One entry of [`super::NoaSimHandle::webhook_log`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub url: Option<String>,
    pub event: WebhookEvent,
    /// The JSON body as sent (or as it would have been).
    pub body: String,
    /// HTTP status of the last answer, if any.
    pub status: Option<u16>,
    /// Why the last attempt got no answer, if it did not.
    pub error: Option<String>,
    /// Requests made (0 when not sent).
    pub attempts: u32,
    pub outcome: DeliveryOutcome,
}

struct Job {
    url: String,
    event: WebhookEvent,
    body: String,
}

struct Inner {
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
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
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

    /// Stops taking deliveries; the task ends once the queue is drained.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        lock(&self.sender).take();
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

    /// Queues `event` for `url` (logged as not configured when there is none).
    pub(crate) fn fire(&self, url: Option<String>, event: WebhookEvent) {
        let body = serde_json::to_string(&event).unwrap_or_default();
        let Some(url) = url.filter(|_| !self.closed.load(Ordering::SeqCst)) else {
            self.inner.record(WebhookDelivery {
                url: None,
                event,
                body,
                status: None,
                error: None,
                attempts: 0,
                outcome: DeliveryOutcome::NotConfigured,
            });
            return;
        };
        self.inner.deliveries.queued();
        let job = Job { url, event, body };
        let mut sender = lock(&self.sender);
        if sender.is_none() {
            *sender = spawn_worker(self.inner.clone());
        }
        let refused = match sender.as_ref() {
            Some(tx) => tx.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(job) = refused {
            self.inner.record(WebhookDelivery {
                url: Some(job.url),
                event: job.event,
                body: job.body,
                status: None,
                error: Some("no tokio runtime to deliver from".into()),
                attempts: 0,
                outcome: DeliveryOutcome::Failed,
            });
            self.inner.done();
        }
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
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Noa-Notes-Integration-Webhooks/1.0 (simulator)")
        .build();
    while let Some(job) = jobs.recv().await {
        match &client {
            Ok(client) => deliver(&inner, client, job).await,
            Err(error) => inner.record(WebhookDelivery {
                url: Some(job.url),
                event: job.event,
                body: job.body,
                status: None,
                error: Some(format!("cannot build the HTTP client: {error}")),
                attempts: 0,
                outcome: DeliveryOutcome::Failed,
            }),
        }
        inner.done();
    }
}

async fn deliver(inner: &Inner, client: &reqwest::Client, job: Job) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let sent = client
            .post(&job.url)
            .header("content-type", "application/json; charset=utf-8")
            .body(job.body.clone())
            .send()
            .await;
        let (status, error) = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the answer so the connection can be reused.
                let _ = response.bytes().await;
                (Some(status), None)
            }
            Err(error) => {
                tracing::debug!(%error, url = %job.url, "noa webhook delivery failed");
                (None, Some(error.to_string()))
            }
        };
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        if ok || attempts > RETRIES {
            inner.record(WebhookDelivery {
                url: Some(job.url),
                event: job.event,
                body: job.body,
                status,
                error,
                attempts,
                outcome: if ok {
                    DeliveryOutcome::Delivered
                } else {
                    DeliveryOutcome::Failed
                },
            });
            return;
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
}
