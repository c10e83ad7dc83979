//! `sealpost send` and `sealpost status`: the practice API from a script or a terminal.
//!
//! Speaks only HTTP to a Sealpost API (embedded or on AWS), as any practice software would.
//! Every failure ends as one `error: …` line on stderr and exit code 1: the API's own message
//! (and the field it names), or which URL could not be reached. Nothing here logs personal data:
//! the recipient's address and phone go into the request body and nowhere else.

use crate::api_client::{Api, ApiArgs, api_error, root_cause};
use anyhow::{Context, bail};
use chrono::{DateTime, Local};
use futures_util::TryStreamExt;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// A file up to this size goes inline (base64 in the create request) by default.
const INLINE_EACH: u64 = 4 * 1024 * 1024;
/// Inline files add up to at most this much; the rest are uploaded. The embedded service takes
/// 25 MiB inline, the AWS one 4 MiB (Lambda's 6 MiB event): the CLI does not know which it
/// talks to, so it stays within both.
const INLINE_TOTAL: u64 = sealpost::service::AWS_MAX_INLINE_BYTES;
/// How long `send` waits for the archive of a share being sent (the worker archives up to
/// 50 × 2 GiB on the embedded backend, 20 GiB within 15 minutes on AWS).
const SEND_TIMEOUT: Duration = Duration::from_secs(1800);
const CHUNK: usize = 256 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AuthMethod {
    /// A code by SMS (needs --to-phone).
    Sms,
    /// A code printed here, for you to pass on by phone or on paper.
    Manual,
    /// The patient types the date of birth given with --dob.
    #[value(name = "date_of_birth", alias = "date-of-birth")]
    DateOfBirth,
    /// The patient types the insurance number given with --insurance-number.
    #[value(name = "insurance_number", alias = "insurance-number")]
    InsuranceNumber,
}

impl AuthMethod {
    pub(crate) fn api_name(self) -> &'static str {
        match self {
            AuthMethod::Sms => "sms",
            AuthMethod::Manual => "manual",
            AuthMethod::DateOfBirth => "date_of_birth",
            AuthMethod::InsuranceNumber => "insurance_number",
        }
    }
}

#[derive(clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// The patient's email address (gets the link).
    #[arg(long, required_unless_present = "batch")]
    to_email: Option<String>,
    /// The patient's mobile number, E.164 (+41791234567); gets the code for --auth sms.
    #[arg(long)]
    to_phone: Option<String>,
    /// The patient's name, for the email's greeting.
    #[arg(long)]
    name: Option<String>,
    /// Language of email, SMS and page: de, fr, it or en (default: the practice's).
    #[arg(long)]
    pub(crate) lang: Option<String>,
    /// How the patient proves who they are (default: sms).
    #[arg(long, value_enum)]
    pub(crate) auth: Option<AuthMethod>,
    /// Date of birth for --auth date_of_birth (1980-02-29).
    #[arg(long)]
    dob: Option<String>,
    /// Insurance number for --auth insurance_number.
    #[arg(long)]
    insurance_number: Option<String>,
    /// How long the link works (default: the practice's).
    #[arg(long)]
    pub(crate) expires_in_days: Option<u32>,
    /// A short text added to the email (no codes in it).
    #[arg(long)]
    pub(crate) message: Option<String>,
    /// Makes a retried send safe: the same key returns the first answer and sends nothing
    /// twice (default: a new random key, printed).
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Files up to this many bytes go inline in the request; larger ones are uploaded.
    #[arg(long, default_value_t = INLINE_EACH, value_name = "BYTES")]
    pub(crate) inline_limit: u64,
    /// Return once the share is queued for sending (large files), without waiting for its
    /// archive and the patient's notification (`sealpost status` shows them later).
    #[arg(long)]
    pub no_wait: bool,
    /// Print the email and SMS the patient would get, and send nothing (the files are optional
    /// then; given, they are checked as a send would check them).
    #[arg(long)]
    preview: bool,
    /// A billing run: one share per row of this UTF-8 CSV (columns: email, phone, name,
    /// language, auth, auth_value, expires_in_days, message, files, idempotency_key; files
    /// separated by `|`, relative to the CSV). Every row is checked before anything is sent.
    /// --lang, --auth, --expires-in-days and --message fill the rows that leave them empty.
    #[arg(long, value_name = "CSV",
          conflicts_with_all = ["to_email", "to_phone", "name", "dob", "insurance_number", "idempotency_key", "preview", "files"])]
    batch: Option<PathBuf>,
    /// With --batch: send the valid rows even when others are not (they are reported).
    #[arg(long, requires = "batch")]
    pub(crate) skip_invalid: bool,
    /// With --batch: where the result CSV goes (default: beside the input, `NAME.report.csv`).
    #[arg(long, requires = "batch", value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// With --batch: how many rows are sent at once.
    #[arg(long, requires = "batch", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub(crate) concurrency: u16,
    /// The documents to send (up to 50).
    #[arg(required_unless_present_any = ["preview", "batch"], value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The share's id, as `sealpost send` printed it (it may begin with `-`).
    #[arg(allow_hyphen_values = true)]
    id: String,
    #[command(flatten)]
    api: ApiArgs,
}

pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    exit_on_error(run_send(args).await)
}

pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    exit_on_error(run_status(args).await)
}

/// One `error:` line and exit code 1, never anyhow's debug report.
pub(crate) fn exit_on_error(result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// A file on its way: inline (its base64) or uploaded later (its size and hash).
pub(crate) struct Outgoing {
    pub(crate) path: PathBuf,
    pub(crate) filename: String,
    content_type: &'static str,
    pub(crate) size: u64,
    inline: bool,
}

/// One share to send: its create body without `documents`, and its files.
pub(crate) struct Outbound {
    pub(crate) body: Value,
    pub(crate) files: Vec<Outgoing>,
    pub(crate) idempotency_key: String,
    /// How to run this send again without sending twice, for error messages.
    pub(crate) again: String,
    /// The key may have been used before (given by the user, or a batch run again): the create
    /// may answer a share made then, whose uploads are resumed.
    pub(crate) resuming: bool,
}

/// How a send ended: the share's view (with `notifications`), and the code for `manual`.
pub(crate) struct SendResult {
    pub(crate) share: Value,
    pub(crate) code: Option<String>,
    /// The code was printed already, before waiting for the share to be sent.
    code_printed: bool,
    /// Waiting for the share to be sent failed: the share was sent for, and its code (shown
    /// once) is in `code`, but the patient may not have been told.
    pub(crate) wait_error: Option<anyhow::Error>,
}

/// Whether a send speaks to the terminal (one `sealpost send`), or runs quietly as one row of
/// a batch, whose own progress bar is the run's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Voice {
    Terminal,
    Quiet,
}

async fn run_send(args: SendArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    if let Some(csv) = &args.batch {
        return crate::batch_cmd::run(&api, &args, csv).await;
    }
    let files = plan(&args.files, args.inline_limit)?;
    let body = create_body(&args);
    if args.preview {
        let mut body = body;
        if !files.is_empty() {
            body["documents"] = json!(documents(&files, Voice::Terminal).await?);
        }
        print!("{}", preview_text(&api.call(api.post("/v1/shares/preview").json(&body)).await?));
        return Ok(());
    }
    let idempotency_key = match &args.idempotency_key {
        Some(key) => key.clone(),
        None => {
            let key = hex::encode(sealpost::domain::random_bytes::<16>());
            // Before any call: a call cut short (a timeout, Ctrl-C) may still have created the share.
            eprintln!("idempotency key: {key} (a retry with --idempotency-key {key} sends nothing twice)");
            key
        }
    };
    let again = format!("the same command with --idempotency-key {idempotency_key}");
    let outbound = Outbound { body, files, idempotency_key, again, resuming: args.idempotency_key.is_some() };
    let sent = send_share(&api, &outbound, !args.no_wait, Voice::Terminal).await?;
    if let Some(e) = sent.wait_error {
        return Err(e); // the code, if any, was printed before waiting
    }
    print_sent(&sent.share, &outbound.files, sent.code.as_deref().filter(|_| !sent.code_printed));
    Ok(())
}

