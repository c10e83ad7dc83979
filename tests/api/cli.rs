//! `sealpost send` and `sealpost status`: the built binary, run as a practice's script would run
//! it, against a real server. The binary is `target/debug/sealpost` beside this test binary
//! (`tests/run` builds the workspace first; alone: `cargo build -p sealpost-shared --bin
//! sealpost`), or `SEALPOST_BIN`.

use crate::helpers::*;
use chrono::Local;
use std::path::{Path, PathBuf};
use std::process::Output;

pub(crate) fn sealpost_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SEALPOST_BIN") {
        return PathBuf::from(bin);
    }
    // target/debug/deps/api-… → target/debug/sealpost
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe.parent().and_then(Path::parent).expect("target/debug").join("sealpost");
    assert!(bin.is_file(), "{} is missing: cargo build -p sealpost-shared --bin sealpost", bin.display());
    bin
}

/// Runs `sealpost args…` off the runtime's thread (the server answers on it meanwhile), with
/// none of the caller's SEALPOST_* settings.
pub(crate) async fn sealpost(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(sealpost_bin())
            .args(&args)
            .env_remove("SEALPOST_API_URL")
            .env_remove("SEALPOST_API_KEY")
            .output()
            .expect("sealpost runs")
    })
    .await
    .expect("joined")
}

pub(crate) fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

pub(crate) fn api_args(app: &TestApp) -> Vec<String> {
    args(&["--api", &app.base_url, "--key", &app.api_key])
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
pub(crate) fn assert_success(out: &Output) {
    assert!(out.status.success(), "sealpost failed ({:?}):\n{}\n{}", out.status, stdout(out), stderr(out));
}

/// Exit code 1, one `error:` line (answered), and nothing of a panic or a debug dump.
#[track_caller]
pub(crate) fn assert_failed_cleanly(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "exit code 1 expected:\n{}\n{err}", stdout(out));
    for dump in ["panicked", "RUST_BACKTRACE", "Error {", "Caused by", "kind:", "Os {"] {
        assert!(!err.contains(dump), "{dump:?} in stderr: {err}");
    }
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    errors[0].to_owned()
}

/// The value of the `name:` line in the CLI's output.
#[track_caller]
pub(crate) fn line_value(text: &str, name: &str) -> String {
    let prefix = format!("{name}:");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {prefix} line in:\n{text}")).trim().to_owned()
}

