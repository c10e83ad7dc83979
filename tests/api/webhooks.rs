//! Webhooks (SPEC "Webhooks"): endpoints, signed deliveries in order per share, retries with
//! backoff for 24 hours, failures listed, nothing sent twice once acknowledged. A real HTTP
//! receiver on loopback; signatures checked with RustCrypto's `hmac`, not the server's `ring`.

use crate::helpers::*;
use chrono::Duration;
use hmac::{KeyInit, Mac};
use sealpost::domain::{PracticeId, WebhookId};
use sealpost::ports::{Clock, FailedDelivery};
use sealpost_tests::TestApp;
use sealpost_tests::receiver::{Receiver, Reply as Answer};
use serde_json::{Value, json};
use std::time::Duration as StdDuration;

async fn register(app: &TestApp, url: &str) -> Value {
    call(app, "POST", "/v1/webhooks", Some(&app.api_key), Some(&json!({ "url": url }))).await.ok(201)
}

/// Registers an endpoint; its id as the API shows it, and the practice's id and the endpoint's
/// as the store keys them, for what only the store can show.
async fn registered(app: &TestApp, url: &str) -> (String, PracticeId, WebhookId) {
    let id = register(app, url).await["id"].as_str().unwrap().to_owned();
    let practice = app.store().list_practices().await.expect("practices")[0].id.clone();
    let webhook_id = WebhookId::parse(&id).expect("webhook id");
    (id, practice, webhook_id)
}

async fn webhook(app: &TestApp, id: &str) -> Value {
    call(app, "GET", &format!("/v1/webhooks/{id}"), Some(&app.api_key), None).await.ok(200)
}

async fn failures(app: &TestApp, id: &str) -> Vec<Value> {
    let list = call(app, "GET", &format!("/v1/webhooks/{id}/failures"), Some(&app.api_key), None).await.ok(200);
    list["deliveries"].as_array().expect("deliveries").clone()
}

/// Checks `Sealpost-Signature: t=…,v1=…` over `"<t>.<body>"` with `secret`; answers `t`.
#[track_caller]
fn check_signature(secret: &str, header: &str, body: &[u8]) -> i64 {
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("signature header {header:?}"));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(v1, expected, "signature does not verify");
    t.parse().expect("t is unix seconds")
}

/// The event types a share's deliveries carried, in arrival order (acknowledged ones only).
fn delivered_types(receiver: &Receiver, share_id: &str) -> Vec<String> {
    receiver
        .acknowledged()
        .iter()
        .map(|r| r.json())
        .filter(|j| j["share_id"] == share_id)
        .map(|j| j["type"].as_str().expect("type").to_owned())
        .collect()
}

#[tokio::test]
async fn endpoints_are_registered_listed_changed_and_removed() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    let created = register(&app, &receiver.url).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().expect("the secret, once").to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{secret}");
    assert_eq!(created["url"], receiver.url.as_str());
    assert_eq!(created["enabled"], true);

    let read = webhook(&app, &id).await;
    assert!(read.get("secret").is_none(), "the secret is shown only once: {read}");
    let list = call(&app, "GET", "/v1/webhooks", Some(&app.api_key), None).await.ok(200);
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    assert!(list["webhooks"][0].get("secret").is_none());

    let path = format!("/v1/webhooks/{id}");
    let changed =
        call(&app, "PATCH", &path, Some(&app.api_key), Some(&json!({"description": "PVS", "enabled": false}))).await.ok(200);
    assert_eq!((changed["description"].as_str(), changed["enabled"].as_bool()), (Some("PVS"), Some(false)));
    assert!(changed.get("secret").is_none());
    let rotated = call(&app, "PATCH", &path, Some(&app.api_key), Some(&json!({"rotate_secret": true}))).await.ok(200);
    let new_secret = rotated["secret"].as_str().expect("a rotated secret is shown once");
    assert_ne!(new_secret, secret);

    // Another practice sees none of it.
    let other = app.add_practice("Praxis Zwei", Default::default()).await;
    call(&app, "GET", &path, Some(&other), None).await.err(404, "not_found");
    call(&app, "DELETE", &path, Some(&other), None).await.err(404, "not_found");
    let theirs = call(&app, "GET", "/v1/webhooks", Some(&other), None).await.ok(200);
    assert_eq!(theirs["webhooks"], json!([]));
    call(&app, "GET", "/v1/webhooks", None, None).await.err(401, "unauthorized");

    call(&app, "DELETE", &path, Some(&app.api_key), None).await.ok(204);
    call(&app, "GET", &path, Some(&app.api_key), None).await.err(404, "not_found");
    call(&app, "DELETE", &path, Some(&app.api_key), None).await.err(404, "not_found");
    call(&app, "GET", "/v1/webhooks/wh_nonsense", Some(&app.api_key), None).await.err(404, "not_found");
}

