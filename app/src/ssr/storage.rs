//! Where attachment bytes live: the local disk (`data/uploads`, the default) or any S3-compatible
//! object store (AWS S3, MinIO, Cloudflare R2, Garage), both through the `object_store` crate.
//! Keys are random (see [`new_key`]), never derived from a file name. Uploads are written in
//! parts as they arrive, so a large file is never held whole in memory.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{GetResultPayload, ObjectStore, PutPayload, WriteMultipart};

use crate::error::AppError;

/// The part size uploads are written in to S3: its minimum for every part but the last.
const S3_PART_BYTES: usize = 5 * 1024 * 1024;
/// The part size on the local disk, which has no minimum: small, since every upload in progress
/// holds up to `PARTS_IN_FLIGHT + 1` parts in memory (20 uploads at once stay under 30 MB).
const LOCAL_PART_BYTES: usize = 512 * 1024;
/// Parts of one upload on their way to the store at once.
const PARTS_IN_FLIGHT: usize = 2;
/// How much of a local file one blocking read takes while it is sent.
const FILE_READ_BYTES: usize = 64 * 1024;

/// Settings of an S3-compatible store (`S3_*`, with `AWS_*` for what the AWS SDKs read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    /// e.g. `http://127.0.0.1:9000` for MinIO; unset for AWS itself.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which most self-hosted servers need.
    pub path_style: bool,
}

/// The attachment store.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    backend: &'static str,
    part_bytes: usize,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("backend", &self.backend).finish()
    }
}

/// Why the store could not be opened, for the start-up error line.
fn opening(what: &str, e: impl std::fmt::Display) -> String {
    format!("cannot open the {what} attachment store: {e}")
}

/// A store error: logged with its details, answered as a plain 500.
fn failed(what: &str, e: object_store::Error) -> AppError {
    tracing::error!(error = %e, "attachment store: {what} failed");
    AppError::Internal
}

impl Storage {
    /// Files under `dir` on this machine (created when missing).
    pub fn local(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| opening("local", format!("{}: {e}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| opening("local", e))?;
        Ok(Self { store: Arc::new(store.with_automatic_cleanup(true)), backend: "local", part_bytes: LOCAL_PART_BYTES })
    }

    /// Objects in an S3-compatible bucket. Credentials not given here are read the way the AWS
    /// tools read them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...).
    pub fn s3(settings: &S3Settings) -> Result<Self, String> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&settings.bucket);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store =
            builder.with_virtual_hosted_style_request(!settings.path_style).build().map_err(|e| opening("S3", e))?;
        Ok(Self { store: Arc::new(store), backend: "s3", part_bytes: S3_PART_BYTES })
    }

    /// `local` or `s3`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Starts writing object `key`; see [`Upload`].
    pub async fn upload(&self, key: &str) -> Result<Upload, AppError> {
        let parts = self.store.put_multipart(&Key::from(key)).await.map_err(|e| failed("starting an upload", e))?;
        Ok(Upload { writer: WriteMultipart::new_with_chunk_size(parts, self.part_bytes) })
    }

    /// Writes a small object (a preview) at once.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), AppError> {
        self.store
            .put(&Key::from(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| failed("writing a preview", e))
    }

