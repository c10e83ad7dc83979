//! The AWS adapters: DynamoDB, S3, SNS, SES v2, and configuration from the environment that
//! the Lambda functions and `sealpost serve --backend aws` share.
//!
//! | variable | meaning |
//! |---|---|
//! | `TABLE_NAME` | the DynamoDB table (TTL on `ttl`, stream on) |
//! | `BUCKET_NAME` | the documents bucket |
//! | `PUBLIC_URL` | the page's base URL, e.g. `https://docs.example.ch` |
//! | `PEPPER_PARAMETER` | SSM SecureString holding the pepper (base64, ≥ 32 bytes), read when first needed |
//! | `SEALPOST_PEPPER` | the pepper itself (base64), instead of SSM: for tests only |
//! | `SES_CONFIGURATION_SET` | optional: SES reports bounces and complaints through it |
//! | `WEBHOOK_QUEUE_URL` | the webhook deliveries' SQS FIFO queue (`webhook-fanout` only) |
//! | `SEALPOST_MESSAGING_REGION` | optional: the region of the SES and SNS clients, else `AWS_REGION` |
//! | `AWS_ENDPOINT_URL` | the SDK's standard override; in tests, moto's server |

mod dynamo;
mod dynamo_practices;
mod dynamo_webhooks;
mod notify;
mod presign;
pub mod provision;
mod queue;
mod s3;
mod sends;
/// Stream records, for the Lambda functions the stream feeds.
#[cfg(feature = "lambda")]
pub mod stream;

pub use dynamo::{DynamoStore, GSI_EXPIRY, GSI_PRACTICE};
pub use notify::{SesMail, SnsSms, mailbox};
pub use queue::{QueuedMessage, SendOutcome, WebhookQueue, postpone, send_queued};
pub use s3::S3Blobs;
pub use sends::{InProcessSends, SqsSendQueue};

use crate::domain::UrlRule;
use crate::ports::{BlobStore, Clock, MailSender, NotGranted, OnlyBlobs, SendQueue, SmsSender, Uses, WebhookPoster};
use crate::poster::HttpPoster;
use crate::secrets::{Keys, LazyKeys, MIN_PEPPER_BYTES};
use crate::service::{Service, Settings};
use anyhow::{Context, bail};
use base64::Engine;
use std::sync::{Arc, OnceLock};

/// What the AWS shape reads from its environment.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    pub table: String,
    pub bucket: String,
    pub public_url: String,
    pub ses_configuration_set: Option<String>,
    /// The SMS sender ID of a practice that has none of its own (`SMS_SENDER_ID`).
    pub sms_sender_id: Option<String>,
    /// HTTPS to public hosts only, always, from the environment; tests with a loopback
    /// receiver relax it explicitly.
    pub webhook_urls: UrlRule,
    /// The send queue's URL (`SEND_QUEUE_URL`): required where `send` queues work
    /// (send-share); `None` elsewhere, and for `sealpost serve --backend aws`, which works its
    /// sends in-process.
    pub send_queue_url: Option<String>,
    pepper: PepperSource,
}

#[derive(Clone)]
enum PepperSource {
    Parameter(String),
    Inline(Vec<u8>),
}

impl std::fmt::Debug for PepperSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Parameter(name) => write!(f, "Parameter({name})"),
            Self::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