/// A change read before a delete and written after it (two requests racing) finds the endpoint
/// gone: the delete stands, on either backend.
#[tokio::test]
async fn a_change_racing_a_delete_does_not_bring_the_endpoint_back() {
    let app = TestApp::spawn().await;
    let (id, practice, webhook_id) = registered(&app, "https://hooks.example.ch/sealpost").await;
    let mut read = app.store().get_webhook(&practice, &webhook_id).await.expect("get").expect("the endpoint");

    call(&app, "DELETE", &format!("/v1/webhooks/{id}"), Some(&app.api_key), None).await.ok(204);
    read.enabled = false;
    assert!(!app.store().replace_webhook(&read).await.expect("replace"), "a deleted endpoint was replaced");
    assert!(app.store().get_webhook(&practice, &webhook_id).await.expect("get").is_none());
    call(&app, "GET", &format!("/v1/webhooks/{id}"), Some(&app.api_key), None).await.err(404, "not_found");

    // While it exists, the same call replaces it.
    let (id, _, webhook_id) = registered(&app, "https://hooks.example.ch/other").await;
    let mut read = app.store().get_webhook(&practice, &webhook_id).await.expect("get").expect("the endpoint");
    read.enabled = false;
    assert!(app.store().replace_webhook(&read).await.expect("replace"));
    assert_eq!(webhook(&app, &id).await["enabled"], false);
}

/// A delivery given up twice (its queue message delivered again after the first record, as SQS
/// may) is listed once, as its latest record, on either backend.
#[tokio::test]
async fn a_delivery_given_up_twice_is_listed_once() {
    let app = TestApp::spawn().await;
    let (id, practice, webhook_id) = registered(&app, "https://hooks.example.ch/sealpost").await;
    let now = app.clock.now();
    let failed = |event: &str, minutes: i64, attempts: u32| FailedDelivery {
        event_id: event.to_owned(),
        kind: "share.created".to_owned(),
        share_id: None,
        attempts,
        failed_at: now + Duration::minutes(minutes),
        last_status: Some(503),
        last_error: Some("status 503".to_owned()),
    };
    for record in [failed("evt_twice", 0, 12), failed("evt_once", 1, 12), failed("evt_twice", 2, 13)] {
        app.store().record_failed_delivery(&practice, &webhook_id, &record).await.expect("record");
    }
    let listed = failures(&app, &id).await;
    let events: Vec<(&str, u64)> =
        listed.iter().map(|f| (f["event_id"].as_str().unwrap(), f["attempts"].as_u64().unwrap())).collect();
    assert_eq!(events, [("evt_twice", 13), ("evt_once", 12)], "{listed:?}");
}

#[tokio::test]
async fn bad_endpoints_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let key = Some(app.api_key.as_str());
    // Private, link-local (cloud metadata) and loopback addresses over https: refused on every
    // backend (issue 17: the embedded one accepted them, and its test route told what answered).
    let private = [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/",
        "https://192.168.1.1/",
        "https://[fd00::1]/",
        "https://127.0.0.1/",
    ];
    for url in ["ftp://example.ch/x", "http://example.ch/hooks", "/relative", "https://user:pw@example.ch/", ""]
        .into_iter()
        .chain(private)
    {
        call(&app, "POST", "/v1/webhooks", key, Some(&json!({ "url": url }))).await.invalid("url");
    }
    call(&app, "POST", "/v1/webhooks", key, Some(&json!({}))).await.invalid("url");
    call(&app, "POST", "/v1/webhooks", key, Some(&json!({"url": "https://example.ch/", "extra": 1}))).await.invalid("extra");
    let long = "x".repeat(201);
    call(&app, "POST", "/v1/webhooks", key, Some(&json!({"url": "https://example.ch/", "description": long})))
        .await
        .invalid("description");
    call_raw(&app, "POST", "/v1/webhooks", key, Some("application/json"), b"{not json".to_vec()).await.invalid("body");
    for i in 0..5 {
        register(&app, &format!("https://hooks{i}.example.ch/sealpost")).await;
    }
    call(&app, "POST", "/v1/webhooks", key, Some(&json!({"url": "https://six.example.ch/"}))).await.invalid("url");
    let id = call(&app, "GET", "/v1/webhooks", key, None).await.ok(200)["webhooks"][0]["id"].as_str().unwrap().to_owned();
    call(&app, "PATCH", &format!("/v1/webhooks/{id}"), key, Some(&json!({"url": "http://example.ch/"}))).await.invalid("url");
}

