//! The store on DynamoDB: one table, keys `pk`/`sk`, two sparse GSIs, TTL on `ttl`.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | share | `SHARE#<id>` | `SHARE` | `gsi1` = practice, newest first; `gsi2` = awaiting the sweep, by `Share::sweep_due_at` |
//! | event | `SHARE#<id>` | `EVENT#<ns>#<n>#<event id>` | written with its share in one transaction |
//! | practice | `PRACTICE#<id>` | `PRACTICE` | |
//! | API key | `APIKEY#<sha256>` | `APIKEY` | `gsi1` = practice's keys |
//! | idempotency | `IDEMP#<practice>#<key>` | `IDEMP` | TTL 24 h |
//! | SMS counter | `SMS#<practice>#<day>` | `SMS` | TTL 3 days |
//! | provider message | `MSG#<SES/SNS message id>` | `MSG` | → share id; TTL with the share |
//! | webhook endpoint | `PRACTICE#<id>` | `WEBHOOK#<id>` | next to its practice |
//! | endpoint health | `PRACTICE#<id>` | `WHHEALTH#<id>` | last attempt, last success |
//! | failed delivery | `WHFAIL#<webhook id>` | `<failed µs>#<event id>` | TTL 30 days |
//!
//! Records are JSON in `body` next to the attributes that keys, conditions and TTL need. Every
//! share write is conditional on `version`; TTL (`ttl`, epoch seconds) is cleanup only — the
//! application checks expiry on every read, because TTL deletion is lazy.
//!
//! A share write is a `TransactWriteItems` of the conditional update and its event items, even
//! without events: the SDK gives a transaction an idempotency token, so a retry of one that
//! landed is not applied twice (a plain `UpdateItem` would fail its condition on the retry, and
//! the service would apply its step again, e.g. give an attempt back twice).

use crate::domain::{Event, PracticeId, Share, ShareId};
use crate::ports::{ListCursor, PortError, PortResult, ShareStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, Put, TransactWriteItem, Update};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

pub(super) type Item = HashMap<String, AttributeValue>;

pub const GSI_PRACTICE: &str = "gsi1";
pub const GSI_EXPIRY: &str = "gsi2";
const EXPIRY_PARTITION: &str = "EXPIRY";
/// Share attributes a write removes when the share no longer has them.
const OPTIONAL_SHARE_ATTRIBUTES: [&str; 2] = ["gsi2pk", "gsi2sk"];

#[derive(Clone)]
pub struct DynamoStore {
    pub(super) client: Client,
    pub(super) table: String,
}

pub(super) fn err(e: impl std::fmt::Display) -> PortError {
    PortError::Other(format!("dynamodb: {e}"))
}

/// The full error chain, for logs (the SDK's Display is just "service error").
pub(super) fn sdk_err<E: std::error::Error + 'static>(e: aws_sdk_dynamodb::error::SdkError<E>) -> PortError {
    PortError::Other(format!("dynamodb: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))
}

/// A conditional write's outcome: `true` if it was made, `false` if its condition refused it.
pub(super) fn written<O, E>(result: Result<O, aws_sdk_dynamodb::error::SdkError<E>>) -> PortResult<bool>
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(sdk_err(e)),
    }
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn get_s<'a>(item: &'a Item, key: &str) -> Option<&'a str> {
    item.get(key).and_then(|v| v.as_s().ok()).map(String::as_str)
}