/// The region email and SMS go out from, when not the process's own
/// (`SEALPOST_MESSAGING_REGION`): SES's identities and production access, and SNS's SMS
/// sandbox status, sender IDs and spend limit, are all per region, and may have been set up
/// in another one than the stack's.
fn messaging_region(var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Option<String>> {
    let Some(region) = var("SEALPOST_MESSAGING_REGION").filter(|v| !v.is_empty()) else { return Ok(None) };
    // A region name goes into the endpoint's host name: letters, digits and inner hyphens only.
    let well_formed = region.split('-').count() >= 3
        && region.split('-').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    if !well_formed {
        bail!("SEALPOST_MESSAGING_REGION is not a region name (e.g. eu-central-1): {region:?}");
    }
    Ok(Some(region))
}

/// A variable that must be set, and not empty.
fn required(var: &dyn Fn(&str) -> Option<String>, name: &str) -> anyhow::Result<String> {
    var(name).filter(|v| !v.is_empty()).with_context(|| format!("{name} is not set"))
}

impl AwsConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`AwsConfig::from_env`] over any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let pepper = match (var("SEALPOST_PEPPER"), var("PEPPER_PARAMETER")) {
            (Some(inline), _) => PepperSource::Inline(decode_pepper(&inline)?),
            (_, Some(name)) => PepperSource::Parameter(name),
            _ => bail!("set PEPPER_PARAMETER (an SSM SecureString) or SEALPOST_PEPPER"),
        };
        Ok(Self {
            table: required(&var, "TABLE_NAME")?,
            bucket: required(&var, "BUCKET_NAME")?,
            public_url: required(&var, "PUBLIC_URL")?.trim_end_matches('/').to_owned(),
            ses_configuration_set: var("SES_CONFIGURATION_SET").filter(|s| !s.is_empty()),
            sms_sender_id: match var("SMS_SENDER_ID").filter(|s| !s.is_empty()) {
                Some(id) if id.len() <= 11 && id.bytes().all(|b| b.is_ascii_alphanumeric()) => Some(id),
                Some(_) => bail!("SMS_SENDER_ID is 1 to 11 letters and digits"),
                None => None,
            },
            webhook_urls: UrlRule::HttpsOnly,
            send_queue_url: var("SEND_QUEUE_URL").filter(|s| !s.is_empty()),
            pepper,
        })
    }

    /// The inline pepper (tests restart an app on the same data with it).
    pub fn pepper_for_tests(&self) -> Vec<u8> {
        match &self.pepper {
            PepperSource::Inline(bytes) => bytes.clone(),
            PepperSource::Parameter(_) => Vec::new(),
        }
    }

    /// For tests: explicit values instead of the environment.
    pub fn new(table: String, bucket: String, public_url: String, pepper: Vec<u8>) -> Self {
        Self {
            table,
            bucket,
            public_url,
            ses_configuration_set: None,
            sms_sender_id: None,
            webhook_urls: UrlRule::HttpsOnly,
            send_queue_url: None,
            pepper: PepperSource::Inline(pepper),
        }
    }
}

fn decode_pepper(b64: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).context("the pepper is not base64")?;
    if bytes.len() < MIN_PEPPER_BYTES {
        bail!("the pepper must hold at least {MIN_PEPPER_BYTES} bytes");
    }
    Ok(bytes)
}

/// SDK clients, shared by the adapters of one process (one Lambda cold start), each built when
/// first asked for. A function asks only for the clients its adapters call, so it builds no
/// other at a cold start (a verify never builds S3's, SNS's or SES's: BENCHMARKS.md, section 3),
/// and a client nothing asks for is not linked into the binary at all. Clones share the clients.
#[derive(Clone)]
pub struct Clients(Arc<ClientCells>);

#[derive(Clone)]
struct ClientCells {
    /// DynamoDB, S3, SSM and SQS.
    storage: aws_config::SdkConfig,
    /// SNS and SES (a second moto server in tests; the same configuration otherwise).
    messaging: aws_config::SdkConfig,
    /// Buckets by path, not by subdomain: what a custom endpoint (moto, LocalStack) serves.
    path_style: bool,
    dynamodb: OnceLock<aws_sdk_dynamodb::Client>,
    s3: OnceLock<aws_sdk_s3::Client>,
    sns: OnceLock<aws_sdk_sns::Client>,
    ses: OnceLock<aws_sdk_sesv2::Client>,
    ssm: OnceLock<aws_sdk_ssm::Client>,
    sqs: OnceLock<aws_sdk_sqs::Client>,
}

impl Clients {
    /// From the standard AWS environment (region, credentials, `AWS_ENDPOINT_URL`), and
    /// `SEALPOST_MESSAGING_REGION` for SES and SNS.
    pub async fn from_env() -> anyhow::Result<Self> {
        let messaging_region = messaging_region(&|name| std::env::var(name).ok())?;
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(sdk_http_client()).load().await;
        let path_style = std::env::var("AWS_ENDPOINT_URL").is_ok() || std::env::var("AWS_ENDPOINT_URL_S3").is_ok();
        let messaging = in_region(&shared, messaging_region);
        Ok(Self::new(shared, messaging, path_style))
    }

