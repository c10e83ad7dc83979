//! `sealpost`: the embedded service and its administration. Parses arguments, nothing more;
//! everything it runs lives in the library.

mod admin_cmd;
mod api_client;
mod batch_cmd;
mod client_cmd;
mod replies_cmd;

use clap::{Parser, Subcommand, ValueEnum};
use sealpost::ports::SystemClock;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "sealpost", version, about = "Send documents to patients: a link by email, a code by SMS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and download page.
    Serve(ServeArgs),
    /// Manage practices (tenants).
    #[command(subcommand)]
    Tenant(admin_cmd::TenantCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(admin_cmd::KeyCommand),
    /// Send documents to a patient through a Sealpost API (from a script or a terminal).
    Send(client_cmd::SendArgs),
    /// A share's status, documents and events, as a timeline.
    Status(client_cmd::StatusArgs),
    /// What the patient sent back (a share that allows replies); --save DIR keeps the files.
    Replies(replies_cmd::RepliesArgs),
    /// Create the table, bucket and sender identity on an AWS endpoint that is not managed by
    /// SAM — moto's server, to try `serve --backend aws` locally. Never needed on AWS itself.
    #[cfg(feature = "aws")]
    AwsBootstrap {
        #[arg(long, env = "TABLE_NAME")]
        table: String,
        #[arg(long, env = "BUCKET_NAME")]
        bucket: String,
        #[arg(long, default_value = sealpost::admin::DEFAULT_SENDER)]
        sender: String,
        #[arg(long, env = "AWS_REGION", default_value = "eu-central-2")]
        region: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// SQLite, a folder and an outbox, all in --data-dir.
    Embedded,
    /// DynamoDB, S3, SNS and SES, configured from the environment as the Lambda functions are
    /// (TABLE_NAME, BUCKET_NAME, PUBLIC_URL, PEPPER_PARAMETER; AWS_ENDPOINT_URL for moto).
    Aws,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SEALPOST_ADDR", default_value = "127.0.0.1:8080")]
    addr: String,
    /// Where the embedded backend keeps its data.
    #[arg(long, env = "SEALPOST_DATA_DIR", default_value = "./.sealpost")]
    data_dir: PathBuf,
    /// API key of the default practice (else one is generated once and kept in the data dir).
    #[arg(long, env = "SEALPOST_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Base URL in links (default: http://<addr>).
    #[arg(long, env = "SEALPOST_PUBLIC_URL")]
    public_url: Option<String>,
    #[arg(long, value_enum, default_value = "embedded")]
    backend: Backend,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sealpost::telemetry::init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Tenant(cmd) => client_cmd::exit_on_error(admin_cmd::tenant(cmd).await),
        Command::Key(cmd) => client_cmd::exit_on_error(admin_cmd::key(cmd).await),
        Command::Send(args) => client_cmd::send(args).await,
        Command::Status(args) => client_cmd::status(args).await,
        Command::Replies(args) => replies_cmd::replies(args).await,
        #[cfg(feature = "aws")]
        Command::AwsBootstrap { table, bucket, sender, region } => {
            let clients = sealpost::aws::Clients::from_env().await?;
            sealpost::aws::provision::create_table(&clients, &table).await?;
            sealpost::aws::provision::create_bucket(&clients, &bucket, &region).await?;
            sealpost::aws::provision::create_sender_identity(&clients, &sender).await?;
            println!("created table {table}, bucket {bucket}, sender identity {sender}");
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.backend == Backend::Aws {
        return serve_aws(args).await;
    }
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    let addr = listener.local_addr()?;
    let public_url = args.public_url.unwrap_or_else(|| format!("http://{addr}"));
    let options = sealpost::embedded::Options {
        data_dir: args.data_dir.clone(),
        public_url: public_url.clone(),
        api_key: args.api_key,
        quiet: false,
        outbox_route: sealpost::embedded::outbox_route_allowed(addr.ip(), &public_url),
    };
    let outbox_route = options.outbox_route;
    let app = sealpost::embedded::build(options, Arc::new(SystemClock)).await?;
    println!("Sealpost (embedded) on {public_url}");
    println!("  data:    {}", args.data_dir.display());
    println!("  API key: {}", app.api_key);
    if outbox_route {
        println!("  outbox:  {public_url}/_outbox  (and {}/outbox.jsonl)", args.data_dir.display());
    } else {
        println!(
            "  outbox:  {}/outbox.jsonl  (GET /_outbox is off: it lists codes, and {addr} or {public_url} is not loopback)",
            args.data_dir.display()
        );
    }

    // Webhooks: new events are picked up within a second; retries follow their schedule.
    let webhooks = app.webhooks.spawn(Duration::from_secs(1));
    // Sends: at once, then what was queued before a restart; failures again every 30 s.
    let sends = app.sends.spawn(Duration::from_secs(30));
    let served = run_with_sweeper(listener, app.router, app.service).await;
    webhooks.abort();
    sends.abort();
    served
}

/// Serves until Ctrl-C, sweeping expired shares every minute meanwhile.
async fn run_with_sweeper(
    listener: tokio::net::TcpListener,
    router: sealpost::http::HttpRouter,
    service: Arc<sealpost::service::Service>,
) -> anyhow::Result<()> {
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = service.sweep_expired().await {
                tracing::error!(error = %e, "expiry sweep failed");
            }
        }
    });
    sealpost::server::serve(listener, router, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    sweeper.abort();
    Ok(())
}

#[cfg(feature = "aws")]
async fn serve_aws(args: ServeArgs) -> anyhow::Result<()> {
    let config = sealpost::aws::AwsConfig::from_env()?;
    let clients = sealpost::aws::Clients::from_env().await?;
    // The send worker runs here, as the sweep does (on AWS: SQS and the send-worker function).
    let (sends, queued) = sealpost::aws::InProcessSends::new();
    let service = sealpost::aws::build_service_with(
        &config,
        &clients,
        Arc::new(SystemClock),
        sealpost::ports::Uses::EVERYTHING,
        Arc::new(sends),
    );
    // A long-running server reads the pepper now: a wrong parameter stops it at start.
    service.keys.get().await?;
    tokio::spawn(sealpost::aws::InProcessSends::work(service.clone(), queued));
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    println!("Sealpost (AWS adapters: table {}, bucket {}) on http://{}", config.table, config.bucket, listener.local_addr()?);
    let router = sealpost::http::router(service.clone());
    run_with_sweeper(listener, router, service).await
}

#[cfg(not(feature = "aws"))]
async fn serve_aws(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("this sealpost was built without the AWS adapters: cargo run --release --features aws -- serve --backend aws")
}