/// What the API checks of each file before anything is sent (a preview): its name, type and
/// size, declared as an upload whose hash does not matter yet.
pub(crate) fn document_stubs(files: &[Outgoing]) -> Vec<Value> {
    let stub =
        |f: &Outgoing| json!({"filename": f.filename, "content_type": f.content_type, "size": f.size, "sha256": "0".repeat(64)});
    files.iter().map(stub).collect()
}

/// The create body's `documents`: each file inline (base64) or declared for upload (size and
/// SHA-256).
async fn documents(files: &[Outgoing], voice: Voice) -> anyhow::Result<Vec<Value>> {
    let mut documents = Vec::new();
    for f in files {
        let mut doc = json!({"filename": f.filename, "content_type": f.content_type});
        if f.inline {
            use base64::Engine;
            let bytes = tokio::fs::read(&f.path).await.with_context(|| format!("could not read {}", f.path.display()))?;
            doc["content_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
        } else {
            doc["size"] = json!(f.size);
            doc["sha256"] = json!(sha256_of(f, voice).await?);
        }
        documents.push(doc);
    }
    Ok(documents)
}

/// Creates the share, uploads what does not go inline, asks for it to be sent and, with
/// `wait`, waits until the patient is told. Resuming, only what is still missing is done.
pub(crate) async fn send_share(api: &Api, out: &Outbound, wait: bool, voice: Voice) -> anyhow::Result<SendResult> {
    let mut body = out.body.clone();
    body["documents"] = json!(documents(&out.files, voice).await?);
    let request = api.post("/v1/shares").header("Idempotency-Key", &out.idempotency_key).json(&body);
    let created = api.call(request).await.map_err(|e| e.with_retry_hint(&out.again))?;
    if created["status"] != "awaiting_upload" {
        let code = created["code"].as_str().map(str::to_owned);
        return Ok(SendResult { share: created, code, code_printed: false, wait_error: None });
    }
    let id = created["id"].as_str().context("the API answered a share without an id")?;
    let answered = created["documents"].as_array().map(Vec::as_slice).unwrap_or_default();
    if answered.len() != out.files.len() {
        bail!("the API answered {} documents for {} files", answered.len(), out.files.len());
    }
    for (f, doc) in out.files.iter().zip(answered) {
        if doc["filename"] != f.filename.as_str() {
            bail!("the API answered the documents in another order than they were sent");
        }
    }
    // A retry answers the first create as it was: that run may have uploaded some documents,
    // got as far as `send`, or had an upload rejected by the worker. It resumes with what is
    // still missing, through fresh URLs (the first ones may have run out).
    let status = match out.resuming {
        true => api.share(id).await?["status"].as_str().unwrap_or_default().to_owned(),
        false => "awaiting_upload".to_owned(),
    };
    if status == "awaiting_upload" {
        let issued = std::time::Instant::now();
        for (f, doc) in out.files.iter().zip(answered) {
            upload_document(api, id, f, doc, issued, out.resuming, voice).await?;
        }
    }
    let send = api.post(&format!("/v1/shares/{id}/send"));
    let mut share = api.call(send).await.map_err(|e| e.with_retry_hint(&out.again))?;
    let code = share["code"].as_str().map(str::to_owned);
    let mut code_printed = false;
    if share["status"] == "sending" && wait {
        // The code is shown once, in this answer: printed before waiting, whatever comes next.
        if let (Some(code), Voice::Terminal) = (&code, voice) {
            println!("code:       {code}  (give it to the patient yourself: it is shown only this once)");
            code_printed = true;
        }
        match wait_until_sent(api, id, share.clone(), &out.again, voice).await {
            Ok(view) => share = view,
            Err(e) => return Ok(SendResult { share, code, code_printed, wait_error: Some(e) }),
        }
    }
    Ok(SendResult { share, code, code_printed, wait_error: None })
}

/// Polls the share until its archive is built and the patient notified (`active`), and
/// answers it with `notifications` as the events tell them; an upload the worker rejected is
/// an error naming the document and why.
async fn wait_until_sent(api: &Api, id: &str, answered: Value, again: &str, voice: Voice) -> anyhow::Result<Value> {
    let started = std::time::Instant::now();
    if voice == Voice::Terminal {
        eprintln!("sending: the archive is being built, the patient is notified when it is ready");
    }
    let mut view = answered.clone();
    while view["status"] == "sending" {
        if started.elapsed() > SEND_TIMEOUT {
            bail!("still sending after {} minutes: `sealpost status {id}` shows when it is done", SEND_TIMEOUT.as_secs() / 60);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        view = api.share(id).await?;
    }
    // The notification follows the activation by moments: its result is worth a short wait.
    let told = |view: &Value, channel: &str| {
        view["events"].as_array().into_iter().flatten().any(|e| {
            e["type"] == format!("{channel}_sent").as_str()
                || (e["type"] == "notification_failed" && e["data"]["channel"] == channel)
        })
    };
    let all_told = |view: &Value| told(view, "email") && (view["auth_method"] != "sms" || told(view, "sms"));
    let active = std::time::Instant::now();
    while view["status"] == "active" && !all_told(&view) && active.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        view = api.share(id).await?;
    }
    let events = view["events"].as_array().cloned().unwrap_or_default();
    if view["status"] != "active" && view["status"] != "awaiting_upload" && view["status"] != "locked" {
        bail!("the share is {} now: nothing was sent", view["status"].as_str().unwrap_or("?"));
    }
    if view["status"] == "awaiting_upload" {
        let why = events
            .iter()
            .rev()
            .find(|e| e["type"] == "upload_rejected")
            .map(|e| {
                format!("{} ({})", e["data"]["document_id"].as_str().unwrap_or("?"), e["data"]["reason"].as_str().unwrap_or("?"))
            })
            .unwrap_or_else(|| "a document".into());
        bail!("the upload of {why} was refused when the archive was built: nothing was sent; {again} uploads it again and sends");
    }
    view["notifications"] = notifications_from_events(&events);
    Ok(view)
}

/// Each channel's result as the share's events tell it, as create's `notifications` does.
pub(crate) fn notifications_from_events(events: &[Value]) -> Value {
    let mut notifications = serde_json::Map::new();
    for channel in ["email", "sms"] {
        let sent = events.iter().any(|e| e["type"] == format!("{channel}_sent").as_str());
        let failed = events.iter().find(|e| e["type"] == "notification_failed" && e["data"]["channel"] == channel);
        if sent {
            notifications.insert(channel.into(), json!({"status": "sent"}));
        } else if let Some(f) = failed {
            notifications.insert(channel.into(), json!({"status": "failed", "error": f["data"]["error"]}));
        }
    }
    Value::Object(notifications)
}

/// The create body for one `sealpost send`, without its documents.
fn create_body(args: &SendArgs) -> Value {
    let mut recipient = Map::new();
    recipient.insert("email".into(), json!(args.to_email.as_deref().unwrap_or_default()));
    let optional = [
        ("phone", &args.to_phone),
        ("name", &args.name),
        ("language", &args.lang),
        ("date_of_birth", &args.dob),
        ("insurance_number", &args.insurance_number),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            recipient.insert(key.into(), json!(v));
        }
    }
    let mut body = json!({"recipient": recipient});
    if let Some(method) = args.auth {
        body["auth"] = json!({"method": method.api_name()});
    }
    if let Some(days) = args.expires_in_days {
        body["expires_in_days"] = json!(days);
    }
    if let Some(message) = &args.message {
        body["message"] = json!(message);
    }
    body
}