#[tokio::test]
async fn every_event_arrives_signed_once_and_in_order() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    let secret = register(&app, &receiver.url).await["secret"].as_str().unwrap().to_owned();
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    // Deliveries are asynchronous: the API call that made the events sent nothing itself.
    assert!(receiver.received().is_empty(), "an API call waited for a webhook");
    let code = last_code(&app).await;
    verify(&app, &id, &other_code(&code)).await.err(401, "wrong_code");
    let verified = verify_ok(&app, &id, &code).await;
    let doc = verified["documents"][0]["id"].as_str().unwrap().to_owned();
    document_link(&app, &id, &doc, Some(&token_of(&verified))).await.ok(200);
    app.deliver_webhooks().await;

    let expected = events_of(&app, &id).await;
    assert!(expected.len() >= 6, "{expected:?}");
    assert_eq!(delivered_types(&receiver, &id), expected, "every event, in the share's order");
    let view = get_share(&app, &id).await;
    let now = app.clock.now().timestamp();
    for (received, event) in receiver.received().iter().zip(view["events"].as_array().unwrap()) {
        let t = check_signature(&secret, &received.signature, &received.body);
        assert!((now - t).abs() <= 300, "t={t} is not now ({now})");
        assert_eq!(received.content_type, "application/json");
        let body = received.json();
        let mut keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["created_at", "data", "id", "reference", "share_id", "type"], "{body}");
        assert_eq!(body["id"], event["id"], "the event's own id, for de-duplication");
        assert_eq!(received.event_id_header, body["id"].as_str().unwrap());
        assert_eq!(body["reference"], share["reference"]);
        assert_eq!(body["created_at"], event["created_at"]);
        let text = String::from_utf8_lossy(&received.body).into_owned();
        assert!(!text.contains(&code) && !text.contains("+41") && !text.contains('@'), "personal data: {text}");
    }
    let downloaded = receiver.received().iter().map(|r| r.json()).find(|j| j["type"] == "document_downloaded").unwrap();
    assert_eq!(downloaded["data"]["document_id"], doc.as_str());

    // Nothing is sent twice.
    assert_eq!(app.deliver_webhooks().await, 0);
    assert_eq!(receiver.received().len(), expected.len());
    let health = webhook(&app, receiver_id(&app).await.as_str()).await;
    assert_eq!(health["last_attempt"]["ok"], true, "{health}");
    assert_eq!(health["last_attempt"]["status"], 200);
    assert!(health["last_success_at"].is_string());
}

