//! `POST /v1/public/shares/{id}/code`: a fresh code by SMS, spaced, limited, never resetting the
//! count of wrong answers; and the practice's daily SMS cap.

use crate::helpers::*;

#[tokio::test]
async fn too_early_is_rate_limited_with_retry_after() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    let r = request_code(&app, &id).await;
    r.err(429, "rate_limited");
    let wait = r.retry_after();
    assert!((1..=1800).contains(&wait), "Retry-After {wait}");

    app.advance(Duration::minutes(20));
    let r = request_code(&app, &id).await;
    r.err(429, "rate_limited");
    let wait = r.retry_after();
    assert!((1..=600).contains(&wait), "ten minutes left, Retry-After {wait}");
    let public = public_get(&app, &id).await.ok(200);
    assert_eq!(public["self_service"]["available"], true);
    let page_wait = public["self_service"]["retry_after"].as_u64().expect("retry_after while too early");
    assert!((1..=600).contains(&page_wait), "{public}");

    assert_eq!(app.sent_sms().await.len(), 1, "nothing sent while too early");
    let view = get_share(&app, &id).await;
    assert_eq!(view["self_service_requests"], 0);
    assert_eq!(count_events(&view, "code_requested"), 0);
}

#[tokio::test]
async fn after_thirty_minutes_a_fresh_code_arrives_and_the_old_one_dies() {
    let app = TestApp::spawn().await;
    let (share, old_code) = create_default(&app).await;
    let id = id_of(&share);
    app.advance(Duration::minutes(30));
    let public = public_get(&app, &id).await.ok(200);
    assert!(public["self_service"]["retry_after"].is_null(), "may ask now: {public}");
    let r = request_code(&app, &id).await;
    let body = r.ok(202);
    assert_eq!(body["status"], "sent");
    let masked = body["masked_phone"].as_str().expect("masked_phone");
    assert!(masked.starts_with("+41") && masked.ends_with("67"), "{masked}");
    assert!(!masked.contains("791234"), "{masked}");

    let sms = app.sent_sms().await;
    assert_eq!(sms.len(), 2);
    assert_eq!(sms[1].to, PHONE, "only ever to the practice's number");
    let new_code = code_in(&sms[1].body).unwrap();
    assert_ne!(new_code, old_code);
    assert!(sms[1].body.contains(share["reference"].as_str().unwrap()));

    let r = verify(&app, &id, &old_code).await;
    r.err(401, "wrong_code");
    assert_eq!(r.json["error"]["attempts_left"], 4);
    verify_ok(&app, &id, &new_code).await;

    let view = get_share(&app, &id).await;
    assert_eq!(view["self_service_requests"], 1);
    let types = event_types(&view);
    let requested = types.iter().position(|t| t == "code_requested").unwrap_or_else(|| panic!("{types:?}"));
    let last_sms = types.iter().rposition(|t| t == "sms_sent").unwrap();
    assert!(requested < last_sms, "code_requested, then sms_sent: {types:?}");
    assert_eq!(count_events(&view, "sms_sent"), 2);
}

#[tokio::test]
async fn a_caller_cannot_choose_the_number() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    app.advance(Duration::minutes(30));
    let r = call(&app, "POST", &format!("/v1/public/shares/{id}/code"), None, Some(&json!({"phone": "+41780000000"}))).await;
    // Whatever it answers, nothing goes to the attacker's number.
    assert!(r.status == 202 || (400..500).contains(&r.status), "{}: {}", r.status, r.text());
    for sms in app.sent_sms().await {
        assert_eq!(sms.to, PHONE);
    }
}

#[tokio::test]
async fn a_self_service_code_does_not_reset_wrong_answers() {
    let app = TestApp::spawn().await;
    let (share, code) = create_default(&app).await;
    let id = id_of(&share);
    let wrong = other_code(&code);
    verify(&app, &id, &wrong).await.err(401, "wrong_code");
    verify(&app, &id, &wrong).await.err(401, "wrong_code");

    app.advance(Duration::minutes(30));
    request_code(&app, &id).await.ok(202);
    let new_code = last_code(&app).await;
    assert_eq!(get_share(&app, &id).await["attempts_left"], 3, "the count goes on");
    assert_eq!(public_get(&app, &id).await.ok(200)["attempts_left"], 3);

    let r = verify(&app, &id, &other_code(&new_code)).await;
    r.err(401, "wrong_code");
    assert_eq!(r.json["error"]["attempts_left"], 2);
    verify(&app, &id, &other_code(&new_code)).await.err(401, "wrong_code");
    verify(&app, &id, &other_code(&new_code)).await.err(423, "locked");
    verify(&app, &id, &new_code).await.err(423, "locked");
    // Locked: no more codes by self-service either.
    app.advance(Duration::minutes(30));
    request_code(&app, &id).await.err(423, "locked");
    assert_eq!(app.sent_sms().await.len(), 2);
}

#[tokio::test]
async fn at_most_three_requests_then_rate_limited() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    app.advance(Duration::minutes(30));
    for n in 1..=3 {
        request_code(&app, &id).await.ok(202);
        assert_eq!(app.sent_sms().await.len(), 1 + n);
        // And not again within thirty minutes of this one.
        app.advance(Duration::minutes(29));
        let r = request_code(&app, &id).await;
        r.err(429, "rate_limited");
        if n < 3 {
            assert!(r.retry_after() <= 60, "one minute to wait: {:?}", r.header("retry-after"));
        }
        app.advance(Duration::minutes(1));
    }
    // A fourth, thirty minutes after the third: too many.
    let r = request_code(&app, &id).await;
    r.err(429, "rate_limited");
    assert!(r.retry_after() >= 1);
    app.advance(Duration::hours(5));
    let r = request_code(&app, &id).await;
    r.err(429, "rate_limited");
    assert!(r.retry_after() >= 1);
    assert_eq!(app.sent_sms().await.len(), 4);
    let view = get_share(&app, &id).await;
    assert_eq!(view["self_service_requests"], 3);
    assert_eq!(count_events(&view, "code_requested"), 3);
    // The last code still works.
    verify_ok(&app, &id, &last_code(&app).await).await;
}