/// Bytes that are not all alike, so a truncated or shifted upload cannot pass.
fn scan_bytes(len: u32) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n".to_vec();
    v.extend((0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

fn local(v: &Value) -> String {
    time(v).with_timezone(&Local).format("%Y-%m-%d %H:%M").to_string()
}

#[tokio::test]
async fn send_puts_small_files_inline_uploads_large_ones_and_status_shows_the_timeline() {
    let app = TestApp::spawn().await;
    // The CLI waits for the archive: the worker runs as it would beside a server.
    app.start_send_task();
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("Befund.pdf");
    let large = dir.path().join("Scan.jpg");
    let large_bytes = scan_bytes(150_000);
    std::fs::write(&small, PDF).unwrap();
    std::fs::write(&large, &large_bytes).unwrap();

    let mut cmd = args(&["send"]);
    cmd.extend(api_args(&app));
    cmd.extend(args(&["--to-email", EMAIL, "--to-phone", PHONE, "--name", "Anna Muster", "--lang", "de"]));
    cmd.extend(args(&["--message", MESSAGE, "--expires-in-days", "10", "--inline-limit", "100000"]));
    cmd.extend([small.display().to_string(), large.display().to_string()]);
    let out = sealpost(cmd).await;
    assert_success(&out);
    let printed = stdout(&out);

    let id = line_value(&printed, "id");
    let view = get_share(&app, &id).await;
    assert_eq!(line_value(&printed, "reference"), view["reference"].as_str().unwrap());
    assert!(line_value(&printed, "reference").starts_with("SP-"), "{printed}");
    assert_eq!(line_value(&printed, "link"), view["link"].as_str().unwrap());
    assert_eq!(line_value(&printed, "status"), "active");
    assert_eq!(view["status"], "active");
    assert_eq!(time(&view["expires_at"]), start_time() + Duration::days(10));
    assert_eq!(line_value(&printed, "email"), "sent");
    assert_eq!(line_value(&printed, "sms"), "sent");
    let documents: Vec<&str> = printed.lines().filter_map(|l| l.strip_prefix("document:")).map(str::trim).collect();
    assert_eq!(documents.len(), 2, "{printed}");
    assert!(documents[0].starts_with("Befund.pdf") && documents[0].ends_with("inline)"), "{printed}");
    assert!(documents[1].starts_with("Scan.jpg") && documents[1].ends_with("uploaded)"), "{printed}");
    assert!(stderr(&out).contains("idempotency key: "), "the key is printed: {}", stderr(&out));

    // The documents as the API holds them, in order, with their types.
    let docs = view["documents"].as_array().unwrap();
    let described: Vec<(&str, &str, u64, &str)> = docs
        .iter()
        .map(|d| {
            (
                d["filename"].as_str().unwrap(),
                d["content_type"].as_str().unwrap(),
                d["size"].as_u64().unwrap(),
                d["sha256"].as_str().unwrap(),
            )
        })
        .collect();
    let (small_hash, large_hash) = (sha256_hex(PDF), sha256_hex(&large_bytes));
    assert_eq!(
        described,
        vec![
            ("Befund.pdf", "application/pdf", PDF.len() as u64, small_hash.as_str()),
            ("Scan.jpg", "image/jpeg", large_bytes.len() as u64, large_hash.as_str()),
        ]
    );

    // The patient gets exactly these bytes, 75 minutes later.
    assert_eq!(app.sent_sms().await.len(), 1, "one SMS, sent once the upload was done");
    app.advance(Duration::minutes(75));
    let verified = verify_ok(&app, &id, &last_code(&app).await).await;
    let token = token_of(&verified);
    for (doc, expected) in docs.iter().zip([PDF.to_vec(), large_bytes.clone()]) {
        let link = document_link(&app, &id, doc["id"].as_str().unwrap(), Some(&token)).await.ok(200);
        let got = fetch_url(&app, link["url"].as_str().unwrap()).await;
        assert_eq!(got.status, 200);
        assert!(got.bytes == expected, "{}: the file's bytes, exactly", doc["filename"]);
    }

    // `status`: the state, then one line per event, oldest first, in local time.
    let mut cmd = args(&["status", &id]);
    cmd.extend(api_args(&app));
    let out = sealpost(cmd).await;
    assert_success(&out);
    let printed = stdout(&out);
    let view = get_share(&app, &id).await;
    assert_eq!(line_value(&printed, "status"), "active");
    assert_eq!(line_value(&printed, "reference"), view["reference"].as_str().unwrap());
    assert_eq!(line_value(&printed, "expires"), local(&view["expires_at"]));
    assert!(printed.contains("Befund.pdf") && printed.contains("Scan.jpg"), "{printed}");
    let timeline: Vec<&str> = printed.lines().skip_while(|l| *l != "events:").skip(1).map(str::trim).collect();
    let expected: Vec<String> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let kind = e["type"].as_str().unwrap();
            let line = format!("{}  {kind}", local(&e["created_at"]));
            match kind {
                "document_downloaded" => {
                    let doc = docs.iter().find(|d| d["id"] == e["data"]["document_id"]).unwrap();
                    format!("{line}  {}", doc["filename"].as_str().unwrap())
                }
                _ => line,
            }
        })
        .collect();
    assert_eq!(timeline, expected, "{printed}");
    for kind in ["created", "email_sent", "sms_sent", "verified"] {
        assert!(timeline.iter().any(|l| l.ends_with(&format!("  {kind}"))), "{kind} in {printed}");
    }
    let later = start_time() + Duration::minutes(75);
    let downloaded = format!("{}  document_downloaded  Scan.jpg", local(&json!(later.to_rfc3339())));
    assert!(timeline.contains(&downloaded.as_str()), "{downloaded:?} in {printed}");
}

#[tokio::test]
async fn manual_auth_prints_the_code_that_opens_the_share() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Rezept.txt");
    std::fs::write(&file, "Ibuprofen 400").unwrap();
    let mut cmd = args(&["send"]);
    cmd.extend(api_args(&app));
    cmd.extend(args(&["--to-email", EMAIL, "--auth", "manual", &file.display().to_string()]));
    let out = sealpost(cmd).await;
    assert_success(&out);
    let printed = stdout(&out);
    let id = line_value(&printed, "id");
    let code: String = line_value(&printed, "code").chars().take(7).collect();
    assert_eq!(code.len(), 7, "123-456: {printed}");
    assert!(app.sent_sms().await.is_empty(), "no SMS for manual");
    let verified = verify_ok(&app, &id, &code).await;
    assert_eq!(verified["documents"][0]["filename"], "Rezept.txt");
    assert_eq!(verified["documents"][0]["content_type"], "text/plain");
}

