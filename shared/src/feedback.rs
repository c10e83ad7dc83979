//! What providers report after they took a message, turned into share events:
//!
//! - SES bounces and complaints, published by the configuration set's event destination (or an
//!   identity's notification topic) to SNS, which invokes the `feedback` function with an SNS
//!   event. Both formats are read (`eventType` and `notificationType`); the kind is taken from
//!   the `bounce`/`complaint` object, not the type string.
//! - SNS SMS delivery results, which SNS writes only to CloudWatch Logs
//!   (`sns/<region>/<account>/DirectPublishToPhoneNumber/Failure`); a subscription filter
//!   invokes the function with a gzip'd, base64'd `awslogs` event.
//!
//! A report names the provider's message id; the service finds the share by it. Nothing of an
//! address or number is kept: only the bounce type or the carrier's reason.

use crate::domain::EventKind;
use crate::service::{ProviderReport, Service};
use base64::Engine;
use serde_json::{Value, json};
use std::io::Read;

/// A provider's reason is kept to this many characters.
const MAX_REASON_CHARS: usize = 200;

/// Records every report in a Lambda event (SNS or CloudWatch Logs); returns how many named one
/// of our messages. An event of another shape is an error, so a misrouted source is noticed.
pub async fn handle(service: &Service, event: &Value) -> crate::Result<usize> {
    let reports = if let Some(data) = event.pointer("/awslogs/data").and_then(Value::as_str) {
        sms_reports(data)?
    } else if let Some(records) = event.get("Records").and_then(Value::as_array) {
        records.iter().filter_map(|r| r.pointer("/Sns/Message")).filter_map(ses_report).collect()
    } else {
        return Err(crate::Error::invalid("event", "neither an SNS nor a CloudWatch Logs event"));
    };
    let mut recorded = 0;
    for (message_id, report) in reports {
        if service.record_provider_report(&message_id, report).await? {
            recorded += 1;
        }
    }
    Ok(recorded)
}

/// An SES notification (a JSON string in the SNS message, or already an object) as a report.
pub fn ses_report(message: &Value) -> Option<(String, ProviderReport)> {
    let parsed;
    let n = match message {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).ok()?;
            &parsed
        }
        other => other,
    };
    let message_id = n.pointer("/mail/messageId")?.as_str()?.to_owned();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(reason);
    let feedback_id = |o: &Value| o.get("feedbackId").and_then(Value::as_str).unwrap_or_default().to_owned();
    let report = if let Some(b) = n.get("bounce") {
        ProviderReport {
            kind: EventKind::EmailBounced,
            data: json!({
                "bounce_type": text(b.get("bounceType")),
                "bounce_subtype": text(b.get("bounceSubType")),
            }),
            report_id: format!("bounce/{}", feedback_id(b)),
        }
    } else if let Some(c) = n.get("complaint") {
        ProviderReport {
            kind: EventKind::EmailBounced,
            data: json!({ "complaint": true, "feedback_type": text(c.get("complaintFeedbackType")) }),
            report_id: format!("complaint/{}", feedback_id(c)),
        }
    } else {
        return None; // deliveries, opens, sends: nothing to tell the practice
    };
    Some((message_id, report))
}

/// The failed SMS deliveries in a CloudWatch Logs subscription payload (base64 of gzip).
pub fn sms_reports(data: &str) -> crate::Result<Vec<(String, ProviderReport)>> {
    let bad = || crate::Error::invalid("awslogs.data", "not base64 of gzip'd JSON");
    let gz = base64::engine::general_purpose::STANDARD.decode(data.trim()).map_err(|_| bad())?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz.as_slice()).take(8 << 20).read_to_string(&mut text).map_err(|_| bad())?;
    let batch: Value = serde_json::from_str(&text).map_err(|_| bad())?;
    let events = batch.get("logEvents").and_then(Value::as_array).cloned().unwrap_or_default();
    Ok(events
        .iter()
        .filter_map(|e| {
            let m = serde_json::from_str::<Value>(e.get("message")?.as_str()?).ok()?;
            if m.get("status").and_then(Value::as_str) != Some("FAILURE") {
                return None;
            }
            let id = m.pointer("/notification/messageId")?.as_str()?.to_owned();
            let why = m.pointer("/delivery/providerResponse").and_then(Value::as_str).map(reason);
            let report_id = format!("sms/{}", e.get("id").and_then(Value::as_str).unwrap_or_default());
            Some((id, ProviderReport { kind: EventKind::SmsDeliveryFailed, data: json!({ "reason": why }), report_id }))
        })
        .collect())
}

