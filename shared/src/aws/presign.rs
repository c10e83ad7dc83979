//! Presigned S3 URLs without S3's client: the bucket's address from the SDK's own S3 endpoint
//! rules, the signature from aws-sigv4, made as the SDK's presigner makes them (the tests hold
//! the two URLs equal in every endpoint shape we configure). Written when document-url and
//! archive-url linked only what they called (BENCHMARKS.md, section 3, item 8); since every
//! function links every route (item 10) the SDK's presigner would serve as well, which #20
//! leaves to measure: it builds S3's client on a function's first link.

use super::Clients;
use crate::ports::{PortError, PortResult};
use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

/// What stays as it is in a key or a query value: RFC 3986's unreserved characters (`/` too, in
/// a key), as the SDK writes them.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
const KEY: &AsciiSet = &VALUE.remove(b'/');

fn err(e: impl std::fmt::Display) -> PortError {
    PortError::Other(format!("s3 presign: {e}"))
}

/// What a presigned URL lets its holder do with a key.
#[derive(Debug, Clone, Copy)]
pub enum Presigned<'a> {
    /// GET it, S3 answering with the `response-*` overrides given (name, value; unencoded).
    Get { overrides: &'a [(&'a str, &'a str)] },
    /// PUT exactly `size` bytes whose SHA-256 is `checksum` (base64) to it. The URL signs
    /// Content-Length and `x-amz-checksum-sha256`, which the uploader sends and S3 checks the
    /// body against: other bytes are refused (`BadDigest`), never stored. Nothing else is sent
    /// (the bucket encrypts every object by default).
    Put { size: u64, checksum: &'a str },
}

/// The endpoint S3's client takes from `config`, read as `aws_sdk_s3::Config::from` reads it: one
/// set in code, else S3's own (`AWS_ENDPOINT_URL_S3`, or `endpoint_url` under a profile's `s3`
/// services section, which `aws_config` loads for `sealpost serve --backend aws`), else the
/// global `AWS_ENDPOINT_URL`. The URLs then point where the client puts the documents.
fn s3_endpoint(config: &aws_types::SdkConfig) -> Option<String> {
    use aws_types::service_config::ServiceConfigKey;
    let global = || config.endpoint_url().map(str::to_owned);
    if config.get_origin("endpoint_url").is_client_config() {
        return global();
    }
    let key = ServiceConfigKey::builder().service_id("S3").env("AWS_ENDPOINT_URL").profile("endpoint_url").build();
    key.ok().and_then(|key| config.service_config()?.load_config(key)).or_else(global)
}

/// How long before its credentials end a URL stops: S3 and this machine may disagree on the
/// time by a little.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(60);

/// A URL that does `what` with `key` in `bucket` until `now + ttl`, or shorter: S3 refuses a
/// URL once the credentials that signed it have ended, so one signed with credentials that say
/// when they end lives no longer than they do. Answers the URL and its life. (Lambda's own
/// credentials say nothing of their end: docs/api.md, "A URL may stop working".)
pub async fn presign(
    clients: &Clients,
    bucket: &str,
    key: &str,
    what: Presigned<'_>,
    ttl: Duration,
    now: SystemTime,
) -> PortResult<(String, Duration)> {
    let config = &clients.0.storage;
    let region = config.region().ok_or_else(|| err("no region"))?.to_string();
    let params = Params::builder()
        .bucket(bucket)
        .region(&region)
        .use_fips(config.use_fips().unwrap_or(false))
        .use_dual_stack(config.use_dual_stack().unwrap_or(false))
        .force_path_style(clients.0.path_style)
        .set_endpoint(s3_endpoint(config))
        .build()
        .map_err(err)?;
    // One resolver per process, as a client holds one: it keeps the last bucket's endpoint.
    static RESOLVER: LazyLock<DefaultResolver> = LazyLock::new(DefaultResolver::new);
    let endpoint = RESOLVER.resolve_endpoint(&params).await.map_err(err)?;

    let (method, operation, overrides, put) = match what {
        Presigned::Get { overrides } => ("GET", "GetObject", overrides, None),
        Presigned::Put { size, checksum } => ("PUT", "PutObject", &[][..], Some((size.to_string(), checksum))),
    };
    let mut url = format!("{}/{}?x-id={operation}", endpoint.url().trim_end_matches('/'), utf8_percent_encode(key, KEY));
    for (name, value) in overrides {
        url.push_str(&format!("&{name}={}", utf8_percent_encode(value, VALUE)));
    }
    let headers: Vec<(&str, &str)> = match &put {
        Some((size, checksum)) => vec![("content-length", size.as_str()), (crate::ports::UPLOAD_CHECKSUM_HEADER, checksum)],
        None => vec![],
    };

    let credentials =
        config.credentials_provider().ok_or_else(|| err("no credentials"))?.provide_credentials().await.map_err(err)?;
    let ttl = match credentials.expiry() {
        Some(end) => {
            ttl.min(end.duration_since(now).unwrap_or_default().saturating_sub(CREDENTIALS_MARGIN)).max(Duration::from_secs(1))
        }
        None => ttl,
    };
    let identity = Identity::from(credentials);
    // S3's signing: one round of percent-encoding, the path as it is, and for a presigned URL
    // an unsigned payload.
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(ttl);
    let signing = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("s3")
        .time(now)
        .settings(settings)
        .build()
        .map_err(err)?
        .into();
    let request = SignableRequest::new(method, &url, headers.into_iter(), SignableBody::UnsignedPayload).map_err(err)?;
    let (instructions, _) = sign(request, &signing).map_err(err)?.into_parts();
    let mut signed = axum::http::Request::builder().uri(&url).body(()).map_err(err)?;
    instructions.apply_to_request_http1x(&mut signed);
    Ok((signed.uri().to_string(), ttl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::presigning::PresigningConfig;
    use std::collections::BTreeMap;

    fn clients(vars: &[(&str, &str)]) -> Clients {
        let vars: BTreeMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Clients::from_lambda_vars(|name| vars.get(name).cloned()).expect("clients")
    }

    /// Scheme, host, path, and the query's pairs decoded and sorted: what S3 checks the
    /// signature over, whatever order or encoding the two writers chose.
    fn parts(url: &str) -> (String, BTreeMap<String, String>) {
        let mut url = url::Url::parse(url).expect("a URL");
        let query = url.query_pairs().into_owned().collect();
        url.set_query(None);
        (url.to_string(), query)
    }

    const BUCKET: &str = "sealpost-documents-1a2b";

    /// What `aws_config` loads from `AWS_ENDPOINT_URL_S3` (or a profile's `s3` section).
    #[derive(Debug)]
    struct S3Endpoint(&'static str);

    impl aws_types::service_config::LoadServiceConfig for S3Endpoint {
        fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
            (key.service_id() == "S3" && key.env() == "AWS_ENDPOINT_URL").then(|| self.0.to_owned())
        }
    }

    #[tokio::test]
    async fn links_point_where_s3s_own_endpoint_setting_says() {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        let config = aws_types::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-2"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                None,
                None,
                "test",
            )))
            .endpoint_url("http://127.0.0.1:5710")
            .service_config(S3Endpoint("http://127.0.0.1:5799"))
            .build();
        let clients = Clients::new(config.clone(), config, true);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let ttl = Duration::from_secs(300);
        let (ours, _) = presign(&clients, BUCKET, "k", Presigned::Get { overrides: &[] }, ttl, now).await.expect("ours");
        let presigning = PresigningConfig::builder().start_time(now).expires_in(ttl).build().expect("config");
        let sdk = clients.s3().get_object().bucket(BUCKET).key("k").presigned(presigning).await.expect("the SDK's");
        assert!(ours.starts_with("http://127.0.0.1:5799/sealpost-documents-1a2b/k?"), "{ours}");
        assert_eq!(parts(&ours), parts(sdk.uri()), "ours: {ours}\nsdk:  {}", sdk.uri());
    }

    #[tokio::test]
    async fn signs_as_the_sdks_presigner_in_every_endpoint_shape() {
        let creds = [("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")];
        let token = ("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjE+/token==");
        let shapes: Vec<Vec<(&str, &str)>> = vec![
            vec![("AWS_REGION", "eu-central-2")],
            vec![("AWS_REGION", "eu-central-2"), token],
            vec![("AWS_REGION", "us-east-1"), ("AWS_USE_FIPS_ENDPOINT", "true")],
            vec![("AWS_REGION", "eu-central-2"), ("AWS_USE_DUALSTACK_ENDPOINT", "true")],
            vec![("AWS_REGION", "cn-north-1")],
            vec![("AWS_REGION", "eu-central-2"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:5710")],
        ];
        let key = "shares/sh_AbC-123/doc_x9~Z.pdf";
        let disposition = crate::http::content_disposition("Befund Müller (2026).pdf");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let ttl = Duration::from_secs(300);
        for shape in shapes {
            let vars: Vec<(&str, &str)> = creds.iter().chain(shape.iter()).copied().collect();
            let clients = clients(&vars);
            let presigning = || PresigningConfig::builder().start_time(now).expires_in(ttl).build().expect("config");

            let overrides =
                [("response-content-disposition", disposition.as_str()), ("response-content-type", "application/pdf")];
            let (ours, _) =
                presign(&clients, BUCKET, key, Presigned::Get { overrides: &overrides }, ttl, now).await.expect("ours");
            let sdk = clients
                .s3()
                .get_object()
                .bucket(BUCKET)
                .key(key)
                .response_content_disposition(&disposition)
                .response_content_type("application/pdf")
                .presigned(presigning())
                .await
                .expect("the SDK's");
            assert_eq!(parts(&ours), parts(sdk.uri()), "GET {shape:?}\nours: {ours}\nsdk:  {}", sdk.uri());

            let checksum = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=";
            let put = Presigned::Put { size: 123_456_789, checksum };
            let (ours, _) = presign(&clients, BUCKET, key, put, ttl, now).await.expect("ours");
            let sdk = clients
                .s3()
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .content_length(123_456_789)
                .checksum_sha256(checksum)
                .presigned(presigning())
                .await
                .expect("the SDK's");
            assert_eq!(parts(&ours), parts(sdk.uri()), "PUT {shape:?}\nours: {ours}\nsdk:  {}", sdk.uri());
            assert_eq!(
                parts(&ours).1["X-Amz-SignedHeaders"],
                "content-length;host;x-amz-checksum-sha256",
                "an uploader sends Content-Length and the checksum S3 checks the bytes against"
            );
        }
    }

    /// A URL lives no longer than the credentials that sign it (less a minute), and says so:
    /// S3 would refuse it after they end, however long it was signed for.
    #[tokio::test]
    async fn a_url_ends_with_the_credentials_that_sign_it() {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let signed = |expiry: Option<SystemTime>| {
            let config = aws_types::SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("eu-central-2"))
                .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(Credentials::new(
                    "ASIAEXAMPLE",
                    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    Some("token".into()),
                    expiry,
                    "test",
                )))
                .build();
            async move {
                let clients = Clients::new(config.clone(), config, false);
                let put = Presigned::Put { size: 1, checksum: "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=" };
                let (url, ttl) = presign(&clients, BUCKET, "k", put, Duration::from_secs(3600), now).await.expect("signed");
                let query = parts(&url).1;
                assert_eq!(query["X-Amz-Expires"], ttl.as_secs().to_string(), "the URL says the life answered");
                ttl
            }
        };
        assert_eq!(signed(None).await, Duration::from_secs(3600), "credentials that do not say when they end");
        assert_eq!(signed(Some(now + Duration::from_secs(7200))).await, Duration::from_secs(3600));
        assert_eq!(signed(Some(now + Duration::from_secs(1200))).await, Duration::from_secs(1140));
        assert_eq!(signed(Some(now + Duration::from_secs(10))).await, Duration::from_secs(1), "ending now");
    }
}
