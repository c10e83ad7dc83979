//! A share's whole happy life: create → SMS → open → verify → each document → the ZIP, with
//! exact bytes and the read receipts in order.

use crate::helpers::*;

const TXT: &[u8] = b"Befund: alles in Ordnung.\nDr. med. Muster\n";
const PDF2: &[u8] = b"%PDF-1.4\n% the second Befund, other bytes\n%%EOF\n";

#[tokio::test]
async fn create_verify_download_each_document_and_the_archive() {
    let app = TestApp::spawn().await;
    let mut body = share_body();
    body["documents"] = json!([
        doc("Befund.pdf", "application/pdf", PDF),
        doc("Befund.pdf", "application/pdf", PDF2),
        doc("notes.txt", "text/plain", TXT),
    ]);
    let share = create_share(&app, &body).await;
    let id = id_of(&share);
    let reference = share["reference"].as_str().unwrap().to_owned();
    let created_docs = share["documents"].as_array().unwrap().clone();
    assert_eq!(created_docs.len(), 3);
    let contents: [&[u8]; 3] = [PDF, PDF2, TXT];
    for (d, bytes) in created_docs.iter().zip(contents) {
        assert_eq!(d["size"], bytes.len());
        assert_eq!(d["sha256"], sha256_hex(bytes));
    }
    let doc_ids: Vec<String> = created_docs.iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(doc_ids.iter().collect::<std::collections::HashSet<_>>().len(), 3, "distinct document ids");

    // The SMS.
    let sms = app.sent_sms().await;
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].to, PHONE);
    let code = code_in(&sms[0].body).expect("code in SMS");

    // The view before anything happened.
    let view = get_share(&app, &id).await;
    assert_eq!(view["status"], "active");
    assert_eq!(view["attempts_left"], 5);
    assert_eq!(view["self_service_requests"], 0);
    for k in ["opened_at", "verified_at", "downloaded_at", "revoked_at"] {
        assert!(view[k].is_null(), "{k} must be null before it happens: {view}");
    }

    // The patient opens the page.
    let public = public_get(&app, &id).await.ok(200);
    assert_eq!(public["id"], id.as_str());
    assert_eq!(public["reference"], reference.as_str());
    assert_eq!(public["state"], "active");
    assert_eq!(public["auth_method"], "sms");
    assert_eq!(public["attempts_left"], 5);

    // Verify.
    let verified = verify_ok(&app, &id, &code).await;
    assert_eq!(verified["expires_in"], 900);
    let token = token_of(&verified);
    let listed = verified["documents"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for (l, c) in listed.iter().zip(&created_docs) {
        assert_eq!(l["id"], c["id"]);
        assert_eq!(l["filename"], c["filename"]);
        assert_eq!(l["size"], c["size"]);
        assert_eq!(l["content_type"], c["content_type"]);
    }
    let archive_size = verified["archive"]["size"].as_u64().expect("archive.size");

    // Each document.
    for (i, bytes) in contents.iter().enumerate() {
        let link = document_link(&app, &id, &doc_ids[i], Some(&token)).await.ok(200);
        let expires_in = link["expires_in"].as_u64().expect("expires_in");
        assert!((1..=300).contains(&expires_in), "presigned URLs live 5 minutes at most: {expires_in}");
        let url = link["url"].as_str().expect("url");
        let got = fetch_url(&app, url).await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.bytes, *bytes, "document {i} bytes");
        let cd = got.header("content-disposition").expect("Content-Disposition");
        assert!(cd.starts_with("attachment"), "{cd}");
        let expected_name = if i == 2 { "notes.txt" } else { "Befund" };
        assert!(cd.contains(expected_name), "filename in {cd}");
    }

    // The archive.
    let link = archive_link(&app, &id, Some(&token)).await.ok(200);
    assert!((1..=300).contains(&link["expires_in"].as_u64().unwrap()));
    let got = fetch_url(&app, link["url"].as_str().unwrap()).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let cd = got.header("content-disposition").expect("Content-Disposition");
    assert!(cd.starts_with("attachment"), "{cd}");
    assert!(cd.contains(&format!("{reference}.zip")), "archive named <reference>.zip: {cd}");
    assert_eq!(got.bytes.len() as u64, archive_size, "archive.size from verify");
    let entries = unzip(&got.bytes);
    assert_eq!(entries.len(), 3, "{:?}", entries.iter().map(|e| &e.0).collect::<Vec<_>>());
    let names: std::collections::HashSet<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 3, "duplicate names made unique: {names:?}");
    assert!(names.contains("Befund.pdf"), "{names:?}");
    assert!(names.contains("notes.txt"), "{names:?}");
    let renamed = names.iter().find(|n| **n != "Befund.pdf" && **n != "notes.txt").unwrap();
    assert!(renamed.starts_with("Befund") && renamed.ends_with(".pdf"), "the duplicate keeps its extension: {renamed}");
    for (name, bytes) in &entries {
        assert!(!name.contains('/') && !name.contains('\\'), "flat archive: {name}");
        assert!(contents.contains(&bytes.as_slice()), "unexpected bytes for {name}");
    }
    let mut got_contents: Vec<&[u8]> = entries.iter().map(|(_, b)| b.as_slice()).collect();
    got_contents.sort();
    let mut want: Vec<&[u8]> = contents.to_vec();
    want.sort();
    assert_eq!(got_contents, want, "each document exactly once");
    let by_name: std::collections::HashMap<&str, &[u8]> = entries.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    assert_eq!(by_name["notes.txt"], TXT);

    // Read receipts, in order.
    let view = get_share(&app, &id).await;
    let types = event_types(&view);
    let pos = |t: &str| types.iter().position(|x| x == t).unwrap_or_else(|| panic!("no {t} event in {types:?}"));
    assert_eq!(types[0], "created", "{types:?}");
    assert!(pos("created") < pos("email_sent") && pos("created") < pos("sms_sent"), "{types:?}");
    assert!(pos("email_sent") < pos("opened") && pos("sms_sent") < pos("opened"), "{types:?}");
    assert!(pos("opened") < pos("verified"), "{types:?}");
    assert!(pos("verified") < pos("document_downloaded"), "{types:?}");
    assert!(types.iter().rposition(|t| t == "document_downloaded").unwrap() < pos("archive_downloaded"), "{types:?}");
    assert_eq!(count_events(&view, "created"), 1);
    assert_eq!(count_events(&view, "email_sent"), 1);
    assert_eq!(count_events(&view, "sms_sent"), 1);
    assert_eq!(count_events(&view, "opened"), 1);
    assert_eq!(count_events(&view, "verified"), 1);
    assert_eq!(count_events(&view, "document_downloaded"), 3);
    assert_eq!(count_events(&view, "archive_downloaded"), 1);
    assert_eq!(count_events(&view, "verify_failed"), 0);
    let downloaded: Vec<&str> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "document_downloaded")
        .map(|e| e["data"]["document_id"].as_str().expect("document_downloaded names its document"))
        .collect();
    assert_eq!(downloaded, doc_ids.iter().map(String::as_str).collect::<Vec<_>>());
    for e in view["events"].as_array().unwrap() {
        assert!(e["id"].as_str().unwrap().starts_with("evt_"), "{e}");
        if ["created", "opened", "verified", "archive_downloaded"].contains(&e["type"].as_str().unwrap()) {
            assert!(e.get("data").is_none_or(|d| d.is_null() || d == &json!({})), "data only where there is some: {e}");
        }
        for secret in [code.as_str(), PHONE, EMAIL] {
            assert!(!e.to_string().contains(secret), "no personal data or code in events: {e}");
        }
        time(&e["created_at"]);
        if e["type"] == "email_sent" {
            assert_eq!(e["data"]["channel"], "email");
        }
        if e["type"] == "sms_sent" {
            assert_eq!(e["data"]["channel"], "sms");
        }
    }
    for k in ["opened_at", "verified_at", "downloaded_at"] {
        assert_eq!(time(&view[k]), start_time(), "{k}: {view}");
    }
    assert!(view["revoked_at"].is_null());
    assert_eq!(view["status"], "active");
}

