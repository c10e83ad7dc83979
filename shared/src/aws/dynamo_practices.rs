//! Practices, API keys, idempotency records and SMS counters in the one table (layout in
//! `dynamo.rs`): the records around the shares, each keyed by its practice.

use super::dynamo::{DynamoStore, GSI_PRACTICE, Item, body, err, get_n, get_s, json, n, s, sdk_err, us, written};
use crate::domain::{ApiKey, Practice, PracticeId};
use crate::ports::{Claim, IdempotencyStore, PortResult, PracticeStore, SmsCounter};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

#[async_trait]
impl PracticeStore for DynamoStore {
    async fn put_practice(&self, practice: &Practice) -> PortResult<()> {
        let item = Item::from([
            ("pk".into(), s(format!("PRACTICE#{}", practice.id))),
            ("sk".into(), s("PRACTICE")),
            ("body".into(), json(practice)?),
        ]);
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(sdk_err)?;
        Ok(())
    }

    async fn get_practice(&self, id: &PracticeId) -> PortResult<Option<Practice>> {
        self.get(format!("PRACTICE#{id}"), "PRACTICE").await?.map(|item| body(&item)).transpose()
    }

    async fn list_practices(&self) -> PortResult<Vec<Practice>> {
        let mut practices: Vec<Practice> = self.scan_kind("PRACTICE").await?.iter().map(body).collect::<PortResult<_>>()?;
        practices.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(practices)
    }

    async fn put_api_key(&self, key: &ApiKey) -> PortResult<()> {
        let item = Item::from([
            ("pk".into(), s(format!("APIKEY#{}", key.hash))),
            ("sk".into(), s("APIKEY")),
            ("body".into(), json(key)?),
            ("key_id".into(), s(&key.id)),
            ("gsi1pk".into(), s(format!("PRACTICE#{}", key.practice_id))),
            ("gsi1sk".into(), s(format!("KEY#{}", key.id))),
        ]);
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(sdk_err)?;
        Ok(())
    }

    async fn find_api_key(&self, hash: &str) -> PortResult<Option<ApiKey>> {
        self.get(format!("APIKEY#{hash}"), "APIKEY").await?.map(|item| body(&item)).transpose()
    }

    async fn list_api_keys(&self, practice: &PracticeId) -> PortResult<Vec<ApiKey>> {
        let items = self
            .query_all(
                Some(GSI_PRACTICE),
                "gsi1pk = :p AND begins_with(gsi1sk, :k)",
                vec![(":p", s(format!("PRACTICE#{practice}"))), (":k", s("KEY#"))],
                true,
                None,
            )
            .await?;
        let mut keys: Vec<ApiKey> = items.iter().map(body).collect::<PortResult<_>>()?;
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn revoke_api_key(&self, key_id: &str, now: DateTime<Utc>) -> PortResult<bool> {
        // An operator's command, rare: a scan is fine here and spares an index.
        let found = self.scan_kind("APIKEY").await?.into_iter().find(|i| get_s(i, "key_id") == Some(key_id));
        let Some(item) = found else { return Ok(false) };
        let mut key: ApiKey = body(&item)?;
        key.revoked_at.get_or_insert(now);
        self.put_api_key(&key).await?;
        Ok(true)
    }
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn claim_idempotency(
        &self,
        practice: &PracticeId,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> PortResult<Claim> {
        let pk = format!("IDEMP#{practice}#{key}");
        let item = Item::from([
            ("pk".into(), s(&pk)),
            ("sk".into(), s("IDEMP")),
            ("fingerprint".into(), s(fingerprint)),
            ("created_us".into(), n(us(now))),
            ("ttl".into(), n((now + Duration::hours(24)).timestamp())),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR (attribute_not_exists(#st) AND created_us < :stale)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":stale", n(us(stale_before)))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::Claimed),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                let existing = self.get(pk, "IDEMP").await?.ok_or_else(|| err("idempotency item vanished"))?;
                let fingerprint = get_s(&existing, "fingerprint").unwrap_or_default().to_owned();
                match (get_n(&existing, "status"), get_s(&existing, "response")) {
                    (Some(status), Some(body)) => {
                        Ok(Claim::Completed { fingerprint, status: status as u16, body: body.to_owned() })
                    }
                    _ => Ok(Claim::InProgress { fingerprint }),
                }
            }
            Err(e) => Err(sdk_err(e)),
        }
    }

    async fn complete_idempotency(&self, practice: &PracticeId, key: &str, status: u16, body: &str) -> PortResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("IDEMP#{practice}#{key}")))
            .key("sk", s("IDEMP"))
            .update_expression("SET #st = :st, #resp = :resp")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#resp", "response")
            .expression_attribute_values(":st", n(status))
            .expression_attribute_values(":resp", s(body))
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    async fn release_idempotency(&self, practice: &PracticeId, key: &str) -> PortResult<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("IDEMP#{practice}#{key}")))
            .key("sk", s("IDEMP"))
            .condition_expression("attribute_not_exists(#st)")
            .expression_attribute_names("#st", "status")
            .send()
            .await;
        // Refused if the request was completed meanwhile: its answer stays.
        written(result).map(|_| ())
    }
}

impl DynamoStore {
    /// An update of a practice's SMS counter for `day`, its count named `#c`.
    fn sms_counter(
        &self,
        practice: &PracticeId,
        day: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("SMS#{practice}#{day}")))
            .key("sk", s("SMS"))
            .expression_attribute_names("#c", "count")
    }
}

#[async_trait]
impl SmsCounter for DynamoStore {
    async fn take_sms(&self, practice: &PracticeId, day: &str, cap: u32) -> PortResult<bool> {
        if cap == 0 {
            return Ok(false);
        }
        let result = self
            .sms_counter(practice, day)
            .update_expression("ADD #c :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#c) OR #c < :cap")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":cap", n(cap))
            .expression_attribute_values(":ttl", n((Utc::now() + Duration::days(3)).timestamp()))
            .send()
            .await;
        written(result)
    }

    async fn give_back_sms(&self, practice: &PracticeId, day: &str) -> PortResult<()> {
        let result = self
            .sms_counter(practice, day)
            .update_expression("ADD #c :minus_one")
            .condition_expression("#c > :zero")
            .expression_attribute_values(":minus_one", n(-1))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        written(result).map(|_| ())
    }
}
