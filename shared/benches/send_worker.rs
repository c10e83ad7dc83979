//! The send worker's work on one share, for `bench/send.py` (BENCHMARKS.md, section 5).
//!
//! `send_worker embedded <dir> <docs> <mib>` or `send_worker aws <storage-url> <messaging-url>
//! <docs> <mib>` (moto's servers): makes a share of `docs` documents of `mib` MiB each (bytes that
//! do not compress) through the service's own create, stores each upload where its URL would
//! put it, sends the share, then times `Service::finish_send`, exactly what `send-worker` runs
//! for a queued share: each upload moved into place, read, hashed and written into the
//! archive (on S3 in multipart parts), the share activated. Prints `<bytes>\t<wall s>\t<cpu s>`:
//! the CPU time is this process's own (user + system, from /proc), so a moto server's share of
//! the work is not in it. Uploads and the share's creation are not timed.

use sealpost::admin::{NewPractice, create_practice};
use sealpost::domain::ShareId;
use sealpost::ports::{Clock, SystemClock, Uses};
use sealpost::service::{Created, Sent, Service};
use std::sync::Arc;
use std::time::Instant;

const REGION: &str = "eu-central-2";

/// `len` random bytes: they do not compress, as a scan's do not.
fn noise(len: usize) -> anyhow::Result<Vec<u8>> {
    let mut out = vec![0u8; len];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(out)
}

/// This process's CPU time so far (user + system), in seconds.
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // After the command's name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0) // USER_HZ, 100 on Linux
}

async fn service(args: &[String]) -> anyhow::Result<(Arc<Service>, Vec<String>)> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match args.first().map(String::as_str) {
        Some("embedded") if args.len() >= 2 => {
            let options = sealpost::embedded::Options {
                data_dir: args[1].clone().into(),
                public_url: "http://127.0.0.1:8080".into(),
                api_key: None,
                quiet: true,
                outbox_route: false,
            };
            Ok((sealpost::embedded::build(options, clock).await?.service, args[2..].to_vec()))
        }
        Some("aws") if args.len() >= 3 => {
            use sealpost::aws::{AwsConfig, Clients, provision};
            let clients = Clients::for_endpoints(&args[1], &args[2], REGION).await;
            let name = format!("sealpost-bench-{}", hex::encode(sealpost::domain::random_bytes::<4>()));
            provision::create_table(&clients, &name).await?;
            provision::create_bucket(&clients, &name, REGION).await?;
            let _ = provision::create_sender_identity(&clients, sealpost::admin::DEFAULT_SENDER).await;
            let pepper = sealpost::domain::random_bytes::<32>().to_vec();
            let mut config = AwsConfig::new(name.clone(), name.clone(), "http://127.0.0.1:8080".into(), pepper);
            config.send_queue_url = Some(provision::create_send_queue(&clients, &name).await?);
            Ok((sealpost::aws::build_service(&config, &clients, clock, Uses::EVERYTHING), args[3..].to_vec()))
        }
        _ => anyhow::bail!("usage: send_worker embedded <dir> <docs> <mib> | aws <storage-url> <messaging-url> <docs> <mib>"),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let (service, rest) = service(&args).await?;
        let [docs, mib] = rest.as_slice() else { anyhow::bail!("<docs> <mib> missing") };
        let (docs, mib): (usize, usize) = (docs.parse()?, mib.parse()?);

        let (practice, _) = create_practice(service.store.as_ref(), NewPractice::named("Bench")?, service.now()).await?;
        let contents: Vec<Vec<u8>> = (0..docs).map(|_| noise(mib << 20)).collect::<anyhow::Result<_>>()?;
        let documents: Vec<serde_json::Value> = contents
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes));
                serde_json::json!({"filename": format!("scan-{i}.pdf"), "content_type": "application/pdf",
                                   "size": bytes.len(), "sha256": sha256})
            })
            .collect();
        let body = serde_json::json!({"recipient": {"email": "anna@example.ch"}, "auth": {"method": "manual"},
                                      "documents": documents});
        let Created::New(view) = service.create_share(&practice, body.to_string().as_bytes(), None).await? else {
            anyhow::bail!("a new share was expected")
        };
        let id = ShareId::parse(&view.id).ok_or_else(|| anyhow::anyhow!("share id"))?;
        for (doc, bytes) in view.documents.iter().zip(&contents) {
            service.blobs.put(&format!("shares/{}/uploads/{}", view.id, doc.id), bytes).await?;
        }
        drop(contents);
        let Sent::Accepted(_) = service.send_share(&practice, &id).await? else { anyhow::bail!("the share should be sending") };

        let (cpu, started) = (cpu_seconds()?, Instant::now());
        service.finish_send(&id).await?;
        let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds()? - cpu);
        let share = service.store.get_share(&id).await?.ok_or_else(|| anyhow::anyhow!("share gone"))?;
        let status = share.status(service.now());
        anyhow::ensure!(status == "active", "the share is {status} after the worker's run");
        println!("{}\t{wall:.3}\t{cpu:.2}", share.archive_size.unwrap_or(0));
        Ok(())
    })
}
