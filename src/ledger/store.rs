//! Where archived recordings are kept: a local directory (the default, `recordings/` under
//! `paths.data`), or a bucket in S3, Google Cloud Storage or Azure Blob Storage
//! (`recordings.store = "s3://bucket/prefix"`, `gs://…`, `az://container/prefix`), each behind
//! its cargo feature (`s3`, `gcs`, `azure`; all three are on by default). Every kind is one
//! [`ObjectStore`]: written as the download streams in, read back in ranges, deleted by retention.
//!
//! Credentials come from the usual environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as each SDK
//! reads them) and from `[recordings.store_options]`, whose keys are checked at start.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult, ObjectStore, ObjectStoreExt};

use crate::config::Settings;

/// Where recordings are kept.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    /// `local`, or the bucket's URL: written with each recording, so a row says where it is.
    name: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Store {
    /// The store the configuration names; a local directory is created if missing.
    pub fn open(settings: &Settings) -> Result<Store, String> {
        match &settings.recordings.store {
            None => Store::local(settings.recordings_dir()),
            Some(url) => Store::remote(url, &settings.recordings.store_options),
        }
    }

    /// Files under `dir`.
    pub fn local(dir: PathBuf) -> Result<Store, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let fs = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Store {
            inner: Arc::new(fs),
            prefix: Path::default(),
            name: "local".to_owned(),
        })
    }

    /// A bucket: `s3://`, `gs://`, `az://` (with its cargo feature).
    pub fn remote(url: &url::Url, options: &[(String, String)]) -> Result<Store, String> {
        let (scheme, prefix) =
            object_store::ObjectStoreScheme::parse(url).map_err(|_| not_a_bucket(url))?;
        let prefix = Path::parse(prefix).map_err(|e| e.to_string())?;
        let inner = bucket(scheme, url, options)?;
        Ok(Store {
            inner,
            prefix,
            name: url.as_str().trim_end_matches('/').to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `relative` (`2026/11/<hash>.mp3`) within the store; only plain names, never `..`.
    pub fn location(&self, relative: &str) -> Result<Path, String> {
        let parts = relative.split('/').map(|part| match part {
            "" | "." | ".." => Err(format!("not a plain path: {relative:?}")),
            p if p.contains('\\') => Err(format!("not a plain path: {relative:?}")),
            p => object_store::path::PathPart::parse(p)
                .map(|p| p.as_ref().to_owned())
                .map_err(|e| e.to_string()),
        });
        let mut path: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_owned()).collect();
        for part in parts {
            path.push(part?);
        }
        Ok(Path::from_iter(path))
    }

    /// A writer for `relative`: nothing is visible until it is shut down (a single put, or a
    /// multipart upload for a large file); abort it on failure.
    pub fn writer(&self, relative: &str) -> Result<BufWriter, String> {
        Ok(BufWriter::new(self.inner.clone(), self.location(relative)?))
    }

    /// `relative`, whole or the bytes in `range`.
    pub async fn read(
        &self,
        relative: &str,
        range: Option<Range<u64>>,
    ) -> Result<GetResult, object_store::Error> {
        let location = self
            .location(relative)
            .map_err(|e| object_store::Error::Generic {
                store: "recordings",
                source: e.into(),
            })?;
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        self.inner.get_opts(&location, options).await
    }

    /// Whether the store answers: asking for an object that is not there gets "not found" from a
    /// store that works.
    pub async fn reachable(&self) -> bool {
        let probe = self.prefix.clone().join("switchboard-probe");
        match self.inner.head(&probe).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => true,
            Err(e) => {
                tracing::warn!(store = %self.name, error = %e, "recordings store unreachable");
                false
            }
        }
    }

    /// Deletes `relative`; one already gone is no error.
    pub async fn delete(&self, relative: &str) -> Result<(), String> {
        let location = self.location(relative)?;
        match self.inner.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn unknown(key: &str, e: impl std::fmt::Display) -> String {
    format!("recordings.store_options.{key}: {e}")
}

fn not_a_bucket(url: &url::Url) -> String {
    format!(
        "{}: not a bucket (s3://, gs://, az://; empty for a local directory)",
        url.scheme()
    )
}

#[allow(dead_code)]
fn missing(url: &url::Url, feature: &str) -> String {
    format!(
        "{}: this build has no support for it (cargo feature {feature})",
        url.scheme()
    )
}

#[allow(unused_variables)]
fn bucket(
    scheme: object_store::ObjectStoreScheme,
    url: &url::Url,
    options: &[(String, String)],
) -> Result<Arc<dyn ObjectStore>, String> {
    use object_store::ObjectStoreScheme as S;
    match scheme {
        #[cfg(feature = "s3")]
        S::AmazonS3 => {
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(url.as_str());
            for (k, v) in options {
                b = b.with_config(k.parse().map_err(|e| unknown(k, e))?, v);
            }
            Ok(Arc::new(b.build().map_err(|e| e.to_string())?))
        }
        #[cfg(feature = "gcs")]
        S::GoogleCloudStorage => {
            let mut b =
                object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
            for (k, v) in options {
                b = b.with_config(k.parse().map_err(|e| unknown(k, e))?, v);
            }
            Ok(Arc::new(b.build().map_err(|e| e.to_string())?))
        }
        #[cfg(feature = "azure")]
        S::MicrosoftAzure => {
            let mut b =
                object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url.as_str());
            for (k, v) in options {
                b = b.with_config(k.parse().map_err(|e| unknown(k, e))?, v);
            }
            Ok(Arc::new(b.build().map_err(|e| e.to_string())?))
        }
        #[cfg(not(feature = "s3"))]
        S::AmazonS3 => Err(missing(url, "s3")),
        #[cfg(not(feature = "gcs"))]
        S::GoogleCloudStorage => Err(missing(url, "gcs")),
        #[cfg(not(feature = "azure"))]
        S::MicrosoftAzure => Err(missing(url, "azure")),
        _ => Err(not_a_bucket(url)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_plain_paths_under_the_prefix() {
        let url: url::Url = "s3://calls/switchboard/recordings".parse().expect("url");
        let options = [
            ("region".to_owned(), "eu-west-1".to_owned()),
            ("access_key_id".to_owned(), "AKIDEXAMPLE".to_owned()),
            ("secret_access_key".to_owned(), "not-a-secret".to_owned()),
        ];
        let store = Store::remote(&url, &options).expect("store");
        assert_eq!(store.name(), "s3://calls/switchboard/recordings");
        assert_eq!(
            store.location("2026/11/ab.mp3").expect("plain").as_ref(),
            "switchboard/recordings/2026/11/ab.mp3"
        );
        for bad in ["../x.mp3", "/x.mp3", "a//b", "a/./b", "a\\b"] {
            assert!(store.location(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_options_and_schemes_are_refused() {
        let url: url::Url = "s3://calls".parse().expect("url");
        let wrong = [("colour".to_owned(), "blue".to_owned())];
        let e = Store::remote(&url, &wrong).expect_err("unknown key");
        assert!(e.starts_with("recordings.store_options.colour"), "{e}");
        let ftp: url::Url = "ftp://files.example/x".parse().expect("url");
        let e = Store::remote(&ftp, &[]).expect_err("not a bucket");
        assert!(e.starts_with("ftp: not a bucket"), "{e}");
    }
}
