//! `sealpost tenant …` and `sealpost key …`.

use clap::Subcommand;
use sealpost::admin::{self, NewPractice};
use sealpost::domain::{Email, Language, Practice, PracticeId};
use sealpost::ports::Store;
use std::path::PathBuf;

/// Where practices and keys live: the embedded data dir, or the AWS table (TABLE_NAME).
#[derive(clap::Args)]
pub struct DataDir {
    #[arg(long, env = "SEALPOST_DATA_DIR", default_value = "./.sealpost")]
    data_dir: PathBuf,
    #[arg(long, value_enum, default_value = "embedded")]
    backend: crate::Backend,
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a practice and print its first API key (shown once).
    Create(CreateTenant),
    /// List practices.
    List(DataDir),
    /// A practice's webhook endpoints (the same as the `/v1/webhooks` API).
    #[command(subcommand)]
    Webhook(WebhookCommand),
}

/// A practice, in a data dir or table.
#[derive(clap::Args)]
pub struct Tenant {
    #[arg(long)]
    tenant: String,
    #[command(flatten)]
    dir: DataDir,
}

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Register an endpoint; prints its signing secret (shown once).
    Add {
        #[arg(long)]
        url: String,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        at: Tenant,
    },
    /// List endpoints with their last attempt.
    List(Tenant),
    /// Remove an endpoint (wh_…).
    Remove {
        id: String,
        #[command(flatten)]
        at: Tenant,
    },
    /// Post a signed test event to an endpoint now and show the answer.
    Test {
        id: String,
        #[command(flatten)]
        at: Tenant,
    },
    /// Deliveries that failed for good.
    Failures {
        id: String,
        #[command(flatten)]
        at: Tenant,
    },
}

