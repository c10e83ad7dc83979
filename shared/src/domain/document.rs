//! Documents in a share: names made safe to show and to save, types checked.

use super::{DocumentId, Invalid};
use serde::{Deserialize, Serialize};

/// A file name safe to put in a ZIP, a `Content-Disposition` header and a page.
///
/// Practice software sends whatever its users typed or its file system held: path parts
/// (`C:\Befunde\x.pdf`, `../../x.pdf`) are stripped, control characters removed, and the name is
/// capped at 150 characters, keeping the extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Filename(String);

const MAX_FILENAME_CHARS: usize = 150;

impl Filename {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
        let cleaned: String = base
            .chars()
            .filter(|c| {
                !c.is_control() && !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
            })
            .collect();
        // Leading dots and spaces in any mix go (`. ..` must not leave `..`): no hidden files,
        // never `.` or `..`.
        let cleaned = cleaned.trim_start_matches(|c: char| c == '.' || c.is_whitespace()).trim_end();
        if cleaned.is_empty() {
            return Err(Invalid::new("filename must contain a name, not only a path"));
        }
        Ok(Self(cap_keeping_extension(cleaned, MAX_FILENAME_CHARS)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The extension in lower case, without the dot.
    pub fn extension(&self) -> Option<String> {
        let (stem, ext) = self.0.rsplit_once('.')?;
        (!stem.is_empty() && !ext.is_empty() && ext.len() <= 8).then(|| ext.to_ascii_lowercase())
    }

    /// This name with ` (n)` before the extension: `Befund.pdf` → `Befund (2).pdf`.
    pub fn numbered(&self, n: usize) -> Self {
        match self.extension() {
            Some(ext) => {
                let stem = &self.0[..self.0.len() - ext.len() - 1];
                Self(format!("{stem} ({n}).{}", &self.0[self.0.len() - ext.len()..]))
            }
            None => Self(format!("{} ({n})", self.0)),
        }
    }
}

fn cap_keeping_extension(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_owned();
    }
    let ext: String = match name.rsplit_once('.') {
        Some((_, ext)) if ext.chars().count() <= 8 => format!(".{ext}"),
        _ => String::new(),
    };
    let keep = max - ext.chars().count();
    let stem: String = name.chars().take(keep).collect();
    format!("{}{}", stem.trim_end(), ext)
}

/// A media type such as `application/pdf`, lower-cased, parameters dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentType(String);

impl ContentType {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let parsed: mime::Mime =
            raw.trim().parse().map_err(|_| Invalid::new("content_type must be a media type like application/pdf"))?;
        if parsed.type_() == mime::STAR || parsed.subtype() == mime::STAR || parsed.subtype().as_str().is_empty() {
            return Err(Invalid::new("content_type must name one media type, not a wildcard"));
        }
        Ok(Self(parsed.essence_str().to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True for formats that are already compressed: deflating them again costs time and saves
/// nothing, so the archive stores them as they are.
pub fn is_precompressed(content_type: &ContentType, filename: &Filename) -> bool {
    const TYPES: &[&str] = &[
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/x-7z-compressed",
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/heic",
        "image/avif",
        "video/mp4",
        "audio/mpeg",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ];
    const EXTENSIONS: &[&str] = &[
        "pdf", "zip", "gz", "7z", "jpg", "jpeg", "png", "gif", "webp", "heic", "avif", "mp4", "mp3", "docx", "xlsx", "pptx",
        "odt", "ods",
    ];
    TYPES.contains(&content_type.as_str()) || filename.extension().is_some_and(|e| EXTENSIONS.contains(&e.as_str()))
}

/// A document of a share. Its bytes live in the blob store under [`Document::blob_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub id: DocumentId,
    pub filename: Filename,
    pub content_type: ContentType,
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts_and_control_characters_go() {
        let cases = [
            ("Rechnung-2024-001.pdf", "Rechnung-2024-001.pdf"),
            ("../../etc/passwd", "passwd"),
            ("C:\\Befunde\\Röntgen.pdf", "Röntgen.pdf"),
            ("bad\u{0}name\r\n.pdf", "badname.pdf"),
            ("  .hidden.txt ", "hidden.txt"),
            ("evil\u{202e}fdp.exe", "evilfdp.exe"),
            (". ..pdf", "pdf"),
        ];
        for (raw, want) in cases {
            assert_eq!(Filename::parse(raw).unwrap().as_str(), want, "{raw:?}");
        }
        for bad in ["", "/", "..", "dir/", "\u{1}\u{2}", ". ..", " . . ", "x/.\u{0}."] {
            assert!(Filename::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn long_names_are_capped_keeping_the_extension() {
        let long = format!("{}.pdf", "a".repeat(400));
        let f = Filename::parse(&long).unwrap();
        assert_eq!(f.as_str().chars().count(), MAX_FILENAME_CHARS);
        assert!(f.as_str().ends_with(".pdf"));
    }

    #[test]
    fn numbering_goes_before_the_extension() {
        assert_eq!(Filename::parse("Befund.pdf").unwrap().numbered(2).as_str(), "Befund (2).pdf");
        assert_eq!(Filename::parse("README").unwrap().numbered(3).as_str(), "README (3)");
    }

    #[test]
    fn content_types_are_checked() {
        assert_eq!(ContentType::parse("Application/PDF; charset=x").unwrap().as_str(), "application/pdf");
        for bad in ["pdf", "", "*/*", "text/"] {
            assert!(ContentType::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn precompressed_by_type_or_extension() {
        let pdf = ContentType::parse("application/pdf").unwrap();
        let txt = ContentType::parse("text/plain").unwrap();
        let octet = ContentType::parse("application/octet-stream").unwrap();
        assert!(is_precompressed(&pdf, &Filename::parse("a.bin").unwrap()));
        assert!(is_precompressed(&octet, &Filename::parse("scan.JPG").unwrap()));
        assert!(!is_precompressed(&txt, &Filename::parse("notes.txt").unwrap()));
    }
}
