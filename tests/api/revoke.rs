//! `DELETE /v1/shares/{id}`: documents gone at once, the record kept for audit.

use crate::helpers::*;

#[tokio::test]
async fn revoke_closes_everything_at_once() {
    let app = TestApp::spawn().await;
    let (share, verified, token) = create_and_verify(&app).await;
    let id = id_of(&share);
    let code = last_code(&app).await;
    let doc_id = verified["documents"][0]["id"].as_str().unwrap().to_owned();
    let url = document_link(&app, &id, &doc_id, Some(&token)).await.ok(200)["url"].as_str().unwrap().to_owned();
    let archive_url = archive_link(&app, &id, Some(&token)).await.ok(200)["url"].as_str().unwrap().to_owned();
    assert_eq!(fetch_url(&app, &url).await.bytes, PDF, "works before the revoke");

    app.advance(Duration::minutes(1));
    let view = revoke(&app, &id).await.ok(200);
    assert_eq!(view["id"], id.as_str());
    assert_eq!(view["status"], "revoked");
    assert_eq!(time(&view["revoked_at"]), start_time() + Duration::minutes(1));

    // The patient side: 410 revoked, nothing but the error.
    let r = public_get(&app, &id).await;
    r.err(410, "revoked");
    r.only_error();
    let r = verify(&app, &id, &code).await;
    r.err(410, "revoked");
    r.only_error();
    document_link(&app, &id, &doc_id, Some(&token)).await.err(410, "revoked");
    archive_link(&app, &id, Some(&token)).await.err(410, "revoked");
    request_code(&app, &id).await.err(410, "revoked");

    // URLs handed out before no longer serve the bytes (still within their 5 minutes).
    for u in [&url, &archive_url] {
        let got = fetch_url(&app, u).await;
        assert_url_refused(&got, &[403, 404, 410]);
        assert_ne!(got.bytes, PDF);
    }

    // The practice still sees the record and its history.
    let view = get_share(&app, &id).await;
    assert_eq!(view["status"], "revoked");
    assert_eq!(view["reference"], share["reference"]);
    let types = event_types(&view);
    assert_eq!(types.last().map(String::as_str), Some("revoked"), "{types:?}");
    for t in ["created", "email_sent", "sms_sent", "verified", "document_downloaded", "archive_downloaded"] {
        assert!(types.contains(&t.to_owned()), "{t} kept: {types:?}");
    }
    let listed = list_shares(&app, "").await.ok(200);
    assert_eq!(listed["shares"][0]["status"], "revoked");

    // Resend is refused; nothing more goes out.
    resend(&app, &id).await.err(410, "revoked");
    assert_eq!(app.sent_sms().await.len(), 1);
    assert_eq!(app.sent_emails().await.len(), 1);
}

#[tokio::test]
async fn revoking_twice_answers_the_same_and_adds_nothing() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    let first = revoke(&app, &id).await.ok(200);
    app.advance(Duration::minutes(5));
    let second = revoke(&app, &id).await.ok(200);
    assert_eq!(second["status"], "revoked");
    assert_eq!(second["revoked_at"], first["revoked_at"]);
    let view = get_share(&app, &id).await;
    assert_eq!(count_events(&view, "revoked"), 1, "{:?}", event_types(&view));
}

#[tokio::test]
async fn revoke_deletes_the_document_bytes() {
    let app = TestApp::spawn().await;
    let unique: Vec<u8> = b"%PDF-1.4 unique marker 8c1f0e2a-revoke-test %%EOF".to_vec();
    let mut body = share_body();
    body["documents"] = json!([doc("x.pdf", "application/pdf", &unique)]);
    let share = create_share(&app, &body).await;
    if !embedded() {
        return; // the blobs live in the data dir only on the embedded backend
    }
    assert!(dir_contains(&app.data_dir, &unique), "the bytes are stored somewhere in the data dir");
    revoke(&app, &id_of(&share)).await.ok(200);
    assert!(!dir_contains(&app.data_dir, &unique), "revoke deletes the documents at once");
}

#[tokio::test]
async fn unknown_ids_cannot_be_revoked() {
    let app = TestApp::spawn().await;
    revoke(&app, "AAAAAAAAAAAAAAAAAAAAAA").await.err(404, "not_found");
    revoke(&app, "nope").await.err(404, "not_found");
}

fn dir_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
                return true;
            }
        }
    }
    false
}
