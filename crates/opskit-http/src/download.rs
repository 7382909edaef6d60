//! Streamed downloads to disk, with progress events and resume by `Range`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use http::StatusCode;
use tokio::io::AsyncWriteExt;

use crate::client::Client;
use crate::error::Error;

/// Progress of a download, reported after every chunk written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadProgress {
    /// Bytes in the file so far (resumed bytes included).
    pub downloaded: u64,
    /// Total size, when the server said.
    pub total: Option<u64>,
    /// Bytes that were already on disk from an earlier, interrupted run.
    pub resumed_from: u64,
}

/// Progress callback.
pub type ProgressFn = Arc<dyn Fn(&DownloadProgress) + Send + Sync>;

/// Download options.
#[derive(Clone, Default)]
pub struct DownloadOptions {
    /// Continue an interrupted download (`<dest>.part`) with a `Range` request.
    pub resume: bool,
    /// Called after every chunk.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("resume", &self.resume)
            .field("progress", &self.progress.as_ref().map(|_| "<callback>"))
            .finish()
    }
}

impl DownloadOptions {
    /// Resume interrupted downloads.
    pub fn resume(mut self, on: bool) -> Self {
        self.resume = on;
        self
    }
    /// Report progress.
    pub fn progress(mut self, f: impl Fn(&DownloadProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
}

/// What a download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadReport {
    /// The finished file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Bytes transferred in this run.
    pub transferred: u64,
    /// Bytes reused from an earlier run.
    pub resumed_from: u64,
}

/// The temporary file a download writes to until it is complete.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

impl Client {
    /// Download `target` to `dest`. Data goes to `<dest>.part` and is renamed when complete;
    /// with `resume`, an existing `.part` file is continued with `Range: bytes=N-`. Each chunk
    /// must arrive within the read-idle timeout.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), opskit_http::Error> {
    /// use opskit_http::{Client, ClientConfig, DownloadOptions};
    /// let client = Client::new(ClientConfig::default())?;
    /// let report = client
    ///     .download(
    ///         "https://example.com/big.iso",
    ///         "big.iso".as_ref(),
    ///         DownloadOptions::default()
    ///             .resume(true)
    ///             .progress(|p| eprintln!("{} / {:?}", p.downloaded, p.total)),
    ///     )
    ///     .await?;
    /// # let _ = report; Ok(()) }
    /// ```
    pub async fn download(
        &self,
        target: &str,
        dest: &Path,
        opts: DownloadOptions,
    ) -> Result<DownloadReport, Error> {
        let part = partial_path(dest);
        let existing = if opts.resume {
            match tokio::fs::metadata(&part).await {
                Ok(m) => m.len(),
                Err(_) => 0,
            }
        } else {
            0
        };
        let mut rb = self.get(target).no_cache();
        if existing > 0 {
            rb = rb.header("Range", format!("bytes={existing}-"));
        }
        let resp = rb.send().await?;
        let status = resp.status();
        let (mut file, start, total) = if status == StatusCode::PARTIAL_CONTENT && existing > 0 {
            let (from, total) = content_range(resp.headers()).ok_or_else(|| Error::Decode {
                url: resp.url().to_string(),
                message: "206 response without a valid Content-Range".into(),
            })?;
            if from != existing {
                return Err(Error::Decode {
                    url: resp.url().to_string(),
                    message: format!(
                        "asked to resume at byte {existing}, server sent from byte {from}"
                    ),
                });
            }
            let f = tokio::fs::OpenOptions::new()
                .append(true)
                .open(&part)
                .await
                .map_err(|e| Error::io(&part, e))?;
            (f, existing, total)
        } else if status == StatusCode::RANGE_NOT_SATISFIABLE && existing > 0 {
            // Already complete if the server's size equals what we have.
            let total = resp
                .headers()
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.strip_prefix("bytes */"))
                .and_then(|n| n.trim().parse::<u64>().ok());
            if total == Some(existing) {
                tokio::fs::rename(&part, dest)
                    .await
                    .map_err(|e| Error::io(dest, e))?;
                return Ok(DownloadReport {
                    path: dest.to_path_buf(),
                    size: existing,
                    transferred: 0,
                    resumed_from: existing,
                });
            }
            return Err(resp.into_status_error().await);
        } else {
            let resp_ok = resp.error_for_status().await?;
            let total = resp_ok.content_length();
            let f = tokio::fs::File::create(&part)
                .await
                .map_err(|e| Error::io(&part, e))?;
            return finish(resp_ok, f, &part, dest, 0, total, &opts).await;
        };
        let _ = &mut file;
        finish(resp, file, &part, dest, start, total, &opts).await
    }

    /// Walk the pages of a GET of `target` as a stream of items.
    pub fn paginate(
        &self,
        target: &str,
        paginator: crate::Paginator,
    ) -> impl futures::Stream<Item = Result<serde_json::Value, Error>> + Send + 'static {
        self.get(target).paginate(paginator)
    }
}

async fn finish(
    resp: crate::Response,
    mut file: tokio::fs::File,
    part: &Path,
    dest: &Path,
    start: u64,
    total: Option<u64>,
    opts: &DownloadOptions,
) -> Result<DownloadReport, Error> {
    let total = total.map(|t| if start > 0 && t < start { t + start } else { t });
    let mut downloaded = start;
    let mut chunks = Box::pin(resp.chunks());
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::io(part, e))?;
        downloaded += chunk.len() as u64;
        if let Some(p) = &opts.progress {
            p(&DownloadProgress {
                downloaded,
                total,
                resumed_from: start,
            });
        }
    }
    file.flush().await.map_err(|e| Error::io(part, e))?;
    file.sync_all().await.map_err(|e| Error::io(part, e))?;
    drop(file);
    if let Some(t) = total
        && downloaded != t
    {
        return Err(Error::Transport {
            url: dest.display().to_string(),
            message: format!(
                "download ended after {downloaded} of {t} bytes; run again with resume"
            ),
        });
    }
    tokio::fs::rename(part, dest)
        .await
        .map_err(|e| Error::io(dest, e))?;
    Ok(DownloadReport {
        path: dest.to_path_buf(),
        size: downloaded,
        transferred: downloaded - start,
        resumed_from: start,
    })
}

/// `Content-Range: bytes FROM-TO/TOTAL` → (FROM, TOTAL if known).
fn content_range(headers: &http::HeaderMap) -> Option<(u64, Option<u64>)> {
    let v = headers.get(http::header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (from, _) = range.split_once('-')?;
    let from = from.trim().parse().ok()?;
    let total = total.trim().parse().ok();
    Some((from, total))
}
