//! The machine's BLAKE3 and SHA-256 speeds over 1 MiB buffers, as `opskit net send/receive`
//! hash them (one thread each, the same crates): `cargo run --release -p opskit-net --example
//! hash_speed [MIB]` (default 1024 MiB, median of 5). Used by `bench/net/transfer.sh`.

use std::time::Instant;

use sha2::Digest;

fn rate(mib: usize, mut f: impl FnMut(&[u8])) -> f64 {
    let buf: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..mib {
                f(&buf);
            }
            (mib * buf.len()) as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let mut b = blake3::Hasher::new();
    let blake = rate(mib, |d| {
        b.update(d);
    });
    let mut s = sha2::Sha256::new();
    let sha = rate(mib, |d| s.update(d));
    println!("blake3  {blake:.2} GB/s (one thread, 1 MiB updates, {mib} MiB, median of 5)");
    println!("sha256  {sha:.2} GB/s (one thread, 1 MiB updates, {mib} MiB, median of 5)");
    std::hint::black_box((b.finalize(), s.finalize()));
}
