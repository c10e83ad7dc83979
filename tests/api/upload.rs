//! Large documents: `size` + `sha256` → `upload_url`, PUT, then `POST /v1/shares/{id}/send`.

use crate::helpers::*;

fn big_bytes() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n".to_vec();
    v.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

fn large_body(bytes: &[u8]) -> Value {
    let mut body = share_body();
    body["documents"] = json!([large_doc("Scan.pdf", "application/pdf", bytes)]);
    body
}

#[tokio::test]
async fn upload_then_send_notifies_and_serves_the_bytes() {
    let app = TestApp::spawn().await;
    let bytes = big_bytes();
    let share = create_share(&app, &large_body(&bytes)).await;
    let id = id_of(&share);
    assert_eq!(share["status"], "awaiting_upload");
    assert_eq!(share["notifications"], json!({}), "nothing sent before send");
    let d = &share["documents"][0];
    assert_eq!(d["size"], bytes.len());
    assert_eq!(d["sha256"], sha256_hex(&bytes));
    assert_eq!(d["filename"], "Scan.pdf");
    let upload_url = d["upload_url"].as_str().expect("upload_url").to_owned();
    assert!(d["upload_expires_in"].as_u64().is_some_and(|s| s > 0), "{d}");
    use base64::Engine;
    let checksum = base64::engine::general_purpose::STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
    assert_eq!(d["upload_headers"], json!({"x-amz-checksum-sha256": checksum}), "what the uploader must send");
    assert!(app.sent_sms().await.is_empty());
    assert!(app.sent_emails().await.is_empty());
    assert_eq!(get_share(&app, &id).await["status"], "awaiting_upload");

    // Not visible to the patient yet.
    let r = public_get(&app, &id).await;
    r.err(404, "not_found");
    r.only_error();
    verify(&app, &id, "123456").await.err(404, "not_found");
    request_code(&app, &id).await.err(404, "not_found");
    // Resend makes no sense yet.
    resend(&app, &id).await.err(400, "invalid_request");

    let put = put_url(&app, &upload_url, &bytes).await;
    assert!((200..300).contains(&put.status), "upload: {} {}", put.status, put.text());
    if let Some((clients, config)) = app.aws_parts() {
        // The URL signs Content-Length and the checksum S3 checks the bytes against; the bucket
        // encrypts what comes through it.
        let query: std::collections::HashMap<_, _> = url::Url::parse(&upload_url).unwrap().query_pairs().into_owned().collect();
        assert_eq!(query["X-Amz-SignedHeaders"], "content-length;host;x-amz-checksum-sha256");
        let objects = clients.s3().list_objects_v2().bucket(&config.bucket).send().await.expect("list");
        assert!(!objects.contents().is_empty());
        for object in objects.contents() {
            let head = clients.s3().head_object().bucket(&config.bucket).key(object.key().unwrap()).send().await.expect("head");
            assert_eq!(head.server_side_encryption().map(|e| e.as_str()), Some("AES256"), "{:?}", object.key());
        }
    }

    // `send` answers before the archive is built: the share is `sending`, nobody is notified,
    // no archive exists and the patient still sees nothing.
    let sent = send(&app, &id).await.ok(202);
    assert_eq!(sent["id"], id.as_str());
    assert_eq!(sent["status"], "sending");
    assert!(sent.get("notifications").is_none_or(Value::is_null), "{sent}");
    assert!(app.sent_sms().await.is_empty());
    assert!(app.sent_emails().await.is_empty());
    assert_eq!(get_share(&app, &id).await["status"], "sending");
    assert!(!stored_keys(&app, &id).await.contains(&"archive.zip".to_owned()), "no archive yet");
    public_get(&app, &id).await.err(404, "not_found");
    // Sent again meanwhile: 202 again, nothing started twice.
    assert_eq!(send(&app, &id).await.ok(202)["status"], "sending");

    assert!(app.process_sends().await >= 1);
    let view = get_share(&app, &id).await;
    assert_eq!(view["status"], "active");
    assert_eq!(count_events(&view, "archive_ready"), 1);
    assert_eq!(app.sent_sms().await.len(), 1);
    assert_eq!(app.sent_emails().await.len(), 1);
    assert_eq!(app.process_sends().await, 0, "nothing left to do");

    let code = last_code(&app).await;
    let verified = verify_ok(&app, &id, &code).await;
    let doc_id = verified["documents"][0]["id"].as_str().unwrap().to_owned();
    let link = document_link(&app, &id, &doc_id, Some(&token_of(&verified))).await.ok(200);
    let got = fetch_url(&app, link["url"].as_str().unwrap()).await;
    assert_eq!(got.status, 200);
    assert!(got.bytes == bytes, "the uploaded bytes, exactly");
    let entries = downloaded_archive(&app, &id, &token_of(&verified)).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "Scan.pdf");
    assert!(entries[0].1 == bytes);

    // Send again: the view, nothing sent twice.
    let again = send(&app, &id).await.ok(200);
    assert_eq!(again["status"], "active");
    assert_eq!(app.sent_sms().await.len(), 1);
    assert_eq!(app.sent_emails().await.len(), 1);
    let view = get_share(&app, &id).await;
    assert_eq!(count_events(&view, "sms_sent"), 1);
    assert_eq!(count_events(&view, "created"), 1);
}