/// Checks every file before anything is sent, and picks inline or upload for each.
pub(crate) fn plan(paths: &[PathBuf], inline_limit: u64) -> anyhow::Result<Vec<Outgoing>> {
    let mut inline_total = 0;
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).with_context(|| format!("could not read {}", path.display()))?;
        if !meta.is_file() {
            bail!("{} is not a file", path.display());
        }
        let filename = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: the file name must be valid UTF-8", path.display()))?
            .to_owned();
        let size = meta.len();
        let inline = size <= inline_limit && inline_total + size <= INLINE_TOTAL;
        if inline {
            inline_total += size;
        }
        files.push(Outgoing { path: path.clone(), content_type: content_type(&filename), filename, size, inline });
    }
    Ok(files)
}

/// The media type by extension; the patient's browser and ZIP tools go by the name anyway.
fn content_type(filename: &str) -> &'static str {
    let ext = filename.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "tif" | "tiff" => "image/tiff",
        "heic" => "image/heic",
        "webp" => "image/webp",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "xml" => "application/xml",
        "json" => "application/json",
        "zip" => "application/zip",
        "rtf" => "application/rtf",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt" => "application/vnd.oasis.opendocument.text",
        "dcm" => "application/dicom",
        _ => "application/octet-stream",
    }
}

