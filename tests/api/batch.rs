//! `sealpost send --batch`: a billing run from a CSV, checked whole before anything is sent,
//! sent a few rows at a time, and safe to run again.

use crate::cli::{api_args, args, assert_failed_cleanly, assert_success, sealpost, stderr, stdout};
use crate::helpers::*;
use std::collections::BTreeMap;
use std::path::Path;

/// The report's rows, by line: each a map of column to value.
fn report(path: &Path) -> BTreeMap<u64, BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let row: BTreeMap<String, String> = headers.iter().zip(r.iter()).map(|(h, v)| (h.to_owned(), v.to_owned())).collect();
            (row["line"].parse().unwrap(), row)
        })
        .collect()
}

fn batch_command(app: &TestApp, csv: &Path, extra: &[&str]) -> Vec<String> {
    let mut cmd = args(&["send", "--batch", &csv.display().to_string()]);
    cmd.extend(api_args(app));
    cmd.extend(args(extra));
    cmd
}

/// 200 invoices: every third by SMS, every third by date of birth, every third with a code for
/// the practice to print; `bad_line` (if any) with a number no SMS reaches.
fn write_invoices(dir: &Path, bad_line: Option<u64>) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("pdf")).unwrap();
    let mut csv = String::from("email,phone,name,language,auth,auth_value,message,files\n");
    for i in 0..200u64 {
        let file = format!("pdf/Rechnung-{i:03}.pdf");
        std::fs::write(dir.join(&file), format!("%PDF-1.4 Rechnung {i}")).unwrap();
        let line = i + 2;
        let phone = if Some(line) == bad_line { "12345" } else { PHONE };
        let (phone, auth, value) = match i % 3 {
            0 => (phone, "sms", ""),
            1 => ("", "date_of_birth", "1980-02-29"),
            _ => ("", "manual", ""),
        };
        csv += &format!(
            "patient{i}@example.ch,{phone},\"Muster, Anna {i}\",de,{auth},{value},\"Rechnung {i}, zahlbar in 30 Tagen\",{file}\n"
        );
    }
    let path = dir.join("invoices.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

#[tokio::test]
async fn a_billing_run_is_checked_whole_first_and_sends_nothing_twice_when_run_again() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let csv = write_invoices(dir.path(), Some(101));
    let report_path = dir.path().join("invoices.report.csv");

    // One bad row: nothing is sent, and the row is named by its line.
    let out = sealpost(batch_command(&app, &csv, &[])).await;
    let error = assert_failed_cleanly(&out);
    assert!(error.contains("1 of 200 rows are not valid: nothing was sent"), "{error}");
    assert!(stderr(&out).contains("line 101: recipient.phone: "), "{}", stderr(&out));
    assert!(app.sent_emails().await.is_empty() && app.sent_sms().await.is_empty());
    assert_eq!(list_shares(&app, "").await.ok(200)["shares"], json!([]));
    assert!(!report_path.exists(), "no report for a run that sent nothing");

    // --skip-invalid sends the others; the bad row is in the report, and the exit code says so.
    let out = sealpost(batch_command(&app, &csv, &["--skip-invalid"])).await;
    let error = assert_failed_cleanly(&out);
    assert!(error.contains("1 of 200 rows were not sent"), "{error}");
    assert_eq!(app.sent_emails().await.len(), 199);
    assert_eq!(app.sent_sms().await.len(), 66, "every third row but the bad one by SMS");
    let first = report(&report_path);
    assert_eq!(first.len(), 200);
    assert_eq!(first[&101]["status"], "invalid");
    assert!(first[&101]["error"].starts_with("recipient.phone: "), "{:?}", first[&101]);
    for (line, row) in first.iter().filter(|(l, _)| **l != 101) {
        assert_eq!(row["status"], "active", "line {line}: {row:?}");
        assert_eq!(row["email_result"], "sent", "line {line}");
        let i = line - 2;
        assert_eq!(row["sms_result"], if i % 3 == 0 { "sent" } else { "" }, "line {line}");
        assert_eq!(row["code"].is_empty(), i % 3 != 2, "a code for the manual rows only: line {line}");
        assert!(row["link"].ends_with(&row["share_id"]) && row["reference"].starts_with("SP-"), "{row:?}");
    }
    // A printed code opens its share.
    let manual = &first[&4];
    let verified = verify_ok(&app, &manual["share_id"], &manual["code"]).await;
    assert_eq!(verified["documents"][0]["filename"], "Rechnung-002.pdf");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&report_path).unwrap().permissions().mode() & 0o777, 0o600, "links and codes");
    }

    // The same command again, after the API forgot its Idempotency-Keys (24 hours): the report
    // says what was sent, so nothing new, the same shares, the codes kept.
    app.advance(Duration::hours(25));
    app.sweep().await;
    let out = sealpost(batch_command(&app, &csv, &["--skip-invalid"])).await;
    assert_failed_cleanly(&out);
    assert_eq!(app.sent_emails().await.len(), 199, "nothing sent twice");
    assert_eq!(report(&report_path), first);

    // The row fixed, without --skip-invalid: only it is sent.
    write_invoices(dir.path(), None);
    let out = sealpost(batch_command(&app, &csv, &[])).await;
    assert_success(&out);
    assert!(stdout(&out).contains("sent:       200"), "{}", stdout(&out));
    assert_eq!(app.sent_emails().await.len(), 200);
    let last = report(&report_path);
    assert_eq!(last[&101]["status"], "active");
    for line in first.keys().filter(|l| **l != 101) {
        assert_eq!(last[line]["share_id"], first[line]["share_id"], "line {line}");
        assert_eq!(last[line]["code"], first[line]["code"], "line {line}");
    }
}