#[derive(clap::Args)]
pub struct CreateTenant {
    /// Display name, shown in email, SMS and on the page (at most 40 characters).
    #[arg(long)]
    name: String,
    #[arg(long)]
    sender_email: Option<String>,
    #[arg(long)]
    reply_to: Option<String>,
    /// SMS sender id (at most 11 letters or digits).
    #[arg(long)]
    sms_sender: Option<String>,
    #[arg(long, default_value = "de")]
    language: String,
    /// Link validity when a share does not say (days).
    #[arg(long, default_value_t = 30)]
    link_days: u32,
    /// Link validity for one auth method's shares instead, e.g. `date_of_birth=14` or
    /// `sms=90` (repeatable; methods: sms, manual, date_of_birth, insurance_number).
    #[arg(long = "link-days-for", value_name = "METHOD=DAYS", value_parser = parse_method_days)]
    link_days_for: Vec<(sealpost::domain::AuthMethod, u32)>,
    #[arg(long, default_value_t = 90)]
    max_link_days: u32,
    /// Link ends this many hours after the first successful verification.
    #[arg(long)]
    window_hours: Option<u32>,
    /// Patients may not request new codes themselves.
    #[arg(long)]
    no_self_service: bool,
    /// Strict mode: codes expire after this many minutes.
    #[arg(long)]
    code_lifetime_minutes: Option<u32>,
    #[arg(long, default_value_t = 500)]
    daily_sms_cap: u32,
    /// Patients may send a message and files back after the code, unless a share says not
    /// (`allow_reply`).
    #[arg(long)]
    allow_reply: bool,
    #[command(flatten)]
    dir: DataDir,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create another API key for a practice (shown once).
    Create {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List a practice's keys (prefixes only).
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Revoke a key by its id (key_…).
    Revoke {
        key_id: String,
        #[command(flatten)]
        dir: DataDir,
    },
}

/// `date_of_birth=14`: an auth method by its API name, and days.
fn parse_method_days(raw: &str) -> Result<(sealpost::domain::AuthMethod, u32), String> {
    let (method, days) = raw.split_once('=').ok_or("expected METHOD=DAYS, e.g. date_of_birth=14")?;
    let method = serde_json::from_value(serde_json::Value::String(method.trim().to_owned()))
        .map_err(|_| format!("{method:?} is no auth method: sms, manual, date_of_birth or insurance_number"))?;
    let days = days.trim().parse().map_err(|_| format!("{days:?} is not a number of days"))?;
    Ok((method, days))
}

async fn service(dir: &DataDir) -> anyhow::Result<std::sync::Arc<sealpost::service::Service>> {
    let clock = std::sync::Arc::new(sealpost::ports::SystemClock);
    match dir.backend {
        crate::Backend::Embedded => sealpost::embedded::admin_service(&dir.data_dir, clock).await,
        crate::Backend::Aws => aws_service(clock).await,
    }
}

#[cfg(feature = "aws")]
async fn aws_service(
    clock: std::sync::Arc<sealpost::ports::SystemClock>,
) -> anyhow::Result<std::sync::Arc<sealpost::service::Service>> {
    let config = sealpost::aws::AwsConfig::from_env()?;
    let clients = sealpost::aws::Clients::from_env().await?;
    Ok(sealpost::aws::build_service(&config, &clients, clock, sealpost::ports::Uses::EVERYTHING))
}

#[cfg(not(feature = "aws"))]
async fn aws_service(
    _: std::sync::Arc<sealpost::ports::SystemClock>,
) -> anyhow::Result<std::sync::Arc<sealpost::service::Service>> {
    anyhow::bail!("this sealpost was built without the AWS adapters (--features aws)")
}

async fn webhook(cmd: WebhookCommand) -> anyhow::Result<()> {
    let at = match &cmd {
        WebhookCommand::Add { at, .. }
        | WebhookCommand::List(at)
        | WebhookCommand::Remove { at, .. }
        | WebhookCommand::Test { at, .. }
        | WebhookCommand::Failures { at, .. } => at,
    };
    let svc = service(&at.dir).await?;
    let practice = svc.store.get_practice(&practice_id(&at.tenant)?).await?;
    let practice = practice.ok_or_else(|| anyhow::anyhow!("no practice {}", at.tenant))?;
    // The API's own errors (a refused URL names its field) read well as they are.
    let api = |e: sealpost::Error| anyhow::anyhow!("{e}");
    let webhook_id = |id: &str| sealpost::domain::WebhookId::parse(id).ok_or(sealpost::Error::NotFound).map_err(api);
    let shown = match &cmd {
        WebhookCommand::Add { url, description, .. } => {
            let body = serde_json::json!({ "url": url, "description": description });
            serde_json::to_value(svc.create_webhook(&practice, body.to_string().as_bytes()).await.map_err(api)?)?
        }
        WebhookCommand::List(_) => serde_json::to_value(svc.list_webhooks(&practice).await.map_err(api)?)?,
        WebhookCommand::Remove { id, .. } => {
            svc.delete_webhook(&practice, &webhook_id(id)?).await.map_err(api)?;
            serde_json::json!({ "removed": id })
        }
        WebhookCommand::Test { id, .. } => {
            serde_json::to_value(svc.test_webhook(&practice, &webhook_id(id)?).await.map_err(api)?)?
        }
        WebhookCommand::Failures { id, .. } => {
            serde_json::to_value(svc.failed_deliveries(&practice, &webhook_id(id)?).await.map_err(api)?)?
        }
    };
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

async fn open(dir: &DataDir) -> anyhow::Result<Box<dyn Store>> {
    match dir.backend {
        crate::Backend::Embedded => Ok(Box::new(sealpost::embedded::open_store(&dir.data_dir)?)),
        crate::Backend::Aws => aws_store().await,
    }
}

#[cfg(feature = "aws")]
async fn aws_store() -> anyhow::Result<Box<dyn Store>> {
    let table = std::env::var("TABLE_NAME").map_err(|_| anyhow::anyhow!("TABLE_NAME is not set"))?;
    let clients = sealpost::aws::Clients::from_env().await?;
    Ok(Box::new(sealpost::aws::DynamoStore::new(clients.dynamodb().clone(), table)))
}

#[cfg(not(feature = "aws"))]
async fn aws_store() -> anyhow::Result<Box<dyn Store>> {
    anyhow::bail!("this sealpost was built without the AWS adapters (--features aws)")
}

/// A practice's policy in a line: links' days (by method where set), their maximum, replies.
fn policy_summary(policy: &sealpost::domain::Policy) -> String {
    let by_method: Vec<String> = policy.link_days_by_method.iter().map(|(m, d)| format!("{} {d}", m.as_str())).collect();
    let links = match by_method.is_empty() {
        true => format!("links {} days", policy.default_link_days),
        false => format!("links {} days ({})", policy.default_link_days, by_method.join(", ")),
    };
    let replies = if policy.allow_reply { "replies on" } else { "replies off" };
    format!("{links}, at most {}, {replies}", policy.max_link_days)
}

fn practice_id(raw: &str) -> anyhow::Result<PracticeId> {
    PracticeId::parse(raw).ok_or_else(|| anyhow::anyhow!("{raw} is not a practice id (prc_…)"))
}

pub async fn tenant(cmd: TenantCommand) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    match cmd {
        TenantCommand::Create(a) => {
            let mut new = NewPractice::named(&a.name)?;
            if let Some(s) = &a.sender_email {
                new.sender_email = Email::parse(s)?;
            }
            new.reply_to = a.reply_to.as_deref().map(Email::parse).transpose()?;
            new.sms_sender = a.sms_sender.as_deref().map(Practice::validate_sms_sender).transpose()?;
            new.language = Language::parse(&a.language)?;
            new.policy.default_link_days = a.link_days;
            for (i, (method, _)) in a.link_days_for.iter().enumerate() {
                if a.link_days_for[..i].iter().any(|(m, _)| m == method) {
                    anyhow::bail!("--link-days-for: {} is given twice", method.as_str());
                }
            }
            new.policy.link_days_by_method = a.link_days_for.into_iter().collect();
            new.policy.max_link_days = a.max_link_days;
            new.policy.window_after_first_verify_hours = a.window_hours;
            new.policy.self_service = !a.no_self_service;
            new.policy.code_lifetime_minutes = a.code_lifetime_minutes;
            new.policy.daily_sms_cap = a.daily_sms_cap;
            new.policy.allow_reply = a.allow_reply;
            let store = open(&a.dir).await?;
            let (practice, key) = admin::create_practice(store.as_ref(), new, now).await?;
            println!("practice: {}  {}", practice.id, practice.name);
            println!("API key:  {key}");
            println!("(the key is shown only now; it is stored as a hash)");
        }
        TenantCommand::List(dir) => {
            for p in open(&dir).await?.list_practices().await? {
                println!(
                    "{}  {}  {}  {}  ({})",
                    p.id,
                    p.created_at.format("%Y-%m-%d"),
                    p.default_language.as_str(),
                    p.name,
                    policy_summary(&p.policy)
                );
            }
        }
        TenantCommand::Webhook(cmd) => webhook(cmd).await?,
    }
    Ok(())
}

pub async fn key(cmd: KeyCommand) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    match cmd {
        KeyCommand::Create { tenant, dir } => {
            let (secret, record) = admin::create_key(open(&dir).await?.as_ref(), &practice_id(&tenant)?, now).await?;
            println!("key id:  {}", record.id);
            println!("API key: {secret}");
            println!("(the key is shown only now; it is stored as a hash)");
        }
        KeyCommand::List { tenant, dir } => {
            for k in open(&dir).await?.list_api_keys(&practice_id(&tenant)?).await? {
                let state = k.revoked_at.map_or("active".to_owned(), |t| format!("revoked {}", t.format("%Y-%m-%d")));
                println!("{}  {}…  created {}  {state}", k.id, k.prefix, k.created_at.format("%Y-%m-%d"));
            }
        }
        KeyCommand::Revoke { key_id, dir } => {
            if open(&dir).await?.revoke_api_key(&key_id, now).await? {
                println!("revoked {key_id}");
            } else {
                anyhow::bail!("no key {key_id}");
            }
        }
    }
    Ok(())
}