pub(super) fn get_n(item: &Item, key: &str) -> Option<i64> {
    item.get(key).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

pub(super) fn body<T: serde::de::DeserializeOwned>(item: &Item) -> PortResult<T> {
    serde_json::from_str(get_s(item, "body").ok_or_else(|| err("item without body"))?).map_err(err)
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> PortResult<AttributeValue> {
    Ok(s(serde_json::to_string(v).map_err(err)?))
}

pub(super) fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A share's partition key is this and its id; the share item's sort key is `SHARE_SK`, its
/// events' sort keys start with `EVENT_SK_PREFIX`.
pub(super) const SHARE_PK_PREFIX: &str = "SHARE#";
pub(super) const SHARE_SK: &str = "SHARE";
pub(super) const EVENT_SK_PREFIX: &str = "EVENT#";

fn share_pk(id: &str) -> String {
    format!("{SHARE_PK_PREFIX}{id}")
}

/// Sort key of a share in its practice's listing: time-ordered, then by id.
fn listing_sk(created_at: DateTime<Utc>, id: &str) -> String {
    format!("SHARE#{:020}#{id}", us(created_at))
}

fn share_item(share: &Share) -> PortResult<Item> {
    let mut item = Item::from([
        ("pk".into(), s(share_pk(share.id.as_str()))),
        ("sk".into(), s(SHARE_SK)),
        ("body".into(), json(share)?),
        ("version".into(), n(share.version)),
        ("practice_id".into(), s(share.practice_id.as_str())),
        ("gsi1pk".into(), s(format!("PRACTICE#{}", share.practice_id))),
        ("gsi1sk".into(), s(listing_sk(share.created_at, share.id.as_str()))),
        ("ttl".into(), n(share.purge_at.timestamp())),
    ]);
    if !share.expiry_processed {
        // Sparse index: only shares still waiting for their expiry to be processed are in it.
        item.insert("gsi2pk".into(), s(EXPIRY_PARTITION));
        item.insert("gsi2sk".into(), s(format!("{:020}#{}", us(share.sweep_due_at()), share.id)));
    }
    Ok(item)
}

/// The host clock in nanoseconds, zero-padded: the order in which events were written.
fn written_now() -> PortResult<String> {
    let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(err)?.as_nanos();
    Ok(format!("{ns:024}"))
}

/// A write of `share` as an update: every attribute set (or removed, if the share no longer
/// has it), conditional on the version read.
fn share_update(table: &str, share: &Share) -> PortResult<Update> {
    let mut item = share_item(share)?;
    let removed: Vec<&str> = OPTIONAL_SHARE_ATTRIBUTES.into_iter().filter(|a| !item.contains_key(*a)).collect();
    let key = [("pk", item.remove("pk")), ("sk", item.remove("sk"))];
    let mut update = Update::builder().table_name(table);
    for (name, value) in key {
        update = update.key(name, value.ok_or_else(|| err("share item without key"))?);
    }
    let mut set = Vec::new();
    for (i, (name, value)) in item.into_iter().enumerate() {
        set.push(format!("#a{i} = :a{i}"));
        update = update.expression_attribute_names(format!("#a{i}"), name).expression_attribute_values(format!(":a{i}"), value);
    }
    let mut expression = format!("SET {}", set.join(", "));
    if !removed.is_empty() {
        expression.push_str(&format!(" REMOVE {}", removed.join(", ")));
    }
    update
        .update_expression(expression)
        .condition_expression("version = :expected")
        .expression_attribute_values(":expected", n(share.version - 1))
        .build()
        .map_err(err)
}

/// Events sort by the moment they were written, by this host's clock in nanoseconds, then by
/// their place in the write. Not by `created_at`: that is the service's clock, which tests hold
/// still, and a business time need not be a storage order. Lambda hosts keep their clocks in
/// step (Amazon Time Sync), so writes of one share from different functions keep their order.
fn event_items(events: &[Event], ttl: i64) -> PortResult<Vec<Item>> {
    let written = written_now()?;
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(Item::from([
                ("pk".into(), s(share_pk(e.share_id.as_str()))),
                ("sk".into(), s(format!("{EVENT_SK_PREFIX}{written}#{i:03}#{}", e.id))),
                ("body".into(), json(e)?),
                ("ttl".into(), n(ttl)),
            ]))
        })
        .collect()
}