/// SHA-256 of a file, read in chunks: a 2 GiB scan never sits in memory.
async fn sha256_of(f: &Outgoing, voice: Voice) -> anyhow::Result<String> {
    let mut file = tokio::fs::File::open(&f.path).await.with_context(|| format!("could not read {}", f.path.display()))?;
    let bar = progress(f.size, &format!("hashing {}", f.filename), voice);
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).await.with_context(|| format!("could not read {}", f.path.display()))?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(hex::encode(digest.finish().as_ref()))
}

/// Where a document goes: its upload URL, the headers its PUT carries, and until when the URL
/// works as far as this run knows.
struct UploadTarget {
    url: String,
    headers: Value,
    until: std::time::Instant,
}

impl UploadTarget {
    fn of(doc: &Value, url: &str, issued: std::time::Instant) -> Self {
        // An API's URL lives minutes; a day is plenty for anything it might say.
        let life = Duration::from_secs(doc["upload_expires_in"].as_u64().unwrap_or(0).min(86_400));
        Self { url: url.to_owned(), headers: doc["upload_headers"].clone(), until: issued + life }
    }

    fn from_answer(doc: &Value) -> anyhow::Result<Self> {
        let url = doc["upload_url"].as_str().context("the API answered a fresh upload URL without one")?;
        Ok(Self::of(doc, url, std::time::Instant::now()))
    }

    /// Whether the URL ends within a minute: earlier uploads took its time.
    fn ends_soon(&self) -> bool {
        self.until.saturating_duration_since(std::time::Instant::now()) < Duration::from_secs(60)
    }
}

/// Uploads a document the create answered `doc` for (at `issued`), unless it went inline.
/// Resuming, it asks for a fresh URL first, which also says whether the upload is there
/// already (then it is skipped). A URL about to end, or refused as expired, is renewed.
async fn upload_document(
    api: &Api,
    id: &str,
    f: &Outgoing,
    doc: &Value,
    issued: std::time::Instant,
    resuming: bool,
    voice: Voice,
) -> anyhow::Result<()> {
    let Some(url) = doc["upload_url"].as_str() else { return Ok(()) };
    let mut target = UploadTarget::of(doc, url, issued);
    if resuming || target.ends_soon() {
        let fresh = renew_upload_url(api, id, doc).await?;
        if resuming && fresh["uploaded"] == true {
            if voice == Voice::Terminal {
                eprintln!("{}: uploaded already", f.filename);
            }
            return Ok(());
        }
        target = UploadTarget::from_answer(&fresh)?;
    }
    let Err(first) = upload(api, f, &target, voice).await? else { return Ok(()) };
    // Refused as expired (on AWS also when the credentials that signed it ended first), or the
    // connection broken: once more through a fresh URL.
    if voice == Voice::Terminal {
        eprintln!("{}: {first}; again through a fresh URL", f.filename);
    }
    let fresh = renew_upload_url(api, id, doc).await?;
    if fresh["uploaded"] == true {
        return Ok(()); // the PUT landed; only its answer was lost
    }
    if let Err(again) = upload(api, f, &UploadTarget::from_answer(&fresh)?, voice).await? {
        bail!("upload of {} failed twice, also through a fresh URL: {again}", f.filename);
    }
    Ok(())
}

/// `POST …/documents/{doc}/upload-url`: a fresh URL, and whether the upload is there already.
async fn renew_upload_url(api: &Api, id: &str, doc: &Value) -> anyhow::Result<Value> {
    let doc_id = doc["id"].as_str().context("the API answered a document without an id")?;
    Ok(api.call(api.post(&format!("/v1/shares/{id}/documents/{doc_id}/upload-url"))).await?)
}