#[tokio::test]
async fn opening_twice_records_opened_once() {
    let app = TestApp::spawn().await;
    let (share, _) = create_default(&app).await;
    let id = id_of(&share);
    public_get(&app, &id).await.ok(200);
    app.advance(Duration::minutes(5));
    public_get(&app, &id).await.ok(200);
    let view = get_share(&app, &id).await;
    assert_eq!(count_events(&view, "opened"), 1, "{:?}", event_types(&view));
    assert_eq!(time(&view["opened_at"]), start_time(), "the first opening");
}

#[tokio::test]
async fn download_routes_need_the_right_token() {
    let app = TestApp::spawn().await;
    let (share, verified, token) = create_and_verify(&app).await;
    let id = id_of(&share);
    let doc_id = verified["documents"][0]["id"].as_str().unwrap().to_owned();

    for bad in [None, Some("garbage"), Some(""), Some(app.api_key.as_str())] {
        document_link(&app, &id, &doc_id, bad).await.err(401, "unauthorized");
        archive_link(&app, &id, bad).await.err(401, "unauthorized");
    }
    // The token with one character changed.
    let tampered = tamper_last(&token);
    document_link(&app, &id, &doc_id, Some(&tampered)).await.err(401, "unauthorized");

    // A token of another share.
    let (other, _, other_token) = create_and_verify(&app).await;
    document_link(&app, &id, &doc_id, Some(&other_token)).await.err(401, "unauthorized");
    archive_link(&app, &id, Some(&other_token)).await.err(401, "unauthorized");
    // A document of another share with its own token: not there.
    let other_doc = other["documents"][0]["id"].as_str().unwrap().to_owned();
    document_link(&app, &id, &other_doc, Some(&token)).await.err(404, "not_found");
    document_link(&app, &id, "doc_AAAAAAAAAAAA", Some(&token)).await.err(404, "not_found");
    document_link(&app, &id, "..%2F..%2Fetc", Some(&token)).await.err(404, "not_found");

    // The right one works, and nothing above counted as a download.
    document_link(&app, &id, &doc_id, Some(&token)).await.ok(200);
    let view = get_share(&app, &id).await;
    assert_eq!(count_events(&view, "document_downloaded"), 1);
    assert_eq!(count_events(&view, "archive_downloaded"), 0);
}