/// A provider's text, cut short, with anything that looks like an address or a number masked
/// (a number may be written in groups: `+41 79 123 45 67` is masked whole).
fn reason(s: &str) -> String {
    let numeric = |w: &str| w.chars().all(|c| c.is_ascii_digit() || "+-().".contains(c)) && w.chars().any(|c| c.is_ascii_digit());
    let words: Vec<&str> = s.split_whitespace().collect();
    let mut out: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if numeric(words[i]) {
            let run: Vec<&str> = words[i..].iter().copied().take_while(|w| numeric(w)).collect();
            let digits: usize = run.iter().map(|w| w.chars().filter(char::is_ascii_digit).count()).sum();
            // A phone number has 8 digits or more; "550 5.1.1" (an SMTP status) is kept.
            if digits >= 8 || run.len() == 1 && digits >= 6 {
                out.push("…");
            } else {
                out.extend(&run);
            }
            i += run.len();
        } else {
            let w = words[i];
            out.push(if w.contains('@') || w.chars().filter(char::is_ascii_digit).count() >= 6 { "…" } else { w });
            i += 1;
        }
    }
    out.join(" ").chars().take(MAX_REASON_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of SES's event publishing documentation.
    const SES_BOUNCE: &str = r#"{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
        "bouncedRecipients":[{"emailAddress":"recipient@example.com","action":"failed","status":"5.1.1",
        "diagnosticCode":"smtp; 550 5.1.1 user unknown"}],"timestamp":"2017-08-05T00:41:02.669Z",
        "feedbackId":"01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000","reportingMTA":"dsn; mta.example.com"},
        "mail":{"timestamp":"2017-08-05T00:40:02.012Z","source":"Sender Name <sender@example.com>",
        "messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
        "destination":["recipient@example.com"],"tags":{"ses:configuration-set":["ConfigSet"]}}}"#;

    #[test]
    fn ses_bounces_and_complaints_are_read_without_addresses() {
        let (id, report) = ses_report(&Value::String(SES_BOUNCE.into())).unwrap();
        assert_eq!(id, "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000");
        assert_eq!(report.kind, EventKind::EmailBounced);
        assert_eq!(report.data, json!({"bounce_type": "Permanent", "bounce_subtype": "General"}));
        let complaint = json!({"notificationType": "Complaint", "mail": {"messageId": "m1"},
            "complaint": {"complainedRecipients": [{"emailAddress": "a@b.ch"}], "complaintFeedbackType": "abuse"}});
        let (_, report) = ses_report(&complaint).unwrap();
        assert_eq!(report.data, json!({"complaint": true, "feedback_type": "abuse"}));
        let delivery = json!({"eventType": "Delivery", "mail": {"messageId": "m2"}, "delivery": {}});
        assert!(ses_report(&delivery).is_none());
        assert!(ses_report(&json!("not json")).is_none());
    }

    #[test]
    fn sms_failures_come_from_the_delivery_log() {
        let failure = json!({"notification": {"messageId": "34d9b400-c6dd-5444-820d-fbeb0f1f54cf",
            "timestamp": "2016-06-28 00:40:34.558"}, "delivery": {"destination": "+41791234567",
            "smsType": "Transactional", "providerResponse": "Phone carrier has blocked this message"}, "status": "FAILURE"});
        let success = json!({"notification": {"messageId": "ok"}, "delivery": {}, "status": "SUCCESS"});
        let batch = json!({"messageType": "DATA_MESSAGE", "logEvents": [
            {"id": "1", "timestamp": 1, "message": failure.to_string()},
            {"id": "2", "timestamp": 2, "message": success.to_string()}]});
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, batch.to_string().as_bytes()).unwrap();
        let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        let reports = sms_reports(&data).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].0, "34d9b400-c6dd-5444-820d-fbeb0f1f54cf");
        assert_eq!(reports[0].1.data, json!({"reason": "Phone carrier has blocked this message"}));
        assert!(sms_reports("%%%").is_err());
    }

    #[test]
    fn reasons_lose_addresses_and_numbers() {
        assert_eq!(reason("550 user anna@example.ch unknown"), "550 user … unknown");
        assert_eq!(reason("number +41791234567 unreachable"), "number … unreachable");
        assert_eq!(reason("number +41 79 123 45 67 unreachable"), "number … unreachable");
        assert_eq!(reason("550 5.1.1 user unknown"), "550 5.1.1 user unknown");
        assert_eq!(reason(&"x".repeat(500)).len(), MAX_REASON_CHARS);
    }
}
