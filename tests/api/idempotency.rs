//! `Idempotency-Key` on create: a retry answers the first response and sends nothing twice.

use crate::helpers::*;

#[tokio::test]
async fn same_key_same_body_answers_the_first_response() {
    let app = TestApp::spawn().await;
    let body = share_body();
    let first = post_share_idem(&app, "retry-1", &body).await.ok(201);
    app.advance(Duration::seconds(10));
    let second = post_share_idem(&app, "retry-1", &body).await.ok(201);
    assert_eq!(first, second, "the very same response");
    assert_eq!(app.sent_sms().await.len(), 1, "one SMS");
    assert_eq!(app.sent_emails().await.len(), 1, "one email");
    let list = list_shares(&app, "").await.ok(200);
    assert_eq!(list["shares"].as_array().unwrap().len(), 1);
    let view = get_share(&app, &id_of(&first)).await;
    assert_eq!(count_events(&view, "created"), 1);
    assert_eq!(count_events(&view, "sms_sent"), 1);
}

#[tokio::test]
async fn same_key_other_body_is_refused() {
    let app = TestApp::spawn().await;
    let body = share_body();
    post_share_idem(&app, "retry-2", &body).await.ok(201);
    let mut other = share_body();
    other["message"] = json!("Ein anderer Text.");
    post_share_idem(&app, "retry-2", &other).await.invalid("Idempotency-Key");
    assert_eq!(app.sent_sms().await.len(), 1);
    assert_eq!(list_shares(&app, "").await.ok(200)["shares"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn without_a_key_two_creates_make_two_shares() {
    let app = TestApp::spawn().await;
    let a = create_share(&app, &share_body()).await;
    let b = create_share(&app, &share_body()).await;
    assert_ne!(a["id"], b["id"]);
    assert_eq!(app.sent_sms().await.len(), 2);
    assert_eq!(app.sent_emails().await.len(), 2);
    // Different keys: two shares as well.
    let c = post_share_idem(&app, "k-1", &share_body()).await.ok(201);
    let d = post_share_idem(&app, "k-2", &share_body()).await.ok(201);
    assert_ne!(c["id"], d["id"]);
    assert_eq!(list_shares(&app, "").await.ok(200)["shares"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_refused_create_is_replayed_as_refused_or_can_be_fixed() {
    let app = TestApp::spawn().await;
    let mut bad = share_body();
    bad["recipient"]["phone"] = json!("nope");
    post_share_idem(&app, "retry-3", &bad).await.invalid("recipient.phone");
    let again = post_share_idem(&app, "retry-3", &bad).await;
    again.invalid("recipient.phone");
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn keys_belong_to_one_practice() {
    let app = TestApp::spawn().await;
    let key2 = app.add_practice("Praxis Beispiel", Policy::default()).await;
    let body = share_body();
    let mine = post_share_idem(&app, "shared-key", &body).await.ok(201);
    let req = app.http.post(app.url("/v1/shares")).bearer_auth(&key2).header("Idempotency-Key", "shared-key").json(&body);
    let theirs = Reply::from(req.send().await.unwrap()).await.ok(201);
    assert_ne!(mine["id"], theirs["id"], "another practice must never get this practice's response");
    assert_eq!(app.sent_sms().await.len(), 2);
}

#[tokio::test]
async fn a_manual_retry_answers_the_same_share_but_never_the_code_again() {
    // SPEC: a code is never returned by the API except once for manual, and stored only as an
    // HMAC — so the stored idempotent answer holds no code, and a replay cannot reveal it.
    let app = TestApp::spawn().await;
    let body = share_body_with_method("manual");
    let first = post_share_idem(&app, "manual-1", &body).await.ok(201);
    let second = post_share_idem(&app, "manual-1", &body).await.ok(201);
    assert!(first["code"].is_string(), "{first}");
    assert!(second.get("code").is_none(), "the code is answered once: {second}");
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["reference"], second["reference"]);
    verify_ok(&app, &id_of(&first), first["code"].as_str().unwrap()).await;
    assert_eq!(app.sent_emails().await.len(), 1);
    if embedded() {
        let mut db = std::fs::read(app.data_dir.join("sealpost.db")).unwrap();
        db.extend(std::fs::read(app.data_dir.join("sealpost.db-wal")).unwrap_or_default());
        let code = first["code"].as_str().unwrap();
        let text = String::from_utf8_lossy(&db);
        assert!(!text.contains(code) && !text.contains(&code.replace('-', "")), "code stored in clear");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_create_one_share() {
    let app = TestApp::spawn().await;
    let mut body = share_body();
    // A body big enough that the first request is still running when the others arrive.
    body["documents"] = json!([doc("gross.bin", "application/octet-stream", &vec![42u8; 4 * 1024 * 1024])]);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let req =
            app.http.post(app.url("/v1/shares")).bearer_auth(&app.api_key).header("Idempotency-Key", "concurrent-1").json(&body);
        tasks.push(tokio::spawn(async move { Reply::from(req.send().await.expect("sent")).await }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => {
                ids.insert(id_of(&r.json));
            }
            429 => {
                r.err(429, "rate_limited");
                assert_eq!(r.header("retry-after").as_deref(), Some("1"), "while the first runs: Retry-After: 1");
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(ids.len() <= 1, "one share at most: {ids:?}");
    // Afterwards the retry answers the one share.
    let again = post_share_idem(&app, "concurrent-1", &body).await.ok(201);
    if let Some(id) = ids.iter().next() {
        assert_eq!(id_of(&again), *id);
    }
    assert_eq!(list_shares(&app, "").await.ok(200)["shares"].as_array().unwrap().len(), 1);
    assert_eq!(app.sent_sms().await.len(), 1);
    assert_eq!(app.sent_emails().await.len(), 1);
}