#[tokio::test]
async fn verifying_twice_gives_two_working_tokens() {
    let app = TestApp::spawn().await;
    let (share, code) = create_default(&app).await;
    let id = id_of(&share);
    let t1 = token_of(&verify_ok(&app, &id, &code).await);
    let t2 = token_of(&verify_ok(&app, &id, &code).await);
    let doc_id = share["documents"][0]["id"].as_str().unwrap();
    for t in [&t1, &t2] {
        let link = document_link(&app, &id, doc_id, Some(t)).await.ok(200);
        let got = fetch_url(&app, link["url"].as_str().unwrap()).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.bytes, PDF);
    }
    let view = get_share(&app, &id).await;
    assert!(count_events(&view, "verified") >= 1, "{:?}", event_types(&view));
    assert_eq!(count_events(&view, "document_downloaded"), 2, "{:?}", event_types(&view));
}

#[tokio::test]
async fn unicode_and_quoted_filenames_download_with_rfc_6266_headers() {
    let app = TestApp::spawn().await;
    let name = "Röntgen \"links\".pdf";
    let mut body = share_body();
    body["documents"] = json!([doc(name, "application/pdf", PDF)]);
    let share = create_share(&app, &body).await;
    assert_eq!(share["documents"][0]["filename"], name);
    let id = id_of(&share);
    let verified = verify_ok(&app, &id, &last_code(&app).await).await;
    let doc_id = verified["documents"][0]["id"].as_str().unwrap().to_owned();
    let link = document_link(&app, &id, &doc_id, Some(&token_of(&verified))).await.ok(200);
    let got = fetch_url(&app, link["url"].as_str().unwrap()).await;
    assert_eq!(got.bytes, PDF);
    let cd = got.header("content-disposition").expect("Content-Disposition");
    assert!(cd.starts_with("attachment"), "{cd}");
    assert!(cd.contains("filename*=UTF-8''R%C3%B6ntgen"), "the exact name, RFC 8187-encoded: {cd}");
    assert!(!cd.contains("\"links\"\""), "quotes in the name must not break the header: {cd}");
    let entries = downloaded_archive(&app, &id, &token_of(&verified)).await;
    assert_eq!(entries[0].0, name, "the ZIP keeps the Unicode name");
}

/// Issue #17: whoever holds the code can repeat right answers and downloads without end; the
/// share keeps 200 such events, says so once, and the downloads still work after that.
#[tokio::test]
async fn a_share_keeps_a_bounded_number_of_the_patient_s_events() {
    let app = TestApp::spawn().await;
    let (share, code) = create_default(&app).await;
    let id = id_of(&share);
    let verified = verify_ok(&app, &id, &code).await;
    let token = token_of(&verified);
    let doc = verified["documents"][0]["id"].as_str().unwrap().to_owned();
    // One `verified`, then downloads: 199 recorded, then 3 more that are not.
    for _ in 0..202 {
        document_link(&app, &id, &doc, Some(&token)).await.ok(200);
    }
    archive_link(&app, &id, Some(&token)).await.ok(200);
    verify_ok(&app, &id, &code).await;
    let view = get_share(&app, &id).await;
    assert_eq!(count_events(&view, "verified"), 1);
    assert_eq!(count_events(&view, "document_downloaded"), 199);
    assert_eq!(count_events(&view, "archive_downloaded"), 0);
    assert_eq!(count_events(&view, "events_capped"), 1);
    let types = event_types(&view);
    assert_eq!(types[types.len() - 2..], ["document_downloaded", "events_capped"], "the marker comes with the last one kept");
    assert!(view["downloaded_at"].is_string(), "{view}");
}
