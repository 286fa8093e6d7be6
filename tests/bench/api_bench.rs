//! Foundation benchmark (issue 2): start-up time to a healthy `/api/v1/health`, idle RSS, and
//! the API's p95 for a list of 100 extensions with 100k CDRs in the database.
//!
//! Run on its own, not in CI:
//!   cargo build --release --bin flowpbx
//!   cargo run --release -p flowpbx-tests --bin api-bench [-- --cdrs 100000 --requests 500]
//! The server binary is $FLOWPBX_BIN, else <target>/release/flowpbx.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flowpbx_tests::{workspace_root, Server, ServerOptions};
use serde_json::json;

struct Args {
    cdrs: i64,
    requests: usize,
    starts: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args { cdrs: 100_000, requests: 500, starts: 5 };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--cdrs" => a.cdrs = v.parse()?,
            "--requests" => a.requests = v.parse()?,
            "--starts" => a.starts = v.parse()?,
            other => bail!("unknown argument {other} (--cdrs N, --requests N, --starts N)"),
        }
    }
    Ok(a)
}

fn release_binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("FLOWPBX_BIN") {
        return Ok(PathBuf::from(p));
    }
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let bin = target.join("release").join("flowpbx");
    if !bin.is_file() {
        bail!("{} is missing: run `cargo build --release --bin flowpbx` first (or set FLOWPBX_BIN)", bin.display());
    }
    Ok(bin)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn timed_gets(c: &flowpbx_tests::Client, path: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    // warm up
    for _ in 0..10 {
        c.get(path).await?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = c.get(path).await?;
        times.push(t.elapsed());
        if r.status != 200 {
            bail!("GET {path}: {} {}", r.status, r.text);
        }
    }
    times.sort();
    Ok(times)
}