    /// Object `key` as a stream of chunks, with its size; `None` when it is not there.
    pub async fn read(&self, key: &str) -> Result<Option<(u64, BoxStream<'static, std::io::Result<Bytes>>)>, AppError> {
        match self.store.get(&Key::from(key)).await {
            Ok(found) => {
                let size = found.meta.size;
                let stream = match found.payload {
                    GetResultPayload::File(file, _) if found.range.start == 0 => file_stream(file),
                    _ => found.into_stream().map_err(std::io::Error::other).boxed(),
                };
                Ok(Some((size, stream)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failed("reading", e)),
        }
    }

    /// Object `key` whole (at most `max` bytes, which the caller checked it holds).
    pub async fn read_all(&self, key: &str, max: u64) -> Result<Vec<u8>, AppError> {
        let Some((size, mut stream)) = self.read(key).await? else {
            return Err(AppError::not_found("no such file"));
        };
        if size > max {
            return Err(AppError::Internal);
        }
        let mut all = Vec::with_capacity(size as usize);
        while let Some(chunk) = stream.next().await {
            all.extend_from_slice(&chunk.map_err(|e| {
                tracing::error!(error = %e, "attachment store: reading failed");
                AppError::Internal
            })?);
        }
        Ok(all)
    }

    /// Removes object `key`; one that is already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), AppError> {
        match self.store.delete(&Key::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(failed("deleting", e)),
        }
    }

    /// Whether object `key` exists (tests and the orphan sweep's checks).
    pub async fn exists(&self, key: &str) -> Result<bool, AppError> {
        match self.store.head(&Key::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(failed("looking up", e)),
        }
    }
}

/// An object being written part by part. Dropped without [`Upload::finish`], nothing is kept
/// (call [`Upload::abort`] to also tell the store at once).
pub struct Upload {
    writer: WriteMultipart,
}

impl Upload {
    /// Adds `chunk`, waiting while too many parts are on their way to the store.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), AppError> {
        self.writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| failed("writing a part", e))?;
        self.writer.write(chunk);
        Ok(())
    }

    /// Makes the object visible, whole.
    pub async fn finish(self) -> Result<(), AppError> {
        self.writer.finish().await.map(|_| ()).map_err(|e| failed("finishing an upload", e))
    }

    /// Gives the upload up; the store drops what it received.
    pub async fn abort(self) {
        if let Err(e) = self.writer.abort().await {
            tracing::warn!(error = %e, "attachment store: an abandoned upload could not be aborted");
        }
    }
}

/// A local file as a stream, [`FILE_READ_BYTES`] per blocking read. (`object_store` reads 8 KiB
/// at a time, each on the blocking pool: 20 downloads at once kept 180 threads busy.)
fn file_stream(file: std::fs::File) -> BoxStream<'static, std::io::Result<Bytes>> {
    futures_util::stream::try_unfold(file, |mut file| async move {
        let (file, chunk) = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut chunk = Vec::with_capacity(FILE_READ_BYTES);
            (&mut file).take(FILE_READ_BYTES as u64).read_to_end(&mut chunk)?;
            Ok::<_, std::io::Error>((file, chunk))
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok((!chunk.is_empty()).then(|| (Bytes::from(chunk), file)))
    })
    .boxed()
}

/// A fresh random storage key: 32 hex digits, split so no folder holds too many files.
pub fn new_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex = hex::encode(bytes);
    format!("{}/{}", &hex[..2], &hex[2..])
}

/// Where the preview of the object at `key` is stored, beside it.
pub fn preview_key(key: &str) -> String {
    format!("{key}.preview")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_larger_than_one_read_comes_back_whole_and_in_order() {
        let dir = std::env::temp_dir().join(format!("banter-store-{}", hex::encode(rand::random::<[u8; 8]>())));
        let storage = Storage::local(&dir).unwrap();
        let bytes: Vec<u8> = (0..FILE_READ_BYTES * 2 + 12_345).map(|i| (i * 7 % 251) as u8).collect();
        let key = new_key();
        let mut upload = storage.upload(&key).await.unwrap();
        for part in bytes.chunks(100_000) {
            upload.write(part).await.unwrap();
        }
        upload.finish().await.unwrap();
        let (size, mut stream) = storage.read(&key).await.unwrap().unwrap();
        assert_eq!(size, bytes.len() as u64);
        let mut chunks = 0;
        let mut back = Vec::new();
        while let Some(chunk) = stream.next().await {
            back.extend_from_slice(&chunk.unwrap());
            chunks += 1;
        }
        assert_eq!(chunks, 3);
        assert!(back == bytes);
        assert!(storage.read("no/such").await.unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