async fn receiver_id(app: &TestApp) -> String {
    let list = call(app, "GET", "/v1/webhooks", Some(&app.api_key), None).await.ok(200);
    list["webhooks"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_disabled_or_later_endpoint_gets_nothing_from_before() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    app.advance(Duration::seconds(1));
    let receiver = Receiver::spawn().await;
    let created = register(&app, &receiver.url).await;
    app.deliver_webhooks().await;
    assert!(receiver.received().is_empty(), "events from before the endpoint existed were sent");
    let path = format!("/v1/webhooks/{}", created["id"].as_str().unwrap());
    call(&app, "PATCH", &path, Some(&app.api_key), Some(&json!({"enabled": false}))).await.ok(200);
    resend(&app, &id_of(&share)).await.ok(200);
    app.deliver_webhooks().await;
    assert!(receiver.received().is_empty(), "a disabled endpoint got a delivery");
    // Enabled again, it hears of what happens from then on.
    call(&app, "PATCH", &path, Some(&app.api_key), Some(&json!({"enabled": true}))).await.ok(200);
    revoke(&app, &id_of(&share)).await.ok(200);
    app.deliver_webhooks().await;
    assert_eq!(delivered_types(&receiver, &id_of(&share)), ["revoked"]);
}

#[tokio::test]
async fn deliveries_queued_for_an_endpoint_that_is_then_disabled_are_listed_as_failed() {
    if !embedded() {
        return; // Needs a retry to come due, on the service's clock.
    }
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    let id = register(&app, &receiver.url).await["id"].as_str().unwrap().to_owned();
    receiver.plan([Answer::Status(500)]);
    create_default(&app).await;
    app.deliver_webhooks().await;
    call(&app, "PATCH", &format!("/v1/webhooks/{id}"), Some(&app.api_key), Some(&json!({"enabled": false}))).await.ok(200);
    app.advance(Duration::minutes(2));
    app.deliver_webhooks().await;
    let failed = failures(&app, &id).await;
    assert_eq!(failed.len(), 3, "created, email_sent, sms_sent: {failed:?}");
    assert!(failed.iter().all(|f| f["last_error"] == "endpoint disabled" || f["last_status"] == 500), "{failed:?}");
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn the_test_call_posts_a_signed_test_event_and_says_what_happened() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    let created = register(&app, &receiver.url).await;
    let secret = created["secret"].as_str().unwrap();
    let path = format!("/v1/webhooks/{}/test", created["id"].as_str().unwrap());
    let ok = call(&app, "POST", &path, Some(&app.api_key), None).await.ok(200);
    assert_eq!((ok["delivered"].as_bool(), ok["status"].as_u64()), (Some(true), Some(200)), "{ok}");
    let got = &receiver.received()[0];
    check_signature(secret, &got.signature, &got.body);
    assert_eq!(got.json()["type"], "test");
    assert_eq!(got.json()["id"], ok["event_id"]);

    receiver.plan([Answer::Status(503)]);
    let failed = call(&app, "POST", &path, Some(&app.api_key), None).await.ok(200);
    assert_eq!((failed["delivered"].as_bool(), failed["status"].as_u64()), (Some(false), Some(503)), "{failed}");
    assert_eq!(failed["error"], "status 503");
    let health = webhook(&app, created["id"].as_str().unwrap()).await;
    assert_eq!(health["last_attempt"]["status"], 503, "{health}");
    assert!(health["last_success_at"].is_string(), "the earlier success stays: {health}");
}

/// The test route answers with what the endpoint said: a few a minute per endpoint, then 429
/// with `Retry-After` until the minute is over; another endpoint has its own count.
#[tokio::test]
async fn the_test_call_is_limited_per_endpoint() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    // The start of a minute, so that the limit's minute does not end during the test.
    let now = app.clock.now();
    app.advance(Duration::seconds(60 - now.timestamp().rem_euclid(60)));
    let first = register(&app, &receiver.url).await["id"].as_str().unwrap().to_owned();
    let second = register(&app, &receiver.url).await["id"].as_str().unwrap().to_owned();
    let test = |id: &str| format!("/v1/webhooks/{id}/test");
    for _ in 0..sealpost::domain::WEBHOOK_TESTS_PER_MINUTE {
        call(&app, "POST", &test(&first), Some(&app.api_key), None).await.ok(200);
    }
    let limited = call(&app, "POST", &test(&first), Some(&app.api_key), None).await;
    limited.err(429, "rate_limited");
    let retry_after = limited.retry_after();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(receiver.received().len(), sealpost::domain::WEBHOOK_TESTS_PER_MINUTE as usize, "the refused test posted nothing");
    call(&app, "POST", &test(&second), Some(&app.api_key), None).await.ok(200);

    app.advance(Duration::seconds(i64::try_from(retry_after).unwrap()));
    call(&app, "POST", &test(&first), Some(&app.api_key), None).await.ok(200);
}

#[tokio::test]
async fn a_timeout_is_a_failed_attempt_and_the_share_s_next_event_waits() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    let created = register(&app, &receiver.url).await;
    receiver.plan([Answer::Hang(StdDuration::from_secs(12))]);
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    assert_eq!(app.deliver_webhooks().await, 1, "one attempt: the rest of the share waits behind it");
    let health = webhook(&app, created["id"].as_str().unwrap()).await;
    assert_eq!(health["last_attempt"]["error"], "timeout", "{health}");
    assert!(health["last_attempt"]["status"].is_null());
    assert!(delivered_types(&receiver, &id).is_empty());
    if !embedded() {
        return; // On AWS the retry waits in SQS for real seconds (the message's visibility).
    }
    app.advance(Duration::seconds(31));
    app.deliver_webhooks().await;
    assert_eq!(delivered_types(&receiver, &id), events_of(&app, &id).await, "retried, then the rest in order");
}

