//! Webhooks: a practice's endpoints (register, list, update, remove, test) and the delivery of
//! one event to one endpoint, with the retry decision. Queues are the backends' business: the
//! embedded worker keeps pending deliveries in SQLite, AWS keeps them in an SQS FIFO queue;
//! both call [`Service::fan_out`] to turn an event into deliveries and [`Service::deliver`] to
//! make one attempt.

use super::Service;
use super::input::parse_json;
use crate::domain::{
    Event, EventId, MAX_WEBHOOKS_PER_PRACTICE, Payload, Practice, PracticeId, WEBHOOK_TESTS_PER_MINUTE, Webhook, WebhookId,
    next_attempt, random_token, signature_header,
};
use crate::error::{Error, Result};
use crate::ports::{Attempt, FailedDelivery, PostOutcome, WebhookHealth, WebhookRequest};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Failed deliveries listed at most.
const MAX_FAILURES_LISTED: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookIn {
    url: String,
    description: Option<String>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookPatch {
    url: Option<String>,
    description: Option<String>,
    enabled: Option<bool>,
    #[serde(default)]
    rotate_secret: bool,
}

/// An endpoint as the practice sees it. `secret` only in the answer that made it.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub last_attempt: Option<Attempt>,
    pub last_success_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

#[derive(Debug, Serialize)]
pub struct FailedDeliveries {
    pub deliveries: Vec<FailedDelivery>,
}

/// What `POST /v1/webhooks/{id}/test` did.
#[derive(Debug, Serialize)]
pub struct TestDelivery {
    pub event_id: String,
    pub delivered: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// One event on its way to one endpoint. `body` is the exact JSON posted, built once when the
/// event was fanned out, so every attempt (and every retry after a restart) sends the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub practice_id: PracticeId,
    pub webhook_id: WebhookId,
    pub share_id: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub event_at: DateTime<Utc>,
    pub body: String,
}

/// What became of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The endpoint answered 2xx: done.
    Yes,
    /// Not yet: try again at this time.
    RetryAt(DateTime<Utc>),
    /// Retried for the whole window: recorded as failed, done.
    Failed,
    /// The endpoint was removed or disabled: dropped, done.
    Dropped,
}

impl Service {
    pub async fn create_webhook(&self, practice: &Practice, body: &[u8]) -> Result<WebhookView> {
        let input: WebhookIn = parse_json(body)?;
        let url = Webhook::validate_url(&input.url, self.settings.webhook_urls).map_err(|e| Error::invalid("url", e.0))?;
        let description = match input.description.as_deref() {
            Some(d) => Webhook::validate_description(d).map_err(|e| Error::invalid("description", e.0))?,
            None => None,
        };
        if self.store.list_webhooks(&practice.id).await?.len() >= MAX_WEBHOOKS_PER_PRACTICE {
            return Err(Error::invalid(
                "url",
                format!("a practice may register at most {MAX_WEBHOOKS_PER_PRACTICE} webhook endpoints"),
            ));
        }
        let now = self.now();
        let webhook = Webhook {
            id: WebhookId::generate(),
            practice_id: practice.id.clone(),
            url,
            description,
            enabled: input.enabled.unwrap_or(true),
            secret_salt: random_token::<16>(),
            created_at: now,
            updated_at: now,
        };
        let secret = self.keys().await?.webhook_secret(webhook.id.as_str(), &webhook.secret_salt);
        self.store.put_webhook(&webhook).await?;
        tracing::info!(practice_id = %practice.id, webhook_id = %webhook.id, "webhook endpoint registered");
        Ok(view(webhook, WebhookHealth::default(), Some(secret)))
    }

    pub async fn list_webhooks(&self, practice: &Practice) -> Result<WebhookList> {
        let mut webhooks = Vec::new();
        for webhook in self.store.list_webhooks(&practice.id).await? {
            let health = self.store.webhook_health(&practice.id, &webhook.id).await?;
            webhooks.push(view(webhook, health, None));
        }
        Ok(WebhookList { webhooks })
    }

    pub async fn get_webhook(&self, practice: &Practice, id: &WebhookId) -> Result<WebhookView> {
        let webhook = self.practice_webhook(practice, id).await?;
        let health = self.store.webhook_health(&practice.id, &webhook.id).await?;
        Ok(view(webhook, health, None))
    }