#[tokio::test]
async fn forbidden_where_the_practice_or_share_does_not_allow_it() {
    // The practice switched it off.
    let app = TestApp::spawn_with(Policy { self_service: false, ..Policy::default() }).await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    app.advance(Duration::hours(1));
    request_code(&app, &id).await.err(403, "forbidden");
    assert_eq!(public_get(&app, &id).await.ok(200)["self_service"]["available"], false);
    assert_eq!(app.sent_sms().await.len(), 1);

    // The share switched it off.
    let app = TestApp::spawn().await;
    let mut body = share_body();
    body["auth"]["self_service"] = json!(false);
    let share = create_share(&app, &body).await;
    app.advance(Duration::hours(1));
    request_code(&app, &id_of(&share)).await.err(403, "forbidden");

    // Manual codes are passed on by the practice, not sent by SMS.
    let share = create_share(&app, &share_body_with_method("manual")).await;
    app.advance(Duration::hours(1));
    request_code(&app, &id_of(&share)).await.err(403, "forbidden");
    assert_eq!(public_get(&app, &id_of(&share)).await.ok(200)["self_service"]["available"], false);
    assert_eq!(app.sent_sms().await.len(), 1);
}

#[tokio::test]
async fn the_daily_sms_cap_holds() {
    let app = TestApp::spawn_with(Policy { daily_sms_cap: 2, ..Policy::default() }).await;
    let (first, _) = create_default(&app).await;
    create_default(&app).await;

    let reply = post_share(&app, &share_body()).await;
    let third = reply.ok(201);
    assert_eq!(third["status"], "active", "a failed channel never loses the share");
    assert_eq!(third["notifications"]["email"]["status"], "sent");
    assert_eq!(third["notifications"]["sms"]["status"], "failed", "{third}");
    assert!(third["notifications"]["sms"]["error"].is_string(), "{third}");
    assert_eq!(app.sent_sms().await.len(), 2, "the cap is 2");
    assert_eq!(app.sent_emails().await.len(), 3);

    let view = get_share(&app, &id_of(&third)).await;
    let failed: Vec<&Value> = view["events"].as_array().unwrap().iter().filter(|e| e["type"] == "notification_failed").collect();
    assert_eq!(failed.len(), 1, "{:?}", event_types(&view));
    assert_eq!(failed[0]["data"]["channel"], "sms");
    assert!(failed[0]["data"]["error"].is_string());
    assert_eq!(count_events(&view, "sms_sent"), 0);
    assert_eq!(count_events(&view, "email_sent"), 1);

    // Self-service is capped too.
    app.advance(Duration::minutes(30));
    let r = request_code(&app, &id_of(&first)).await;
    r.err(429, "rate_limited");
    assert!(r.retry_after() >= 1);
    assert_eq!(app.sent_sms().await.len(), 2);

    // A day later the cap starts again.
    app.advance(Duration::days(1));
    request_code(&app, &id_of(&first)).await.ok(202);
    assert_eq!(app.sent_sms().await.len(), 3);
}

#[tokio::test]
async fn the_practice_settings_decide_count_and_spacing() {
    let app =
        TestApp::spawn_with(Policy { self_service_max_requests: 1, self_service_min_interval_minutes: 5, ..Policy::default() })
            .await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    app.advance(Duration::minutes(4));
    let r = request_code(&app, &id).await;
    r.err(429, "rate_limited");
    assert!((1..=60).contains(&r.retry_after()), "{:?}", r.header("retry-after"));
    app.advance(Duration::minutes(1));
    request_code(&app, &id).await.ok(202);
    app.advance(Duration::minutes(10));
    request_code(&app, &id).await.err(429, "rate_limited");
    assert_eq!(app.sent_sms().await.len(), 2);
}

/// Issue #17: a burst of self-service requests takes one unit of the daily cap, not one per
/// request. The requests that lose the race for the new code give theirs back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_code_requests_spends_one_sms_of_the_cap() {
    let app = TestApp::spawn_with(Policy { daily_sms_cap: 10, ..Policy::default() }).await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    app.advance(Duration::minutes(30));
    let url = app.url(&format!("/v1/public/shares/{id}/code"));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (http, url) = (app.http.clone(), url.clone());
        tasks.push(tokio::spawn(async move { Reply::from(http.post(url).send().await.expect("sent")).await }));
    }
    let mut sent = 0;
    for t in tasks {
        let r = t.await.expect("task");
        match r.status {
            202 => sent += 1,
            _ => _ = r.err(429, "rate_limited"),
        }
    }
    assert_eq!(sent, 1, "one fresh code");
    assert_eq!(app.sent_sms().await.len(), 2, "the share's first code and the fresh one");
    // Eight units of ten are left: eight more shares get their SMS, the ninth does not.
    for i in 0..8 {
        let created = post_share(&app, &share_body()).await.ok(201);
        assert_eq!(created["notifications"]["sms"]["status"], "sent", "share {i}: {created}");
    }
    let capped = post_share(&app, &share_body()).await.ok(201);
    assert_eq!(capped["notifications"]["sms"]["status"], "failed", "{capped}");
}