#[tokio::test]
async fn a_spreadsheets_csv_is_read_and_the_sms_cap_is_a_rows_result() {
    let app = TestApp::spawn().await;
    let key = app.add_practice("Praxis Zwei", Policy { daily_sms_cap: 2, ..Policy::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Befund.pdf"), PDF).unwrap();
    std::fs::write(dir.path().join("AGB.pdf"), PDF).unwrap();
    // A byte-order mark, `;` between fields, a message over two lines, two files in a row,
    // an empty row at the end, and --message for the rows without one.
    let csv = dir.path().join("Rechnungslauf.csv");
    std::fs::write(
        &csv,
        format!(
            "\u{feff}Email;Phone;Files;Message\n\
             a@example.ch;{PHONE};Befund.pdf | AGB.pdf;\"Guten Tag;\nbis bald\"\n\
             b@example.ch;{PHONE};Befund.pdf;\n\
             c@example.ch;{PHONE};Befund.pdf;\n\
             ;;;\n"
        ),
    )
    .unwrap();
    let mut cmd = args(&["send", "--batch", &csv.display().to_string(), "--api", &app.base_url, "--key", &key]);
    cmd.extend(args(&["--message", "Ihre Rechnung", "--concurrency", "1"]));
    let out = sealpost(cmd).await;
    let error = assert_failed_cleanly(&out);
    assert!(error.contains("1 of 3 patients were not told"), "{error}");
    assert!(stdout(&out).contains("untold:     1"), "{}", stdout(&out));
    let rows = report(&dir.path().join("Rechnungslauf.report.csv"));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[&2]["sms_result"], "sent");
    assert_eq!(rows[&4]["sms_result"], "sent");
    assert_eq!(rows[&5]["sms_result"], "failed (sms_cap_reached)", "{:?}", rows[&5]);
    assert!(rows.values().all(|r| r["status"] == "active"));
    let emails = app.sent_emails().await;
    let body_of = |to: &str| emails.iter().find(|e| e.to == to).map(|e| e.body.clone()).unwrap();
    assert!(body_of("a@example.ch").contains("Guten Tag;"), "the row's own message");
    assert!(body_of("b@example.ch").contains("Ihre Rechnung"), "--message for a row without one");
    let a = call(&app, "GET", &format!("/v1/shares/{}", rows[&2]["share_id"]), Some(&key), None).await.ok(200);
    assert_eq!(a["documents"].as_array().map(Vec::len), Some(2), "{a}");

    // What makes the file unreadable as a whole stops before any row.
    std::fs::write(&csv, "email;files;fax\na@example.ch;Befund.pdf;1\n").unwrap();
    let out = sealpost(batch_command(&app, &csv, &[])).await;
    let error = assert_failed_cleanly(&out);
    assert!(error.contains("line 1: no column is named \"fax\""), "{error}");
    // Each bad row by its line: a missing file, a wrong auth value, a field too many, files
    // outside the CSV's folder or the CSV itself, a key no API takes, a row twice. (The
    // header's trailing separator is a spreadsheet's habit, not a column.)
    std::fs::write(
        &csv,
        "email,files,auth,auth_value,idempotency_key,\n\
         d@example.ch,Fehlt.pdf,,,,\n\
         e@example.ch,Befund.pdf,sms,1980-02-29,,\n\
         f@example.ch,Befund.pdf,manual,,,,x\n\
         g@example.ch,../Befund.pdf|/etc/passwd,manual,,,\n\
         h@example.ch,Rechnungslauf.csv,manual,,,\n\
         i@example.ch,Befund.pdf,manual,,Rechnung 2024/001,\n\
         j@example.ch,Befund.pdf,manual,,,\n\
         j@example.ch,Befund.pdf,manual,,,\n",
    )
    .unwrap();
    let out = sealpost(batch_command(&app, &csv, &[])).await;
    assert_failed_cleanly(&out);
    let err = stderr(&out);
    assert!(err.contains("line 2: files: could not read Fehlt.pdf"), "{err}");
    assert!(err.contains("line 3: auth_value: only for auth date_of_birth or insurance_number"), "{err}");
    assert!(err.contains("line 4: 7 fields, where the header has 6"), "{err}");
    assert!(err.contains("line 5: files: ../Befund.pdf: give paths inside the CSV's folder"), "{err}");
    assert!(err.contains("line 6: files: Rechnungslauf.csv is the batch or its report"), "{err}");
    assert!(err.contains("line 7: idempotency_key: 1 to 255 visible ASCII characters"), "{err}");
    assert!(err.contains("line 9: the same as line 8: it would be sent once"), "{err}");
    assert!(!err.lines().any(|l| l.starts_with("line 8:")), "{err}");
    assert_eq!(app.sent_emails().await.len(), 3, "nothing more sent");
}