    /// Changes the URL, description or enabled flag; `rotate_secret` makes a new secret (in the
    /// answer, once) and the old one stops signing at once.
    pub async fn update_webhook(&self, practice: &Practice, id: &WebhookId, body: &[u8]) -> Result<WebhookView> {
        let mut webhook = self.practice_webhook(practice, id).await?;
        let patch: WebhookPatch = parse_json(body)?;
        if let Some(url) = patch.url {
            webhook.url = Webhook::validate_url(&url, self.settings.webhook_urls).map_err(|e| Error::invalid("url", e.0))?;
        }
        if let Some(d) = patch.description {
            webhook.description = Webhook::validate_description(&d).map_err(|e| Error::invalid("description", e.0))?;
        }
        if let Some(enabled) = patch.enabled {
            webhook.enabled = enabled;
        }
        let mut secret = None;
        if patch.rotate_secret {
            webhook.secret_salt = random_token::<16>();
            secret = Some(self.keys().await?.webhook_secret(webhook.id.as_str(), &webhook.secret_salt));
        }
        webhook.updated_at = self.now();
        if !self.store.replace_webhook(&webhook).await? {
            return Err(Error::NotFound);
        }
        let health = self.store.webhook_health(&practice.id, &webhook.id).await?;
        Ok(view(webhook, health, secret))
    }

    /// Removes an endpoint; deliveries still queued for it are dropped when their turn comes.
    pub async fn delete_webhook(&self, practice: &Practice, id: &WebhookId) -> Result<()> {
        let webhook = self.practice_webhook(practice, id).await?;
        if !self.store.delete_webhook(&practice.id, &webhook.id).await? {
            return Err(Error::NotFound);
        }
        tracing::info!(practice_id = %practice.id, webhook_id = %webhook.id, "webhook endpoint removed");
        Ok(())
    }

    /// Posts a signed `test` event now and says what the endpoint answered (not retried), at
    /// most [`WEBHOOK_TESTS_PER_MINUTE`] times a minute per endpoint, counted in the store so
    /// that every process (every Lambda instance) shares the count.
    pub async fn test_webhook(&self, practice: &Practice, id: &WebhookId) -> Result<TestDelivery> {
        let webhook = self.practice_webhook(practice, id).await?;
        let now = self.now();
        let minute = now.timestamp().div_euclid(60);
        if !self.store.take_webhook_test(&practice.id, &webhook.id, minute, WEBHOOK_TESTS_PER_MINUTE).await? {
            let retry_after_secs = u64::try_from(60 - now.timestamp().rem_euclid(60)).unwrap_or(60);
            return Err(Error::RateLimited {
                retry_after_secs,
                message: "this endpoint was tested too often in the last minute; try again later",
            });
        }
        let payload = Payload::test(EventId::generate().to_string(), now);
        let attempt = self.attempt(&webhook, &payload.id, &payload.to_bytes()).await;
        Ok(TestDelivery { event_id: payload.id, delivered: attempt.ok, status: attempt.status, error: attempt.error })
    }

    pub async fn failed_deliveries(&self, practice: &Practice, id: &WebhookId) -> Result<FailedDeliveries> {
        let webhook = self.practice_webhook(practice, id).await?;
        let deliveries = self.store.list_failed_deliveries(&practice.id, &webhook.id, MAX_FAILURES_LISTED).await?;
        Ok(FailedDeliveries { deliveries })
    }

    async fn practice_webhook(&self, practice: &Practice, id: &WebhookId) -> Result<Webhook> {
        self.store.get_webhook(&practice.id, id).await?.ok_or(Error::NotFound)
    }

    /// The deliveries an event makes: one per enabled endpoint of the share's practice that
    /// existed when the event happened. None when the share is gone (purged).
    pub async fn fan_out(&self, event: &Event) -> Result<Vec<Delivery>> {
        let Some(share) = self.store.get_share(&event.share_id).await? else { return Ok(vec![]) };
        let webhooks = self.store.list_webhooks(&share.practice_id).await?;
        let body = String::from_utf8(Payload::for_event(event, &share.reference).to_bytes()).unwrap_or_default();
        Ok(webhooks
            .into_iter()
            .filter(|w| w.enabled && w.created_at <= event.created_at)
            .map(|w| Delivery {
                practice_id: share.practice_id.clone(),
                webhook_id: w.id,
                share_id: event.share_id.to_string(),
                event_id: event.id.to_string(),
                kind: event.kind.as_str().to_owned(),
                event_at: event.created_at,
                body: body.clone(),
            })
            .collect())
    }

