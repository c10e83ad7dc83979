//! `sealpost send --batch invoices.csv`: a billing run, one share per row.
//!
//! The whole file is checked before anything is sent: every row parsed, its files present and
//! within limits, and its fields as the API itself checks them (`POST /v1/shares/preview`, which
//! stores and sends nothing). Then the rows go out a few at a time, each through the steps of one
//! `sealpost send`. Every row has an Idempotency-Key, by default derived from the row, so the
//! same file run again (after a crash, a timeout, a row fixed) sends nothing twice and completes
//! what was missing. Each row's result goes to a CSV report.

use crate::api_client::Api;
use crate::client_cmd::{
    AuthMethod, Outbound, SendArgs, Voice, document_stubs, notifications_from_events, on_terminal, plan, send_share,
};
use anyhow::{Context, bail};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sealpost::service::{MAX_DOCUMENTS, MAX_UPLOAD_BYTES};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The columns a batch may have; `email` and `files` it must.
const COLUMNS: [&str; 10] =
    ["email", "phone", "name", "language", "auth", "auth_value", "expires_in_days", "message", "files", "idempotency_key"];
/// Between the paths of a row's `files`: `,` and `;` are the CSV's own, and no one names a file
/// with `|`.
const FILE_SEPARATOR: char = '|';
const REPORT_COLUMNS: [&str; 10] =
    ["line", "share_id", "reference", "link", "status", "email_result", "sms_result", "code", "error", "row"];

/// A row that passed every check.
struct Row {
    line: u64,
    outbound: Outbound,
    /// What the row asks for, as a digest: a later run finds it in the report.
    digest: String,
}

/// A row that is not sent, and why (`field: message`).
struct Refused {
    line: u64,
    why: String,
}

/// One line of the report, in [`REPORT_COLUMNS`]' order.
#[derive(Default, Clone)]
struct Outcome {
    line: u64,
    share_id: String,
    reference: String,
    link: String,
    status: String,
    email: String,
    sms: String,
    code: String,
    error: String,
    row: String,
}

impl Outcome {
    fn fields(&self) -> [String; 10] {
        let o = self.clone();
        [o.line.to_string(), o.share_id, o.reference, o.link, o.status, o.email, o.sms, o.code, o.error, o.row]
    }

    /// The share was made and sent for (the patient may still not have been told: see the
    /// channels).
    fn sent(&self) -> bool {
        self.error.is_empty() && !self.share_id.is_empty()
    }

    fn told(&self) -> bool {
        !self.email.starts_with("failed") && !self.sms.starts_with("failed")
    }
}

pub(crate) async fn run(api: &Api, args: &SendArgs, csv_path: &Path) -> anyhow::Result<()> {
    let report_path = args.report.clone().unwrap_or_else(|| beside(csv_path));
    let partial_path = hidden_sibling(&report_path, "partial");
    for path in [&report_path, &partial_path] {
        if same_file(path, csv_path) {
            bail!("--report: {} is the batch itself", path.display());
        }
    }
    let (rows, mut refused) = read_rows(csv_path, args, &api.key, &[&report_path, &partial_path])?;
    let total = rows.len() + refused.len();
    if total == 0 {
        bail!("{}: no rows to send", csv_path.display());
    }
    let rows = check_with_api(api, rows, &mut refused, args.concurrency.into()).await?;
    refused.sort_by_key(|r| r.line);
    for r in &refused {
        eprintln!("line {}: {}", r.line, r.why);
    }
    if !refused.is_empty() && !args.skip_invalid {
        bail!(
            "{} of {total} rows are not valid: nothing was sent (fix them and run the batch again, or add --skip-invalid \
             to send the others)",
            refused.len()
        );
    }

    // What earlier runs of this file did (the report, and what a run cut short left): rows
    // sent then are not sent again, whatever the API still remembers of their keys, and the
    // codes shown once are kept.
    let earlier = Earlier::read(&[&report_path, &partial_path]);
    let mut outcomes: Vec<Outcome> = refused
        .iter()
        .map(|r| Outcome { line: r.line, status: "invalid".into(), error: r.why.clone(), ..Default::default() })
        .collect();
    let mut to_send = Vec::new();
    for row in rows {
        match earlier.sent.get(&row.digest) {
            Some(before) => outcomes.push(Outcome { line: row.line, ..before.clone() }),
            None => to_send.push(row),
        }
    }
    let sent_before = outcomes.iter().filter(|o| o.sent()).count();
    let mut partial = Report::create(&partial_path)?;
    for outcome in &outcomes {
        partial.write(outcome)?;
    }
    let bar = rows_bar(to_send.len() as u64);
    let wait = !args.no_wait;
    let mut sending = futures_util::stream::iter(to_send)
        .map(|row| async move {
            let result = send_share(api, &row.outbound, wait, Voice::Quiet).await;
            (row, result)
        })
        .buffer_unordered(args.concurrency.into());
    while let Some((row, result)) = sending.next().await {
        let outcome = match result {
            Ok(sent) => {
                let mut outcome = outcome_of(api, row.line, &sent.share).await;
                outcome.code = sent.code.or_else(|| earlier.codes.get(&outcome.share_id).cloned()).unwrap_or_default();
                if let Some(e) = sent.wait_error {
                    outcome.error = format!("{e:#}");
                }
                outcome
            }
            Err(e) => Outcome { line: row.line, status: "failed".into(), error: format!("{e:#}"), ..Default::default() },
        };
        let outcome = Outcome { row: row.digest, ..outcome };
        // Written at once: a run cut short keeps what it did (a code is shown only once).
        partial.write(&outcome)?;
        outcomes.push(outcome);
        bar.inc(1);
    }
    bar.finish_and_clear();
    outcomes.sort_by_key(|o| o.line);
    Report::replace(&report_path, &outcomes)?;
    let _ = std::fs::remove_file(&partial_path);
    summarise(&outcomes, sent_before, &report_path)
}