/// PUTs a file to its upload URL, streamed from disk, with the headers the API named (the
/// checksum the store checks the bytes against: a file changed since it was hashed is
/// refused), and a progress bar on a terminal. `Ok(Err(why))` when a fresh URL may do
/// better: the URL refused with 403, as an expired one is, or the connection broken (S3 may
/// answer a refused PUT and close before the body is sent).
async fn upload(api: &Api, f: &Outgoing, target: &UploadTarget, voice: Voice) -> anyhow::Result<Result<(), String>> {
    let url = if target.url.starts_with('/') { format!("{}{}", api.base, target.url) } else { target.url.clone() };
    let file = tokio::fs::File::open(&f.path).await.with_context(|| format!("could not read {}", f.path.display()))?;
    let bar = progress(f.size, &format!("uploading {}", f.filename), voice);
    let counter = bar.clone();
    let stream =
        tokio_util::io::ReaderStream::with_capacity(file, CHUNK).inspect_ok(move |chunk| counter.inc(chunk.len() as u64));
    // An explicit length: presigned S3 PUTs take no chunked bodies.
    let mut request = api.http.put(&url).header(reqwest::header::CONTENT_LENGTH, f.size);
    for (name, value) in target.headers.as_object().into_iter().flatten() {
        request = request.header(name.as_str(), value.as_str().unwrap_or_default());
    }
    let request = request.body(reqwest::Body::wrap_stream(stream));
    let host = url::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    let response = request.send().await;
    bar.finish_and_clear();
    let response = match response {
        Ok(response) => response,
        Err(e) if e.is_connect() => bail!("could not upload {} to {host}: {}", f.filename, root_cause(&e)),
        Err(e) => return Ok(Err(format!("the upload to {host} broke off: {}", root_cause(&e)))),
    };
    let status = response.status();
    if status == reqwest::StatusCode::FORBIDDEN {
        let body = response.text().await.unwrap_or_default();
        return Ok(Err(format!("refused by {host}: HTTP 403{}", s3_reason(&body))));
    }
    if !status.is_success() {
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match api_error(&body) {
            Some(reason) => bail!("upload of {} refused: {reason}", f.filename),
            None => bail!("upload of {} refused by {host}: HTTP {status}", f.filename),
        }
    }
    Ok(Ok(()))
}

/// ` (Code: Message)` from S3's XML error body (`<Code>AccessDenied</Code>`, `<Message>Request
/// has expired</Message>`), or the embedded server's JSON error; empty when neither.
fn s3_reason(body: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        Some(body[start..].split('<').next()?.to_owned())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!(" ({code}: {message})"),
        (Some(code), None) => format!(" ({code})"),
        _ => serde_json::from_str(body).ok().and_then(|v: Value| api_error(&v)).map(|r| format!(" ({r})")).unwrap_or_default(),
    }
}

/// A progress bar on stderr, or none when either output is not a terminal (scripts, CI) or
/// the send is a batch's row.
fn progress(len: u64, label: &str, voice: Voice) -> ProgressBar {
    if voice == Voice::Quiet || !on_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len).with_style(style).with_message(label.to_owned())
}