#[tokio::test]
async fn failed_attempts_back_off_then_succeed_in_order() {
    if !embedded() {
        return; // Backoff runs on the service's clock here; on AWS on SQS's (real time).
    }
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    register(&app, &receiver.url).await;
    receiver.plan([Answer::Status(500), Answer::Status(502), Answer::Status(404)]);
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    assert_eq!(app.deliver_webhooks().await, 1);
    assert_eq!(app.deliver_webhooks().await, 0, "not again before the backoff");
    app.advance(Duration::seconds(14));
    assert_eq!(app.deliver_webhooks().await, 0, "the first retry waits 15 to 30 s");
    app.advance(Duration::seconds(17));
    assert_eq!(app.deliver_webhooks().await, 1);
    app.advance(Duration::seconds(29));
    assert_eq!(app.deliver_webhooks().await, 0, "the second retry waits 30 to 60 s");
    app.advance(Duration::seconds(32));
    assert_eq!(app.deliver_webhooks().await, 1, "a 404 is a failure too");
    app.advance(Duration::seconds(121));
    app.deliver_webhooks().await;
    let events = events_of(&app, &id).await;
    assert_eq!(delivered_types(&receiver, &id), events);
    let first = &receiver.received()[0].json();
    assert!(receiver.received()[..4].iter().all(|r| r.json()["id"] == first["id"]), "the same event 4 times first");
    assert!(failures(&app, &receiver_id(&app).await).await.is_empty());
}

#[tokio::test]
async fn after_24_hours_of_failures_a_delivery_is_failed_and_listed() {
    if !embedded() {
        return; // Needs the retry window to pass: the service's clock here, real time in SQS.
    }
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    let id = register(&app, &receiver.url).await["id"].as_str().unwrap().to_owned();
    receiver.plan(std::iter::repeat_n(Answer::Status(500), 1000));
    let (share, _) = create_default(&app).await;
    let share_id = id_of(&share);
    let events = events_of(&app, &share_id).await;
    let mut attempts = 0;
    for _ in 0..26 {
        attempts += app.deliver_webhooks().await;
        app.advance(Duration::hours(1));
    }
    attempts += app.deliver_webhooks().await;
    let failed = failures(&app, &id).await;
    assert_eq!(failed.len(), events.len(), "every event failed in the end: {failed:?}");
    let head = failed.iter().find(|f| f["type"] == "created").expect("created failed");
    assert!(head["attempts"].as_u64().unwrap() >= 10, "retried through the day: {head}");
    assert_eq!(head["last_status"], 500);
    assert_eq!(head["share_id"], share_id.as_str());
    assert!(attempts >= 10 + events.len() - 1, "{attempts}");

    // The endpoint recovers: new events arrive, and the failures stay listed.
    let answered = receiver.received().len();
    let fresh = Receiver::spawn().await; // a clean plan: 200 from now on
    call(&app, "PATCH", &format!("/v1/webhooks/{id}"), Some(&app.api_key), Some(&json!({"url": fresh.url}))).await.ok(200);
    resend(&app, &share_id).await.ok(200);
    app.deliver_webhooks().await;
    assert!(delivered_types(&fresh, &share_id).contains(&"resent".to_owned()));
    assert_eq!(receiver.received().len(), answered);
    assert_eq!(failures(&app, &id).await.len(), events.len(), "a later success clears nothing");
    assert_eq!(webhook(&app, &id).await["last_attempt"]["ok"], true);
}

#[tokio::test]
async fn acknowledged_deliveries_are_not_sent_again_after_a_restart() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    register(&app, &receiver.url).await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    app.deliver_webhooks().await;
    let before = receiver.received().len();
    assert!(before >= 3);
    let app = app.restart().await;
    app.deliver_webhooks().await;
    assert_eq!(receiver.received().len(), before, "delivered again after a restart");
    revoke(&app, &id).await.ok(200);
    app.deliver_webhooks().await;
    assert_eq!(delivered_types(&receiver, &id).last().map(String::as_str), Some("revoked"));
    assert_eq!(receiver.received().len(), before + 1);
}

