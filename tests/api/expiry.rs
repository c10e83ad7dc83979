//! Time: link expiry (checked on every read), the window after first verification, strict code
//! lifetime, access tokens and signed URLs. The clock is moved, never slept on.

use crate::helpers::*;

#[tokio::test]
async fn a_link_expires_exactly_at_expires_at() {
    let app = TestApp::spawn().await;
    let mut body = share_body();
    body["expires_in_days"] = json!(7);
    let share = create_share(&app, &body).await;
    let id = id_of(&share);
    let code = last_code(&app).await;
    assert_eq!(time(&share["expires_at"]), start_time() + Duration::days(7));

    app.advance(Duration::days(7) - Duration::seconds(1));
    public_get(&app, &id).await.ok(200);

    app.advance(Duration::seconds(1));
    let r = public_get(&app, &id).await;
    r.err(410, "expired");
    r.only_error();
    let r = verify(&app, &id, &code).await;
    r.err(410, "expired");
    r.only_error();
    request_code(&app, &id).await.err(410, "expired");
    resend(&app, &id).await.err(410, "expired");

    let view = get_share(&app, &id).await;
    assert_eq!(view["status"], "expired");
    let listed = list_shares(&app, "").await.ok(200);
    assert_eq!(listed["shares"][0]["status"], "expired");
    // No SMS beyond the first.
    assert_eq!(app.sent_sms().await.len(), 1);
}

#[tokio::test]
async fn documents_stop_at_expiry_even_with_a_fresh_token() {
    let app = TestApp::spawn().await;
    let mut body = share_body();
    body["expires_in_days"] = json!(1);
    let share = create_share(&app, &body).await;
    let id = id_of(&share);
    let code = last_code(&app).await;
    let doc_id = share["documents"][0]["id"].as_str().unwrap().to_owned();

    // Verify five minutes before the end; the token itself would live 15 minutes.
    app.advance(Duration::days(1) - Duration::minutes(5));
    let token = token_of(&verify_ok(&app, &id, &code).await);
    let link = document_link(&app, &id, &doc_id, Some(&token)).await.ok(200);
    let url = link["url"].as_str().unwrap().to_owned();

    app.advance(Duration::minutes(6));
    let r = document_link(&app, &id, &doc_id, Some(&token)).await;
    r.err(410, "expired");
    r.only_error();
    archive_link(&app, &id, Some(&token)).await.err(410, "expired");
    if presigned_by_s3(&url, 300) {
        return;
    }
    // The URL handed out before is dead too (its own 5 minutes are over as well).
    let got = fetch_url(&app, &url).await;
    assert_ne!(got.status, 200, "expired share still served: {}", got.status);
    assert_ne!(got.bytes, PDF);
}

#[tokio::test]
async fn expiry_at_the_default_30_days() {
    let app = TestApp::spawn().await;
    let (share, code) = create_default(&app).await;
    let id = id_of(&share);
    app.advance(Duration::days(29));
    verify_ok(&app, &id, &code).await; // by default a code lives as long as its link
    app.advance(Duration::days(1));
    public_get(&app, &id).await.err(410, "expired");
    verify(&app, &id, &code).await.err(410, "expired");
}

#[tokio::test]
async fn the_window_after_first_verification_shortens_the_link() {
    let app = TestApp::spawn_with(Policy { window_after_first_verify_hours: Some(72), ..Policy::default() }).await;
    let (share, code) = create_default(&app).await;
    let id = id_of(&share);
    app.advance(Duration::hours(1));
    // Before any verification the link is open as long as it says.
    public_get(&app, &id).await.ok(200);
    verify_ok(&app, &id, &code).await;

    app.advance(Duration::hours(71) + Duration::minutes(59));
    public_get(&app, &id).await.ok(200);
    verify_ok(&app, &id, &code).await; // a later verification does not extend the window

    app.advance(Duration::minutes(1));
    public_get(&app, &id).await.err(410, "expired");
    verify(&app, &id, &code).await.err(410, "expired");
    assert_eq!(get_share(&app, &id).await["status"], "expired");

    // A share never verified keeps its own expiry.
    let (other, _) = create_default(&app).await;
    app.advance(Duration::days(10));
    public_get(&app, &id_of(&other)).await.ok(200);
}