/// Whether both outputs are a terminal, where progress bars go.
pub(crate) fn on_terminal() -> bool {
    std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// What one `sealpost send` did; `code` unless it was printed already.
fn print_sent(share: &Value, files: &[Outgoing], code: Option<&str>) {
    let field = |name: &str| share[name].as_str().unwrap_or("-").to_owned();
    println!("reference:  {}", field("reference"));
    println!("id:         {}", field("id"));
    println!("link:       {}", field("link"));
    println!("status:     {}", field("status"));
    println!("expires:    {}", local_time(&share["expires_at"]));
    for f in files {
        let how = if f.inline { "inline" } else { "uploaded" };
        println!("document:   {} ({}, {how})", f.filename, HumanBytes(f.size));
    }
    if let Some(channels) = share["notifications"].as_object() {
        for (channel, outcome) in channels {
            let status = outcome["status"].as_str().unwrap_or("unknown");
            match outcome["error"].as_str() {
                Some(error) => println!("{:<12}{status} ({error})", format!("{channel}:")),
                None => println!("{:<12}{status}", format!("{channel}:")),
            }
        }
    }
    if let Some(code) = code {
        println!("code:       {code}  (give it to the patient yourself: it is shown only this once)");
    }
}

/// A preview's email and SMS as the patient would read them, the placeholders named.
fn preview_text(shown: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let email = &shown["email"];
    let mut out =
        format!("email to {} from {} <{}>\n", text(&email["to"]), text(&email["from_name"]), text(&email["from_address"]));
    if let Some(reply_to) = email["reply_to"].as_str() {
        out += &format!("reply-to {reply_to}\n");
    }
    out += &format!("subject: {}\n\n{}\n\n", text(&email["subject"]), text(&email["text"]).trim_end());
    let sms = &shown["sms"];
    if sms.is_object() {
        let segments = sms["segments"].as_u64().unwrap_or(0);
        out += &format!(
            "sms to {}, {}, {segments} {}:\n{}\n\n",
            text(&sms["to"]),
            text(&sms["encoding"]),
            if segments == 1 { "segment" } else { "segments" },
            text(&sms["text"]).trim_end()
        );
    } else {
        out += &format!("no sms (auth {})\n\n", text(&shown["auth_method"]));
    }
    let placeholders = &shown["placeholders"];
    out += &format!(
        "the link expires {}. Placeholders: {} for the reference",
        local_time(&shown["expires_at"]),
        text(&placeholders["reference"])
    );
    if let Some(code) = placeholders["code"].as_str() {
        out += &format!(", {code} for the code");
    }
    out += &format!(", {} for the link. Nothing was sent.\n", text(&placeholders["link"]));
    out
}

async fn run_status(args: StatusArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let share = api.share(share_id_arg(&args.id)?).await?;
    print!("{}", timeline(&share));
    Ok(())
}

/// A share id given on the command line, checked before it goes into a URL path.
pub(crate) fn share_id_arg(id: &str) -> anyhow::Result<&str> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        bail!("id: not a share id");
    }
    Ok(id)
}

/// The share view as text: its state, documents, then one line per event in local time.
fn timeline(share: &Value) -> String {
    let field = |name: &str| share[name].as_str().unwrap_or("-").to_owned();
    let mut out = String::new();
    out += &format!("reference:  {}\n", field("reference"));
    out += &format!("id:         {}\n", field("id"));
    out += &format!("status:     {}\n", field("status"));
    out += &format!("auth:       {}\n", field("auth_method"));
    out += &format!("created:    {}\n", local_time(&share["created_at"]));
    out += &format!("expires:    {}\n", local_time(&share["expires_at"]));
    if let Some(n) = share["replies"].as_u64().filter(|n| *n > 0) {
        out += &format!("replies:    {n} (sealpost replies {} shows them)\n", field("id"));
    }
    let documents = share["documents"].as_array().map(Vec::as_slice).unwrap_or_default();
    for d in documents {
        let size = d["size"].as_u64().map(|s| HumanBytes(s).to_string()).unwrap_or_default();
        out += &format!("document:   {} ({size})\n", d["filename"].as_str().unwrap_or("-"));
    }
    out += "events:\n";
    for event in share["events"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let kind = event["type"].as_str().unwrap_or("-");
        let detail = event_detail(kind, &event["data"], documents);
        let line = format!("  {}  {kind}  {detail}", local_time(&event["created_at"]));
        out += line.trim_end();
        out += "\n";
    }
    out
}

