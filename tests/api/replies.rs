//! The patient's reply (`allow_reply`): a message and files sent back through upload URLs,
//! checked by their content, seen by the practice alone, and gone with the share.

use crate::helpers::*;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR rest of a photo";
const MESSAGE_BACK: &str = "Guten Tag, anbei die unterschriebene Einwilligung.\nFreundliche Gruesse";

/// A share that takes replies, verified: (share, token).
async fn reply_share(app: &TestApp) -> (Value, String) {
    let mut body = share_body();
    body["allow_reply"] = json!(true);
    let share = create_share(app, &body).await;
    let code = last_code(app).await;
    let token = token_of(&verify_ok(app, &id_of(&share), &code).await);
    (share, token)
}

fn file(name: &str, content_type: &str, bytes: &[u8]) -> Value {
    json!({"filename": name, "content_type": content_type, "size": bytes.len(), "sha256": sha256_hex(bytes)})
}

async fn start(app: &TestApp, id: &str, token: &str, body: &Value) -> Reply {
    call(app, "POST", &format!("/v1/public/shares/{id}/replies"), Some(token), Some(body)).await
}

async fn submit(app: &TestApp, id: &str, token: &str, reply: &str) -> Reply {
    call(app, "POST", &format!("/v1/public/shares/{id}/replies/{reply}/submit"), Some(token), None).await
}

/// A reply started with the message and a PNG, the PNG uploaded, not yet submitted: its id.
async fn uploaded_reply(app: &TestApp, id: &str, token: &str) -> String {
    let body = json!({"message": MESSAGE_BACK, "files": [file("Foto.png", "image/png", PNG)]});
    let started = start(app, id, token, &body).await.ok(201);
    put_url(app, started["files"][0]["upload_url"].as_str().unwrap(), PNG).await.ok(200);
    started["id"].as_str().unwrap().to_owned()
}

async fn replies(app: &TestApp, id: &str) -> Reply {
    call(app, "GET", &format!("/v1/shares/{id}/replies"), Some(&app.api_key), None).await
}