#[tokio::test]
async fn preview_prints_the_email_and_sms_and_sends_nothing() {
    let app = TestApp::spawn().await;
    let mut cmd = args(&["send", "--preview"]);
    cmd.extend(api_args(&app));
    cmd.extend(args(&["--to-email", EMAIL, "--to-phone", PHONE, "--lang", "en", "--message", MESSAGE]));
    let out = sealpost(cmd.clone()).await;
    assert_success(&out);
    let printed = stdout(&out);
    let shown = call(
        &app,
        "POST",
        "/v1/shares/preview",
        Some(&app.api_key),
        Some(&json!({
            "recipient": {"email": EMAIL, "phone": PHONE, "language": "en"}, "message": MESSAGE
        })),
    )
    .await
    .ok(200);
    assert!(printed.contains(shown["email"]["subject"].as_str().unwrap()), "{printed}");
    assert!(printed.contains(shown["email"]["text"].as_str().unwrap().trim_end()), "{printed}");
    assert!(printed.contains(shown["sms"]["text"].as_str().unwrap()), "{printed}");
    assert!(printed.contains("GSM-7, 1 segment:"), "{printed}");
    assert!(printed.contains("XXXXXX for the code") && printed.contains("Nothing was sent."), "{printed}");
    assert!(!stderr(&out).contains("idempotency key"), "a preview creates nothing to retry: {}", stderr(&out));

    // Files given are checked as a send would: an empty one is refused by the API.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("Leer.pdf");
    std::fs::write(&empty, b"").unwrap();
    cmd.push(empty.display().to_string());
    let err = assert_failed_cleanly(&sealpost(cmd).await);
    assert!(err.starts_with("error: documents[0].content_base64: "), "{err}");
    assert!(app.sent_emails().await.is_empty() && app.sent_sms().await.is_empty());
    assert_eq!(list_shares(&app, "").await.ok(200)["shares"], json!([]), "nothing created");
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_sends_nothing_twice() {
    let app = TestApp::spawn().await;
    app.start_send_task();
    let dir = tempfile::tempdir().unwrap();
    let (small, large) = (dir.path().join("Rechnung.pdf"), dir.path().join("Scan.pdf"));
    std::fs::write(&small, PDF).unwrap();
    std::fs::write(&large, scan_bytes(20_000)).unwrap();
    let mut cmd = args(&["send", "--idempotency-key", "invoice-2026-17", "--inline-limit", "10000"]);
    cmd.extend(api_args(&app));
    cmd.extend(args(&["--to-email", EMAIL, "--to-phone", PHONE]));
    cmd.extend([small.display().to_string(), large.display().to_string()]);
    let first = sealpost(cmd.clone()).await;
    assert_success(&first);
    assert!(stdout(&first).lines().any(|l| l.starts_with("document:") && l.contains("Scan.pdf") && l.ends_with("uploaded)")));
    assert!(!stderr(&first).contains("idempotency key:"), "the caller's key needs no echo");
    // The retry comes after the upload URLs ran out: the finished share needs none of them.
    app.advance(Duration::hours(2));
    let second = sealpost(cmd).await;
    assert_success(&second);
    assert_eq!(line_value(&stdout(&first), "id"), line_value(&stdout(&second), "id"));
    assert_eq!(line_value(&stdout(&second), "status"), "active");
    assert_eq!(app.sent_sms().await.len(), 1);
    assert_eq!(app.sent_emails().await.len(), 1);
    assert_eq!(list_shares(&app, "").await.ok(200)["shares"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_rerun_after_a_rejected_upload_uploads_only_what_is_missing_through_fresh_urls() {
    // The worker refused one of two uploads (its bytes changed on their way), and the practice
    // runs the same command again, hours later: the upload that was fine is kept, the other
    // goes up again through a fresh URL (the first ones ran out), and the share is sent once.
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let (kept, refused) = (dir.path().join("Scan.pdf"), dir.path().join("Befund.pdf"));
    let (kept_bytes, refused_bytes) = (scan_bytes(20_000), scan_bytes(30_000));
    std::fs::write(&kept, &kept_bytes).unwrap();
    std::fs::write(&refused, &refused_bytes).unwrap();
    let mut cmd = args(&["send", "--idempotency-key", "scan-2026-18", "--inline-limit", "1000"]);
    cmd.extend(api_args(&app));
    cmd.extend(args(&["--to-email", EMAIL, "--to-phone", PHONE]));
    cmd.extend([kept.display().to_string(), refused.display().to_string()]);
    let mut first = cmd.clone();
    first.insert(1, "--no-wait".into());
    let first = sealpost(first).await;
    assert_success(&first);
    let id = line_value(&stdout(&first), "id");
    let befund = get_share(&app, &id).await["documents"][1]["id"].as_str().unwrap().to_owned();
    let mut changed = refused_bytes.clone();
    changed[100] ^= 1;
    store_upload(&app, &id, &befund, &changed).await;
    app.process_sends().await;
    assert_eq!(get_share(&app, &id).await["status"], "awaiting_upload", "the worker refused Befund.pdf");

    app.advance(Duration::hours(2));
    app.start_send_task();
    let second = sealpost(cmd).await;
    assert_success(&second);
    assert!(stderr(&second).contains("Scan.pdf: uploaded already"), "{}", stderr(&second));
    assert!(!stderr(&second).contains("Befund.pdf: uploaded already"), "{}", stderr(&second));
    assert_eq!(line_value(&stdout(&second), "id"), id);
    assert_eq!(line_value(&stdout(&second), "status"), "active");
    assert_eq!(app.sent_sms().await.len(), 1);
    let token = token_of(&verify_ok(&app, &id, &last_code(&app).await).await);
    let files = downloaded_archive(&app, &id, &token).await;
    assert!(files[0].1 == kept_bytes && files[1].1 == refused_bytes, "both documents, as on disk");
}

#[tokio::test]
async fn tenant_create_sets_link_days_per_auth_method_and_replies() {
    // The operator's CLI on the embedded data dir (on AWS the rehearsal runs it).
    if !embedded() {
        return;
    }
    let app = TestApp::spawn().await;
    let data_dir = app.data_dir.display().to_string();
    let create = |extra: &[&str]| {
        let mut cmd = args(&["tenant", "create", "--name", "Praxis Kurz", "--data-dir", &data_dir]);
        cmd.extend(args(extra));
        sealpost(cmd)
    };
    let out = create(&["--link-days-for", "date_of_birth=14", "--link-days-for", "sms=90"]).await;
    assert_success(&out);
    let key = line_value(&stdout(&out), "API key");
    for (method, days) in [("date_of_birth", 14), ("sms", 90), ("manual", 30)] {
        let mut body = share_body_with_method(method);
        body.as_object_mut().unwrap().remove("expires_in_days");
        let share = post_share_with_key(&app, &key, &body).await.ok(201);
        assert_eq!(time(&share["expires_at"]), start_time() + Duration::days(days), "{method}");
    }

    // Replies on by default for this practice's shares; a share may still say no.
    let out = create(&["--allow-reply"]).await;
    assert_success(&out);
    let key = line_value(&stdout(&out), "API key");
    assert_eq!(post_share_with_key(&app, &key, &share_body()).await.ok(201)["allow_reply"], true);
    let mut body = share_body();
    body["allow_reply"] = json!(false);
    assert_eq!(post_share_with_key(&app, &key, &body).await.ok(201)["allow_reply"], false);
    assert_eq!(post_share(&app, &share_body()).await.ok(201)["allow_reply"], false, "off unless the practice says");

    let mut list = args(&["tenant", "list", "--data-dir", &data_dir]);
    list.extend(args(&[]));
    let listed = stdout(&sealpost(list).await);
    assert!(listed.contains("Praxis Kurz  (links 30 days (sms 90, date_of_birth 14), at most 90, replies off)"), "{listed}");
    assert!(listed.contains("Praxis Kurz  (links 30 days, at most 90, replies on)"), "{listed}");

    // Twice for one method is a mistake, not "the last one wins".
    let err = assert_failed_cleanly(&create(&["--link-days-for", "sms=90", "--link-days-for", "sms=30"]).await);
    assert_eq!(err, "error: --link-days-for: sms is given twice");
    let out = create(&["--link-days-for", "dob=14"]).await;
    assert!(!out.status.success() && stderr(&out).contains("no auth method"), "{}", stderr(&out));
    let err = assert_failed_cleanly(&create(&["--link-days-for", "sms=120"]).await);
    assert!(err.starts_with("error: ") && err.contains("must be 1..=max_link_days"), "{err}");
}

#[tokio::test]
async fn an_invalid_phone_is_the_apis_message_with_its_field_and_exit_code_1() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Rechnung.pdf");
    std::fs::write(&file, PDF).unwrap();
    let mut cmd = args(&["send"]);
    cmd.extend(api_args(&app));
    cmd.extend(args(&["--to-email", EMAIL, "--to-phone", "12345", &file.display().to_string()]));
    let out = sealpost(cmd).await;
    let err = assert_failed_cleanly(&out);
    assert!(err.starts_with("error: recipient.phone: "), "the API's field: {err}");
    // The API's own message, as it answers the same body.
    let mut body = share_body();
    body["recipient"]["phone"] = json!("12345");
    let reply = post_share(&app, &body).await;
    let message = reply.invalid("recipient.phone")["error"]["message"].as_str().unwrap().to_owned();
    assert!(err.contains(&message), "{message:?} in {err}");
    assert!(!err.contains(EMAIL), "no personal data echoed: {err}");
    assert_eq!(list_shares(&app, "").await.ok(200)["shares"], json!([]), "nothing created");
}

#[tokio::test]
async fn an_unreachable_api_is_named_and_a_missing_file_is_refused_before_any_call() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Rechnung.pdf");
    std::fs::write(&file, PDF).unwrap();
    // Port 1 on loopback: nothing listens there.
    let out = sealpost(args(&["status", "abc", "--api", "http://127.0.0.1:1", "--key", "sp_live_x"])).await;
    let err = assert_failed_cleanly(&out);
    assert!(err.contains("could not reach") && err.contains("http://127.0.0.1:1"), "{err}");
    let out = sealpost(args(&[
        "send",
        "--api",
        "http://127.0.0.1:1",
        "--key",
        "sp_live_x",
        "--to-email",
        EMAIL,
        &file.display().to_string(),
    ]))
    .await;
    let err = assert_failed_cleanly(&out);
    assert!(err.contains("could not reach") && err.contains("http://127.0.0.1:1"), "{err}");

    let missing = dir.path().join("Fehlt.pdf");
    let mut cmd = args(&["send"]);
    cmd.extend(api_args(&app));
    cmd.extend(args(&["--to-email", EMAIL, "--to-phone", PHONE, &file.display().to_string(), &missing.display().to_string()]));
    let err = assert_failed_cleanly(&sealpost(cmd).await);
    assert!(err.contains("Fehlt.pdf"), "{err}");
    assert_eq!(list_shares(&app, "").await.ok(200)["shares"], json!([]), "nothing created");

    // A wrong key: the API's word, exit code 1.
    let out = sealpost(args(&["status", "abc", "--api", &app.base_url, "--key", "sp_live_wrong"])).await;
    let err = assert_failed_cleanly(&out);
    assert!(err.contains("unauthorized"), "{err}");
}

#[tokio::test]
async fn send_no_wait_returns_once_the_share_is_queued() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let large = dir.path().join("Scan.pdf");
    std::fs::write(&large, scan_bytes(20_000)).unwrap();
    let mut cmd = args(&["send", "--no-wait", "--inline-limit", "10000"]);
    cmd.extend(api_args(&app));
    cmd.extend(args(&["--to-email", EMAIL, "--to-phone", PHONE]));
    cmd.push(large.display().to_string());
    let out = sealpost(cmd).await;
    assert_success(&out);
    assert_eq!(line_value(&stdout(&out), "status"), "sending");
    assert!(app.sent_sms().await.is_empty(), "nobody notified yet");
    app.process_sends().await;
    assert_eq!(get_share(&app, &line_value(&stdout(&out), "id")).await["status"], "active");
    assert_eq!(app.sent_sms().await.len(), 1);
}

/// A share id is 22 characters of URL-safe base64: one in 64 begins with `-`, which is still
/// an id, not an option.
#[tokio::test]
async fn an_id_that_begins_with_a_dash_is_an_id() {
    let app = TestApp::spawn().await;
    for command in ["status", "replies"] {
        let mut cmd = args(&[command, "-fAbCdEfGhIjKlMnOpQrStU"]);
        cmd.extend(api_args(&app));
        let err = assert_failed_cleanly(&sealpost(cmd).await);
        assert!(err.contains("(not_found)"), "{command}: the API's answer, not an option error: {err}");
    }
}
