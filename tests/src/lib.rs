//! The harness of the contract suite: one isolated Sealpost per test, on an ephemeral port.
//!
//! The suite in `tests/api/` speaks only HTTP to [`TestApp::base_url`], and reads what was sent
//! through [`TestApp::sent_sms`] / [`TestApp::sent_emails`]; which backend answers is the
//! harness's business, so the same tests run against every backend:
//!
//! - `SEALPOST_TEST_BACKEND=embedded` (default): SQLite, a folder and the outbox in a temp dir.
//! - `SEALPOST_TEST_BACKEND=aws`: the AWS adapters against moto's servers (started by
//!   `tests/run`): DynamoDB, S3 and SSM at `SEALPOST_TEST_MOTO_URL`, SNS and SES at
//!   `SEALPOST_TEST_MOTO_MESSAGING_URL`. Two servers because moto's `/moto-api/data.json`, where
//!   sent SMS and email are read back, fails once S3 holds a multipart upload (moto's
//!   `FakeKey.status` looks up a bucket that parts do not have). Each test gets its own table
//!   and bucket, and reads back only its own practices' SMS and email, so tests run in parallel.

use chrono::{DateTime, Duration, Utc};
use sealpost::admin;
use sealpost::aws::{AwsConfig, Clients};
use sealpost::domain::{Policy, PracticeId};
use sealpost::ports::{Clock, ManualClock, Store};
use sealpost::service::Service;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

pub mod gateway;
pub mod receiver;

/// An SMS as the backend's provider (outbox, or moto's SNS record) saw it.
#[derive(Debug, Clone)]
pub struct SentSms {
    pub to: String,
    pub body: String,
}

/// An email as the backend's provider saw it (`body`: the plain-text part on the embedded
/// backend; moto keeps only the HTML part of a two-part message).
#[derive(Debug, Clone)]
pub struct SentEmail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

pub const REGION: &str = "eu-central-2";

/// Which backend answers, and what the harness needs to read its providers.
#[allow(clippy::large_enum_variant)] // one per test app
enum Backend {
    Embedded,
    Aws {
        /// The moto server that records SMS and email.
        moto_url: String,
        clients: Clients,
        config: AwsConfig,
        /// This app's practices: their shares' references pick its own SMS and email out of
        /// moto's record, which every test shares.
        practices: Arc<Mutex<Vec<PracticeId>>>,
        /// The webhook FIFO queue, and where each shard of the table's stream was read to.
        webhook_queue: String,
        /// The send queue (FIFO), which `send` fills and `process_sends` works.
        send_queue: String,
        stream_iterators: Arc<tokio::sync::Mutex<std::collections::HashMap<String, Option<String>>>>,
        /// Every request the app's DynamoDB client sent.
        dynamodb_calls: DynamoDbCalls,
    },
}

/// The operations a DynamoDB client sent, one per request on the wire (a retry counts again),
/// recorded by an SDK interceptor from each request's `X-Amz-Target`; and, when asked, one
/// request held once its write is done, to put another request in the window after it.
#[derive(Debug, Clone, Default)]
pub struct DynamoDbCalls {
    calls: Arc<Mutex<Vec<String>>>,
    hold: Arc<Mutex<Option<Hold>>>,
}

/// [`DynamoDbCalls::hold_after_next_write`]: `sent` once the write went out.
#[derive(Debug)]
struct Hold {
    sent: bool,
    held: oneshot::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

impl DynamoDbCalls {
    /// `client` with this record attached.
    fn wrap(&self, client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().interceptor(self.clone()).build())
    }

    /// The operations sent since the last call, e.g. `["UpdateItem"]`.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().expect("calls"))
    }

    /// Holds the next write (`PutItem`, `UpdateItem`, `TransactWriteItems`, …) once DynamoDB
    /// has answered it, before its caller sees the answer: the first receiver says it is held,
    /// and it goes on when the sender sends. For one request in flight at a time: the request
    /// that writes next is the one held. It blocks a runtime thread meanwhile
    /// (`block_in_place`), so the test needs a multi-threaded runtime.
    pub fn hold_after_next_write(&self) -> (oneshot::Receiver<()>, std::sync::mpsc::Sender<()>) {
        let (held, is_held) = oneshot::channel();
        let (release, released) = std::sync::mpsc::channel();
        *self.hold.lock().expect("hold") = Some(Hold { sent: false, held, release: released });
        (is_held, release)
    }
}