    /// From what Lambda puts in every function's environment: `AWS_REGION` and the execution
    /// role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, plus the SDK's
    /// `AWS_ENDPOINT_URL`, `AWS_USE_FIPS_ENDPOINT` and `AWS_USE_DUALSTACK_ENDPOINT` when set.
    /// aws-config's loader is not used: its provider chains (profile files, web identity, ECS,
    /// IMDS, STS) cost a cold start time and a function binary megabytes, and on Lambda the
    /// first link of the chain always answers. `sealpost serve --backend aws` keeps the whole
    /// chain ([`Clients::from_env`]).
    pub fn from_lambda_env() -> anyhow::Result<Self> {
        Self::from_lambda_vars(|name| std::env::var(name).ok())
    }

    /// [`Clients::from_lambda_env`] over any source of variables (the tests' moto settings).
    pub fn from_lambda_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).context("AWS_REGION is not set")?;
        let credentials = Credentials::new(
            required(&var, "AWS_ACCESS_KEY_ID")?,
            required(&var, "AWS_SECRET_ACCESS_KEY")?,
            var("AWS_SESSION_TOKEN"),
            None,
            "lambda-environment",
        );
        let flag = |name: &str| var(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let mut config = aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .http_client(sdk_http_client())
            .use_fips(flag("AWS_USE_FIPS_ENDPOINT"))
            .use_dual_stack(flag("AWS_USE_DUALSTACK_ENDPOINT"));
        let endpoint = var("AWS_ENDPOINT_URL");
        let path_style = endpoint.is_some();
        config.set_endpoint_url(endpoint);
        let config = config.build();
        let messaging = in_region(&config, messaging_region(&var)?);
        Ok(Self::new(config, messaging, path_style))
    }

    /// Clients for local endpoints (moto's servers) with dummy credentials, leaving the process
    /// environment alone: what the tests use.
    /// `messaging` serves SNS and SES, `storage` the rest (they may be the same server).
    pub async fn for_endpoints(storage: &str, messaging: &str, region: &str) -> Self {
        let config = |endpoint: &str| {
            let credentials = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "sealpost-tests");
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .http_client(sdk_http_client())
                .endpoint_url(endpoint)
                .region(aws_config::Region::new(region.to_owned()))
                .credentials_provider(credentials)
                .load()
        };
        Self::new(config(storage).await, config(messaging).await, true)
    }

    /// The region SES and SNS are called in.
    pub fn messaging_region(&self) -> Option<&str> {
        self.0.messaging.region().map(|r| r.as_ref())
    }

    fn new(storage: aws_config::SdkConfig, messaging: aws_config::SdkConfig, path_style: bool) -> Self {
        Self(Arc::new(ClientCells {
            storage,
            messaging,
            path_style,
            dynamodb: OnceLock::new(),
            s3: OnceLock::new(),
            sns: OnceLock::new(),
            ses: OnceLock::new(),
            ssm: OnceLock::new(),
            sqs: OnceLock::new(),
        }))
    }

    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        self.0.dynamodb.get_or_init(|| aws_sdk_dynamodb::Client::new(&self.0.storage))
    }

    pub fn s3(&self) -> &aws_sdk_s3::Client {
        self.0.s3.get_or_init(|| {
            let config = aws_sdk_s3::config::Builder::from(&self.0.storage).force_path_style(self.0.path_style);
            aws_sdk_s3::Client::from_conf(config.build())
        })
    }

    pub fn sns(&self) -> &aws_sdk_sns::Client {
        self.0.sns.get_or_init(|| aws_sdk_sns::Client::new(&self.0.messaging))
    }

    pub fn ses(&self) -> &aws_sdk_sesv2::Client {
        self.0.ses.get_or_init(|| aws_sdk_sesv2::Client::new(&self.0.messaging))
    }

    pub fn ssm(&self) -> &aws_sdk_ssm::Client {
        self.0.ssm.get_or_init(|| aws_sdk_ssm::Client::new(&self.0.storage))
    }

    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.0.sqs.get_or_init(|| aws_sdk_sqs::Client::new(&self.0.storage))
    }

    /// A copy of these clients with `client` for DynamoDB (tests count its calls through an
    /// interceptor). The copy starts with the clients built so far; each builds the rest anew.
    pub fn with_dynamodb(&self, client: aws_sdk_dynamodb::Client) -> Self {
        let mut cells = (*self.0).clone();
        cells.dynamodb = OnceLock::from(client);
        Self(Arc::new(cells))
    }

    /// These clients with `client` for SNS (tests point it at a closed port).
    pub fn with_sns(&self, client: aws_sdk_sns::Client) -> Self {
        let mut cells = (*self.0).clone();
        cells.sns = OnceLock::from(client);
        Self(Arc::new(cells))
    }
}