/// `invoices.csv` → `invoices.report.csv`, beside it.
fn beside(csv: &Path) -> PathBuf {
    let stem = csv.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "batch".into());
    csv.with_file_name(format!("{stem}.report.csv"))
}

/// `.NAME.what` beside `path`.
fn hidden_sibling(path: &Path, what: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{what}"))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Reads and checks every row (not yet with the API). Fails only for the file as a whole:
/// unreadable, not UTF-8, a header without `email` and `files` or with a column of no meaning.
/// `not_files`: paths no row may send (the report).
fn read_rows(path: &Path, args: &SendArgs, api_key: &str, not_files: &[&Path]) -> anyhow::Result<(Vec<Row>, Vec<Refused>)> {
    let shown = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("could not read {shown}"))?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(e) => {
            let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
            bail!("{shown}: line {line} is not UTF-8 (save the file as \"CSV UTF-8\")");
        }
    };
    // Spreadsheets write a byte-order mark, and in German-, French- and Italian-speaking
    // countries `;` between fields: the header line says which.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let header_line = text.lines().next().unwrap_or_default();
    let delimiter = if header_line.matches(';').count() > header_line.matches(',').count() { b';' } else { b',' };
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(text.as_bytes());
    let mut columns = HashMap::new();
    for (i, name) in reader.headers().with_context(|| format!("{shown}: line 1"))?.iter().enumerate() {
        let column = name.trim().to_ascii_lowercase();
        if column.is_empty() {
            continue; // a spreadsheet's trailing separator
        }
        if !COLUMNS.contains(&column.as_str()) {
            bail!("{shown}: line 1: no column is named {name:?}; the columns are {}", COLUMNS.join(", "));
        }
        if columns.insert(column, i).is_some() {
            bail!("{shown}: line 1: the column {name:?} is there twice");
        }
    }
    for required in ["email", "files"] {
        if !columns.contains_key(required) {
            bail!("{shown}: line 1: the column {required:?} is missing");
        }
    }
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let folder = folder.canonicalize().with_context(|| format!("could not read the folder of {shown}"))?;
    let mut not_files: Vec<PathBuf> = not_files.iter().filter_map(|p| p.canonicalize().ok()).collect();
    not_files.extend(path.canonicalize().ok());
    let place = Place { folder: &folder, not_files: &not_files };
    let (mut rows, mut refused) = (Vec::new(), Vec::new());
    let mut keys: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                let why = match e.kind() {
                    csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                        format!("{len} fields, where the header has {expected_len}")
                    }
                    _ => e.to_string(),
                };
                refused.push(Refused { line, why });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(|field| field.trim().is_empty()) {
            continue; // spreadsheets end with empty rows
        }
        let cells = Cells { record: &record, columns: &columns };
        match parse_row(&cells, args, &place, api_key) {
            Ok((outbound, digest)) => match keys.get(&outbound.idempotency_key) {
                Some(first) if cells.get("idempotency_key").is_some() => {
                    refused.push(Refused { line, why: format!("idempotency_key: line {first} has it too") })
                }
                Some(first) => refused.push(Refused { line, why: format!("the same as line {first}: it would be sent once") }),
                None => {
                    keys.insert(outbound.idempotency_key.clone(), line);
                    rows.push(Row { line, outbound, digest });
                }
            },
            Err(why) => refused.push(Refused { line, why }),
        }
    }
    Ok((rows, refused))
}