    /// One attempt at a delivery; `attempts` is how many were made before. Never fails: what
    /// went wrong is in the endpoint's health and, at the end of the window, its failures.
    pub async fn deliver(&self, delivery: &Delivery, attempts: u32) -> Delivered {
        let webhook = match self.store.get_webhook(&delivery.practice_id, &delivery.webhook_id).await {
            Ok(Some(w)) if w.enabled => w,
            // Disabled with deliveries still due: listed as failed, so none is lost unseen.
            Ok(Some(_)) => {
                let tried = Tried { attempts, last_status: None, last_error: Some("endpoint disabled".into()) };
                return self.give_up(delivery, tried).await;
            }
            Ok(None) => return Delivered::Dropped,
            Err(e) => {
                tracing::error!(webhook_id = %delivery.webhook_id, error = %e, "could not read a webhook endpoint");
                let tried = Tried { attempts: attempts + 1, last_status: None, last_error: Some("internal".into()) };
                return self.retry_or_fail(delivery, tried).await;
            }
        };
        let attempt = self.attempt(&webhook, &delivery.event_id, delivery.body.as_bytes()).await;
        if attempt.ok {
            return Delivered::Yes;
        }
        let tried = Tried { attempts: attempts + 1, last_status: attempt.status, last_error: attempt.error };
        self.retry_or_fail(delivery, tried).await
    }

    async fn retry_or_fail(&self, delivery: &Delivery, tried: Tried) -> Delivered {
        let jitter = f64::from(u32::from_le_bytes(crate::domain::random_bytes::<4>())) / (f64::from(u32::MAX) + 1.0);
        if let Some(at) = next_attempt(tried.attempts, delivery.event_at, self.now(), jitter) {
            return Delivered::RetryAt(at);
        }
        self.give_up(delivery, tried).await
    }

    /// Records a delivery as failed for good (listed for the practice).
    async fn give_up(&self, delivery: &Delivery, Tried { attempts, last_status, last_error }: Tried) -> Delivered {
        let now = self.now();
        let failed = FailedDelivery {
            event_id: delivery.event_id.clone(),
            kind: delivery.kind.clone(),
            share_id: Some(delivery.share_id.clone()),
            attempts,
            failed_at: now,
            last_status,
            last_error,
        };
        tracing::warn!(webhook_id = %delivery.webhook_id, event_id = %delivery.event_id, attempts, "webhook delivery failed for good");
        if let Err(e) = self.store.record_failed_delivery(&delivery.practice_id, &delivery.webhook_id, &failed).await {
            tracing::error!(webhook_id = %delivery.webhook_id, error = %e, "could not record a failed delivery");
        }
        Delivered::Failed
    }

    /// Signs and posts `body`, and records the outcome as the endpoint's latest attempt.
    async fn attempt(&self, webhook: &Webhook, event_id: &str, body: &[u8]) -> Attempt {
        let now = self.now();
        let (ok, status, error) = match self.keys().await {
            Ok(keys) => {
                let secret = keys.webhook_secret(webhook.id.as_str(), &webhook.secret_salt);
                let request = WebhookRequest {
                    url: webhook.url.clone(),
                    headers: vec![
                        ("content-type", "application/json".to_owned()),
                        ("sealpost-signature", signature_header(&secret, now, body)),
                        ("sealpost-event-id", event_id.to_owned()),
                    ],
                    body: body.to_vec(),
                };
                match self.poster.post(&request).await {
                    PostOutcome::Status(s) if (200..300).contains(&s) => (true, Some(s), None),
                    PostOutcome::Status(s) => (false, Some(s), Some(format!("status {s}"))),
                    PostOutcome::Timeout => (false, None, Some("timeout".to_owned())),
                    PostOutcome::Failed(why) => (false, None, Some(why)),
                }
            }
            Err(e) => {
                // Nothing goes out unsigned: the attempt fails on our side and is retried.
                tracing::error!(webhook_id = %webhook.id, error = %e, "no key to sign a webhook delivery");
                (false, None, Some("not sent: Sealpost could not sign it".to_owned()))
            }
        };
        tracing::info!(webhook_id = %webhook.id, event_id, ok, status, error = error.as_deref(), "webhook attempt");
        let attempt = Attempt { at: now, event_id: event_id.to_owned(), ok, status, error };
        if let Err(e) = self.store.record_attempt(&webhook.practice_id, &webhook.id, &attempt).await {
            tracing::error!(webhook_id = %webhook.id, error = %e, "could not record a webhook attempt");
        }
        attempt
    }
}

/// How a delivery went so far: attempts made, and what the last one got.
struct Tried {
    attempts: u32,
    last_status: Option<u16>,
    last_error: Option<String>,
}

fn view(webhook: Webhook, health: WebhookHealth, secret: Option<String>) -> WebhookView {
    WebhookView {
        id: webhook.id.to_string(),
        url: webhook.url,
        description: webhook.description,
        enabled: webhook.enabled,
        created_at: webhook.created_at,
        updated_at: webhook.updated_at,
        secret,
        last_attempt: health.last_attempt,
        last_success_at: health.last_success_at,
    }
}