/// `config`, in `region` when one is given.
fn in_region(config: &aws_config::SdkConfig, region: Option<String>) -> aws_config::SdkConfig {
    match region {
        Some(region) => config.to_builder().region(aws_config::Region::new(region)).build(),
        None => config.clone(),
    }
}

/// The roots AWS's endpoints chain to: Amazon Trust Services' Amazon Root CA 1–4 and the
/// Starfield Services Root CA G2 that cross-signs them (https://www.amazontrust.com/repository/,
/// copied from Debian's ca-certificates). AWS serves every service endpoint under these.
const AMAZON_TRUST_ROOTS: &[u8] = include_bytes!("amazon-trust-roots.pem");

/// The SDK clients' one HTTPS client: rustls (aws-lc) trusting Amazon's roots only. No other CA
/// can stand in for DynamoDB or S3, and a cold start parses five certificates instead of
/// reading and parsing the system's whole store (about 2 ms per client in BENCHMARKS.md's
/// cold starts). An endpoint override (`AWS_ENDPOINT_URL`) is plain HTTP in tests, or an AWS
/// endpoint (VPC, FIPS) under the same roots.
fn sdk_http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let trust = TrustStore::empty().with_pem_certificate(AMAZON_TRUST_ROOTS);
    // `build` cannot fail today; if it ever does, the system's roots are the safe fallback.
    let context = TlsContext::builder().with_trust_store(trust).build().unwrap_or_default();
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::AwsLc)).tls_context(context).build_https()
}

/// The service over the AWS adapters of the ports `uses` names, the others [`NotGranted`]: what
/// a Lambda function builds for its routes (`crate::lambda::function_router`), whose role grants
/// it no more. `sealpost serve` uses everything. A pepper kept in SSM is read when a request
/// first needs it ([`LazyKeys`]), not here.
pub fn build_service(config: &AwsConfig, clients: &Clients, clock: Arc<dyn Clock>, uses: Uses) -> Arc<Service> {
    let sends: Arc<dyn SendQueue> = match (&config.send_queue_url, uses.has(Uses::SENDS)) {
        (Some(url), true) => Arc::new(SqsSendQueue::new(clients.clone(), url.clone())),
        _ => Arc::new(NotGranted::SENDS),
    };
    build_service_with(config, clients, clock, uses, sends)
}

/// [`build_service`] with the send queue given (`sealpost serve --backend aws` works its sends
/// in-process: [`InProcessSends`]).
pub fn build_service_with(
    config: &AwsConfig,
    clients: &Clients,
    clock: Arc<dyn Clock>,
    uses: Uses,
    sends: Arc<dyn SendQueue>,
) -> Arc<Service> {
    let keys = match &config.pepper {
        _ if !uses.has(Uses::KEYS) => LazyKeys::none(),
        PepperSource::Inline(bytes) => LazyKeys::ready(Keys::from_pepper(bytes)),
        PepperSource::Parameter(name) => {
            let (clients, name) = (clients.clone(), name.clone());
            LazyKeys::load_with(Box::new(move || {
                let (clients, name) = (clients.clone(), name.clone());
                Box::pin(async move { read_pepper(clients.ssm(), &name).await })
            }))
        }
    };
    let any_documents = Uses::DOCUMENTS
        .and(Uses::DOCUMENT_LINKS)
        .and(Uses::DOCUMENT_DELETION)
        .and(Uses::DOCUMENT_SIZES)
        .and(Uses::UPLOAD_LINKS)
        .and(Uses::BLOB_READS);
    let blobs: Arc<dyn BlobStore> = match uses.has_any(any_documents) {
        // Only the calls the function's set allows (its role grants no others).
        true => Arc::new(OnlyBlobs { inner: Arc::new(S3Blobs::new(clients.clone(), config.bucket.clone())), uses }),
        false => Arc::new(NotGranted::DOCUMENTS),
    };
    let sms: Arc<dyn SmsSender> = match uses.has(Uses::SMS) {
        true => Arc::new(SnsSms::new(clients.clone(), config.sms_sender_id.clone())),
        false => Arc::new(NotGranted::SMS),
    };
    let mail: Arc<dyn MailSender> = match uses.has(Uses::EMAIL) {
        true => Arc::new(SesMail::new(clients.clone(), config.ses_configuration_set.clone())),
        false => Arc::new(NotGranted::EMAIL),
    };
    let poster: Arc<dyn WebhookPoster> = match uses.has(Uses::WEBHOOK_POSTS) {
        true => Arc::new(HttpPoster::new(config.webhook_urls)),
        false => Arc::new(NotGranted::WEBHOOK_POSTS),
    };
    Arc::new(Service {
        // Built now, not at the first request: every service reads its store.
        store: Arc::new(DynamoStore::new(clients.dynamodb().clone(), config.table.clone())),
        blobs,
        sms,
        mail,
        poster,
        sends,
        clock,
        keys,
        settings: Settings {
            public_url: config.public_url.clone(),
            webhook_urls: config.webhook_urls,
            max_inline_bytes: crate::service::AWS_MAX_INLINE_BYTES,
            max_share_bytes: Some(crate::service::AWS_MAX_SHARE_BYTES),
        },
    })
}