#[tokio::test]
async fn strict_code_lifetime_refuses_old_codes() {
    let app = TestApp::spawn_with(Policy { code_lifetime_minutes: Some(10), ..Policy::default() }).await;
    let (young, young_code) = create_default(&app).await;
    let (old, old_code) = create_default(&app).await;

    app.advance(Duration::minutes(9));
    verify_ok(&app, &id_of(&young), &young_code).await;

    app.advance(Duration::minutes(1));
    let r = verify(&app, &id_of(&old), &old_code).await;
    r.err(410, "expired_code");
    // The practice sees the patient tried, and why it failed.
    let view = get_share(&app, &id_of(&old)).await;
    let failed: Vec<&Value> = view["events"].as_array().unwrap().iter().filter(|e| e["type"] == "verify_failed").collect();
    assert_eq!(failed.len(), 1, "{view}");
    assert_eq!(failed[0]["data"]["reason"], "expired_code");
    // The link itself is fine; only the code is old. The page offers a fresh one, and it can
    // be had now: an expired code does not wait out the 30-minute spacing.
    let public = public_get(&app, &id_of(&old)).await.ok(200);
    assert_eq!(public["self_service"]["available"], true, "{public}");
    assert!(public["self_service"]["retry_after"].is_null(), "{public}");
    request_code(&app, &id_of(&old)).await.ok(202);
    let fresh = last_code(&app).await;
    verify_ok(&app, &id_of(&old), &fresh).await;

    // A practice resend also gives a fresh code.
    app.advance(Duration::minutes(11));
    verify(&app, &id_of(&old), &fresh).await.err(410, "expired_code");
    resend(&app, &id_of(&old)).await.ok(200);
    verify_ok(&app, &id_of(&old), &last_code(&app).await).await;
}

#[tokio::test]
async fn access_tokens_live_fifteen_minutes() {
    let app = TestApp::spawn().await;
    let (share, verified, token) = create_and_verify(&app).await;
    let id = id_of(&share);
    assert_eq!(verified["expires_in"], 900);
    let doc_id = verified["documents"][0]["id"].as_str().unwrap().to_owned();

    app.advance(Duration::minutes(14));
    document_link(&app, &id, &doc_id, Some(&token)).await.ok(200);
    archive_link(&app, &id, Some(&token)).await.ok(200);

    app.advance(Duration::minutes(1) + Duration::seconds(1));
    document_link(&app, &id, &doc_id, Some(&token)).await.err(401, "unauthorized");
    archive_link(&app, &id, Some(&token)).await.err(401, "unauthorized");
}

#[tokio::test]
async fn download_urls_expire_within_five_minutes() {
    let app = TestApp::spawn().await;
    let (share, verified, token) = create_and_verify(&app).await;
    let id = id_of(&share);
    let doc_id = verified["documents"][0]["id"].as_str().unwrap().to_owned();

    let link = document_link(&app, &id, &doc_id, Some(&token)).await.ok(200);
    let expires_in = link["expires_in"].as_i64().unwrap();
    assert!((1..=300).contains(&expires_in), "{expires_in}");
    let url = link["url"].as_str().unwrap().to_owned();
    let archive = archive_link(&app, &id, Some(&token)).await.ok(200);
    let archive_expires_in = archive["expires_in"].as_i64().unwrap();
    assert!((1..=300).contains(&archive_expires_in));
    let archive_url = archive["url"].as_str().unwrap().to_owned();
    if presigned_by_s3(&url, 300) & presigned_by_s3(&archive_url, 300) {
        return;
    }

    app.advance(Duration::seconds(expires_in.min(archive_expires_in) - 1));
    assert_eq!(fetch_url(&app, &url).await.bytes, PDF, "still valid just before expiry");
    assert_eq!(fetch_url(&app, &archive_url).await.status, 200);

    app.advance(Duration::seconds(expires_in.max(archive_expires_in) - expires_in.min(archive_expires_in) + 2));
    let r = fetch_url(&app, &url).await;
    assert_url_refused(&r, &[403]);
    assert_ne!(r.bytes, PDF);
    assert_url_refused(&fetch_url(&app, &archive_url).await, &[403]);
}

