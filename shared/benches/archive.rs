//! The product's archive builder on a folder of documents, for `bench/zip.py` (BENCHMARKS.md).
//!
//! `archive <docs-dir> <work-dir>`: makes one share of every file in `docs-dir` (in name
//! order), hard-links the files into a blob folder under `work-dir` where the embedded store
//! keeps a share's documents, and builds the share's ZIP with `service::archive::build_archive`
//! exactly as `sealpost serve` does when a share is sent: streamed, PDFs stored, the rest
//! deflated. Prints `<archive path>\t<bytes>`. Time and peak RSS are the caller's to measure.

use sealpost::domain::{
    AuthMethod, ContentType, Document, DocumentId, Email, Filename, Language, NewShareParts, Policy, PracticeId, Recipient,
    Share, ShareId,
};
use sealpost::embedded::FolderBlobs;
use sealpost::ports::{BlobStore, SystemClock};
use sealpost::secrets::Keys;
use sealpost::service::archive::{archive_key, build_archive, document_key};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn content_type(name: &str) -> &'static str {
    match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [docs, work] = args.as_slice() else {
        anyhow::bail!("usage: archive <docs-dir> <work-dir>");
    };
    let (docs, work) = (PathBuf::from(docs), PathBuf::from(work));

    let mut files: Vec<_> = std::fs::read_dir(&docs)?.collect::<Result<Vec<_>, _>>()?;
    files.sort_by_key(|f| f.file_name());
    let mut documents = Vec::with_capacity(files.len());
    for file in &files {
        let name = file.file_name().to_string_lossy().into_owned();
        documents.push(Document {
            id: DocumentId::generate(),
            filename: Filename::parse(&name).map_err(|e| anyhow::anyhow!("{name}: {}", e.0))?,
            content_type: ContentType::parse(content_type(&name)).map_err(|e| anyhow::anyhow!("{}", e.0))?,
            size: file.metadata()?.len(),
            sha256: String::new(),
        });
    }
    let share = Share::new(
        NewShareParts {
            id: ShareId::generate(),
            practice_id: PracticeId::generate(),
            recipient: Recipient {
                email: Email::parse("anna@example.ch").map_err(|e| anyhow::anyhow!("{}", e.0))?,
                phone: None,
                name: None,
                language: Language::De,
            },
            auth: AuthMethod::Manual,
            policy: Policy::default().for_share(false, None),
            message: None,
            documents,
            link_days: 30,
        },
        chrono::Utc::now(),
    );

    let root = work.join("blobs");
    let blobs = FolderBlobs::new(root, "http://127.0.0.1:8080".into(), Keys::from_pepper(&[7; 32]), Arc::new(SystemClock));
    for (file, doc) in files.iter().zip(&share.documents) {
        let dest = blobs.path(&document_key(&share, doc))?;
        std::fs::create_dir_all(dest.parent().expect("a blob path has a parent"))?;
        std::fs::hard_link(file.path(), &dest)?;
    }
    let blobs: Arc<dyn BlobStore> = Arc::new(blobs);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let size = runtime.block_on(build_archive(blobs.clone(), &share))?;
    let path = work.join("blobs").join(archive_key(&share));
    println!("{}\t{size}", path.display());
    Ok(())
}
