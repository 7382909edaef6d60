//! The opskit-http side of `bench/http-client/run.sh`.
//!
//! `bench_client <base-url> gets <n> <concurrency>` or `bench_client <base-url> pages <per-page>`;
//! prints the elapsed seconds.

use futures::{StreamExt, TryStreamExt};
use opskit_http::{Client, ClientConfig, PageStyle, Paginator};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bench_client <base-url> gets <n> <concurrency> | pages <per-page>";
    let base = args.get(1).ok_or(usage)?.clone();
    let job = args.get(2).ok_or(usage)?.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = Client::new(ClientConfig::new(base).header("Accept", "application/json"))?;
        let start = std::time::Instant::now();
        match job.as_str() {
            "gets" => {
                let n: usize = args.get(3).ok_or(usage)?.parse()?;
                let conc: usize = args.get(4).ok_or(usage)?.parse()?;
                let ok = futures::stream::iter(0..n)
                    .map(|i| {
                        let c = client.clone();
                        async move {
                            c.get(&format!("items/{i}"))
                                .send()
                                .await?
                                .error_for_status()
                                .await?
                                .json::<serde_json::Value>()
                                .await
                        }
                    })
                    .buffer_unordered(conc)
                    .try_fold(0usize, |n, v| async move {
                        Ok(n + usize::from(v["id"].is_u64()))
                    })
                    .await?;
                if ok != n {
                    return Err(format!("only {ok} of {n} responses were right").into());
                }
            }
            "pages" => {
                let per: u64 = args.get(3).ok_or(usage)?.parse()?;
                let items: Vec<serde_json::Value> = client
                    .paginate(
                        "pages",
                        Paginator::new(PageStyle::page_number("page", "per_page", per))
                            .items_at("/data"),
                    )
                    .try_collect()
                    .await?;
                if items.len() != 5000 {
                    return Err(format!("walked {} items, expected 5000", items.len()).into());
                }
            }
            _ => return Err(usage.into()),
        }
        println!("{:.4}", start.elapsed().as_secs_f64());
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