/// `url` with one character of its query (the signature) changed, the query dropped, the path
/// changed, and the expiry stretched.
fn tampered_variants(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if !query.is_empty() {
        let pairs: Vec<(String, String)> = query
            .split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        for (i, (_, v)) in pairs.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            let mut changed = pairs.clone();
            changed[i].1 = tamper_last(v);
            let q: Vec<String> = changed.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(format!("{base}?{}", q.join("&")));
        }
        out.push(base.to_owned());
    } else {
        // The signature lives in the path: change its last character.
        out.push(tamper_last(url));
    }
    out
}

#[tokio::test]
async fn a_tampered_signed_url_is_forbidden() {
    let app = TestApp::spawn().await;
    let (share, verified, token) = create_and_verify(&app).await;
    let id = id_of(&share);
    let doc_id = verified["documents"][0]["id"].as_str().unwrap().to_owned();
    let url = document_link(&app, &id, &doc_id, Some(&token)).await.ok(200)["url"].as_str().unwrap().to_owned();
    if presigned_by_s3(&url, 300) {
        return;
    }
    let variants = tampered_variants(&url);
    assert!(!variants.is_empty());
    for v in variants {
        let r = fetch_url(&app, &v).await;
        assert_eq!(r.status, 403, "tampered URL {v} (from {url}): {}", r.text());
        assert_url_refused(&r, &[403]);
        assert_ne!(r.bytes, PDF);
    }
    // The untouched URL still works.
    assert_eq!(fetch_url(&app, &url).await.bytes, PDF);
}

#[tokio::test]
async fn the_expiry_sweep_records_expired_and_expired_unread_and_deletes_documents() {
    let app = TestApp::spawn().await;
    let marker_read = b"%PDF-1.4 read-share 5d0c7a91 %%EOF".to_vec();
    let marker_unread = b"%PDF-1.4 unread-share 2b9e44f3 %%EOF".to_vec();
    let mut body = share_body();
    body["documents"] = json!([doc("a.pdf", "application/pdf", &marker_read)]);
    let read = create_share(&app, &body).await;
    let read_code = last_code(&app).await;
    body["documents"] = json!([doc("b.pdf", "application/pdf", &marker_unread)]);
    let unread = create_share(&app, &body).await;
    let (read_id, unread_id) = (id_of(&read), id_of(&unread));

    // One is downloaded, the other only opened and verified.
    let verified = verify_ok(&app, &read_id, &read_code).await;
    let doc_id = verified["documents"][0]["id"].as_str().unwrap().to_owned();
    document_link(&app, &read_id, &doc_id, Some(&token_of(&verified))).await.ok(200);
    public_get(&app, &unread_id).await.ok(200);

    // Nothing is due before the end.
    app.advance(Duration::days(30) - Duration::seconds(1));
    assert_eq!(app.sweep().await, 0);
    assert!(!events_of(&app, &read_id).await.contains(&"expired".to_owned()));

    app.advance(Duration::seconds(1));
    assert_eq!(app.sweep().await, 2);
    let read_events = events_of(&app, &read_id).await;
    let unread_events = events_of(&app, &unread_id).await;
    assert_eq!(read_events.iter().filter(|t| *t == "expired").count(), 1, "{read_events:?}");
    assert!(!read_events.contains(&"expired_unread".to_owned()), "it was downloaded: {read_events:?}");
    assert_eq!(unread_events.iter().filter(|t| *t == "expired").count(), 1, "{unread_events:?}");
    assert_eq!(unread_events.iter().filter(|t| *t == "expired_unread").count(), 1, "{unread_events:?}");
    let view = get_share(&app, &unread_id).await;
    assert_eq!(view["status"], "expired", "the record stays for the practice to see");
    let expired_at = view["events"].as_array().unwrap().iter().find(|e| e["type"] == "expired").unwrap()["created_at"].clone();
    assert_eq!(time(&expired_at), start_time() + Duration::days(30));

    // A second sweep adds nothing.
    assert_eq!(app.sweep().await, 0);
    assert_eq!(events_of(&app, &unread_id).await, unread_events);

    // The documents are gone.
    if embedded() {
        for marker in [&marker_read, &marker_unread] {
            let left = files_containing(&app.data_dir, marker);
            assert!(left.is_empty(), "expired bytes left in {left:?}");
        }
    }
}