#[tokio::test]
async fn wrong_bytes_keep_the_share_waiting() {
    let app = TestApp::spawn().await;
    let bytes = big_bytes();
    let share = create_share(&app, &large_body(&bytes)).await;
    let id = id_of(&share);
    let upload_url = share["documents"][0]["upload_url"].as_str().unwrap().to_owned();

    // Nothing uploaded yet.
    send(&app, &id).await.invalid("documents[0]");
    // Same size, other bytes: refused at the PUT (the URL signs the declared checksum) ...
    let mut wrong = bytes.clone();
    wrong[100] ^= 0xff;
    let put = put_url(&app, &upload_url, &wrong).await;
    if !sealpost_tests::aws_backend() {
        assert_eq!(put.status, 403, "{}", put.text());
        send(&app, &id).await.invalid("documents[0]");
    }
    // ... and, should such bytes reach the store anyway (moto checks nothing), by the worker,
    // which sends the share back.
    store_upload(&app, &id, share["documents"][0]["id"].as_str().unwrap(), &wrong).await;
    send(&app, &id).await.ok(202);
    app.process_sends().await;
    let view = get_share(&app, &id).await;
    assert_eq!(view["status"], "awaiting_upload");
    let rejected = view["events"].as_array().unwrap().iter().find(|e| e["type"] == "upload_rejected").expect("upload_rejected");
    assert_eq!(rejected["data"], json!({"document_id": share["documents"][0]["id"], "reason": "sha256_mismatch"}));
    // Other size.
    let put = put_url(&app, &upload_url, &bytes[..1000]).await;
    if (200..300).contains(&put.status) {
        send(&app, &id).await.invalid("documents[0]");
    }
    assert_eq!(get_share(&app, &id).await["status"], "awaiting_upload");
    public_get(&app, &id).await.err(404, "not_found");
    assert!(app.sent_sms().await.is_empty());
    assert!(app.sent_emails().await.is_empty());

    // The right bytes fix it.
    let put = put_url(&app, &upload_url, &bytes).await;
    assert!((200..300).contains(&put.status));
    send_and_work(&app, &id).await;
    assert_eq!(get_share(&app, &id).await["status"], "active");
    assert_eq!(app.sent_sms().await.len(), 1);
}