#[tokio::test]
async fn a_pending_retry_survives_a_restart() {
    if !embedded() {
        return; // On AWS the queue is SQS, which a restart of the API does not touch.
    }
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    register(&app, &receiver.url).await;
    receiver.plan([Answer::Status(500)]);
    let (share, _) = create_default(&app).await;
    app.deliver_webhooks().await;
    let app = app.restart().await;
    app.advance(Duration::minutes(2));
    app.deliver_webhooks().await;
    let id = id_of(&share);
    assert_eq!(delivered_types(&receiver, &id), events_of(&app, &id).await);
}

#[tokio::test]
async fn a_link_that_runs_out_unread_tells_the_practice() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    register(&app, &receiver.url).await;
    let (share, _) = create_default(&app).await;
    let (read, _) = create_default(&app).await;
    let verified = verify_ok(&app, &id_of(&read), &last_code(&app).await).await;
    archive_link(&app, &id_of(&read), Some(&token_of(&verified))).await.ok(200);
    app.advance(Duration::days(31));
    app.sweep().await;
    app.deliver_webhooks().await;
    let unread = delivered_types(&receiver, &id_of(&share));
    assert_eq!(&unread[unread.len() - 2..], ["expired", "expired_unread"]);
    let downloaded = delivered_types(&receiver, &id_of(&read));
    assert_eq!(downloaded.last().map(String::as_str), Some("expired"));
    assert!(!downloaded.contains(&"expired_unread".to_owned()));
}

#[tokio::test]
async fn provider_reports_become_events_and_deliveries() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    register(&app, &receiver.url).await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    let email_id = app.provider_message_ids("email").await.pop().expect("the email's provider id");
    let sms_id = app.provider_message_ids("sms").await.pop().expect("the SMS's provider id");
    app.report_bounce(&email_id).await;
    app.report_sms_failure(&sms_id).await;
    // Providers deliver reports at least once: the same report again records nothing new.
    app.report_bounce(&email_id).await;
    let events = events_of(&app, &id).await;
    assert!(events.ends_with(&["email_bounced".to_owned(), "sms_delivery_failed".to_owned()]), "{events:?}");
    assert_eq!(events.iter().filter(|e| *e == "email_bounced").count(), 1, "{events:?}");
    let view = get_share(&app, &id).await;
    let bounced = view["events"].as_array().unwrap().iter().find(|e| e["type"] == "email_bounced").unwrap().clone();
    assert_eq!(bounced["data"]["bounce_type"], "Permanent", "{bounced}");
    assert!(!bounced.to_string().contains('@'), "no address in the event: {bounced}");
    app.deliver_webhooks().await;
    assert!(delivered_types(&receiver, &id).ends_with(&["email_bounced".to_owned(), "sms_delivery_failed".to_owned()]));
}

#[tokio::test]
async fn the_embedded_server_delivers_in_the_background() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::spawn().await;
    register(&app, &receiver.url).await;
    if !app.start_webhook_task(StdDuration::from_millis(20)) {
        return; // AWS: the functions send (the other tests pump them)
    }
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    let expected = events_of(&app, &id).await;
    for _ in 0..500 {
        if delivered_types(&receiver, &id).len() >= expected.len() {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert_eq!(delivered_types(&receiver, &id), expected, "the background task delivered every event");
}

/// What moto can show of the bounce path: SES (on a send to its bounce simulator address)
/// publishes a notification to SNS, SNS to SQS, and the `feedback` handler reads it as a
/// bounce. moto's notification is a fixed sample whose `mail.messageId` is not the id SES gave
/// the message, so it names no share of ours: matching by message id is shown above, with
/// reports in the documented format.
#[tokio::test]
async fn moto_s_ses_bounce_notification_reads_as_a_bounce() {
    let app = TestApp::spawn().await;
    let Some(mut next_notification) = app.ses_bounce_notifications().await else {
        return; // the embedded backend has no SES
    };
    let mut body = share_body();
    body["recipient"]["email"] = json!("bounce@simulator.amazonses.com");
    post_share(&app, &body).await.ok(201);
    let envelope = next_notification().await;
    assert_eq!(envelope["Type"], "Notification", "{envelope}");
    let (_, report) = sealpost::feedback::ses_report(&envelope["Message"]).expect("read as a bounce");
    assert_eq!(report.kind, sealpost::domain::EventKind::EmailBounced);
    assert_eq!(report.data["bounce_type"], "Permanent");
    let event = json!({"Records": [{"EventSource": "aws:sns", "Sns": envelope}]});
    assert_eq!(sealpost::feedback::handle(&app.service, &event).await.unwrap(), 0, "moto's sample id is no message of ours");
}