/// What an event's data says, in words: a downloaded document's name, a failed channel.
fn event_detail(kind: &str, data: &Value, documents: &[Value]) -> String {
    let Some(data) = data.as_object() else { return String::new() };
    match kind {
        "document_downloaded" => {
            let id = data.get("document_id").and_then(Value::as_str).unwrap_or_default();
            let doc = documents.iter().find(|d| d["id"] == id);
            doc.and_then(|d| d["filename"].as_str()).unwrap_or(id).to_owned()
        }
        "email_sent" | "sms_sent" => String::new(),
        _ => data
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => format!("{k}={s}"),
                None => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `2026-11-23 10:15` in the machine's time zone; the API's text when it is not a time.
pub(crate) fn local_time(value: &Value) -> String {
    match value.as_str() {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Local).format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|_| s.to_owned()),
        None => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("Rechnung.PDF"), "application/pdf");
        assert_eq!(content_type("scan.jpeg"), "image/jpeg");
        assert_eq!(content_type("noextension"), "application/octet-stream");
    }

    #[test]
    fn api_errors_read_as_field_and_message() {
        let body = json!({"error": {"code": "invalid_request", "message": "not a phone number", "field": "recipient.phone"}});
        assert_eq!(api_error(&body).as_deref(), Some("recipient.phone: not a phone number (invalid_request)"));
        assert_eq!(api_error(&json!({"oops": 1})), None);
    }

    #[test]
    fn downloads_name_the_document() {
        let docs = vec![json!({"id": "doc_1", "filename": "Rechnung.pdf"})];
        assert_eq!(event_detail("document_downloaded", &json!({"document_id": "doc_1"}), &docs), "Rechnung.pdf");
        assert_eq!(event_detail("notification_failed", &json!({"channel": "sms", "error": "x"}), &docs), "channel=sms error=x");
        assert_eq!(event_detail("created", &Value::Null, &docs), "");
    }

    /// An upload URL refused as expired (403) is renewed once and the upload made through the
    /// fresh one, with the same checksum header; a fresh URL refused too ends the run.
    #[tokio::test]
    async fn an_upload_refused_as_expired_goes_up_through_a_fresh_url() {
        use axum::routing::{post, put};
        use std::sync::{Arc, Mutex};
        // Each PUT to the fresh URL: its checksum header and body.
        type Puts = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
        let received: Puts = Arc::default();
        let store = received.clone();
        let fresh = |url: &str| {
            json!({"id": "doc_1", "upload_url": url, "upload_expires_in": 3600, "uploaded": false,
                   "upload_headers": {"x-amz-checksum-sha256": "c2hh"}})
        };
        let renewed = Arc::new(Mutex::new(0));
        let renewals = renewed.clone();
        let app = axum::Router::new()
            .route("/expired", put(|| async { axum::http::StatusCode::FORBIDDEN }))
            .route(
                "/fresh",
                put(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let checksum = headers.get("x-amz-checksum-sha256").and_then(|v| v.to_str().ok()).unwrap_or("");
                    store.lock().unwrap().push((checksum.to_owned(), body.to_vec()));
                    axum::http::StatusCode::OK
                }),
            )
            .route(
                "/v1/shares/{id}/documents/{doc}/upload-url",
                post(move || async move {
                    *renewals.lock().unwrap() += 1;
                    axum::Json(if *renewals.lock().unwrap() <= 1 { fresh("/fresh") } else { fresh("/expired") })
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Scan.pdf");
        std::fs::write(&path, b"%PDF-1.4 scan").unwrap();
        let file = Outgoing { path, filename: "Scan.pdf".into(), content_type: "application/pdf", size: 13, inline: false };
        let api = Api::new(&ApiArgs { api: base, key: "sp_live_k".into() }).unwrap();
        let mut doc = fresh("/expired");
        doc["upload_expires_in"] = json!(3600);
        upload_document(&api, "sh_1", &file, &doc, std::time::Instant::now(), false, Voice::Quiet).await.expect("uploaded");
        assert_eq!(*renewed.lock().unwrap(), 1);
        assert_eq!(*received.lock().unwrap(), vec![("c2hh".to_owned(), b"%PDF-1.4 scan".to_vec())]);

        // The fresh URL refused as well: an error, not a loop.
        let err = upload_document(&api, "sh_1", &file, &doc, std::time::Instant::now(), false, Voice::Quiet).await.unwrap_err();
        assert!(err.to_string().contains("failed twice"), "{err}");
    }

    #[test]
    fn s3s_reason_is_read_from_its_error_body() {
        let body = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
        assert_eq!(s3_reason(body), " (AccessDenied: Request has expired)");
        assert_eq!(s3_reason(r#"{"error": {"code": "forbidden", "message": "expired"}}"#), " (expired (forbidden))");
        assert_eq!(s3_reason(""), "");
    }
}
