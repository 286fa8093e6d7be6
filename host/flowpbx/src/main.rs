//! The `flowpbx` binary: command line and configuration, logging, start-up and graceful
//! shutdown, and the wiring of the crates. With no subcommand it runs the server.
// One audited use of `unsafe`: the allocator setting in `fixed_mmap_threshold`.
#![deny(unsafe_code)]

mod backup_cli;
mod config;
mod drain;
mod flow_cli;
mod logfile;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use config::{Command, Config, LogFormat, Settings};
use store::{SecretKey, Store, StoreOptions};
use tracing_subscriber::EnvFilter;

/// Largest prompt upload accepted by the API.
const MAX_UPLOAD_BYTES: usize = 20 * 1024 * 1024;

fn main() -> std::process::ExitCode {
    let started = Instant::now();
    // one crypto provider for every TLS user of the process (HTTPS, ACME, webhooks, SIP over
    // TLS): ring, the only one this build links
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cli, matches) = config::parse();
    if let Err(e) = init_logging(&cli.settings) {
        eprintln!("flowpbx: {e:#}");
        return std::process::ExitCode::from(2);
    }
    let result = match cli.command {
        None | Some(Command::Serve) => run_server(cli.settings, matches, started).map(|()| std::process::ExitCode::SUCCESS),
        Some(Command::Node { command }) => flow_cli::node(command, &cli.settings),
        Some(Command::Flow { command }) => flow_cli::flow(command, &cli.settings),
        Some(Command::Backup { out, recordings }) => backup_cli::backup(&cli.settings, &out, recordings),
        Some(Command::Restore { file }) => backup_cli::restore(&cli.settings, &file),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("flowpbx: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(s: &Settings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&s.log_level).with_context(|| format!("invalid --log-level {:?}", s.log_level))?;
    let writer = match &s.log_file {
        Some(path) => {
            logfile::LogWriter::file(path, s.log_max_mb.max(1) * 1024 * 1024, s.log_keep).with_context(|| format!("the log file {}", path.display()))?
        }
        None => logfile::LogWriter::stderr(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(s.log_file.is_none());
    match s.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    }
    .map_err(|e| anyhow::anyhow!("logging: {e}"))
}

/// glibc raises its mmap threshold each time a large block it had mmapped is freed, after which
/// blocks of that size come from the heap and stay resident once freed. Every argon2id hash
/// (an admin login, a conference or voicemail PIN) allocates 9 MiB and frees it: with the
/// dynamic threshold the process kept about 9 MiB more after the first login (idle RSS 47.1
/// → 37.7 MiB with the threshold fixed, measured with the release build). Setting it fixes it
/// at glibc's default (128 KiB), so large blocks always go back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn fixed_mmap_threshold() {
    // SAFETY: mallopt only changes allocator parameters; it is called before the runtime
    // starts any thread, and M_MMAP_THRESHOLD with 128 KiB is a valid setting.
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    if ok != 1 {
        tracing::debug!("mallopt(M_MMAP_THRESHOLD) was refused");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fixed_mmap_threshold() {}

/// How often the heap trimmer looks, and the free memory inside glibc's arenas above which it
/// gives that memory back to the system.
const HEAP_TRIM_EVERY: Duration = Duration::from_secs(30);
const HEAP_TRIM_FREE_ABOVE: usize = 8 << 20;

/// glibc keeps what a burst of calls freed inside its per-thread arenas: the SIP thread's
/// transactions live 64·T1 (32 s) after each call, and once they are gone their memory is free
/// but still resident, pinned by the few long-lived blocks between them. Measured with
/// tests/bench/memory_bench.py (1,000 registered users, 2,000 calls at 200/s): anonymous
/// memory 23 MiB idle, 69 MiB after the calls and still 69 MiB after 40 quiet seconds, with
/// every call, transaction and index map empty again; `malloc_trim(0)` took it to 33 MiB.
/// So a thread looks every [`HEAP_TRIM_EVERY`] and trims when more than
/// [`HEAP_TRIM_FREE_ABOVE`] sits free in the arenas. The media relay does not allocate, so a
/// trim (a few milliseconds under the arenas' locks) never holds up a packet.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn start_heap_trimmer() {
    let spawned = std::thread::Builder::new().name("heap-trim".into()).spawn(|| {
        loop {
            std::thread::sleep(HEAP_TRIM_EVERY);
            // SAFETY: mallinfo2 only reads the allocator's statistics (under its locks).
            let free = unsafe { libc::mallinfo2() }.fordblks;
            if free > HEAP_TRIM_FREE_ABOVE {
                // SAFETY: malloc_trim returns free pages of every arena to the system; it
                // takes each arena's lock and touches no allocated block.
                let released = unsafe { libc::malloc_trim(0) };
                tracing::debug!(free_bytes = free, released = released == 1, "heap trimmed");
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "the heap trimmer did not start: memory freed after load stays resident");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn start_heap_trimmer() {}

fn run_server(settings: Settings, matches: clap::ArgMatches, started: Instant) -> anyhow::Result<()> {
    fixed_mmap_threshold();
    start_heap_trimmer();
    // Two workers are plenty for the API and signalling; CPU-heavy work (argon2) goes to the
    // blocking pool.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("flowpbx")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(settings, matches, started))
}

fn load_secret_key(settings: &Settings, data_dir: &Path) -> anyhow::Result<SecretKey> {
    match &settings.secret_key {
        Some(text) => SecretKey::parse(text).context("FLOWPBX_SECRET_KEY / --secret-key"),
        None => SecretKey::load_or_create(&data_dir.join(store::SECRET_KEY_FILE)).context("the secret key file"),
    }
}

/// Everything the server writes (the database, the secret key, recordings, voicemail, the
/// component cache, uploaded prompts and plugins) is for its own user only: the umask makes
/// new files 0600 and directories 0700, and what an older version left readable in the data
/// dir is narrowed at start.
fn make_private(data_dir: &Path) -> anyhow::Result<()> {
    use rustix::fs::Mode;
    rustix::process::umask(Mode::from_raw_mode(0o077));
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let narrow = |path: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && !meta.file_type().is_symlink()
            && meta.permissions().mode() & 0o077 != 0
            && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot make private");
        }
    };
    narrow(data_dir, 0o700);
    for f in [store::DB_FILE.to_owned(), format!("{}-wal", store::DB_FILE), format!("{}-shm", store::DB_FILE), store::SECRET_KEY_FILE.to_owned()] {
        narrow(&data_dir.join(f), 0o600);
    }
    for d in ["recordings", "voicemail", "cache", "plugins", "prompts", "tls"] {
        narrow(&data_dir.join(d), 0o700);
    }
    Ok(())
}

async fn serve(settings: Settings, matches: clap::ArgMatches, started: Instant) -> anyhow::Result<()> {
    let data_dir = settings.data_dir.clone();
    make_private(&data_dir)?;
    let secret_key = load_secret_key(&settings, &data_dir)?;
    let db_path = data_dir.join(store::DB_FILE);
    let store = Store::open(StoreOptions { path: db_path.clone(), secret_key: secret_key.clone(), sip_realm: None, max_connections: 4 })
        .await
        .with_context(|| format!("opening the database {}", db_path.display()))?;

    let layers = config::layers(&matches);
    let stored = store.settings().all().await.context("reading the stored settings")?;
    let config: Config = config::resolve(&settings, &layers, &stored)?;
    store.set_sip_realm(&config.sip.realm).await.context("applying the SIP realm")?;
    // (registrations survive a restart until they expire: the SIP stack reloads them)
    let expired_sessions = store.sessions().delete_expired(store::Timestamp::now()).await?;
    tracing::debug!(expired_sessions, "cleared ephemeral state");
    // the default prompts, where the media engine and the prompts library read them
    media::prompts::extract_system_prompts(&data_dir).context("extracting the default prompts")?;

    let state = api::AppState::new(
        store.clone(),
        api::ApiConfig {
            data_dir: data_dir.clone(),
            jwt_secret: secret_key.derive("api-token-jwt"),
            max_upload_bytes: MAX_UPLOAD_BYTES,
            version: env!("CARGO_PKG_VERSION"),
        },
        layers,
    );
    let media = media::MediaEngine::new(media_config(&config.media, &data_dir)).context("starting the media engine")?;
    // the certificate first: SIP over TLS serves it from the SIP stack's start
    let certs = tls::start(tls::default_provider(), tls_config(&config.tls, &data_dir)?).context("the TLS certificate")?;
    let mut sip = sip_config(&config.sip, &secret_key);
    sip.wss_port = config.sip.wss_port;
    sip.ws_port = config.sip.ws_port;
    if config.sip.tls_port != 0 || config.sip.wss_port != 0 {
        sip.tls_port = config.sip.tls_port;
        sip.tls = Some(call::SipTls { server: certs.server_config(Vec::new()).context("the SIP TLS configuration")?, provider: tls::default_provider() });
    }
    let pbx = call::start_with_media(sip, store.clone(), media.clone()).await.context("starting the SIP stack")?;
    if let Some(a) = pbx.tls_addr() {
        certs.note_listener("sip-tls", Ok(a));
    }
    if let Some(a) = pbx.wss_addr() {
        certs.note_listener("sip-wss", Ok(a));
    }
    state.register_health("media", {
        let media = media.clone();
        Arc::new(move || {
            let h = media.health();
            api::ComponentStatus {
                status: if h.recording_disk_low { "degraded" } else { "ok" },
                detail: Some(format!(
                    "{} sessions, {}/{} RTP port pairs in use, {} SRTP packets dropped (bad tag), {} (replays){}",
                    h.sessions,
                    h.port_pairs_in_use,
                    h.port_pairs,
                    h.srtp_auth_failures,
                    h.srtp_replays,
                    if h.recording_disk_low { ", recording skipped: disk space low" } else { "" }
                )),
            }
        })
    });
    state.attach_pbx(pbx.clone());
    state.set_metrics_access(api::metrics::MetricsAccess {
        token: settings.metrics_token.clone().filter(|t| !t.is_empty()),
        allow: settings.metrics_allow.clone(),
        separate_listener: settings.metrics_listen.is_some(),
    });
    // the database's round trip, for metrics, between scrapes
    tokio::spawn({
        let state = state.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                if let Err(e) = state.probe_database().await {
                    tracing::warn!(error = %e, "database probe failed");
                }
            }
        }
    });
    // scheduled backups into <data-dir>/backups, by the settings in force
    tokio::spawn(pbx::backup::run_schedule(
        store.clone(),
        state.settings_layers().clone(),
        data_dir.clone(),
        env!("CARGO_PKG_VERSION").to_owned(),
        state.backup_schedule_state(),
    ));
    let drain = drain::Drain::new(pbx.clone(), Duration::from_secs(settings.drain_timeout_secs));
    state.attach_drain(drain.probe());
    // webhooks on the PBX's events, through the egress-checked client and the webhook
    // node's egress grant (--webhook-allow-networks/--webhook-allow-ports)
    let notify_http = flow::services::ReqwestClient::new().map_err(|e| anyhow::anyhow!("the webhook HTTP client: {e}"))?;
    let notify_config = pbx::notify::NotifyConfig { egress: config.flow.builtin_egress.clone(), ..Default::default() };
    state.attach_notifier(pbx::notify::Notifier::start(state.store().clone(), Some(pbx.subscribe()), Arc::new(notify_http), notify_config));
    // voicemail e-mail through the outbox; links name the web UI's address
    let base_url = match (&config.sip.hostname, config.tls.https_port) {
        (Some(h), 443) => Some(format!("https://{h}")),
        (Some(h), p) if p != 0 => Some(format!("https://{h}:{p}")),
        (Some(h), _) => Some(format!("http://{h}:{}", config.http.port)),
        (None, _) => None,
    };
    let mail_config = pbx::mail::MailConfig { smtp_url: settings.smtp_url.clone(), from: settings.smtp_from.clone(), base_url, ..Default::default() };
    pbx::mail::Mailer::start(state.store().clone(), config.data_dir.clone(), Some(pbx.subscribe()), mail_config);
    // voicemail, recordings and CDRs older than their retention go once a day
    pbx::retention::spawn_daily(state.store().clone(), config.data_dir.clone(), Arc::new(pbx::retention::SystemClock), std::time::Duration::from_secs(86_400));
    state.attach_tls(certs.clone(), config.tls.https_port);
    state.register_health("tls", {
        let certs = certs.clone();
        Arc::new(move || {
            let h = certs.health(std::time::SystemTime::now());
            api::ComponentStatus { status: h.status, detail: Some(h.detail) }
        })
    });
    state.register_health("sip", {
        let pbx = pbx.clone();
        Arc::new(move || {
            let h = pbx.health();
            api::ComponentStatus {
                status: if h.running { "ok" } else { "down" },
                detail: Some(format!(
                    "{} extensions, {} trusted trunks, {} numbers, {} registrations, {} calls, {} banned sources, {} WebSocket frames dropped",
                    h.directory.extensions, h.directory.trusted_trunks, h.directory.numbers, h.registrations, h.calls, h.guard.banned, h.ws_dropped
                )),
            }
        })
    });
    // The flow engine starts in the background; every inbound call then walks its number's
    // published flow (see pbx::engine::start_in_background).
    let engine_settings = pbx::engine::EngineSettings { cache_dir: settings.cache_dir.clone(), builtin_egress: config.flow.builtin_egress.clone() };
    pbx::engine::start_in_background(state.flow_service().clone(), pbx.clone(), engine_settings);
    let metrics_app = api::metrics::metrics_router(state.clone());
    let app = api::router(state);
    let addr = SocketAddr::new(config.http.bind, config.http.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening for HTTP on {addr}"))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut more_servers = tokio::task::JoinSet::new();
    if config.tls.https_port != 0 {
        let https_addr = SocketAddr::new(config.http.bind, config.tls.https_port);
        match tokio::net::TcpListener::bind(https_addr).await {
            Ok(l) => {
                let https = api::HttpsListener::new(l, &certs).context("HTTPS")?;
                certs.note_listener("https", Ok(https_addr));
                let serve = axum::serve(https, app.clone().into_make_service_with_connect_info::<api::ConnInfo>()).with_graceful_shutdown(stopped());
                more_servers.spawn(async move { serve.await.context("serving HTTPS") });
            }
            Err(e) if !config.tls.https_port_explicit => {
                tracing::warn!(error = %e, "cannot listen for HTTPS on {https_addr}: running without HTTPS (set --https-port to a free port, or 0)");
                certs.note_listener("https", Err(format!("cannot listen on {https_addr}: {e}")));
            }
            Err(e) => return Err(e).with_context(|| format!("listening for HTTPS on {https_addr}")),
        }
    }
    if let Some(maddr) = settings.metrics_listen {
        let l = tokio::net::TcpListener::bind(maddr).await.with_context(|| format!("listening for metrics on {maddr}"))?;
        let serve = axum::serve(l, metrics_app.into_make_service_with_connect_info::<api::ConnInfo>()).with_graceful_shutdown(stopped());
        more_servers.spawn(async move { serve.await.context("serving metrics") });
    }
    if config.tls.acme_http_port != 0 && config.tls.acme_http_port != config.http.port {
        // the CA validates HTTP-01 on port 80: the same application answers there
        let acme_addr = SocketAddr::new(config.http.bind, config.tls.acme_http_port);
        match tokio::net::TcpListener::bind(acme_addr).await {
            Ok(l) => {
                certs.note_listener("acme-http", Ok(acme_addr));
                let serve = axum::serve(l, app.clone().into_make_service_with_connect_info::<api::ConnInfo>()).with_graceful_shutdown(stopped());
                more_servers.spawn(async move { serve.await.context("serving HTTP-01") });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen on {acme_addr} for ACME HTTP-01: the CA will not reach this server");
                certs.note_listener("acme-http", Err(format!("cannot listen on {acme_addr}: {e}")));
            }
        }
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        http = %addr,
        https = config.tls.https_port,
        tls = ?certs.status().mode,
        sip_udp = config.sip.udp_port,
        sip_tcp = config.sip.tcp_port,
        sip_tls = config.sip.tls_port,
        sip_wss = config.sip.wss_port,
        realm = %config.sip.realm,
        rtp = %format!("{}-{}", config.media.rtp_port_min, config.media.rtp_port_max),
        external_ip = ?config.sip.external_ip,
        sip_log = config.sip.log.as_str(),
        data_dir = %data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "FlowPBX is ready"
    );
    tracing::debug!(?config, "effective configuration");

    // SIGTERM or SIGINT (or POST /system/drain) starts a drain: new calls are refused, the
    // calls in progress may finish until the deadline; a second signal ends them at once.
    tokio::spawn(drain::on_signals(drain.clone()));
    tokio::spawn(async move {
        drain.finished().await;
        let _ = stop_tx.send(true);
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<api::ConnInfo>()).with_graceful_shutdown(stopped()).await.context("serving HTTP")?;
    tracing::info!("shutting down");
    // the other listeners stop with it (their connections get the same grace)
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(r) = more_servers.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "a listener ended with an error");
            }
        }
    })
    .await;
    pbx.shutdown().await;
    store.close().await;
    Ok(())
}

