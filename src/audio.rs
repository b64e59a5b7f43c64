//! The prompts in `audio/`, indexed once at start. Only a file in the index is ever served, so no
//! request path can reach outside the folder, whatever it contains.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Audio formats both Telnyx and Twilio play.
const EXTENSIONS: [&str; 2] = ["wav", "mp3"];

#[derive(Debug, Default, Clone)]
pub struct AudioDir {
    files: HashMap<String, PathBuf>,
}

impl AudioDir {
    /// Indexes the regular files with a safe name and a playable extension directly in `dir`.
    /// A missing folder gives an empty index (prompts are then spoken).
    pub fn scan(dir: &Path) -> AudioDir {
        let mut files = HashMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "audio folder not readable; prompts will be spoken");
                return AudioDir { files };
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            let playable = Path::new(&name)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
            if is_file && playable && Self::valid_name(&name) {
                files.insert(name, entry.path());
            }
        }
        AudioDir { files }
    }

    /// A plain file name: letters, digits, `.`, `_`, `-`, not starting with a dot.
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }

    pub fn path(&self, name: &str) -> Option<&Path> {
        self.files.get(name).map(PathBuf::as_path)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_valid() {
        assert!(AudioDir::valid_name("greeting.wav"));
        for bad in [
            "",
            ".hidden.wav",
            "../x.wav",
            "a/b.wav",
            "a b.wav",
            "%2e%2e",
        ] {
            assert!(!AudioDir::valid_name(bad), "{bad}");
        }
    }
}