fn report(name: &str, t: &[Duration]) {
    println!("{name:<48} p50 {:>10}  p95 {:>10}  p99 {:>10}  (n={})", ms(percentile(t, 0.5)), ms(percentile(t, 0.95)), ms(percentile(t, 0.99)), t.len());
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let bin = release_binary()?;
    println!("flowpbx foundation benchmark — binary {}", bin.display());
    let opts = || ServerOptions { binary: Some(bin.clone()), args: vec!["--log-level".into(), "warn".into()], ..Default::default() };

    // 1. start-up to healthy, on an empty data dir each time
    // (the flow engine starts in the background; with the node components in the compile
    // cache, as after the first start, it is ready soon after)
    let mut starts = Vec::new();
    let mut ready = Vec::new();
    for _ in 0..a.starts {
        let mut s = Server::start_with(opts()).await?;
        starts.push(s.startup_time());
        ready.push(s.ready_time());
        s.stop()?;
    }
    starts.sort();
    ready.sort();
    println!(
        "start-up to healthy (empty data dir, {} runs)      median {:>10}  max {:>10}   goal < 1 s",
        a.starts,
        ms(percentile(&starts, 0.5)),
        ms(*starts.last().unwrap())
    );
    println!("start-up until the flow engine is up too          median {:>10}  max {:>10}", ms(percentile(&ready, 0.5)), ms(*ready.last().unwrap()));

    // 2. idle RSS after first-boot setup and a login
    let server = Server::start_with(opts()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fresh = server.rss_kib().context("reading VmRSS")?;
    println!("idle RSS right after start-up                    {:>10.1} MiB", fresh as f64 / 1024.0);
    let c = server.admin().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = server.rss_kib().context("reading VmRSS")?;
    println!("idle RSS after setup and login                   {:>10.1} MiB              goal < 32 MiB", idle as f64 / 1024.0);
    // file-backed pages are the binary's code and the mapped compiled nodes: page cache the
    // kernel maps a whole folio at a time and can reclaim; anonymous memory is the process's own
    let mib = |f: &str| server.status_kib(f).map_or(f64::NAN, |k| k as f64 / 1024.0);
    println!("  of which anonymous {:.1} MiB, file-backed {:.1} MiB, shared memory {:.1} MiB", mib("RssAnon"), mib("RssFile"), mib("RssShmem"));

    // 3. 100 extensions (through the API), 100k CDRs (through the store, as the PBX writes them)
    let t = Instant::now();
    for i in 0..100 {
        let r = c
            .post("/extensions", &json!({"extension": format!("{}", 1000 + i), "name": format!("User {i}"), "sip_password": format!("password-{i:04}")}))
            .await?;
        if r.status != 201 {
            bail!("creating extension {i}: {}", r.text);
        }
    }
    println!("create 100 extensions via the API                {:>10}", ms(t.elapsed()));
    let key = std::fs::read_to_string(server.data_dir().join(store::SECRET_KEY_FILE))?;
    let st =
        store::Store::open(store::StoreOptions { path: server.db_path(), secret_key: store::SecretKey::parse(&key)?, sip_realm: None, max_connections: 1 })
            .await?;
    let t = Instant::now();
    let t0 = store::Timestamp::parse("2025-01-01T00:00:00Z").unwrap();
    let dirs = [store::CallDirection::Inbound, store::CallDirection::Outbound, store::CallDirection::Internal];
    let disp = [store::CallDisposition::Answered, store::CallDisposition::NoAnswer, store::CallDisposition::Busy, store::CallDisposition::Voicemail];
    let mut done = 0i64;
    while done < a.cdrs {
        let mut tx = st.begin().await?;
        for i in done..(done + 5000).min(a.cdrs) {
            let start = t0 + time::Duration::seconds(i * 300);
            let id = tx
                .cdrs()
                .insert_start(&store::NewCdr {
                    call_id: format!("{i:08x}@bench"),
                    start_time: start,
                    caller_id_name: Some(format!("Caller {}", i % 977)),
                    caller_id_num: Some(format!("+614{:08}", i % 50_000)),
                    callee: Some(format!("{}", 1000 + i % 100)),
                    trunk_id: None,
                    direction: dirs[(i % 3) as usize],
                    flow_id: None,
                    flow_version: None,
                    extension_id: None,
                    route_id: None,
                })
                .await?;
            tx.cdrs().update_answer(id, start + time::Duration::seconds(5)).await?;
            tx.cdrs()
                .update_end(
                    id,
                    &store::CdrEnd {
                        end_time: start + time::Duration::seconds(65 + i % 600),
                        disposition: disp[(i % 4) as usize],
                        hangup_cause: Some("normal_clearing".into()),
                        flow_path: json!(["n1", "n2", "n3"]),
                        recording_file: None,
                        trunk_id: None,
                        transfers: None,
                    },
                )
                .await?;
        }
        tx.commit().await?;
        done = (done + 5000).min(a.cdrs);
    }
    st.close().await;
    println!("insert {} CDRs (start, answer, end) via store {:>10}", a.cdrs, ms(t.elapsed()));
    let db_mb = std::fs::metadata(server.db_path())?.len() as f64 / 1048576.0;
    println!("database size                                    {db_mb:>10.1} MiB");

    // 4. API latencies
    let ext = timed_gets(&c, "/extensions?limit=100", a.requests).await?;
    report("GET /extensions?limit=100 (100k CDRs in db)", &ext);
    report("GET /cdrs (first page of 20)", &timed_gets(&c, "/cdrs", a.requests).await?);
    report("GET /cdrs?limit=100&direction=inbound", &timed_gets(&c, "/cdrs?limit=100&direction=inbound", a.requests).await?);
    report("GET /cdrs?limit=100&offset=50000", &timed_gets(&c, "/cdrs?limit=100&offset=50000", a.requests / 5).await?);
    report("GET /cdrs?from=2025-06-01&to=2025-06-30", &timed_gets(&c, "/cdrs?from=2025-06-01&to=2025-06-30", a.requests).await?);
    let t = Instant::now();
    let csv = c.http().get(c.url("/cdrs/export")).send().await?.bytes().await?;
    println!("GET /cdrs/export (all {} rows, {:.1} MiB)     {:>10}", a.cdrs, csv.len() as f64 / 1048576.0, ms(t.elapsed()));
    let busy = server.rss_kib().unwrap_or(0);
    println!("RSS after the load                               {:>10.1} MiB", busy as f64 / 1024.0);
    println!(
        "RESULT startup_median_ms={:.1} idle_rss_mib={:.1} extensions_list_p95_ms={:.2}",
        percentile(&starts, 0.5).as_secs_f64() * 1000.0,
        idle as f64 / 1024.0,
        percentile(&ext, 0.95).as_secs_f64() * 1000.0
    );
    Ok(())
}