/// A row's cells by column name, trimmed; an empty cell is `None`.
struct Cells<'a> {
    record: &'a csv::StringRecord,
    columns: &'a HashMap<String, usize>,
}

impl<'a> Cells<'a> {
    fn get(&self, column: &str) -> Option<&'a str> {
        self.columns.get(column).and_then(|&i| self.record.get(i)).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// Where a row's files may be: in the CSV's folder or below it, and none of `not_files`.
struct Place<'a> {
    folder: &'a Path,
    not_files: &'a [PathBuf],
}

impl Place<'_> {
    /// A row's file, as written in it, or why it may not be sent. A CSV names the files it
    /// sends, but it is data: it must not send a key from `~/.ssh` or the report of links.
    fn file(&self, written: &str) -> Result<PathBuf, String> {
        let relative = Path::new(written);
        if relative.is_absolute()
            || relative.components().any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir))
        {
            return Err(format!("files: {written}: give paths inside the CSV's folder, without .. or a leading /"));
        }
        let path = self.folder.join(relative);
        let real = path.canonicalize().map_err(|e| format!("files: could not read {written}: {e}"))?;
        if !real.starts_with(self.folder) {
            return Err(format!("files: {written} leads outside the CSV's folder"));
        }
        if self.not_files.contains(&real) {
            return Err(format!("files: {written} is the batch or its report"));
        }
        Ok(path)
    }
}

/// One row as a send: its create body (the command line's --lang, --auth, --expires-in-days
/// and --message where the row leaves them empty), its files, its Idempotency-Key; and the
/// row's digest.
fn parse_row(cells: &Cells<'_>, args: &SendArgs, place: &Place<'_>, api_key: &str) -> Result<(Outbound, String), String> {
    let cell = |column: &str| cells.get(column);
    let mut recipient = Map::new();
    recipient.insert("email".into(), json!(cell("email").ok_or("email: required")?));
    for (column, field) in [("phone", "phone"), ("name", "name"), ("language", "language")] {
        if let Some(value) = cell(column) {
            recipient.insert(field.into(), json!(value));
        }
    }
    if let (None, Some(lang)) = (cell("language"), &args.lang) {
        recipient.insert("language".into(), json!(lang));
    }
    let auth = match cell("auth") {
        Some(raw) => Some(
            <AuthMethod as clap::ValueEnum>::from_str(raw, true)
                .map_err(|_| "auth: one of sms, manual, date_of_birth, insurance_number".to_owned())?,
        ),
        None => args.auth,
    };
    match (auth, cell("auth_value")) {
        (Some(AuthMethod::DateOfBirth), Some(value)) => drop(recipient.insert("date_of_birth".into(), json!(value))),
        (Some(AuthMethod::InsuranceNumber), Some(value)) => drop(recipient.insert("insurance_number".into(), json!(value))),
        (Some(method @ (AuthMethod::DateOfBirth | AuthMethod::InsuranceNumber)), None) => {
            return Err(format!("auth_value: the patient's {} is required for this auth", method.api_name().replace('_', " ")));
        }
        (_, Some(_)) => return Err("auth_value: only for auth date_of_birth or insurance_number".into()),
        (_, None) => {}
    }
    let mut body = json!({"recipient": recipient});
    if let Some(method) = auth {
        body["auth"] = json!({"method": method.api_name()});
    }
    let days = match cell("expires_in_days") {
        Some(raw) => Some(raw.parse::<u32>().map_err(|_| "expires_in_days: a whole number of days".to_owned())?),
        None => args.expires_in_days,
    };
    if let Some(days) = days {
        body["expires_in_days"] = json!(days);
    }
    if let Some(message) = cell("message").or(args.message.as_deref()) {
        body["message"] = json!(message);
    }

    let written: Vec<&str> =
        cell("files").unwrap_or_default().split(FILE_SEPARATOR).map(str::trim).filter(|p| !p.is_empty()).collect();
    if written.is_empty() || written.len() > MAX_DOCUMENTS {
        return Err(format!("files: 1 to {MAX_DOCUMENTS} paths, separated by {FILE_SEPARATOR}"));
    }
    let paths = written.iter().map(|p| place.file(p)).collect::<Result<Vec<_>, _>>()?;
    let files = plan(&paths, args.inline_limit).map_err(|e| format!("files: {e:#}"))?;
    for f in &files {
        if f.size == 0 || f.size > MAX_UPLOAD_BYTES {
            return Err(format!("files: {} has {} bytes; a document has 1 to {MAX_UPLOAD_BYTES}", f.filename, f.size));
        }
        sealpost::domain::Filename::parse(&f.filename).map_err(|e| format!("files: {}: {}", f.filename, e.0))?;
    }
    let row = json!({"body": body, "files": written}).to_string();
    let idempotency_key = match cell("idempotency_key") {
        Some(key) if key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()) => key.to_owned(),
        Some(_) => return Err("idempotency_key: 1 to 255 visible ASCII characters (no spaces)".into()),
        None => derived_key(&row, api_key),
    };
    let again = "the same batch again".to_owned();
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, row.as_bytes()));
    Ok((Outbound { body, files, idempotency_key, again, resuming: true }, digest))
}

