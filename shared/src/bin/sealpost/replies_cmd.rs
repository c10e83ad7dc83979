//! `sealpost replies ID [--save DIR]`: what a patient sent back through the page (a share with
//! `allow_reply`), and, with `--save`, its messages and accepted files on disk.

use crate::api_client::{Api, ApiArgs};
use crate::client_cmd::{exit_on_error, local_time, share_id_arg};
use anyhow::{Context, bail};
use indicatif::HumanBytes;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct RepliesArgs {
    /// The share's id, as `sealpost send` printed it (it may begin with `-`).
    #[arg(allow_hyphen_values = true)]
    id: String,
    /// Save each reply under DIR/<reply id>/: its message as message.txt and each accepted
    /// file under its name (folders and files readable by you only; saving again overwrites).
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
}

pub async fn replies(args: RepliesArgs) -> anyhow::Result<()> {
    exit_on_error(run(args).await)
}

async fn run(args: RepliesArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let id = share_id_arg(&args.id)?;
    let list = api.call(api.get(&format!("/v1/shares/{id}/replies"))).await?;
    let replies = list["replies"].as_array().map(Vec::as_slice).unwrap_or_default();
    if replies.is_empty() {
        println!("no replies");
        return Ok(());
    }
    for reply in replies {
        print!("{}", reply_text(reply));
        if let Some(dir) = &args.save {
            save_reply(&api, id, reply, dir).await?;
        }
        println!();
    }
    Ok(())
}

/// A reply as text: when, the message indented, each file with its fate.
fn reply_text(reply: &Value) -> String {
    let mut out = format!("reply:      {}  {}\n", reply["id"].as_str().unwrap_or("-"), local_time(&reply["submitted_at"]));
    if let Some(message) = reply["message"].as_str() {
        out += "message:\n";
        // A lone carriage return would let a line overwrite what the terminal shows.
        for line in message.lines() {
            out += &format!("  {}\n", line.replace('\r', " "));
        }
    }
    for file in reply["files"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let size = file["size"].as_u64().map(|s| HumanBytes(s).to_string()).unwrap_or_default();
        let fate = match (file["status"].as_str(), file["reason"].as_str()) {
            (Some("refused"), Some(reason)) => format!("refused ({reason})"),
            (Some(status), _) => status.to_owned(),
            _ => "-".to_owned(),
        };
        out += &format!("file:       {} ({size}) {fate}\n", file["filename"].as_str().unwrap_or("-"));
    }
    out
}

/// Writes the reply's message and accepted files under `dir/<reply id>/`.
async fn save_reply(api: &Api, share: &str, reply: &Value, dir: &Path) -> anyhow::Result<()> {
    let reply_id = reply["id"].as_str().filter(|r| r.starts_with("rpl_") && r.bytes().all(is_id_byte));
    let reply_id = reply_id.context("the API answered a reply without a proper id")?;
    let folder = dir.join(reply_id);
    // A folder given that exists keeps its mode (it may be the practice's shared one); the
    // folders made here are the owner's only.
    if !dir.exists() {
        private_dir(dir)?;
    }
    private_dir(&folder)?;
    if let Some(message) = reply["message"].as_str() {
        write_private(&folder.join("message.txt"), message.as_bytes())?;
        println!("saved:      {}", folder.join("message.txt").display());
    }
    let mut taken: Vec<String> = vec!["message.txt".into()];
    for file in reply["files"].as_array().map(Vec::as_slice).unwrap_or_default() {
        if file["status"] != "accepted" {
            continue;
        }
        let index = file["index"].as_u64().context("the API answered a file without its index")?;
        let name = local_name(file["filename"].as_str().unwrap_or("file"), &mut taken)?;
        let url = api.call(api.get(&format!("/v1/shares/{share}/replies/{reply_id}/files/{index}"))).await?;
        let url = url["url"].as_str().context("the API answered no URL")?;
        let url = if url.starts_with('/') { format!("{}{url}", api.base) } else { url.to_owned() };
        let response = api.http.get(&url).timeout(std::time::Duration::from_secs(600)).send().await;
        let response = response.with_context(|| format!("could not fetch {name}"))?;
        if !response.status().is_success() {
            bail!("could not fetch {name}: HTTP {}", response.status());
        }
        let bytes = response.bytes().await.with_context(|| format!("could not fetch {name}"))?;
        let path = folder.join(&name);
        write_private(&path, &bytes)?;
        println!("saved:      {}", path.display());
    }
    Ok(())
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A name for a patient's file on this disk: no path, no hidden file (`Filename`'s rules),
/// and not one already used in the folder (`Scan (2).pdf`).
fn local_name(sent: &str, taken: &mut Vec<String>) -> anyhow::Result<String> {
    let name = sealpost::domain::Filename::parse(&fit_bytes(sent, 200)).map_err(|e| anyhow::anyhow!("a file's name: {e}"))?;
    let mut candidate = name.as_str().to_owned();
    let mut n = 1;
    while taken.iter().any(|t| t.eq_ignore_ascii_case(&candidate)) {
        n += 1;
        candidate = name.numbered(n).as_str().to_owned();
    }
    taken.push(candidate.clone());
    Ok(candidate)
}

/// `name` in at most `max` bytes (file systems count bytes, not characters), its extension
/// kept.
fn fit_bytes(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 16 => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    let mut stem: String = stem.to_owned();
    while stem.len() + ext.len() > max {
        stem.pop();
    }
    stem + &ext
}

/// A folder only its owner may enter (a patient's files are health data).
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("could not protect {}", dir.display()))?;
    Ok(())
}

/// Writes `bytes` to a file only its owner may read.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("could not write {}", path.display()))?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes).with_context(|| format!("could not write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patients_file_name_stays_in_its_folder_and_unique() {
        let mut taken = vec!["message.txt".to_owned()];
        assert_eq!(local_name("../../.ssh/authorized_keys", &mut taken).unwrap(), "authorized_keys");
        assert_eq!(local_name("Scan.pdf", &mut taken).unwrap(), "Scan.pdf");
        assert_eq!(local_name("scan.PDF", &mut taken).unwrap(), "scan (2).PDF");
        assert_eq!(local_name("Message.txt", &mut taken).unwrap(), "Message (2).txt");
        assert!(local_name("..", &mut taken).is_err());
        let long = format!("{}.pdf", "ä".repeat(150));
        let fitted = local_name(&long, &mut taken).unwrap();
        assert!(fitted.len() <= 200 && fitted.ends_with(".pdf"), "{fitted}");
    }
}