/// The pepper from its SSM SecureString.
async fn read_pepper(ssm: &aws_sdk_ssm::Client, name: &str) -> anyhow::Result<Vec<u8>> {
    let out = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .with_context(|| format!("reading the pepper from SSM parameter {name}"))?;
    decode_pepper(out.parameter().and_then(|p| p.value()).context("the pepper parameter is empty")?)
}

#[cfg(test)]
mod tests {
    use super::AMAZON_TRUST_ROOTS;

    #[test]
    fn the_default_sms_sender_id_is_read_and_checked() {
        let config = |sender: &str| {
            super::AwsConfig::from_vars(|name| match name {
                "TABLE_NAME" | "BUCKET_NAME" | "PUBLIC_URL" => Some("x".into()),
                "SEALPOST_PEPPER" => Some("A".repeat(44)),
                "SMS_SENDER_ID" => Some(sender.into()),
                _ => None,
            })
        };
        assert_eq!(config("Praxis").unwrap().sms_sender_id.as_deref(), Some("Praxis"));
        assert_eq!(config("").unwrap().sms_sender_id, None, "the template leaves it out when empty");
        for bad in ["Praxis Muster", "TwelveChars1", "Präxis"] {
            assert!(config(bad).is_err(), "{bad:?}");
        }
    }
    use rustls::pki_types::{CertificateDer, pem::PemObject};

    /// What a Lambda function has in its environment, plus `extra`.
    fn lambda_vars(extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: std::collections::HashMap<String, String> =
            [("AWS_REGION", "eu-central-2"), ("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", "secret")]
                .into_iter()
                .chain(extra.iter().copied())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn the_messaging_region_is_the_functions_own_unless_one_is_given() {
        let clients = super::Clients::from_lambda_vars(lambda_vars(&[])).unwrap();
        assert_eq!(clients.messaging_region(), Some("eu-central-2"));
        let clients = super::Clients::from_lambda_vars(lambda_vars(&[("SEALPOST_MESSAGING_REGION", "")])).unwrap();
        assert_eq!(clients.messaging_region(), Some("eu-central-2"), "the template leaves it out when empty");

        let clients = super::Clients::from_lambda_vars(lambda_vars(&[("SEALPOST_MESSAGING_REGION", "eu-central-1")])).unwrap();
        assert_eq!(clients.messaging_region(), Some("eu-central-1"));
        assert_eq!(clients.0.storage.region().map(|r| r.as_ref()), Some("eu-central-2"), "storage stays");

        for bad in ["eu central 1", "EU-CENTRAL-1", "eu-central-", "eucentral1", "eu-central-1.evil.example", "-eu-1"] {
            assert!(super::Clients::from_lambda_vars(lambda_vars(&[("SEALPOST_MESSAGING_REGION", bad)])).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_sdk_trusts_amazons_five_roots_and_they_parse() {
        let certs: Vec<CertificateDer<'_>> =
            CertificateDer::pem_slice_iter(AMAZON_TRUST_ROOTS).collect::<Result<_, _>>().expect("PEM");
        let mut roots = rustls::RootCertStore::empty();
        assert_eq!(roots.add_parsable_certificates(certs), (5, 0), "all five are trust anchors");
    }
}