/// The certificate store's settings from the binary's.
fn tls_config(t: &config::TlsSettings, data_dir: &Path) -> anyhow::Result<tls::TlsConfig> {
    let source = match &t.source {
        config::TlsSource::SelfSigned => tls::SourceConfig::SelfSigned,
        config::TlsSource::Files { cert, key } => {
            tls::SourceConfig::Files(tls::FilesConfig { cert: cert.clone(), key: key.clone(), poll: tls::files::DEFAULT_POLL })
        }
        config::TlsSource::Acme(a) => {
            let challenge = match a.challenge {
                config::AcmeChallenge::Http01 => tls::Challenge::Http01,
                config::AcmeChallenge::TlsAlpn01 => tls::Challenge::TlsAlpn01,
                config::AcmeChallenge::Dns01 => {
                    let provider: Arc<dyn tls::DnsProvider> = match &a.dns {
                        Some(config::DnsProvider::Script(script)) => Arc::new(tls::ExecProvider::new(script.clone())),
                        Some(config::DnsProvider::Cloudflare { api, token }) => {
                            Arc::new(tls::CloudflareProvider::new(api, token, tls::default_provider()).context("Cloudflare")?)
                        }
                        None => anyhow::bail!("dns-01 needs a DNS provider"),
                    };
                    tls::Challenge::Dns01 { provider, propagation: Duration::from_secs(a.dns_wait_secs) }
                }
            };
            tls::SourceConfig::Acme(tls::AcmeConfig {
                directory: a.directory.clone(),
                domains: a.domains.clone(),
                contact: a.email.iter().cloned().collect(),
                challenge,
                ca_root: a.ca_root.clone(),
                policy: tls::RenewalPolicy::default(),
                order_timeout: Duration::from_secs(120),
            })
        }
    };
    Ok(tls::TlsConfig { data_dir: data_dir.to_path_buf(), source, self_signed_names: t.self_signed_names.clone() })
}

