//! SFTP against real sshd: put/get/ls, a large file, a missing remote path.

use opskit_ssh::{FanOut, Outcome, sftp};

use crate::common::{options, sshd};

#[tokio::test]
async fn put_to_many_ports_then_ls_and_get_back() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let kh = s.known_hosts(dir.path());
    let local = dir.path().join("hello.txt");
    std::fs::write(&local, b"hello\n").unwrap();
    let name = format!("opskit-put-{}.txt", std::process::id());
    let targets: Vec<_> = s.ports.iter().map(|p| s.target(*p)).collect();
    let paths = vec![name.clone(); targets.len()];
    let reports = sftp::put(
        targets,
        paths,
        local.clone(),
        options(&kh, false, s.key_creds()),
        FanOut::default(),
        None,
    )
    .await;
    for r in &reports {
        assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
        assert_eq!(r.bytes, 6);
    }
    // Putting again replaces the file.
    std::fs::write(&local, b"hello again\n").unwrap();
    let r = sftp::put(
        vec![s.target(s.port())],
        vec![name.clone()],
        local.clone(),
        options(&kh, false, s.key_creds()),
        FanOut::default(),
        None,
    )
    .await;
    assert_eq!(r[0].outcome, Outcome::Ok, "{:?}", r[0].message);

    let r = sftp::ls(
        vec![s.target(s.port())],
        vec![".".into()],
        options(&kh, false, s.key_creds()),
        FanOut::default(),
        None,
    )
    .await;
    assert_eq!(r[0].outcome, Outcome::Ok, "{:?}", r[0].message);
    let entry = r[0]
        .entries
        .iter()
        .find(|e| e.name == name)
        .expect("listed");
    assert_eq!((entry.kind, entry.size), ("file", 12));
    assert!(
        !r[0]
            .entries
            .iter()
            .any(|e| e.name.starts_with(&format!(".{name}.opskit-"))),
        "no temp files left"
    );

    let back = dir.path().join("back.txt");
    let r = sftp::get(
        s.target(s.port()),
        name,
        back.clone(),
        options(&kh, false, s.key_creds()),
        None,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
    assert_eq!(std::fs::read(&back).unwrap(), b"hello again\n");
}

#[tokio::test]
async fn large_file_round_trip() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let kh = s.known_hosts(dir.path());
    let local = dir.path().join("big.bin");
    let data: Vec<u8> = (0..50 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&local, &data).unwrap();
    let name = format!("opskit-big-{}.bin", std::process::id());
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p2 = progress.clone();
    let sink: opskit_ssh::EventSink = std::sync::Arc::new(move |e| {
        if let opskit_ssh::Event::Progress { done, .. } = e {
            p2.store(done, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let r = sftp::put(
        vec![s.target(s.port())],
        vec![name.clone()],
        local,
        options(&kh, false, s.key_creds()),
        FanOut::default(),
        Some(sink),
    )
    .await;
    assert_eq!(r[0].outcome, Outcome::Ok, "{:?}", r[0].message);
    assert_eq!(
        progress.load(std::sync::atomic::Ordering::SeqCst),
        data.len() as u64
    );
    let back = dir.path().join("big.back");
    let r = sftp::get(
        s.target(s.port()),
        name.clone(),
        back.clone(),
        options(&kh, false, s.key_creds()),
        None,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
    assert_eq!(r.bytes, data.len() as u64);
    assert!(std::fs::read(&back).unwrap() == data, "content differs");
}

#[tokio::test]
async fn missing_remote_path_is_a_failed_transfer_with_the_reason() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let kh = s.known_hosts(dir.path());
    let back = dir.path().join("x");
    let r = sftp::get(
        s.target(s.port()),
        "/no/such/file".into(),
        back.clone(),
        options(&kh, false, s.key_creds()),
        None,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Failed { exit_code: None });
    assert!(r.message.unwrap().contains("no such file"));
    assert!(!back.exists());
    let r = sftp::ls(
        vec![s.target(s.port())],
        vec!["/no/such/dir".into()],
        options(&kh, false, s.key_creds()),
        FanOut::default(),
        None,
    )
    .await;
    assert_eq!(r[0].outcome, Outcome::Failed { exit_code: None });
    let local = dir.path().join("f");
    std::fs::write(&local, b"x").unwrap();
    let r = sftp::put(
        vec![s.target(s.port())],
        vec!["/no/such/dir/f".into()],
        local,
        options(&kh, false, s.key_creds()),
        FanOut::default(),
        None,
    )
    .await;
    assert_eq!(r[0].outcome, Outcome::Failed { exit_code: None });
    assert!(
        r[0].message.as_ref().unwrap().contains("no such file"),
        "{:?}",
        r[0].message
    );
}