#[tokio::test]
async fn a_wrong_document_stops_the_archive_and_is_uploaded_again() {
    // The worker hashes the uploads as it writes the archive: the second document's bytes are
    // wrong, so no archive may be left (nor, on S3, an open multipart upload), the wrong bytes
    // are removed, the right ones kept, and the share waits for the upload again.
    let app = TestApp::spawn().await;
    let first = big_bytes();
    let mut second = big_bytes();
    second.extend_from_slice(b"second");
    let mut body = share_body();
    body["documents"] = json!([large_doc("eins.pdf", "application/pdf", &first), large_doc("zwei.txt", "text/plain", &second)]);
    let share = create_share(&app, &body).await;
    let id = id_of(&share);
    let url = |i: usize| share["documents"][i]["upload_url"].as_str().unwrap().to_owned();
    put_url(&app, &url(0), &first).await;
    let mut wrong = second.clone();
    wrong[5000] ^= 0x01;
    // Past the URL's checksum (which S3 and the embedded store enforce): as if the bytes had
    // changed in the bucket.
    store_upload(&app, &id, share["documents"][1]["id"].as_str().unwrap(), &wrong).await;

    send(&app, &id).await.ok(202);
    app.process_sends().await;
    let view = get_share(&app, &id).await;
    assert_eq!(view["status"], "awaiting_upload");
    assert_eq!(count_events(&view, "upload_rejected"), 1);
    let rejected = view["events"].as_array().unwrap().iter().find(|e| e["type"] == "upload_rejected").unwrap();
    assert_eq!(rejected["data"], json!({"document_id": share["documents"][1]["id"], "reason": "sha256_mismatch"}));
    assert_eq!(stored_names(&app, &id).await, [share["documents"][0]["id"].as_str().unwrap()], "only the right document stays");
    if let Some((clients, config)) = app.aws_parts() {
        let uploads = clients.s3().list_multipart_uploads().bucket(&config.bucket).send().await.expect("list uploads");
        assert!(uploads.uploads().iter().all(|u| !u.key().unwrap_or_default().contains(&id)), "no open multipart upload");
    }
    // Removed: it has to come again.
    let again = send(&app, &id).await;
    assert!(
        again.invalid("documents[1]")["error"]["message"].as_str().unwrap().contains("not been uploaded"),
        "{}",
        again.text()
    );
    assert!(app.sent_sms().await.is_empty());

    put_url(&app, &url(1), &second).await;
    send_and_work(&app, &id).await;
    assert_eq!(get_share(&app, &id).await["status"], "active");
    let token = token_of(&verify_ok(&app, &id, &last_code(&app).await).await);
    let entries = downloaded_archive(&app, &id, &token).await;
    assert_eq!(entries.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["eins.pdf", "zwei.txt"]);
    assert!(entries[0].1 == first && entries[1].1 == second, "the checked bytes, in order");
}

#[tokio::test]
async fn an_archive_of_many_parts_holds_every_byte_in_order() {
    // On S3 the archive is a multipart upload of 8 MiB parts, several in flight at once: 21 MiB
    // of documents that do not compress make three parts, which must come back in order.
    let app = TestApp::spawn().await;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut noise = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    let docs = [noise(9 * 1024 * 1024 + 17), noise(12 * 1024 * 1024 + 3)];
    let mut body = share_body();
    body["documents"] =
        json!([large_doc("eins.pdf", "application/pdf", &docs[0]), large_doc("zwei.bin", "application/octet-stream", &docs[1])]);
    let share = create_share(&app, &body).await;
    let id = id_of(&share);
    for (i, bytes) in docs.iter().enumerate() {
        let put = put_url(&app, share["documents"][i]["upload_url"].as_str().unwrap(), bytes).await;
        assert!((200..300).contains(&put.status), "upload {i}: {} {}", put.status, put.text());
    }
    send_and_work(&app, &id).await;
    let token = token_of(&verify_ok(&app, &id, &last_code(&app).await).await);
    let archive = archive_link(&app, &id, Some(&token)).await.ok(200);
    let zip = fetch_url(&app, archive["url"].as_str().unwrap()).await;
    assert!(zip.bytes.len() > 2 * 8 * 1024 * 1024, "three parts' worth: {}", zip.bytes.len());
    let entries = unzip(&zip.bytes);
    assert_eq!(entries.len(), 2);
    assert!(entries[0].1 == docs[0] && entries[1].1 == docs[1], "every byte, in order");
}

