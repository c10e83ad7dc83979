//! A restart on the same data loses nothing: shares, events, counts, codes, tokens, outbox.

use crate::helpers::*;

#[tokio::test]
async fn everything_survives_a_restart() {
    let app = TestApp::spawn().await;
    let (sms_share, code) = create_default(&app).await;
    let sms_id = id_of(&sms_share);
    let manual = create_share(&app, &share_body_with_method("manual")).await;
    let manual_id = id_of(&manual);
    let manual_code = manual["code"].as_str().unwrap().to_owned();
    let (locked_share, locked_code) = create_default(&app).await;
    let locked_id = id_of(&locked_share);
    let wrong = other_code(&locked_code);
    verify(&app, &sms_id, &other_code(&code)).await.err(401, "wrong_code");
    for _ in 0..4 {
        verify(&app, &locked_id, &wrong).await.err(401, "wrong_code");
    }
    verify(&app, &locked_id, &wrong).await.err(423, "locked");
    let verified = verify_ok(&app, &manual_id, &manual_code).await;
    let token = token_of(&verified);
    let doc_id = verified["documents"][0]["id"].as_str().unwrap().to_owned();
    public_get(&app, &sms_id).await.ok(200);

    let view_before = get_share(&app, &sms_id).await;
    let list_before = list_shares(&app, "").await.ok(200);
    let sms_before = app.sent_sms().await.len();
    let emails_before = app.sent_emails().await.len();

    let app = app.restart().await;

    let view_after = get_share(&app, &sms_id).await;
    // The link carries the base URL, which changes with the port: compare the rest.
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("link");
        if let Some(shares) = v["shares"].as_array_mut() {
            for s in shares {
                s.as_object_mut().unwrap().remove("link");
            }
        }
        v
    };
    assert_eq!(strip(view_after.clone()), strip(view_before), "the share view is unchanged");
    assert_eq!(view_after["attempts_left"], 4);
    assert_eq!(strip(list_shares(&app, "").await.ok(200)), strip(list_before));
    assert_eq!(app.sent_sms().await.len(), sms_before, "the outbox is kept");
    assert_eq!(app.sent_emails().await.len(), emails_before);

    // The code sent before the restart still verifies; the lock holds; the token still works.
    assert_eq!(last_code(&app).await, locked_code);
    verify_ok(&app, &sms_id, &code).await;
    verify(&app, &locked_id, &locked_code).await.err(423, "locked");
    let link = document_link(&app, &manual_id, &doc_id, Some(&token)).await.ok(200);
    let got = fetch_url(&app, link["url"].as_str().unwrap()).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.bytes, PDF);

    // Opened only once, across the restart.
    public_get(&app, &sms_id).await.ok(200);
    assert_eq!(count_events(&get_share(&app, &sms_id).await, "opened"), 1);

    // The API key still works and new shares are made as before.
    let (fresh, fresh_code) = create_default(&app).await;
    verify_ok(&app, &id_of(&fresh), &fresh_code).await;
}

#[tokio::test]
async fn self_service_spacing_and_idempotency_survive_a_restart() {
    let app = TestApp::spawn().await;
    let body = share_body();
    let first = post_share_idem(&app, "restart-key", &body).await.ok(201);
    let id = id_of(&first);
    let app = app.restart().await;
    let again = post_share_idem(&app, "restart-key", &body).await.ok(201);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(app.sent_sms().await.len(), 1);

    app.advance(Duration::minutes(10));
    request_code(&app, &id).await.err(429, "rate_limited");
    app.advance(Duration::minutes(20));
    request_code(&app, &id).await.ok(202);
    let app = app.restart().await;
    app.advance(Duration::minutes(10));
    request_code(&app, &id).await.err(429, "rate_limited");
    assert_eq!(get_share(&app, &id).await["self_service_requests"], 1);
}