/// A row's own Idempotency-Key: the same row gives the same key, run after run. Keyed with the
/// practice's API key, because the key is stored by the API and a plain hash of an address and
/// a date of birth could be guessed back from it.
fn derived_key(row: &str, api_key: &str) -> String {
    let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, api_key.as_bytes()), row.as_bytes());
    format!("batch-{}", hex::encode(&mac.as_ref()[..16]))
}

/// Asks the API to check each row as create would (`POST /v1/shares/preview`: nothing stored or
/// sent). A row it refuses joins `refused`; an answer that is not about the row (the key
/// refused, the API unreachable) stops the run before anything is sent.
async fn check_with_api(api: &Api, rows: Vec<Row>, refused: &mut Vec<Refused>, concurrency: usize) -> anyhow::Result<Vec<Row>> {
    let bar = rows_bar(rows.len() as u64);
    bar.set_message("checking");
    let mut checks = futures_util::stream::iter(rows)
        .map(|row| async move {
            let mut body = row.outbound.body.clone();
            body["documents"] = json!(document_stubs(&row.outbound.files));
            let answer = api.call(api.post("/v1/shares/preview").json(&body)).await;
            (row, answer)
        })
        .buffer_unordered(concurrency);
    let mut valid = Vec::new();
    while let Some((row, answer)) = checks.next().await {
        bar.inc(1);
        match answer {
            Ok(_) => valid.push(row),
            Err(e) if e.status == Some(reqwest::StatusCode::BAD_REQUEST) => {
                refused.push(Refused { line: row.line, why: e.message })
            }
            Err(e) => bail!("could not check line {}: {}; nothing was sent", row.line, e.message),
        }
    }
    bar.finish_and_clear();
    valid.sort_by_key(|r| r.line);
    Ok(valid)
}

/// A sent row's line of the report. A share whose answer carries no notifications (a rerun
/// finding it sent before) is read back for them.
async fn outcome_of(api: &Api, line: u64, share: &Value) -> Outcome {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut outcome = Outcome {
        line,
        share_id: text(&share["id"]),
        reference: text(&share["reference"]),
        link: text(&share["link"]),
        status: text(&share["status"]),
        ..Default::default()
    };
    let mut notifications = share["notifications"].clone();
    if share["status"] == "active"
        && notifications.as_object().is_none_or(|n| n.is_empty())
        && let Ok(view) = api.share(&outcome.share_id).await
    {
        notifications = notifications_from_events(view["events"].as_array().map(Vec::as_slice).unwrap_or_default());
    }
    let result = |channel: &str| {
        let n = &notifications[channel];
        match (n["status"].as_str(), n["error"].as_str()) {
            (Some(status), Some(error)) => format!("{status} ({error})"),
            (Some(status), None) => status.to_owned(),
            _ => String::new(),
        }
    };
    outcome.email = result("email");
    outcome.sms = result("sms");
    outcome
}