/// The media engine's settings from the binary's.
fn media_config(m: &config::MediaSettings, data_dir: &Path) -> media::EngineConfig {
    let mut c = media::EngineConfig { data_dir: data_dir.to_path_buf(), ..Default::default() };
    c.bind_ip = m.bind;
    c.advertised_ip = m.external_ip;
    c.port_min = m.rtp_port_min;
    c.port_max = m.rtp_port_max;
    c.session.media_timeout = Duration::from_secs(m.media_timeout_secs.max(1));
    c.session.strict = media::StrictRtp {
        probation: m.rtp_strict_probation,
        learning: match m.rtp_strict_learning {
            config::RtpLearning::Nat => media::Learning::Nat,
            config::RtpLearning::Any => media::Learning::Any,
        },
    };
    c.min_free_disk = m.recording_min_free_mb.saturating_mul(1 << 20);
    c
}

/// The SIP stack's settings from the binary's.
fn sip_config(s: &config::SipSettings, key: &SecretKey) -> call::SipConfig {
    let mut c = call::SipConfig::new(s.bind, s.udp_port, s.tcp_port, key.derive("sip-digest-nonce"));
    c.external_ip = s.external_ip;
    c.hostname = s.hostname.clone();
    c.log = match s.log {
        config::SipLog::Off => call::SipLogMode::Off,
        config::SipLog::Headers => call::SipLogMode::Headers,
        config::SipLog::Full => call::SipLogMode::Full,
    };
    c.digest_algorithms = s.digest_algorithms.clone();
    c.registrar.min_expires = s.min_expires;
    c.registrar.max_expires = s.max_expires;
    c.registrar.default_expires = c.registrar.default_expires.clamp(s.min_expires, s.max_expires);
    c.security.auth_fail_limit = s.auth_fail_limit;
    c.security.auth_fail_window = Duration::from_secs(s.auth_fail_window_secs);
    c.security.ban_duration = Duration::from_secs(s.ban_secs);
    c.security.rate_limit = s.rate_limit;
    c.security.rate_burst = s.rate_burst;
    c.outbound = call::OutboundConfig { emergency_numbers: s.emergency_numbers.clone(), max_calls: s.max_outbound_calls };
    c
}