impl aws_sdk_dynamodb::config::Intercept for DynamoDbCalls {
    fn name(&self) -> &'static str {
        "DynamoDbCalls"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context.request().headers().get("x-amz-target").unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        let writes = ["PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"];
        if writes.contains(&operation.as_str())
            && let Some(hold) = self.hold.lock().expect("hold").as_mut()
        {
            hold.sent = true;
        }
        self.calls.lock().expect("calls").push(operation);
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let mut hold = self.hold.lock().expect("hold");
        if hold.as_ref().is_some_and(|h| h.sent)
            && let Some(Hold { held, release, .. }) = hold.take()
        {
            drop(hold);
            let _ = held.send(());
            // `block_in_place` hands this thread's queued tasks to another, so nothing waits
            // behind the held request; a test that never releases fails rather than hangs.
            tokio::task::block_in_place(|| release.recv_timeout(std::time::Duration::from_secs(30)).ok());
        }
        Ok(())
    }
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    /// The default practice's API key.
    pub api_key: String,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    /// The embedded backend's data dir (empty on AWS).
    pub data_dir: PathBuf,
    /// The service behind the server (the events test mounts single routes over it).
    pub service: Arc<Service>,
    backend: Backend,
    /// The embedded backend's webhook sender (`None` on AWS, where Lambda functions send).
    webhook_worker: Option<sealpost::embedded::WebhookWorker>,
    /// The embedded backend's send worker (`None` on AWS: the `send-worker` function).
    send_worker: Option<sealpost::embedded::SendWorker>,
    _tmp: Arc<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// The embedded backend's background tasks, which tests run when they choose.
struct Workers {
    webhooks: sealpost::embedded::WebhookWorker,
    sends: sealpost::embedded::SendWorker,
}

/// A fixed start so that tests read the same on any day.
pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").expect("valid time").with_timezone(&Utc)
}

/// True when the suite runs against moto.
pub fn aws_backend() -> bool {
    std::env::var("SEALPOST_TEST_BACKEND").is_ok_and(|b| b == "aws")
}

impl TestApp {
    /// A fresh app with the default policy.
    pub async fn spawn() -> Self {
        Self::spawn_with(Policy::default()).await
    }

    /// A fresh app whose default practice has `policy`.
    pub async fn spawn_with(policy: Policy) -> Self {
        Self::spawn_inner(policy, false).await
    }

    /// A fresh app whose SMS and email providers fail, for real: on AWS, SES refuses the
    /// practice's unverified sender and SNS is unreachable (a closed port); on the embedded
    /// backend the outbox file cannot be written.
    pub async fn spawn_with_failing_notifications() -> Self {
        Self::spawn_inner(Policy::default(), true).await
    }

