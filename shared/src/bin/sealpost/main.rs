//! `sealpost`: the embedded service and its administration. Parses arguments, nothing more;
//! everything it runs lives in the library.

mod admin_cmd;

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
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// SQLite, a folder and an outbox, all in --data-dir.
    Embedded,
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
        Command::Tenant(cmd) => admin_cmd::tenant(cmd).await,
        Command::Key(cmd) => admin_cmd::key(cmd).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let Backend::Embedded = args.backend;
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    let addr = listener.local_addr()?;
    let public_url = args.public_url.unwrap_or_else(|| format!("http://{addr}"));
    let options = sealpost::embedded::Options {
        data_dir: args.data_dir.clone(),
        public_url: public_url.clone(),
        api_key: args.api_key,
        quiet: false,
    };
    let app = sealpost::embedded::build(options, Arc::new(SystemClock)).await?;
    println!("Sealpost (embedded) on {public_url}");
    println!("  data:    {}", args.data_dir.display());
    println!("  API key: {}", app.api_key);
    println!("  outbox:  {public_url}/_outbox  (and {}/outbox.jsonl)", args.data_dir.display());

    let service = app.service.clone();
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = service.sweep_expired().await {
                tracing::error!(error = %e, "expiry sweep failed");
            }
        }
    });
    sealpost::server::serve(listener, app.router, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    sweeper.abort();
    Ok(())
}