#[tokio::test]
async fn a_mix_of_inline_and_large_names_the_missing_one() {
    let app = TestApp::spawn().await;
    let bytes = big_bytes();
    let mut body = share_body();
    body["documents"] = json!([doc("klein.pdf", "application/pdf", PDF), large_doc("gross.pdf", "application/pdf", &bytes)]);
    let share = create_share(&app, &body).await;
    let id = id_of(&share);
    assert_eq!(share["status"], "awaiting_upload");
    assert!(share["documents"][0].get("upload_url").is_none_or(Value::is_null), "inline needs no upload: {share}");
    let url = share["documents"][1]["upload_url"].as_str().expect("upload_url for the large one").to_owned();
    send(&app, &id).await.invalid("documents[1]");
    put_url(&app, &url, &bytes).await;
    send_and_work(&app, &id).await;
    let verified = verify_ok(&app, &id, &last_code(&app).await).await;
    assert_eq!(verified["documents"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_tampered_upload_url_is_forbidden() {
    let app = TestApp::spawn().await;
    let bytes = big_bytes();
    let share = create_share(&app, &large_body(&bytes)).await;
    let url = share["documents"][0]["upload_url"].as_str().unwrap().to_owned();
    if presigned_by_s3(&url, 300) {
        return;
    }
    let tampered = tamper_last(&url);
    assert_url_refused(&put_url(&app, &tampered, &bytes).await, &[403]);
    send(&app, &id_of(&share)).await.invalid("documents[0]");
}

#[tokio::test]
async fn large_documents_need_size_and_hash() {
    let app = TestApp::spawn().await;
    let mut body = share_body();
    body["documents"] = json!([{"filename": "a.pdf", "content_type": "application/pdf", "size": 10}]);
    post_share(&app, &body).await.err(400, "invalid_request");
    body["documents"] = json!([{"filename": "a.pdf", "content_type": "application/pdf", "size": 10, "sha256": "xyz"}]);
    post_share(&app, &body).await.invalid("documents[0].sha256");
    body["documents"] = json!([{"filename": "a.pdf", "content_type": "application/pdf", "size": 3u64 * 1024 * 1024 * 1024, "sha256": sha256_hex(b"x")}]);
    post_share(&app, &body).await.invalid("documents[0].size");
    body["documents"] = json!([{"filename": "a.pdf", "content_type": "application/pdf"}]);
    post_share(&app, &body).await.err(400, "invalid_request");
    let list = list_shares(&app, "").await.ok(200);
    assert_eq!(list["shares"], json!([]));
}

#[tokio::test]
async fn send_on_an_active_share_sends_nothing_again() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let view = send(&app, &id_of(&share)).await.ok(200);
    assert_eq!(view["status"], "active");
    assert_eq!(app.sent_sms().await.len(), 1);
    assert_eq!(app.sent_emails().await.len(), 1);
}

#[tokio::test]
async fn an_upload_url_expires() {
    let app = TestApp::spawn().await;
    let bytes = big_bytes();
    let share = create_share(&app, &large_body(&bytes)).await;
    let url = share["documents"][0]["upload_url"].as_str().unwrap().to_owned();
    let lifetime = share["documents"][0]["upload_expires_in"].as_i64().unwrap();
    if presigned_by_s3(&url, lifetime) {
        return;
    }
    app.advance(Duration::seconds(lifetime + 1));
    assert_url_refused(&put_url(&app, &url, &bytes).await, &[403]);
    send(&app, &id_of(&share)).await.invalid("documents[0]");
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn an_expired_upload_url_is_renewed_and_the_upload_resumes() {
    // The first URL ran out (or its credentials ended) before the upload: the practice asks
    // for a fresh one, which also says whether the upload is there already.
    let app = TestApp::spawn().await;
    let bytes = big_bytes();
    let share = create_share(&app, &large_body(&bytes)).await;
    let (id, doc_id) = (id_of(&share), share["documents"][0]["id"].as_str().unwrap().to_owned());
    let first = share["documents"][0]["upload_url"].as_str().unwrap().to_owned();
    app.advance(Duration::seconds(share["documents"][0]["upload_expires_in"].as_i64().unwrap() + 1));
    if !presigned_by_s3(&first, 300) {
        assert_url_refused(&put_url(&app, &first, &bytes).await, &[403]);
    }

    let renewed = renew_upload_url(&app, &id, &doc_id).await.ok(200);
    assert_eq!(renewed["id"], doc_id.as_str());
    assert_eq!(renewed["uploaded"], false, "{renewed}");
    assert_eq!(renewed["size"], bytes.len());
    assert_eq!(renewed["upload_headers"], share["documents"][0]["upload_headers"], "the same checksum to send");
    assert_eq!(renewed["upload_expires_in"], 300, "SPEC: presigned URLs live 5 minutes at most");
    let url = renewed["upload_url"].as_str().expect("upload_url").to_owned();
    presigned_by_s3(&url, 300);
    let put = put_url(&app, &url, &bytes).await;
    assert!((200..300).contains(&put.status), "the fresh URL takes the upload: {} {}", put.status, put.text());
    assert_eq!(renew_upload_url(&app, &id, &doc_id).await.ok(200)["uploaded"], true, "a run that resumes skips it");

    send_and_work(&app, &id).await;
    let token = token_of(&verify_ok(&app, &id, &last_code(&app).await).await);
    let link = document_link(&app, &id, &doc_id, Some(&token)).await.ok(200);
    assert!(fetch_url(&app, link["url"].as_str().unwrap()).await.bytes == bytes);
}

#[tokio::test]
async fn an_upload_url_is_renewed_only_while_the_share_awaits_its_uploads() {
    let app = TestApp::spawn().await;
    let bytes = big_bytes();
    let share = create_share(&app, &large_body(&bytes)).await;
    let (id, doc_id) = (id_of(&share), share["documents"][0]["id"].as_str().unwrap().to_owned());
    let path = format!("/v1/shares/{id}/documents/{doc_id}/upload-url");

    // Only the practice's own share, only its documents.
    call(&app, "POST", &path, Some("sp_live_nonsense"), None).await.err(401, "unauthorized");
    let key2 = app.add_practice("Praxis Beispiel", Policy::default()).await;
    call(&app, "POST", &path, Some(&key2), None).await.err(404, "not_found");
    renew_upload_url(&app, &id, "doc_AAAAAAAAAAAAAAAAAAAAAA").await.err(404, "not_found");
    renew_upload_url(&app, &id, "..%2F..%2Fpepper").await.err(404, "not_found");
    renew_upload_url(&app, "AAAAAAAAAAAAAAAAAAAAAA", &doc_id).await.err(404, "not_found");
    call(&app, "GET", &path, Some(&app.api_key), None).await.err(404, "not_found");

    put_url(&app, share["documents"][0]["upload_url"].as_str().unwrap(), &bytes).await;
    send(&app, &id).await.ok(202);
    renew_upload_url(&app, &id, &doc_id).await.invalid("status"); // being sent
    app.process_sends().await;
    renew_upload_url(&app, &id, &doc_id).await.invalid("status"); // sent
    revoke(&app, &id).await.ok(200);
    renew_upload_url(&app, &id, &doc_id).await.err(410, "revoked");

    let mut body = large_body(&bytes);
    body["expires_in_days"] = json!(1);
    let short = create_share(&app, &body).await;
    let short_doc = short["documents"][0]["id"].as_str().unwrap().to_owned();
    // A URL ends an hour before the link: whatever it lets in has landed when the link runs
    // out and its documents are deleted. In the link's last hour it is too late to upload.
    app.advance(Duration::hours(24) - Duration::minutes(63));
    let renewed = renew_upload_url(&app, &id_of(&short), &short_doc).await.ok(200);
    assert_eq!(renewed["upload_expires_in"], 180);
    presigned_by_s3(renewed["upload_url"].as_str().unwrap(), 180);
    app.advance(Duration::minutes(3));
    renew_upload_url(&app, &id_of(&short), &short_doc).await.invalid("status");
    app.advance(Duration::hours(1));
    renew_upload_url(&app, &id_of(&short), &short_doc).await.err(410, "expired");
}

#[tokio::test]
async fn a_share_larger_than_one_send_archives_in_time_is_refused_at_create_on_aws() {
    // One worker run archives a share within Lambda's 15 minutes (BENCHMARKS.md, section 5):
    // on AWS a bigger share could never be sent, so it is refused before anything is stored.
    let app = TestApp::spawn().await;
    let body = |docs: u64| {
        let mut body = share_body();
        body["documents"] = (0..docs)
            .map(|i| {
                json!({"filename": format!("CT-{i}.dcm"), "content_type": "application/dicom",
                            "size": 2u64 << 30, "sha256": "ab".repeat(32)})
            })
            .collect();
        body
    };
    assert_eq!(post_share(&app, &body(10)).await.ok(201)["status"], "awaiting_upload", "20 GiB");
    let reply = post_share(&app, &body(11)).await;
    if embedded() {
        assert_eq!(reply.ok(201)["status"], "awaiting_upload", "no such limit beside the embedded worker");
    } else {
        let message = reply.invalid("documents")["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains("22.00 GiB") && message.contains("(20 GiB)"), "{message}");
        assert_eq!(list_shares(&app, "").await.ok(200)["shares"].as_array().unwrap().len(), 1, "nothing stored");
    }
}

#[tokio::test]
async fn a_manual_share_with_a_large_document_answers_its_code_on_send() {
    let app = TestApp::spawn().await;
    let bytes = big_bytes();
    let mut body = share_body_with_method("manual");
    body["documents"] = json!([large_doc("Scan.pdf", "application/pdf", &bytes)]);
    let share = create_share(&app, &body).await;
    assert_eq!(share["status"], "awaiting_upload");
    let url = share["documents"][0]["upload_url"].as_str().unwrap().to_owned();
    put_url(&app, &url, &bytes).await;
    let sent = send(&app, &id_of(&share)).await.ok(202);
    assert_eq!(sent["status"], "sending");
    assert!(share.get("code").is_none_or(Value::is_null), "no code before the send: {share}");
    let code = sent["code"].as_str().expect("the 202 answers the manual code").to_owned();
    app.process_sends().await;
    assert_eq!(get_share(&app, &id_of(&share)).await["status"], "active");
    assert!(app.sent_sms().await.is_empty());
    assert_eq!(app.sent_emails().await.len(), 1);
    verify_ok(&app, &id_of(&share), &code).await;
    assert!(get_share(&app, &id_of(&share)).await.get("code").is_none());
}

#[tokio::test]
async fn a_late_upload_cannot_change_a_sent_document() {
    // The upload URL stays valid for its 5 minutes; after `send` checked the bytes, a second PUT to
    // it must not change what the patient downloads (nor what the ZIP holds).
    let app = TestApp::spawn().await;
    let bytes = big_bytes();
    let share = create_share(&app, &large_body(&bytes)).await;
    let id = id_of(&share);
    let url = share["documents"][0]["upload_url"].as_str().unwrap().to_owned();
    put_url(&app, &url, &bytes).await;
    send_and_work(&app, &id).await;

    let mut other = bytes.clone();
    other[0] ^= 0xff;
    put_url(&app, &url, &other).await; // accepted or refused: either way it must change nothing

    let code = last_code(&app).await;
    let token = token_of(&verify_ok(&app, &id, &code).await);
    let doc_id = share["documents"][0]["id"].as_str().unwrap().to_owned();
    let link = document_link(&app, &id, &doc_id, Some(&token)).await.ok(200);
    assert!(fetch_url(&app, link["url"].as_str().unwrap()).await.bytes == bytes, "the checked bytes are served");
}

/// `send`, answered `202`, then the worker's run.
async fn send_and_work(app: &TestApp, id: &str) {
    assert_eq!(send(app, id).await.ok(202)["status"], "sending");
    assert!(app.process_sends().await >= 1);
}

/// The keys of a share's blobs below its prefix (`doc_…`, `archive.zip`, `uploads/doc_…`),
/// sorted.
async fn stored_keys(app: &TestApp, id: &str) -> Vec<String> {
    let prefix = format!("shares/{id}/");
    let mut keys: Vec<String> = match app.aws_parts() {
        Some((clients, config)) => {
            let listed = clients.s3().list_objects_v2().bucket(&config.bucket).prefix(&prefix).send().await.expect("list");
            listed.contents().iter().filter_map(|o| o.key()?.strip_prefix(&prefix).map(str::to_owned)).collect()
        }
        None => {
            let root = app.data_dir.join("blobs").join(&prefix);
            let mut found = Vec::new();
            let mut dirs = vec![root.clone()];
            while let Some(dir) = dirs.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for entry in entries {
                    let path = entry.expect("entry").path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else {
                        found.push(path.strip_prefix(&root).unwrap().to_string_lossy().into_owned());
                    }
                }
            }
            found
        }
    };
    keys.sort();
    keys
}

/// The blobs a share has in place (documents, archive); uploads waiting to be moved into place
/// are not counted.
async fn stored_names(app: &TestApp, id: &str) -> Vec<String> {
    stored_keys(app, id).await.into_iter().filter(|k| !k.starts_with("uploads")).collect()
}

#[tokio::test]
async fn an_upload_that_lands_after_a_revoke_is_deleted_by_the_sweep() {
    // Revoke deletes the documents at once; an upload URL handed out before stays valid for its
    // 5 minutes, and a PUT begun in them lands when it is done, so bytes can still land. The sweep removes them once no upload can land any more,
    // not when the link would have run out.
    let app = TestApp::spawn().await;
    let bytes = big_bytes();
    let share = create_share(&app, &large_body(&bytes)).await;
    let id = id_of(&share);
    let url = share["documents"][0]["upload_url"].as_str().unwrap().to_owned();
    app.advance(Duration::minutes(4));
    revoke(&app, &id).await.ok(200);
    let put = put_url(&app, &url, &bytes).await;
    assert!((200..300).contains(&put.status), "the URL is still valid: {} {}", put.status, put.text());
    assert_eq!(stored_keys(&app, &id).await.len(), 1, "the late upload landed");

    app.advance(Duration::hours(2));
    app.sweep().await;
    assert_eq!(stored_keys(&app, &id).await, Vec::<String>::new(), "nothing of the revoked share is kept");
    // The record stays for audit.
    assert_eq!(get_share(&app, &id).await["status"], "revoked");
}

#[tokio::test]
async fn an_upload_through_a_renewed_url_that_lands_after_a_revoke_is_deleted_by_the_sweep() {
    // A URL renewed hours after the share was made keeps uploads possible until it ends: the
    // revoke's second cleanup waits for that, not for the first URLs' end.
    let app = TestApp::spawn().await;
    let bytes = big_bytes();
    let share = create_share(&app, &large_body(&bytes)).await;
    let (id, doc_id) = (id_of(&share), share["documents"][0]["id"].as_str().unwrap().to_owned());
    app.advance(Duration::hours(3));
    let url = renew_upload_url(&app, &id, &doc_id).await.ok(200)["upload_url"].as_str().unwrap().to_owned();
    app.advance(Duration::minutes(4));
    revoke(&app, &id).await.ok(200);
    let put = put_url(&app, &url, &bytes).await;
    assert!((200..300).contains(&put.status), "the URL is still valid: {} {}", put.status, put.text());

    app.advance(Duration::hours(2));
    app.sweep().await;
    assert_eq!(stored_keys(&app, &id).await, Vec::<String>::new(), "nothing of the revoked share is kept");
}

#[tokio::test]
async fn an_archive_dropped_unfinished_is_never_completed() {
    // Writing an archive stops half way (a document's bytes were wrong): what was written must
    // not become an object under the key, whole parts or not, and on S3 the multipart upload
    // is aborted rather than left to the bucket's lifecycle rule.
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn().await;
    let key = "shares/dropped/archive.zip";
    let mut writer = app.service.blobs.create(key).await.expect("create");
    let part = vec![7u8; 9 * 1024 * 1024]; // more than one part
    writer.write_all(&part).await.expect("write");
    drop(writer);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let open = match app.aws_parts() {
            Some((clients, config)) => {
                let uploads = clients.s3().list_multipart_uploads().bucket(&config.bucket).send().await.expect("list uploads");
                uploads.uploads().len()
            }
            None => 0,
        };
        if open == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the multipart upload is still open");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.service.blobs.size(key).await.expect("size"), None, "no archive under the key");
}

#[tokio::test]
async fn an_upload_url_takes_only_the_declared_bytes() {
    // The URL signs the declared SHA-256 as `x-amz-checksum-sha256`: S3 refuses other bytes at
    // the PUT (`BadDigest`, or a signature mismatch when the header differs), and so does the
    // embedded store. moto checks neither, so on it only the signing shows.
    let app = TestApp::spawn().await;
    let bytes = big_bytes();
    let share = create_share(&app, &large_body(&bytes)).await;
    let url = share["documents"][0]["upload_url"].as_str().unwrap().to_owned();
    if sealpost_tests::aws_backend() {
        let query: std::collections::HashMap<_, _> = url::Url::parse(&url).unwrap().query_pairs().into_owned().collect();
        assert!(query["X-Amz-SignedHeaders"].split(';').any(|h| h == "x-amz-checksum-sha256"), "{url}");
        return;
    }
    let mut other = bytes.clone();
    other[7] ^= 0x40;
    // Other bytes with their own checksum: the header is not the signed one.
    assert_eq!(put_url(&app, &url, &other).await.status, 403);
    // Other bytes with the declared checksum: the bytes are not what it says.
    let declared = share["documents"][0]["upload_headers"]["x-amz-checksum-sha256"].as_str().unwrap().to_owned();
    let lying = app.http.put(absolute(&app, &url)).header("x-amz-checksum-sha256", &declared).body(other).send().await.unwrap();
    assert_eq!(lying.status(), 400);
    // No checksum at all.
    let bare = app.http.put(absolute(&app, &url)).body(bytes.clone()).send().await.unwrap();
    assert_eq!(bare.status(), 403);
    assert_eq!(stored_keys(&app, &id_of(&share)).await, Vec::<String>::new(), "nothing stored");
    // The declared bytes go through.
    assert_eq!(put_url(&app, &url, &bytes).await.status, 200);
}