    async fn spawn_inner(policy: Policy, failing_notifications: bool) -> Self {
        let tmp = Arc::new(tempfile::tempdir().expect("temp dir"));
        let clock = ManualClock::new(start_time());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        if aws_backend() {
            let storage = std::env::var("SEALPOST_TEST_MOTO_URL").expect("SEALPOST_TEST_MOTO_URL (tests/run sets it)");
            let moto_url = std::env::var("SEALPOST_TEST_MOTO_MESSAGING_URL").unwrap_or_else(|_| storage.clone());
            let mut clients = Clients::for_endpoints(&storage, &moto_url, REGION).await;
            let dynamodb_calls = DynamoDbCalls::default();
            clients = clients.with_dynamodb(dynamodb_calls.wrap(clients.dynamodb()));
            if failing_notifications {
                clients = clients.with_sns(Clients::for_endpoints(&storage, "http://127.0.0.1:1", REGION).await.sns().clone());
            }
            let name = format!("sealpost-{}", hex::encode(sealpost::domain::random_bytes::<4>()));
            let name = name.as_str();
            sealpost::aws::provision::create_table(&clients, name).await.expect("table");
            sealpost::aws::provision::create_bucket(&clients, name, REGION).await.expect("bucket");
            // Shared by every test's practices; creating it twice is refused, which is fine.
            let _ = sealpost::aws::provision::create_sender_identity(&clients, admin::DEFAULT_SENDER).await;
            let pepper = sealpost::domain::random_bytes::<32>().to_vec();
            let send_queue = sealpost::aws::provision::create_send_queue(&clients, name).await.expect("send queue");
            let mut config = AwsConfig::new(name.to_owned(), name.to_owned(), base_url.clone(), pepper);
            // The tests' webhook receiver is plain HTTP on loopback, which AWS refuses otherwise.
            config.webhook_urls = sealpost::domain::UrlRule::AllowLoopbackHttp;
            config.send_queue_url = Some(send_queue.clone());
            let (service, router, worker) = Self::aws_app(&config, &clients, &clock).await;
            let mut new = admin::NewPractice::named("Sealpost Demo").expect("name");
            new.policy = policy;
            if failing_notifications {
                // A domain no test verifies (the bounce test verifies the default sender's domain).
                new.sender_email = sealpost::domain::Email::parse("nobody@unverified-sender.invalid").expect("email");
            }
            let (practice, api_key) = admin::create_practice(service.store.as_ref(), new, clock.now()).await.expect("practice");
            let webhook_queue = sealpost::aws::provision::create_webhook_queue(&clients, name).await.expect("queue");
            let backend = Backend::Aws {
                moto_url,
                clients,
                config,
                practices: Arc::new(Mutex::new(vec![practice.id])),
                webhook_queue,
                send_queue,
                stream_iterators: Arc::default(),
                dynamodb_calls,
            };
            Self::serve(listener, router, base_url, api_key, clock, tmp, service, backend, worker)
        } else {
            let api_key = format!("sp_live_{}", hex::encode(sealpost::domain::random_bytes::<32>()));
            if failing_notifications {
                // A directory where the outbox file should be: every append fails.
                std::fs::create_dir_all(tmp.path().join("outbox.jsonl")).expect("dir");
            }
            let (service, router, worker) = Self::embedded_app(&tmp, &base_url, &api_key, &clock).await;
            let practice = service.store.list_practices().await.expect("practices")[0].id.clone();
            admin::set_policy(service.store.as_ref(), &practice, policy).await.expect("policy");
            Self::serve(listener, router, base_url, api_key, clock, tmp, service, Backend::Embedded, worker)
        }
    }

    async fn embedded_app(
        tmp: &tempfile::TempDir,
        base_url: &str,
        api_key: &str,
        clock: &ManualClock,
    ) -> (Arc<Service>, sealpost::http::HttpRouter, Option<Workers>) {
        let options = sealpost::embedded::Options {
            data_dir: tmp.path().to_path_buf(),
            public_url: base_url.to_owned(),
            api_key: Some(api_key.to_owned()),
            quiet: true,
            outbox_route: true,
        };
        let app = sealpost::embedded::build(options, Arc::new(clock.clone())).await.expect("embedded app");
        (app.service, app.router, Some(Workers { webhooks: app.webhooks, sends: app.sends }))
    }

    async fn aws_app(
        config: &AwsConfig,
        clients: &Clients,
        clock: &ManualClock,
    ) -> (Arc<Service>, sealpost::http::HttpRouter, Option<Workers>) {
        let clock: Arc<dyn Clock> = Arc::new(clock.clone());
        let service = sealpost::aws::build_service(config, clients, clock.clone(), sealpost::ports::Uses::EVERYTHING);
        // Every API call through its Lambda function's router, built as the function builds it,
        // as API Gateway makes it; the page as CloudFront serves it from its bucket.
        (service.clone(), gateway::router(config, clients, clock, sealpost::http::router(service)), None)
    }

