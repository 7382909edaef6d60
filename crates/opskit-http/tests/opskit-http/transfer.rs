use std::sync::{Arc, Mutex};

use opskit_http::{Client, DownloadOptions, Multipart, Part, partial_path};
use serde_json::Value;

use crate::fixture::{BLOB_LEN, Fixture, blob};
use crate::support::config;

#[tokio::test]
async fn multipart_with_fields_and_files() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.csv");
    std::fs::write(&path, "host,up\nweb-1,true\n").unwrap();
    let client = Client::new(config(&fx.base())).unwrap();
    let form = Multipart::new()
        .text("comment", "nightly")
        .part(Part::file("report", &path).content_type("text/csv"))
        .part(
            Part::bytes("blob", vec![1u8, 2, 3])
                .filename("b.bin")
                .content_type("application/octet-stream"),
        );
    let v: Value = client
        .post("upload")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parts = v["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0]["name"], "comment");
    assert_eq!(parts[0]["text"], "nightly");
    assert_eq!(parts[1]["name"], "report");
    assert_eq!(parts[1]["filename"], "report.csv");
    assert_eq!(parts[1]["content_type"], "text/csv");
    assert_eq!(parts[1]["text"], "host,up\nweb-1,true\n");
    assert_eq!(parts[2]["filename"], "b.bin");
    assert_eq!(parts[2]["len"], 3);
}

#[tokio::test]
async fn form_bodies() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let v: Value = client
        .post("echo")
        .form(&[("a", "1"), ("b", "x y&z")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["body"], "a=1&b=x+y%26z");
    assert_eq!(
        v["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
}

#[tokio::test]
async fn download_streams_to_disk_with_progress() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob.bin");
    let client = Client::new(config(&fx.base())).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let report = client
        .download(
            "download/blob",
            &dest,
            DownloadOptions::default().progress(move |p| s.lock().unwrap().push(*p)),
        )
        .await
        .unwrap();
    assert_eq!(report.size, BLOB_LEN as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), blob());
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(seen.windows(2).all(|w| w[0].downloaded < w[1].downloaded));
    assert_eq!(seen.last().unwrap().downloaded, BLOB_LEN as u64);
    assert_eq!(seen.last().unwrap().total, Some(BLOB_LEN as u64));
    assert!(!partial_path(&dest).exists());
}

#[tokio::test]
async fn an_interrupted_download_resumes_with_range() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("flaky.bin");
    let client = Client::new(config(&fx.base())).unwrap();
    let err = client
        .download(
            "download/flaky",
            &dest,
            DownloadOptions::default().resume(true),
        )
        .await
        .unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert!(!dest.exists());
    let partial = std::fs::metadata(partial_path(&dest)).unwrap().len();
    assert!(partial > 0 && partial < BLOB_LEN as u64);
    let report = client
        .download(
            "download/flaky",
            &dest,
            DownloadOptions::default().resume(true),
        )
        .await
        .unwrap();
    assert_eq!(report.resumed_from, partial);
    assert_eq!(report.transferred, BLOB_LEN as u64 - partial);
    assert_eq!(std::fs::read(&dest).unwrap(), blob());
    let hits = fx.state.hits("/download/flaky");
    assert_eq!(
        hits[1].headers.get("range").unwrap().to_str().unwrap(),
        format!("bytes={partial}-")
    );
}

#[tokio::test]
async fn resuming_a_complete_partial_file_finishes_it() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("done.bin");
    std::fs::write(partial_path(&dest), blob()).unwrap();
    let client = Client::new(config(&fx.base())).unwrap();
    let report = client
        .download(
            "download/blob",
            &dest,
            DownloadOptions::default().resume(true),
        )
        .await
        .unwrap();
    assert_eq!(report.transferred, 0);
    assert_eq!(std::fs::read(&dest).unwrap(), blob());
}