/// What earlier runs of the batch wrote: the rows they sent, by digest, and the codes they
/// were shown, by share id.
#[derive(Default)]
struct Earlier {
    sent: HashMap<String, Outcome>,
    codes: HashMap<String, String>,
}

impl Earlier {
    fn read(reports: &[&Path]) -> Self {
        let mut earlier = Self::default();
        for report in reports {
            let Ok(mut reader) = csv::Reader::from_path(report) else { continue };
            let Ok(headers) = reader.headers().cloned() else { continue };
            for record in reader.records().flatten() {
                let get = |name: &str| {
                    headers.iter().position(|h| h == name).and_then(|i| record.get(i)).unwrap_or_default().to_owned()
                };
                let outcome = Outcome {
                    line: get("line").parse().unwrap_or(0),
                    share_id: get("share_id"),
                    reference: get("reference"),
                    link: get("link"),
                    status: get("status"),
                    email: get("email_result"),
                    sms: get("sms_result"),
                    code: get("code"),
                    error: get("error"),
                    row: get("row"),
                };
                if !outcome.code.is_empty() {
                    earlier.codes.insert(outcome.share_id.clone(), outcome.code.clone());
                }
                if outcome.sent() && !outcome.row.is_empty() {
                    earlier.sent.insert(outcome.row.clone(), outcome);
                }
            }
        }
        earlier
    }
}

/// The report: readable by its owner only, as it holds links (and codes for `manual`).
struct Report {
    writer: csv::Writer<std::fs::File>,
}

impl Report {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).with_context(|| format!("could not write the report {}", path.display()))?;
        // An existing file keeps its mode when opened: set it.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let mut writer = csv::Writer::from_writer(file);
        writer.write_record(REPORT_COLUMNS)?;
        Ok(Self { writer })
    }

    fn write(&mut self, outcome: &Outcome) -> anyhow::Result<()> {
        self.writer.write_record(outcome.fields())?;
        Ok(self.writer.flush()?)
    }

    /// Writes `outcomes` as the report at `path` in one step: a new file renamed over the old,
    /// so that a run stopped while writing never leaves a report cut short.
    fn replace(path: &Path, outcomes: &[Outcome]) -> anyhow::Result<()> {
        let fresh = hidden_sibling(path, "new");
        let mut report = Self::create(&fresh)?;
        outcomes.iter().try_for_each(|o| report.write(o))?;
        drop(report);
        std::fs::rename(&fresh, path).with_context(|| format!("could not write the report {}", path.display()))
    }
}

/// A bar over the rows, on a terminal only.
fn rows_bar(rows: u64) -> ProgressBar {
    if !on_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rows {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(rows).with_style(style).with_message("sending")
}

/// The run in a few lines; an error (exit code 1) when a row was not sent or a patient not
/// told.
fn summarise(outcomes: &[Outcome], sent_before: usize, report: &Path) -> anyhow::Result<()> {
    let total = outcomes.len();
    let sent = outcomes.iter().filter(|o| o.sent()).count();
    let invalid = outcomes.iter().filter(|o| o.status == "invalid").count();
    let failed = total - sent - invalid;
    let untold = outcomes.iter().filter(|o| o.sent() && !o.told()).count();
    println!("rows:       {total}");
    println!("sent:       {sent}{}", if sent_before > 0 { format!(" ({sent_before} by an earlier run)") } else { String::new() });
    println!("failed:     {failed}");
    println!("invalid:    {invalid}");
    if untold > 0 {
        println!(
            "untold:     {untold} (sent, but the email or SMS failed: the report says why; resend them once the \
             cause is gone, e.g. the daily SMS cap)"
        );
    }
    println!("report:     {}", report.display());
    if failed + invalid > 0 {
        bail!("{} of {total} rows were not sent: {} says why", failed + invalid, report.display());
    }
    if untold > 0 {
        bail!("{untold} of {total} patients were not told: {} says why", report.display());
    }
    Ok(())
}