/// What a cancelled transaction means: a failed condition, or another transaction on one of
/// its items, is a lost race (`Conflict`: read again and retry); anything else (throttling, an
/// item too large, a validation error) is a failure, with DynamoDB's reasons for the log.
fn cancellation(reasons: &[CancellationReason]) -> PortError {
    let code = |r: &CancellationReason| r.code().unwrap_or("None").to_owned();
    let raced = |r: &&CancellationReason| matches!(r.code(), Some("ConditionalCheckFailed" | "TransactionConflict"));
    let failed: Vec<_> = reasons.iter().filter(|r| !matches!(r.code(), None | Some("None"))).collect();
    if !failed.is_empty() && failed.iter().all(raced) {
        return PortError::Conflict;
    }
    let reasons: Vec<String> = reasons.iter().map(|r| format!("{} ({})", code(r), r.message().unwrap_or(""))).collect();
    PortError::Other(format!("dynamodb: transaction cancelled: {}", reasons.join(", ")))
}

impl DynamoStore {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn put(&self, item: Item) -> PortResult<Put> {
        Put::builder().table_name(&self.table).set_item(Some(item)).build().map_err(err)
    }

    /// Writes `first` (with its condition) and `events` in one transaction; `Conflict` when the
    /// condition fails. At most 100 items per transaction: a step records a handful of events.
    async fn transact(&self, first: TransactWriteItem, events: &[Event], ttl: i64) -> PortResult<()> {
        let mut items = vec![first];
        for item in event_items(events, ttl)? {
            items.push(TransactWriteItem::builder().put(self.put(item)?).build());
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    Err(cancellation(cancelled.cancellation_reasons()))
                }
                _ => Err(sdk_err(e)),
            },
        }
    }

    pub(super) async fn query_all(
        &self,
        index: Option<&str>,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        forward: bool,
        limit: Option<usize>,
    ) -> PortResult<Vec<Item>> {
        self.query_kept(index, condition, values, forward, limit, |_| true).await
    }

    /// [`Self::query_all`] of the items `keep` takes, in order: `limit` counts only those.
    pub(super) async fn query_kept(
        &self,
        index: Option<&str>,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        forward: bool,
        limit: Option<usize>,
        mut keep: impl FnMut(&Item) -> bool + Send,
    ) -> PortResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(condition)
                .scan_index_forward(forward)
                .consistent_read(index.is_none())
                .set_exclusive_start_key(start.take());
            for (k, v) in &values {
                q = q.expression_attribute_values(*k, v.clone());
            }
            if let Some(l) = limit {
                q = q.limit((l - out.len()).min(1000) as i32);
            }
            let page = q.send().await.map_err(sdk_err)?;
            out.extend(page.items().iter().filter(|item| keep(item)).cloned());
            match page.last_evaluated_key() {
                Some(k) if limit.is_none_or(|l| out.len() < l) => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    pub(super) async fn scan_kind(&self, sk: &str) -> PortResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :sk")
                .expression_attribute_values(":sk", s(sk))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_err)?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => break,
            }
        }
        Ok(out)
    }

    pub(super) async fn get(&self, pk: String, sk: &str) -> PortResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(out.item)
    }
}

#[async_trait]
impl ShareStore for DynamoStore {
    async fn insert_share(&self, share: &Share, events: &[Event]) -> PortResult<()> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(share_item(share)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(err)?;
        self.transact(TransactWriteItem::builder().put(put).build(), events, share.purge_at.timestamp()).await
    }

    async fn get_share(&self, id: &ShareId) -> PortResult<Option<Share>> {
        self.get(share_pk(id.as_str()), SHARE_SK).await?.as_ref().map(body).transpose()
    }

    async fn update_share(&self, share: &Share, events: &[Event]) -> PortResult<()> {
        let update = share_update(&self.table, share)?;
        self.transact(TransactWriteItem::builder().update(update).build(), events, share.purge_at.timestamp()).await
    }

    async fn append_events(&self, events: &[Event]) -> PortResult<()> {
        // Events outlive nothing: they share the share's purge time, read from the share.
        let Some(first) = events.first() else { return Ok(()) };
        let ttl = match self.get_share(&first.share_id).await? {
            Some(share) => share.purge_at.timestamp(),
            None => (Utc::now() + Duration::days(120)).timestamp(),
        };
        for item in event_items(events, ttl)? {
            self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(sdk_err)?;
        }
        Ok(())
    }

