//! The table's stream records (DynamoDB Streams, as Lambda hands them over), read with the
//! table's own item format (`dynamo.rs`): what the webhook fan-out and the TTL cleanup act on.

use super::dynamo::{EVENT_SK_PREFIX, SHARE_PK_PREFIX, SHARE_SK};
use crate::domain::{Event, ShareId};
use aws_lambda_events::event::dynamodb::EventRecord;
use serde_dynamo::AttributeValue;

/// The event a stream record adds: the event item it inserted. Shares' changes, keys and
/// counters add none.
pub fn new_event(record: &EventRecord) -> Option<Event> {
    let image = &record.change.new_image;
    match (record.event_name.as_str(), image.get("sk"), image.get("body")) {
        ("INSERT", Some(AttributeValue::S(sk)), Some(AttributeValue::S(body))) if sk.starts_with(EVENT_SK_PREFIX) => {
            serde_json::from_str(body).ok()
        }
        _ => None,
    }
}

/// The share a TTL deletion removed, if this record is one (any other change is ignored: a
/// revoke already deleted its documents, and the service deletes them at expiry).
pub fn removed_share_id(record: &EventRecord) -> Option<ShareId> {
    let by_ttl = record.user_identity.as_ref().is_some_and(|u| u.principal_id == "dynamodb.amazonaws.com");
    if record.event_name != "REMOVE" || !by_ttl {
        return None;
    }
    let key = |name: &str| match record.change.keys.get(name) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    };
    if key("sk")? != SHARE_SK {
        return None; // an event, an idempotency record, a counter: no objects of its own
    }
    ShareId::parse(key("pk")?.strip_prefix(SHARE_PK_PREFIX)?)
}
