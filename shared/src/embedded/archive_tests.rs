//! The archive builder over the folder blob store: every byte round-trips, compression
//! follows the type, names are made unique.

mod tests {
    use crate::domain::Filename;
    use crate::domain::{ContentType, Document, DocumentId};
    use crate::embedded::FolderBlobs;
    use crate::ports::BlobStore;
    use crate::ports::SystemClock;
    use crate::service::archive::*;
    use std::io::Read;
    use std::sync::Arc;
    use zip::CompressionMethod;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_archive_holds_every_document_exactly_with_the_right_compression() {
        let dir = tempfile::tempdir().unwrap();
        let blobs: Arc<dyn BlobStore> = Arc::new(FolderBlobs::new(
            dir.path().to_path_buf(),
            "http://x".into(),
            crate::secrets::Keys::from_pepper(&[3; 32]),
            Arc::new(SystemClock),
        ));
        let mut share = crate::service::tests_support::share_fixture();
        // 12 MiB of text (compressible) streamed through, next to a PDF and a duplicate name.
        let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| b"Befund, Seite 1\n"[(i % 16) as usize]).collect();
        let files: Vec<(&str, &str, Vec<u8>)> = vec![
            ("Befund.txt", "text/plain", big.clone()),
            ("Rechnung.pdf", "application/pdf", b"%PDF-1.7 not really".to_vec()),
            ("befund.txt", "text/plain", b"second".to_vec()),
        ];
        for (name, ct, bytes) in &files {
            let doc = Document {
                id: DocumentId::generate(),
                filename: Filename::parse(name).unwrap(),
                content_type: ContentType::parse(ct).unwrap(),
                size: bytes.len() as u64,
                sha256: String::new(),
            };
            blobs.put(&document_key(&share, &doc), bytes).await.unwrap();
            share.documents.push(doc);
        }
        let size = build_archive(blobs.clone(), &share).await.unwrap();
        let bytes = std::fs::read(dir.path().join(archive_key(&share))).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert!(size < big.len() as u64 / 10, "text is deflated: {size} bytes");

        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let expected =
            [("Befund.txt", &files[0].2, true), ("Rechnung.pdf", &files[1].2, false), ("befund (2).txt", &files[2].2, true)];
        assert_eq!(zip.len(), expected.len());
        for (i, (name, content, deflated)) in expected.into_iter().enumerate() {
            let mut entry = zip.by_index(i).unwrap();
            assert_eq!(entry.name().unwrap(), name);
            let method = if deflated { CompressionMethod::Deflated } else { CompressionMethod::Stored };
            assert_eq!(entry.compression(), method, "{name}");
            let mut out = Vec::new();
            entry.read_to_end(&mut out).unwrap(); // checks the CRC too
            assert!(out == *content, "{name} round-trips");
        }
    }
}
