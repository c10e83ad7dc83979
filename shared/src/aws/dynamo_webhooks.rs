//! Webhook endpoints, their health and their failed deliveries in the one table (layout in
//! `dynamo.rs`). An endpoint sits in its practice's partition, so one query lists them all for
//! the fan-out; health is its own item, updated in place by the sender without racing a
//! practice's PATCH of the endpoint.

use super::dynamo::{DynamoStore, Item, body, get_s, json, n, s, sdk_err, us, written};
use crate::domain::{PracticeId, Webhook, WebhookId};
use crate::ports::{Attempt, FailedDelivery, PortResult, WebhookHealth, WebhookStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::Duration;

const FAILURES_KEPT_DAYS: i64 = 30;

fn practice_pk(practice: &PracticeId) -> String {
    format!("PRACTICE#{practice}")
}

fn webhook_item(webhook: &Webhook) -> PortResult<Item> {
    Ok(Item::from([
        ("pk".into(), s(practice_pk(&webhook.practice_id))),
        ("sk".into(), s(format!("WEBHOOK#{}", webhook.id))),
        ("body".into(), json(webhook)?),
    ]))
}

#[async_trait]
impl WebhookStore for DynamoStore {
    async fn put_webhook(&self, webhook: &Webhook) -> PortResult<()> {
        let item = webhook_item(webhook)?;
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(sdk_err)?;
        Ok(())
    }

    async fn replace_webhook(&self, webhook: &Webhook) -> PortResult<bool> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(webhook_item(webhook)?))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        written(put)
    }

    async fn get_webhook(&self, practice: &PracticeId, id: &WebhookId) -> PortResult<Option<Webhook>> {
        self.get(practice_pk(practice), &format!("WEBHOOK#{id}")).await?.map(|item| body(&item)).transpose()
    }

    async fn list_webhooks(&self, practice: &PracticeId) -> PortResult<Vec<Webhook>> {
        let items = self
            .query_all(
                None,
                "pk = :p AND begins_with(sk, :w)",
                vec![(":p", s(practice_pk(practice))), (":w", s("WEBHOOK#"))],
                true,
                None,
            )
            .await?;
        let mut webhooks: Vec<Webhook> = items.iter().map(body).collect::<PortResult<_>>()?;
        webhooks.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(webhooks)
    }

    async fn delete_webhook(&self, practice: &PracticeId, id: &WebhookId) -> PortResult<bool> {
        let old = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(practice_pk(practice)))
            .key("sk", s(format!("WEBHOOK#{id}")))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(sdk_err)?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(practice_pk(practice)))
            .key("sk", s(format!("WHHEALTH#{id}")))
            .send()
            .await
            .map_err(sdk_err)?;
        // Failed deliveries are reachable only through the endpoint; TTL removes them.
        Ok(old.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn record_attempt(&self, practice: &PracticeId, id: &WebhookId, attempt: &Attempt) -> PortResult<()> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(practice_pk(practice)))
            .key("sk", s(format!("WHHEALTH#{id}")))
            .expression_attribute_values(":a", json(attempt)?);
        update = if attempt.ok {
            update
                .update_expression("SET last_attempt = :a, last_success_at = :t")
                .expression_attribute_values(":t", s(attempt.at.to_rfc3339()))
        } else {
            update.update_expression("SET last_attempt = :a")
        };
        update.send().await.map_err(sdk_err)?;
        Ok(())
    }

    /// On the endpoint's health item (`test_minute`, `test_count`), removed with it.
    async fn take_webhook_test(&self, practice: &PracticeId, id: &WebhookId, minute: i64, limit: u32) -> PortResult<bool> {
        if limit == 0 {
            return Ok(false);
        }
        let update = || {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(practice_pk(practice)))
                .key("sk", s(format!("WHHEALTH#{id}")))
                .expression_attribute_values(":m", n(minute))
                .expression_attribute_values(":one", n(1))
        };
        let count_up = || {
            update()
                .update_expression("ADD test_count :one")
                .condition_expression("test_minute = :m AND test_count < :limit")
                .expression_attribute_values(":limit", n(limit))
                .send()
        };
        // Counts up within this minute; else starts it; else (another request started it
        // meanwhile) counts up after all.
        if written(count_up().await)? {
            return Ok(true);
        }
        let start = update()
            .update_expression("SET test_minute = :m, test_count = :one")
            .condition_expression("attribute_not_exists(test_minute) OR test_minute < :m")
            .send()
            .await;
        if written(start)? {
            return Ok(true);
        }
        written(count_up().await)
    }

    async fn webhook_health(&self, practice: &PracticeId, id: &WebhookId) -> PortResult<WebhookHealth> {
        let Some(item) = self.get(practice_pk(practice), &format!("WHHEALTH#{id}")).await? else {
            return Ok(WebhookHealth::default());
        };
        let last_attempt = get_s(&item, "last_attempt").map(serde_json::from_str).transpose().map_err(super::dynamo::err)?;
        let last_success_at = get_s(&item, "last_success_at")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        Ok(WebhookHealth { last_attempt, last_success_at })
    }

    async fn record_failed_delivery(&self, _: &PracticeId, id: &WebhookId, failed: &FailedDelivery) -> PortResult<()> {
        let item = Item::from([
            ("pk".into(), s(format!("WHFAIL#{id}"))),
            ("sk".into(), s(format!("{:020}#{}", us(failed.failed_at), failed.event_id))),
            ("body".into(), json(failed)?),
            ("ttl".into(), n((failed.failed_at + Duration::days(FAILURES_KEPT_DAYS)).timestamp())),
        ]);
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(sdk_err)?;
        Ok(())
    }

    async fn list_failed_deliveries(
        &self,
        practice: &PracticeId,
        id: &WebhookId,
        limit: usize,
    ) -> PortResult<Vec<FailedDelivery>> {
        if self.get_webhook(practice, id).await?.is_none() {
            return Ok(vec![]);
        }
        // A delivery given up twice (its queue message delivered again after the first record)
        // has two items, the failure time first in each key: the newest of them is listed.
        let mut seen = std::collections::HashSet::new();
        let first_of_its_event = move |item: &Item| {
            let event = get_s(item, "sk").and_then(|sk| sk.split_once('#')).map(|(_, event)| event.to_owned());
            event.is_none_or(|event| seen.insert(event))
        };
        let items = self
            .query_kept(None, "pk = :p", vec![(":p", s(format!("WHFAIL#{id}")))], false, Some(limit), first_of_its_event)
            .await?;
        items.iter().map(body).collect()
    }
}