    async fn list_events(&self, id: &ShareId) -> PortResult<Vec<Event>> {
        // Event items sort by when they were written (`event_items`).
        let items = self
            .query_all(
                None,
                "pk = :pk AND begins_with(sk, :event)",
                vec![(":pk", s(share_pk(id.as_str()))), (":event", s(EVENT_SK_PREFIX))],
                true,
                None,
            )
            .await?;
        items.iter().map(body).collect()
    }

    async fn list_shares(&self, practice: &PracticeId, after: Option<&ListCursor>, limit: usize) -> PortResult<Vec<Share>> {
        // BETWEEN is inclusive: ask for one more and drop the cursor's own share.
        let hi = match after {
            Some(c) => listing_sk(c.created_at, c.id.as_str()),
            None => "SHARE$".to_owned(), // '$' sorts right after '#': every share key is below it
        };
        let items = self
            .query_all(
                Some(GSI_PRACTICE),
                "gsi1pk = :p AND gsi1sk BETWEEN :lo AND :hi",
                vec![(":p", s(format!("PRACTICE#{practice}"))), (":lo", s("SHARE#")), (":hi", s(hi))],
                false,
                Some(limit + 1),
            )
            .await?;
        let mut shares: Vec<Share> = items.iter().map(body).collect::<PortResult<_>>()?;
        if let Some(c) = after {
            shares.retain(|sh| sh.id != c.id);
        }
        shares.truncate(limit);
        Ok(shares)
    }

    async fn shares_due_for_expiry(&self, now: DateTime<Utc>, limit: usize) -> PortResult<Vec<Share>> {
        let items = self
            .query_all(
                Some(GSI_EXPIRY),
                "gsi2pk = :p AND gsi2sk <= :now",
                vec![(":p", s(EXPIRY_PARTITION)), (":now", s(format!("{:020}$", us(now))))],
                true,
                Some(limit),
            )
            .await?;
        let mut due = Vec::with_capacity(items.len());
        for item in items {
            // The index is eventually consistent: read the share itself.
            if let Some(pk) = get_s(&item, "pk")
                && let Some(share) = self.get(pk.to_owned(), SHARE_SK).await?
            {
                let share: Share = body(&share)?;
                if !share.expiry_processed {
                    due.push(share);
                }
            }
        }
        Ok(due)
    }

    /// DynamoDB's TTL deletes records past `purge_at` (and the stream-fed cleanup function their
    /// objects); nothing to do here.
    async fn purge_expired_records(&self, _now: DateTime<Utc>) -> PortResult<usize> {
        Ok(0)
    }

    async fn record_provider_message(&self, message_id: &str, share: &ShareId, until: DateTime<Utc>) -> PortResult<()> {
        let item = Item::from([
            ("pk".into(), s(format!("MSG#{message_id}"))),
            ("sk".into(), s("MSG")),
            ("share_id".into(), s(share.as_str())),
            ("ttl".into(), n(until.timestamp())),
        ]);
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(sdk_err)?;
        Ok(())
    }

    async fn find_provider_message(&self, message_id: &str) -> PortResult<Option<ShareId>> {
        let item = self.get(format!("MSG#{message_id}"), "MSG").await?;
        Ok(item.and_then(|i| get_s(&i, "share_id").and_then(ShareId::parse)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).message("m").build()
    }

    #[test]
    fn a_cancelled_transaction_is_a_conflict_only_when_it_lost_a_race() {
        for raced in [
            vec![reason("ConditionalCheckFailed"), reason("None")],
            vec![reason("None"), reason("TransactionConflict")],
            vec![reason("ConditionalCheckFailed"), reason("TransactionConflict")],
        ] {
            assert!(matches!(cancellation(&raced), PortError::Conflict), "{raced:?}");
        }
        for failed in [
            vec![reason("ThrottlingError"), reason("None")],
            vec![reason("ConditionalCheckFailed"), reason("ItemCollectionSizeLimitExceeded")],
            vec![reason("None"), reason("ValidationError")],
            vec![reason("ProvisionedThroughputExceeded")],
            vec![],
        ] {
            let e = cancellation(&failed);
            assert!(matches!(&e, PortError::Other(text) if text.contains("transaction cancelled")), "{failed:?}: {e}");
        }
    }
}