#[tokio::test]
async fn a_reply_goes_to_the_practice_with_what_its_files_really_are() {
    let app = TestApp::spawn().await;
    let (share, token) = reply_share(&app).await;
    let id = id_of(&share);
    assert_eq!(public_get(&app, &id).await.ok(200)["allow_reply"], true);
    // An HTML page declared as a PDF, a PNG, a PDF never uploaded.
    let html = b"<html><script>alert(1)</script></html>";
    let started = start(
        &app,
        &id,
        &token,
        &json!({"message": MESSAGE_BACK, "files": [
            file("Einwilligung.pdf", "application/pdf", html),
            file("Ausschlag.png", "image/png", PNG),
            file("Karte.pdf", "application/pdf", PDF),
        ]}),
    )
    .await
    .ok(201);
    let reply_id = started["id"].as_str().unwrap().to_owned();
    let uploads = started["files"].as_array().unwrap();
    assert_eq!(uploads.len(), 3);
    assert!(uploads.iter().all(|u| u["upload_expires_in"].as_u64().is_some_and(|s| s <= 300)), "{started}");
    put_url(&app, uploads[0]["upload_url"].as_str().unwrap(), html).await.ok(200);
    put_url(&app, uploads[1]["upload_url"].as_str().unwrap(), PNG).await.ok(200);

    let receipt = submit(&app, &id, &token, &reply_id).await.ok(200);
    assert_eq!(receipt["message"], MESSAGE_BACK);
    time(&receipt["submitted_at"]);
    let statuses: Vec<(&str, &str)> = receipt["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["status"].as_str().unwrap(), f["reason"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(statuses, [("refused", "wrong_type"), ("accepted", ""), ("refused", "not_uploaded")], "{receipt}");
    // Submitting again answers the same receipt, and tells the practice once.
    assert_eq!(submit(&app, &id, &token, &reply_id).await.ok(200), receipt);
    let view = get_share(&app, &id).await;
    assert_eq!(count_events(&view, "reply_received"), 1, "{view}");
    let event = view["events"].as_array().unwrap().iter().find(|e| e["type"] == "reply_received").unwrap().clone();
    assert_eq!(event["data"], json!({"reply_id": reply_id, "files": 1, "refused": 2}), "ids and counts only");

    // The practice reads the reply and fetches the accepted file as an attachment.
    let listed = replies(&app, &id).await.ok(200);
    assert_eq!(listed["replies"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["replies"][0]["message"], MESSAGE_BACK);
    assert_eq!(listed["replies"][0]["files"][1]["filename"], "Ausschlag.png");
    let url = call(&app, "GET", &format!("/v1/shares/{id}/replies/{reply_id}/files/1"), Some(&app.api_key), None).await.ok(200);
    let download = fetch_url(&app, url["url"].as_str().unwrap()).await;
    assert_eq!(download.status, 200);
    assert_eq!(download.bytes, PNG);
    assert!(download.header("content-disposition").unwrap_or_default().starts_with("attachment"), "{:?}", download.headers);
    // A refused file is gone and has no URL; another practice sees nothing.
    call(&app, "GET", &format!("/v1/shares/{id}/replies/{reply_id}/files/0"), Some(&app.api_key), None)
        .await
        .err(404, "not_found");
    let other = app.add_practice("Praxis Andere", Policy::default()).await;
    call(&app, "GET", &format!("/v1/shares/{id}/replies"), Some(&other), None).await.err(404, "not_found");
    // The patient's own token reads no replies: that is the practice's API.
    call(&app, "GET", &format!("/v1/shares/{id}/replies"), Some(&token), None).await.err(401, "unauthorized");
}

#[tokio::test]
async fn only_a_share_that_allows_replies_takes_them_and_only_with_its_token() {
    let app = TestApp::spawn().await;
    let (share, code) = create_default(&app).await;
    let id = id_of(&share);
    assert_eq!(public_get(&app, &id).await.ok(200)["allow_reply"], false);
    let token = token_of(&verify_ok(&app, &id, &code).await);
    start(&app, &id, &token, &json!({"message": "Hallo"})).await.err(403, "forbidden");

    let (share, token) = reply_share(&app).await;
    let id = id_of(&share);
    start(&app, &id, "not-a-token", &json!({"message": "Hallo"})).await.err(401, "unauthorized");
    let reply = start(&app, &id, &token, &json!({})).await;
    reply.invalid("message");
    start(&app, &id, &token, &json!({"files": [file("a.svg", "image/svg+xml", b"<svg/>")]}))
        .await
        .invalid("files[0].content_type");
    let big = json!({"filename": "Scan.pdf", "content_type": "application/pdf", "size": 20 * 1024 * 1024 + 1, "sha256": "a".repeat(64)});
    start(&app, &id, &token, &json!({"files": [big]})).await.invalid("files[0].size");
    let six: Vec<Value> = (0..6).map(|i| file(&format!("{i}.pdf"), "application/pdf", PDF)).collect();
    start(&app, &id, &token, &json!({"files": six})).await.invalid("files");
    start(&app, &id, &token, &json!({"message": "x".repeat(4001)})).await.invalid("message");
    start(&app, &id, &token, &json!({"message": "Rechnung \u{202e}fdp.exe"})).await.invalid("message");
    start(&app, &id, &token, &json!({"message": "Hallo\u{7}"})).await.invalid("message");
    let twenty = |i: usize| json!({"filename": format!("{i}.pdf"), "content_type": "application/pdf", "size": 20 * 1024 * 1024, "sha256": "a".repeat(64)});
    start(&app, &id, &token, &json!({"files": [twenty(0), twenty(1), twenty(2)]})).await.invalid("files");
    // A message alone is a reply; five a day, then 429 with the wait.
    for _ in 0..5 {
        let started = start(&app, &id, &token, &json!({"message": "Danke!"})).await.ok(201);
        submit(&app, &id, &token, started["id"].as_str().unwrap()).await.ok(200);
    }
    let sixth = start(&app, &id, &token, &json!({"message": "Noch etwas"})).await;
    sixth.err(429, "rate_limited");
    assert!(
        (23 * 3600..=24 * 3600).contains(&sixth.retry_after()),
        "when the first of the five ages out: {}",
        sixth.retry_after()
    );
    assert_eq!(replies(&app, &id).await.ok(200)["replies"].as_array().map(Vec::len), Some(5));
    // A reply whose only file was refused is not sent.
    app.advance(Duration::hours(25));
    let code = {
        resend(&app, &id).await.ok(200);
        last_code(&app).await
    };
    // The token from before the resend no longer works.
    start(&app, &id, &token, &json!({"message": "Alt"})).await.err(401, "unauthorized");
    let token = token_of(&verify_ok(&app, &id, &code).await);
    let started = start(&app, &id, &token, &json!({"files": [file("Scan.pdf", "application/pdf", PDF)]})).await.ok(201);
    let reply_id = started["id"].as_str().unwrap().to_owned();
    submit(&app, &id, &token, &reply_id).await.invalid("files");
    // … and says so again, with the same reason, when submitted again.
    submit(&app, &id, &token, &reply_id).await.invalid("files");

    // A JPEG is taken; another share's reply is unknown here; indices are numbers of files.
    let jpeg: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F'];
    let started = start(&app, &id, &token, &json!({"files": [file("Karte.jpg", "image/jpeg", jpeg)]})).await.ok(201);
    let reply_id = started["id"].as_str().unwrap().to_owned();
    put_url(&app, started["files"][0]["upload_url"].as_str().unwrap(), jpeg).await.ok(200);
    assert_eq!(submit(&app, &id, &token, &reply_id).await.ok(200)["files"][0]["status"], "accepted");
    let (other, other_token) = reply_share(&app).await;
    submit(&app, &id_of(&other), &other_token, &reply_id).await.err(404, "not_found");
    let files = |share: &str, index: &str, key: &str| {
        let path = format!("/v1/shares/{share}/replies/{reply_id}/files/{index}");
        let key = key.to_owned();
        let app = &app;
        async move { call(app, "GET", &path, Some(&key), None).await }
    };
    files(&id, "0", &app.api_key).await.ok(200);
    files(&id, "zero", &app.api_key).await.err(404, "not_found");
    files(&id, "1", &app.api_key).await.err(404, "not_found");
    files(&id_of(&other), "0", &app.api_key).await.err(404, "not_found");
    let stranger = app.add_practice("Praxis Fremd", Policy::default()).await;
    files(&id, "0", &stranger).await.err(404, "not_found");
}

#[tokio::test]
async fn replies_die_with_the_share() {
    let app = TestApp::spawn().await;
    let (share, token) = reply_share(&app).await;
    let id = id_of(&share);
    let reply_id = uploaded_reply(&app, &id, &token).await;
    submit(&app, &id, &token, &reply_id).await.ok(200);
    let url = call(&app, "GET", &format!("/v1/shares/{id}/replies/{reply_id}/files/0"), Some(&app.api_key), None).await.ok(200);

    revoke(&app, &id).await.ok(200);
    replies(&app, &id).await.err(410, "revoked");
    assert_url_refused(&fetch_url(&app, url["url"].as_str().unwrap()).await, &[403, 404]);
    let view = get_share(&app, &id).await;
    assert_eq!(count_events(&view, "reply_received"), 1, "the record keeps that a reply came");
    assert!(!view.to_string().contains("Einwilligung"), "no content in the share's record");
    if embedded() {
        assert!(files_containing(&app.data_dir, MESSAGE_BACK.as_bytes()).is_empty(), "the message is gone");
        assert!(files_containing(&app.data_dir, PNG).is_empty(), "the file is gone");
    }
}

/// The app's service over a blob store that revokes `share` just before a reply is kept: the
/// revoke's cleanup comes first, and the reply's write lands after it. What the count or the
/// submit then writes must not outlive the share.
async fn revoking_before_reply_kept(app: &TestApp, share: &str) -> sealpost::service::Service {
    use sealpost::ports::{BlobReader, BlobStore, BlobWriter, Disposition, PortResult, UploadUrl};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    struct Revoking {
        inner: Arc<dyn BlobStore>,
        service: Arc<sealpost::service::Service>,
        practice: sealpost::domain::Practice,
        share: sealpost::domain::ShareId,
        fired: AtomicBool,
    }
    #[async_trait::async_trait]
    impl BlobStore for Revoking {
        async fn put(&self, key: &str, bytes: &[u8]) -> PortResult<()> {
            if key.ends_with("/reply.json") && !self.fired.swap(true, Ordering::SeqCst) {
                self.service.revoke(&self.practice, &self.share).await.expect("revoked");
            }
            self.inner.put(key, bytes).await
        }
        async fn open(&self, key: &str) -> PortResult<Option<BlobReader>> {
            self.inner.open(key).await
        }
        async fn create(&self, key: &str) -> PortResult<Box<dyn BlobWriter>> {
            self.inner.create(key).await
        }
        async fn size(&self, key: &str) -> PortResult<Option<u64>> {
            self.inner.size(key).await
        }
        async fn rename(&self, from: &str, to: &str) -> PortResult<bool> {
            self.inner.rename(from, to).await
        }
        async fn delete_prefix(&self, prefix: &str) -> PortResult<()> {
            self.inner.delete_prefix(prefix).await
        }
        async fn download_url(&self, key: &str, d: Disposition<'_>, ttl: u64) -> PortResult<String> {
            self.inner.download_url(key, d, ttl).await
        }
        async fn upload_url(&self, key: &str, size: u64, sha256: &[u8; 32], ttl: u64) -> PortResult<UploadUrl> {
            self.inner.upload_url(key, size, sha256, ttl).await
        }
    }
    let s = &app.service;
    let share = sealpost::domain::ShareId::parse(share).unwrap();
    let practice_id = s.store.get_share(&share).await.unwrap().unwrap().practice_id;
    let practice = s.store.get_practice(&practice_id).await.unwrap().unwrap();
    let blobs = Revoking { inner: s.blobs.clone(), service: s.clone(), practice, share, fired: AtomicBool::new(false) };
    sealpost::service::Service { blobs: Arc::new(blobs), ..(**s).clone() }
}

#[tokio::test]
async fn a_reply_that_races_a_revoke_is_not_kept() {
    let app = TestApp::spawn().await;
    // The submit: its reply written after the revoke's cleanup, then its count refused.
    let (share, token) = reply_share(&app).await;
    let id = id_of(&share);
    let reply_id = uploaded_reply(&app, &id, &token).await;
    let racing = revoking_before_reply_kept(&app, &id).await;
    let share_id = sealpost::domain::ShareId::parse(&id).unwrap();
    let bearer = format!("Bearer {token}");
    let error = racing.submit_reply(&share_id, Some(&bearer), &reply_id).await.expect_err("revoked meanwhile");
    assert!(matches!(error, sealpost::Error::Revoked), "{error:?}");
    let kept = |key: String| {
        let blobs = app.service.blobs.clone();
        async move { blobs.open(&key).await.unwrap().is_some() }
    };
    assert!(!kept(format!("shares/{id}/replies/{reply_id}/reply.json")).await, "the message is gone");
    assert!(!kept(format!("shares/{id}/replies/{reply_id}/0")).await, "the file is gone");
    assert_eq!(count_events(&get_share(&app, &id).await, "reply_received"), 0);

    // The start: counted after its reply was written, refused, and the reply deleted.
    let (share, token) = reply_share(&app).await;
    let id = id_of(&share);
    let racing = revoking_before_reply_kept(&app, &id).await;
    let share_id = sealpost::domain::ShareId::parse(&id).unwrap();
    let opened = racing.reply_share(&share_id, Some(&format!("Bearer {token}"))).await.expect("open");
    let body = json!({"message": "Bitte loeschen: racing start"}).to_string();
    let error = racing.start_reply(opened, body.as_bytes()).await.expect_err("revoked meanwhile");
    assert!(matches!(error, sealpost::Error::Revoked), "{error:?}");
    let stored = app.service.store.get_share(&share_id).await.unwrap().unwrap();
    assert!(stored.replies.is_empty(), "not counted");
    if embedded() {
        assert!(files_containing(&app.data_dir, b"racing start").is_empty(), "the message is gone");
    }
}

#[tokio::test]
async fn the_cli_shows_replies_and_saves_the_accepted_files() {
    use crate::cli::{api_args, args, assert_success, sealpost, stdout};
    let app = TestApp::spawn().await;
    let (share, token) = reply_share(&app).await;
    let id = id_of(&share);
    let fake = b"<html>not a picture</html>";
    let started = start(
        &app,
        &id,
        &token,
        &json!({"message": MESSAGE_BACK, "files": [file("../Foto.png", "image/png", PNG), file("Foto.png", "image/png", fake)]}),
    )
    .await
    .ok(201);
    let uploads = started["files"].as_array().unwrap();
    put_url(&app, uploads[0]["upload_url"].as_str().unwrap(), PNG).await.ok(200);
    put_url(&app, uploads[1]["upload_url"].as_str().unwrap(), fake).await.ok(200);
    let reply_id = started["id"].as_str().unwrap().to_owned();
    submit(&app, &id, &token, &reply_id).await.ok(200);

    let mut status = args(&["status", &id]);
    status.extend(api_args(&app));
    let out = sealpost(status).await;
    assert_success(&out);
    assert!(stdout(&out).contains(&format!("replies:    1 (sealpost replies {id} shows them)")), "{}", stdout(&out));

    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("Antworten");
    let mut cmd = args(&["replies", &id, "--save", &saved.display().to_string()]);
    cmd.extend(api_args(&app));
    let out = sealpost(cmd).await;
    assert_success(&out);
    let printed = stdout(&out);
    assert!(printed.contains(&format!("reply:      {reply_id}")), "{printed}");
    assert!(printed.contains("  Guten Tag, anbei die unterschriebene Einwilligung.\n  Freundliche Gruesse\n"), "{printed}");
    assert!(printed.contains("file:       Foto.png (") && printed.contains(" accepted\n"), "{printed}");
    assert!(printed.contains(" refused (wrong_type)\n"), "{printed}");
    let folder = saved.join(&reply_id);
    assert_eq!(std::fs::read_to_string(folder.join("message.txt")).unwrap(), MESSAGE_BACK);
    assert_eq!(std::fs::read(folder.join("Foto.png")).unwrap(), PNG, "the accepted file, under its own name");
    let names: Vec<String> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 2, "the refused file is not saved: {names:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(folder.join("Foto.png")).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