    #[allow(clippy::too_many_arguments)]
    fn serve(
        listener: tokio::net::TcpListener,
        router: sealpost::http::HttpRouter,
        base_url: String,
        api_key: String,
        clock: ManualClock,
        tmp: Arc<tempfile::TempDir>,
        service: Arc<Service>,
        backend: Backend,
        workers: Option<Workers>,
    ) -> Self {
        let (webhook_worker, send_worker) = workers.map(|w| (w.webhooks, w.sends)).unzip();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            sealpost::server::serve(listener, router, async {
                let _ = rx.await;
            })
            .await
            .expect("server");
        });
        Self {
            base_url,
            api_key,
            clock,
            http: reqwest::Client::new(),
            data_dir: tmp.path().to_path_buf(),
            service,
            backend,
            webhook_worker,
            send_worker,
            _tmp: tmp,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// The AWS backend's clients and configuration (`None` on the embedded backend).
    pub fn aws_parts(&self) -> Option<(&Clients, &AwsConfig)> {
        match &self.backend {
            Backend::Aws { clients, config, .. } => Some((clients, config)),
            Backend::Embedded => None,
        }
    }

    /// The record of DynamoDB requests on the AWS backend (`None` on the embedded one, whose
    /// store is in the process).
    pub fn dynamodb_calls(&self) -> Option<&DynamoDbCalls> {
        match &self.backend {
            Backend::Aws { dynamodb_calls, .. } => Some(dynamodb_calls),
            Backend::Embedded => None,
        }
    }

    /// Stops the server and starts a new one on the same data (a new port): nothing may be lost.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let backend = std::mem::replace(&mut self.backend, Backend::Embedded);
        let (service, router, backend, worker) = match backend {
            Backend::Embedded => {
                let (s, r, w) = Self::embedded_app(&self._tmp, &base_url, &self.api_key, &self.clock).await;
                (s, r, Backend::Embedded, w)
            }
            mut aws @ Backend::Aws { .. } => {
                let Backend::Aws { config, clients, send_queue, .. } = &mut aws else { unreachable!("matched") };
                // The same table, bucket, queue and pepper; the new address for links.
                let mut fresh =
                    AwsConfig::new(config.table.clone(), config.bucket.clone(), base_url.clone(), config.pepper_for_tests());
                fresh.webhook_urls = sealpost::domain::UrlRule::AllowLoopbackHttp;
                fresh.send_queue_url = Some(send_queue.clone());
                *config = fresh;
                let (s, r, w) = Self::aws_app(config, clients, &self.clock).await;
                (s, r, aws, w)
            }
        };
        let (api_key, clock, tmp) = (self.api_key.clone(), self.clock.clone(), self._tmp.clone());
        Self::serve(listener, router, base_url, api_key, clock, tmp, service, backend, worker)
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Moves the app's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Runs the expiry sweep once, as the server's periodic task does (after moving the clock).
    pub async fn sweep(&self) -> usize {
        self.function_service(sealpost::lambda::SWEEP_USES).sweep_expired().await.expect("sweep")
    }

    /// The service as a Lambda function without routes builds it on AWS: with only the ports it
    /// uses (`sealpost::lambda::*_USES`). On the embedded backend, the one service.
    fn function_service(&self, uses: sealpost::ports::Uses) -> Arc<Service> {
        match &self.backend {
            Backend::Aws { config, clients, .. } => {
                sealpost::aws::build_service(config, clients, Arc::new(self.clock.clone()), uses)
            }
            Backend::Embedded => self.service.clone(),
        }
    }

    /// Delivers the webhooks that are due, as the backend's sender does: on the embedded
    /// backend, one run of the background task; on AWS, the table's stream records through the
    /// `webhook-fanout` handler into the SQS FIFO queue, then the queue's messages through the
    /// `webhook-sender` handler, as Lambda's event source mappings would. Returns the attempts made.
    pub async fn deliver_webhooks(&self) -> usize {
        match &self.webhook_worker {
            Some(worker) => worker.run_once().await.expect("webhook run"),
            None => self.pump_aws_webhooks().await,
        }
    }

    /// Does the work `send` queued, as the backend's worker does: on the embedded backend, one
    /// run of the background task; on AWS, the send queue's messages through the `send-worker`
    /// handler, as Lambda's event source mapping would (failures stay queued). Returns how many
    /// messages (shares) were worked.
    pub async fn process_sends(&self) -> usize {
        let Backend::Aws { clients, send_queue, .. } = &self.backend else {
            return self.send_worker.as_ref().expect("embedded").run_once().await.expect("send run");
        };
        pump_sends(clients, send_queue, &self.function_service(sealpost::lambda::SEND_WORKER_USES)).await
    }

    /// AWS: the send queue loses its messages (each received and deleted unworked), as a
    /// message lost or moved to the dead-letter queue would be; `false` on the embedded
    /// backend, whose queue is a table written with the share's own state.
    pub async fn lose_queued_sends(&self) -> bool {
        let Backend::Aws { clients, send_queue, .. } = &self.backend else { return false };
        loop {
            let received =
                clients.sqs().receive_message().queue_url(send_queue).max_number_of_messages(10).send().await.expect("receive");
            if received.messages().is_empty() {
                return true;
            }
            for m in received.messages() {
                let handle = m.receipt_handle().expect("receipt");
                clients.sqs().delete_message().queue_url(send_queue).receipt_handle(handle).send().await.expect("delete");
            }
        }
    }

    /// Keeps doing the work `send` queues, in the background, as `sealpost serve`'s task or
    /// the `send-worker` function would (for tests of a client that waits for it).
    pub fn start_send_task(&self) {
        match &self.backend {
            Backend::Embedded => drop(self.send_worker.clone().expect("embedded").spawn(std::time::Duration::from_millis(100))),
            Backend::Aws { clients, send_queue, .. } => {
                let (clients, queue) = (clients.clone(), send_queue.clone());
                let worker = self.function_service(sealpost::lambda::SEND_WORKER_USES);
                drop(tokio::spawn(async move {
                    loop {
                        pump_sends(&clients, &queue, &worker).await;
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }));
            }
        }
    }

    /// Starts the embedded backend's background sender, as `sealpost serve` does (`false` on
    /// AWS, where Lambda functions send).
    pub fn start_webhook_task(&self, every: std::time::Duration) -> bool {
        match &self.webhook_worker {
            Some(worker) => {
                let task = worker.clone().spawn(every);
                // Stops with the test's runtime.
                drop(task);
                true
            }
            None => false,
        }
    }

    async fn pump_aws_webhooks(&self) -> usize {
        let Backend::Aws { clients, config, webhook_queue, stream_iterators, .. } = &self.backend else {
            unreachable!("only on AWS")
        };
        let queue = sealpost::aws::WebhookQueue::new(clients.clone(), webhook_queue.clone());
        let fan_out = self.function_service(sealpost::lambda::WEBHOOK_FANOUT_USES);
        let sender = self.function_service(sealpost::lambda::WEBHOOK_SENDER_USES);
        // The stream, as the `webhook-fanout` event source mapping reads it, but unfiltered:
        // template.yaml's FilterCriteria are checked by tests/stream_filters/check.py.
        let streams = aws_sdk_dynamodbstreams::Client::new(&self.streams_config().await);
        let table = clients.dynamodb().describe_table().table_name(&config.table).send().await.expect("table");
        let arn = table.table().and_then(|t| t.latest_stream_arn()).expect("the table has a stream").to_owned();
        let stream = streams.describe_stream().stream_arn(&arn).send().await.expect("stream");
        let mut iterators = stream_iterators.lock().await;
        for shard in stream.stream_description().map(|d| d.shards()).unwrap_or_default() {
            let id = shard.shard_id().expect("shard id").to_owned();
            if let std::collections::hash_map::Entry::Vacant(slot) = iterators.entry(id) {
                let it = streams
                    .get_shard_iterator()
                    .stream_arn(&arn)
                    .shard_id(slot.key())
                    .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .expect("iterator");
                slot.insert(it.shard_iterator().map(str::to_owned));
            }
        }
        for iterator in iterators.values_mut() {
            while let Some(it) = iterator.clone() {
                let page = streams.get_records().shard_iterator(&it).send().await.expect("records");
                // Each record as Lambda hands it to the function, through the function's own
                // batch handler (a failure it reports fails the test).
                let records: Vec<_> = page.records().iter().map(lambda_record).collect();
                let response = sealpost::lambda::fan_out_records(&fan_out, &queue, &records).await;
                assert!(response.batch_item_failures.is_empty(), "fan-out failed: {response:?}");
                let next = page.next_shard_iterator().map(str::to_owned);
                let done = page.records().is_empty();
                *iterator = next;
                if done {
                    break;
                }
            }
        }
        drop(iterators);
        // The queue, as the `webhook-sender` event source mapping reads it: batches of up to
        // ten, successes deleted, failures left (the sender hid them until their retry).
        let mut attempts = 0;
        loop {
            let messages = receive(clients, webhook_queue).await;
            if messages.is_empty() {
                break;
            }
            let outcome = sealpost::aws::send_queued(&sender, &queue, &messages).await;
            attempts += outcome.attempts;
            for m in messages.iter().filter(|m| !outcome.retry.contains(&m.message_id)) {
                clients
                    .sqs()
                    .delete_message()
                    .queue_url(webhook_queue)
                    .receipt_handle(&m.receipt_handle)
                    .send()
                    .await
                    .expect("delete");
            }
        }
        attempts
    }

    /// The SDK config of the storage moto server (DynamoDB streams live there too).
    async fn streams_config(&self) -> aws_config::SdkConfig {
        let storage = std::env::var("SEALPOST_TEST_MOTO_URL").expect("SEALPOST_TEST_MOTO_URL");
        let credentials = aws_sdk_dynamodbstreams::config::Credentials::new("test", "test", None, None, "sealpost-tests");
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(storage)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(credentials)
            .load()
            .await
    }

    /// The ids the SMS or email provider gave this app's messages (`channel`: `sms`, `email`).
    pub async fn provider_message_ids(&self, channel: &str) -> Vec<String> {
        match &self.backend {
            Backend::Embedded => self.outbox(channel).await.into_iter().map(|m| m.message_id).collect(),
            Backend::Aws { .. } => {
                let references = self.own_references().await;
                let data = self.moto_data().await;
                let (list, text, id) = match channel {
                    "sms" => (&data["sns"]["SMS"], "message", "message_id"),
                    _ => (&data["ses"]["Message"], "subject", "id"),
                };
                list.as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|m| references.iter().any(|r| m[text].as_str().is_some_and(|t| t.contains(r.as_str()))))
                    .filter_map(|m| m[id].as_str().map(str::to_owned))
                    .collect()
            }
        }
    }

    /// SES reports a permanent bounce of `message_id`: an SNS event as the `feedback` function
    /// gets it (the SES event publishing format), run through its handler.
    pub async fn report_bounce(&self, message_id: &str) {
        let notification = serde_json::json!({
            "eventType": "Bounce",
            "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "feedbackId": format!("fb-{message_id}"),
                       "bouncedRecipients": [{"emailAddress": "anna@example.ch", "status": "5.1.1"}]},
            "mail": {"messageId": message_id, "destination": ["anna@example.ch"]},
        });
        let event = serde_json::json!({"Records": [{"EventSource": "aws:sns", "Sns": {
            "Type": "Notification", "Message": notification.to_string()}}]});
        assert_eq!(
            sealpost::feedback::handle(&self.function_service(sealpost::lambda::FEEDBACK_USES), &event).await.expect("feedback"),
            1
        );
    }

    /// SNS logs a failed SMS delivery of `message_id`: a CloudWatch Logs subscription event
    /// (gzip'd, base64'd), run through the `feedback` handler.
    pub async fn report_sms_failure(&self, message_id: &str) {
        use base64::Engine;
        use std::io::Write;
        let line = serde_json::json!({"notification": {"messageId": message_id},
            "delivery": {"destination": "+41791234567", "providerResponse": "Unknown error attempting to reach phone"},
            "status": "FAILURE"});
        let batch = serde_json::json!({"messageType": "DATA_MESSAGE", "logEvents": [
            {"id": "1", "timestamp": 0, "message": line.to_string()}]});
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(batch.to_string().as_bytes()).expect("gzip");
        let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip"));
        let event = serde_json::json!({"awslogs": {"data": data}});
        assert_eq!(
            sealpost::feedback::handle(&self.function_service(sealpost::lambda::FEEDBACK_USES), &event).await.expect("feedback"),
            1
        );
    }

    /// AWS only: makes moto's SES publish bounce notifications of this app's sender domain to
    /// an SNS topic with an SQS queue subscribed, as an identity notification topic does on AWS
    /// (moto honours that, not configuration-set event destinations). Answers a function that
    /// waits for the next notification's SNS envelope; `None` on the embedded backend.
    pub async fn ses_bounce_notifications(&self) -> Option<impl AsyncFnMut() -> serde_json::Value + '_> {
        let Backend::Aws { moto_url, clients, .. } = &self.backend else { return None };
        let messaging = Clients::for_endpoints(moto_url, moto_url, REGION).await;
        let name = format!("ses-feedback-{}", hex::encode(sealpost::domain::random_bytes::<4>()));
        let topic = clients.sns().create_topic().name(&name).send().await.expect("topic").topic_arn.expect("arn");
        let queue = messaging.sqs().create_queue().queue_name(&name).send().await.expect("queue").queue_url.expect("url");
        let attrs = messaging
            .sqs()
            .get_queue_attributes()
            .queue_url(&queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue arn");
        let queue_arn = attrs.attributes().and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)).expect("arn");
        clients.sns().subscribe().topic_arn(&topic).protocol("sqs").endpoint(queue_arn).send().await.expect("subscribe");
        // SES v1 calls on the wire (query protocol): the SDK for SES v2 has no notification topics.
        let domain = admin::DEFAULT_SENDER.split('@').nth(1).expect("a domain");
        // moto finds the topic by splitting the source at '@', so for our `"Name" <addr>` source
        // it looks up `domain>`; AWS parses the address. Both keys are set.
        let topic_arg = topic.replace(':', "%3A");
        for form in [
            format!("Action=VerifyDomainIdentity&Version=2010-12-01&Domain={domain}"),
            format!(
                "Action=SetIdentityNotificationTopic&Version=2010-12-01&Identity={domain}&NotificationType=Bounce&SnsTopic={topic_arg}"
            ),
            format!(
                "Action=SetIdentityNotificationTopic&Version=2010-12-01&Identity={domain}%3E&NotificationType=Bounce&SnsTopic={topic_arg}"
            ),
        ] {
            let scope = format!("Credential=test/{}/{REGION}/ses/aws4_request", Utc::now().format("%Y%m%d"));
            let response = self
                .http
                .post(moto_url)
                .header("authorization", format!("AWS4-HMAC-SHA256 {scope}, SignedHeaders=host, Signature=0"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .expect("SES v1 call");
            assert!(response.status().is_success(), "moto SES: {}", response.text().await.unwrap_or_default());
        }
        Some(async move || {
            for _ in 0..50 {
                let out = messaging.sqs().receive_message().queue_url(&queue).wait_time_seconds(1).send().await.expect("receive");
                if let Some(m) = out.messages().first() {
                    return serde_json::from_str(m.body().expect("body")).expect("an SNS envelope");
                }
            }
            panic!("no SES notification reached the queue");
        })
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The app's store, for what the API cannot show (how a race between two calls ends).
    pub fn store(&self) -> &dyn Store {
        self.service.store.as_ref()
    }

    /// Creates another practice with `policy`; returns its API key.
    pub async fn add_practice(&self, name: &str, policy: Policy) -> String {
        let mut new = admin::NewPractice::named(name).expect("practice name");
        new.policy = policy;
        let (practice, key) = admin::create_practice(self.store(), new, self.clock.now()).await.expect("practice");
        if let Backend::Aws { practices, .. } = &self.backend {
            practices.lock().expect("practices").push(practice.id);
        }
        key
    }

    /// Lets `secret` (a fixed key, as in `events/`) act for the default practice.
    pub async fn add_api_key(&self, secret: &str) {
        let practice = self.store().list_practices().await.expect("practices")[0].id.clone();
        let key = sealpost::domain::ApiKey::for_secret(secret, practice, self.clock.now());
        self.store().put_api_key(&key).await.expect("key");
    }

    /// Revokes the API key (by its secret) so that later calls with it must fail.
    pub async fn revoke_key(&self, api_key: &str) {
        let key = self.store().find_api_key(&sealpost::domain::ApiKey::hash(api_key)).await.expect("lookup").expect("key");
        self.store().revoke_api_key(&key.id, self.clock.now()).await.expect("revoke");
    }

    /// Every SMS sent so far by this app's practices, oldest first.
    pub async fn sent_sms(&self) -> Vec<SentSms> {
        match &self.backend {
            Backend::Embedded => self.outbox("sms").await.into_iter().map(|m| SentSms { to: m.to, body: m.body }).collect(),
            Backend::Aws { .. } => {
                let references = self.own_references().await;
                let data = self.moto_data().await;
                data["sns"]["SMS"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|m| {
                        let body = m["message"].as_str()?.to_owned();
                        let ours = references.iter().any(|r| body.contains(r.as_str()));
                        ours.then(|| SentSms { to: m["phone_number"].as_str().unwrap_or_default().to_owned(), body })
                    })
                    .collect()
            }
        }
    }

    /// Every email sent so far by this app's practices, oldest first.
    pub async fn sent_emails(&self) -> Vec<SentEmail> {
        match &self.backend {
            Backend::Embedded => self
                .outbox("email")
                .await
                .into_iter()
                .map(|m| SentEmail { to: m.to, subject: m.subject.unwrap_or_default(), body: m.body })
                .collect(),
            Backend::Aws { .. } => {
                let references = self.own_references().await;
                let data = self.moto_data().await;
                data["ses"]["Message"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|m| {
                        let subject = m["subject"].as_str()?.to_owned();
                        let ours = references.iter().any(|r| subject.contains(r.as_str()));
                        ours.then(|| SentEmail {
                            to: m["destinations"]["ToAddresses"][0].as_str().unwrap_or_default().to_owned(),
                            subject,
                            body: m["body"].as_str().unwrap_or_default().to_owned(),
                        })
                    })
                    .collect()
            }
        }
    }

    /// References of every share of this app's practices (they appear in each SMS and subject).
    async fn own_references(&self) -> Vec<String> {
        let Backend::Aws { practices, .. } = &self.backend else { return vec![] };
        let ids = practices.lock().expect("practices").clone();
        let mut references = Vec::new();
        for id in ids {
            for share in self.store().list_shares(&id, None, 10_000).await.expect("list shares") {
                references.push(share.reference.to_string());
            }
        }
        references
    }

    async fn moto_data(&self) -> serde_json::Value {
        let Backend::Aws { moto_url, .. } = &self.backend else { unreachable!("only on AWS") };
        self.http.get(format!("{moto_url}/moto-api/data.json")).send().await.expect("moto data").json().await.expect("moto json")
    }

    async fn outbox(&self, channel: &str) -> Vec<OutboxLine> {
        let v: serde_json::Value =
            self.http.get(self.url("/_outbox")).send().await.expect("outbox").json().await.expect("outbox json");
        serde_json::from_value::<Vec<OutboxLine>>(v["messages"].clone())
            .expect("outbox lines")
            .into_iter()
            .filter(|m| m.channel == channel)
            .collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(serde::Deserialize)]
struct OutboxLine {
    channel: String,
    to: String,
    subject: Option<String>,
    body: String,
    #[serde(default)]
    message_id: String,
}

/// The first run of exactly six digits in an SMS: the code.
pub fn code_in(sms_body: &str) -> Option<String> {
    let bytes = sms_body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 6 {
                return Some(sms_body[start..i].to_owned());
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Up to ten messages of `queue` as Lambda's SQS event source hands them to a function: with
/// their receive count and group.
async fn receive(clients: &Clients, queue: &str) -> Vec<sealpost::aws::QueuedMessage> {
    use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
    let received = clients
        .sqs()
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .message_system_attribute_names(Attr::All)
        .send()
        .await
        .expect("receive");
    received
        .messages()
        .iter()
        .map(|m| {
            let attr = |name| m.attributes().and_then(|a| a.get(&name)).cloned().unwrap_or_default();
            sealpost::aws::QueuedMessage {
                message_id: m.message_id().expect("id").to_owned(),
                receipt_handle: m.receipt_handle().expect("receipt").to_owned(),
                body: m.body().expect("body").to_owned(),
                receive_count: attr(Attr::ApproximateReceiveCount).parse().unwrap_or(1),
                group_id: attr(Attr::MessageGroupId),
            }
        })
        .collect()
}

/// The send queue's messages through the `send-worker` handler until the queue is empty, as
/// Lambda's event source mapping would hand them over; answers how many were worked.
async fn pump_sends(clients: &Clients, queue: &str, worker: &Service) -> usize {
    let mut worked = 0;
    loop {
        let messages = receive(clients, queue).await;
        if messages.is_empty() {
            return worked;
        }
        let failed = sealpost::lambda::work_sends(worker, &messages).await;
        assert!(failed.is_empty(), "the send worker failed on {failed:?}");
        for m in &messages {
            clients.sqs().delete_message().queue_url(queue).receipt_handle(&m.receipt_handle).send().await.expect("delete");
            worked += 1;
        }
    }
}

/// A DynamoDB Streams record (the API's) as the Lambda event record the fan-out function reads.
fn lambda_record(record: &aws_sdk_dynamodbstreams::types::Record) -> aws_lambda_events::event::dynamodb::EventRecord {
    let image = |i: Option<&std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        serde_dynamo::Item::from(i.cloned().unwrap_or_default())
    };
    let mut out = aws_lambda_events::event::dynamodb::EventRecord::default();
    out.event_name = record.event_name().map(|n| n.as_str().to_owned()).unwrap_or_default();
    if let Some(d) = record.dynamodb() {
        out.change.keys = image(d.keys());
        out.change.new_image = image(d.new_image());
        out.change.old_image = image(d.old_image());
        out.change.sequence_number = d.sequence_number().map(str::to_owned);
    }
    out
}
