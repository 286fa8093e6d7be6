//! Persistence across restarts, secrets at rest, settings, prompts, CDRs, health and the
//! OpenAPI document: over HTTP against the real binary.

use std::io::Cursor;

use flowpbx_tests::{Server, ADMIN_PASSWORD, ADMIN_USER};
use serde_json::json;

const SIP_PASSWORD: &str = "Ext-Secret-7781xq";
const TRUNK_PASSWORD: &str = "Trunk-Secret-9932zp";
const VM_PIN: &str = "48213377";

fn read_all_db_bytes(server: &Server) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(server.data_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(store::DB_FILE)) {
            all.extend(std::fs::read(&p).unwrap());
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn data_survives_restart_and_no_secret_is_stored_in_clear() -> anyhow::Result<()> {
    let mut server = Server::start().await?;
    let c = server.admin().await?;
    let r = c.post("/extensions", &json!({"extension": "101", "name": "Persisted", "sip_password": SIP_PASSWORD})).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let ext_id = r.data()["id"].as_i64().unwrap();
    let r = c.post("/trunks", &json!({"name": "T", "type": "register", "host": "sip.example.com", "username": "acct", "password": TRUNK_PASSWORD})).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = c.post("/voicemail-boxes", &json!({"name": "VM", "pin": VM_PIN})).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    // nothing in any response either
    for path in ["/extensions", "/trunks", "/voicemail-boxes", "/audit-log?limit=100"] {
        let t = c.get(path).await?.text;
        for s in [SIP_PASSWORD, TRUNK_PASSWORD, VM_PIN, ADMIN_PASSWORD] {
            assert!(!t.contains(s), "{path} returned a secret");
        }
    }

    let status = server.stop()?;
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    let bytes = read_all_db_bytes(&server);
    assert!(bytes.len() > 4096);
    assert!(contains(&bytes, "Persisted"), "sanity: clear data is visible in the file");
    for s in [SIP_PASSWORD, TRUNK_PASSWORD, VM_PIN, ADMIN_PASSWORD] {
        assert!(!contains(&bytes, s), "{s:?} is in the database file in clear");
    }
    let key = std::fs::read_to_string(server.data_dir().join(store::SECRET_KEY_FILE))?;
    assert!(!contains(&bytes, key.trim()), "the secret key is not in the database");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(server.data_dir().join(store::SECRET_KEY_FILE))?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    server.restart().await?;
    let c = server.client();
    assert_eq!(c.get("/setup").await?.data()["required"], false);
    c.login(ADMIN_USER, ADMIN_PASSWORD).await?;
    let r = c.get(&format!("/extensions/{ext_id}")).await?;
    assert_eq!((r.status, r.data()["name"].as_str()), (200, Some("Persisted")), "{}", r.text);
    assert_eq!(c.get("/trunks").await?.data()[0]["password_set"], true);

    // the digest credentials open with the same key after the restart
    let s = store::Store::open(store::StoreOptions { path: server.db_path(), secret_key: store::SecretKey::parse(&key)?, sip_realm: None, max_connections: 1 })
        .await?;
    let cred = s.extensions().sip_credentials("101").await?.expect("credentials");
    assert_eq!(cred.ha1_md5, store::ha1_md5("101", "flowpbx", SIP_PASSWORD));
    s.close().await;

    // a crash (SIGKILL) loses nothing committed either
    server.kill()?;
    server.restart().await?;
    let c = server.admin().await?;
    assert_eq!(c.get("/extensions").await?.body["meta"]["total"], 1);
    Ok(())
}

#[tokio::test]
async fn settings_layering_and_realm() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.admin().await?;
    let r = c.get("/settings").await?;
    assert_eq!(r.status, 200);
    // the harness passes --http-port, --sip-port and --sip-tls-port
    assert_eq!(r.data()["http_port"]["source"], "flag");
    assert_eq!(r.data()["sip_udp_port"]["value"], server.ports().sip);
    assert_eq!(r.data()["sip_tls_port"]["source"], "flag");
    assert_eq!(r.data()["sip_tls_port"]["value"], server.ports().sip_tls);
    assert_eq!(r.data()["sip_tls_port"]["default"], 5061);
    assert_eq!(r.data()["media_timeout_secs"]["source"], "default");
    assert_eq!(r.data()["media_timeout_secs"]["value"], 60);

    let r = c.put("/settings", &json!({"sip_tls_port": 5071, "sip_udp_port": 5999, "media_timeout_secs": 45, "sip_realm": "corp.example"})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["settings"]["sip_tls_port"]["value"], server.ports().sip_tls);
    assert_eq!(r.data()["settings"]["sip_tls_port"]["source"], "flag");
    assert_eq!(r.data()["settings"]["media_timeout_secs"]["value"], 45);
    // what the flags hide needs no restart; a stored value in force does
    assert_eq!(r.data()["restart_required"], json!(["media_timeout_secs"]));
    assert_eq!(r.data()["overridden"], json!(["sip_udp_port", "sip_tls_port"]), "the flag still wins");
    let st = c.get("/system/status").await?;
    assert_eq!(st.data()["sip_realm"], "corp.example", "{}", st.text);

    for (body, field) in [
        (json!({"sip_tls_port": 0}), "sip_tls_port"),
        (json!({"external_ip": "not-an-ip"}), "external_ip"),
        (json!({"sip_log": "loud"}), "sip_log"),
        (json!({"rtp_port_min": 30000}), "rtp_port_min"),
        (json!({"unknown_key": 1}), "unknown_key"),
        (json!({"sip_tls_port": "x"}), "sip_tls_port"),
    ] {
        let r = c.put("/settings", &body).await?;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert!(r.error_fields().contains(&field.to_owned()), "{body}: {}", r.text);
    }
    // every wrong field at once, each named, in words (no setting key, no serde jargon)
    let r = c.put("/settings", &json!({"sip_tls_port": 0, "sip_log": "loud", "rtp_port_min": 20000, "rtp_port_max": 10000, "media_timeout_secs": -5})).await?;
    assert_eq!(r.status, 422, "{}", r.text);
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["media_timeout_secs", "rtp_port_min", "sip_log", "sip_tls_port"], "{}", r.text);
    for d in r.body["error"]["details"].as_array().unwrap() {
        let m = d["message"].as_str().unwrap();
        assert!(!m.contains('_') && !m.contains('`') && !m.contains("expected"), "{m}");
    }
    // nothing of a refused change is stored
    assert_eq!(c.get("/settings").await?.data()["media_timeout_secs"]["value"], 45);
    // a value a flag fixes names the flag; a choice lists its values; a port its range
    let s = c.get("/settings").await?;
    assert_eq!(s.data()["http_port"]["set_by"], "--http-port");
    assert_eq!(s.data()["sip_udp_port"]["set_by"], "--sip-port");
    assert_eq!(s.data()["sip_tls_port"]["set_by"], "--sip-tls-port");
    assert!(s.data()["media_timeout_secs"].get("set_by").is_none());
    assert_eq!(s.data()["sip_log"]["choices"], json!(["off", "headers", "full"]));
    assert_eq!((s.data()["sip_tls_port"]["minimum"].as_u64(), s.data()["sip_tls_port"]["maximum"].as_u64()), (Some(1), Some(65535)));
    // null resets to the default
    let r = c.put("/settings", &json!({"media_timeout_secs": 90})).await?;
    assert_eq!(r.data()["settings"]["media_timeout_secs"]["source"], "stored");
    let r = c.put("/settings", &json!({"media_timeout_secs": null})).await?;
    assert_eq!(r.data()["settings"]["media_timeout_secs"]["source"], "default");
    Ok(())
}

fn wav(seconds: u32) -> Vec<u8> {
    let mut c = Cursor::new(Vec::new());
    let spec = hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::new(&mut c, spec).unwrap();
    for i in 0..8000 * seconds {
        w.write_sample(((i % 40) as i16 - 20) * 500).unwrap();
    }
    w.finalize().unwrap();
    c.into_inner()
}

#[tokio::test]
async fn prompts_upload_download_delete() -> anyhow::Result<()> {
    use reqwest::multipart::{Form, Part};
    let server = Server::start().await?;
    let c = server.admin().await?;
    let audio = wav(2);
    let form = Form::new().text("name", "welcome").part("file", Part::bytes(audio.clone()).file_name("welcome.wav"));
    let r = c.post_multipart("/prompts", form).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.data()["id"].as_i64().unwrap();
    assert_eq!(r.data()["duration_ms"], 2000);
    assert_eq!(r.data()["sample_rate"], 8000);
    assert!(server.data_dir().join("prompts/custom/welcome.wav").is_file());

    let r = c.get(&format!("/prompts/{id}/audio")).await?;
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    let got = c.http().get(c.url(&format!("/prompts/{id}/audio"))).send().await?.bytes().await?;
    assert_eq!(got.as_ref(), audio.as_slice());

    // not a WAV, or a duplicate name: 422 naming the field; nothing left behind
    let form = Form::new().text("name", "junk").part("file", Part::bytes(b"RIFF\x10\0\0\0WAVEjunkjunk".to_vec()).file_name("junk.wav"));
    let r = c.post_multipart("/prompts", form).await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.error_fields(), vec!["file"]);
    assert!(!server.data_dir().join("prompts/custom/junk.wav").exists());
    let form = Form::new().text("name", "welcome").part("file", Part::bytes(audio.clone()).file_name("w.wav"));
    assert_eq!(c.post_multipart("/prompts", form).await?.error_fields(), vec!["name"]);
    let form = Form::new().text("name", "../etc").part("file", Part::bytes(audio.clone()).file_name("w.wav"));
    assert_eq!(c.post_multipart("/prompts", form).await?.error_fields(), vec!["name"]);
    // uploads may exceed the 1 MiB JSON limit
    let form = Form::new().text("name", "long").part("file", Part::bytes(wav(80)).file_name("long.wav"));
    assert_eq!(c.post_multipart("/prompts", form).await?.status, 201);

    // in use by an IVR menu → 409
    let ivr = c.post("/ivr-menus", &json!({"name": "Main", "greeting_file": "welcome"})).await?;
    assert_eq!(ivr.status, 201, "{}", ivr.text);
    let r = c.delete(&format!("/prompts/{id}")).await?;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(c.delete(&format!("/ivr-menus/{}", ivr.data()["id"])).await?.status, 200);
    assert_eq!(c.delete(&format!("/prompts/{id}")).await?.status, 200);
    assert!(!server.data_dir().join("prompts/custom/welcome.wav").exists());
    // the system prompts are listed beside the one custom prompt left
    let listed = c.get("/prompts?limit=100").await?;
    let custom: Vec<_> = listed.data().as_array().unwrap().iter().filter(|p| p["kind"] == "custom").map(|p| p["name"].clone()).collect();
    assert_eq!(custom, vec![json!("long")], "{}", listed.text);
    Ok(())
}

#[tokio::test]
async fn cdr_list_filters_and_csv_export() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.admin().await?;
    // write CDRs the way the PBX will, through the store on the same database file
    let key = std::fs::read_to_string(server.data_dir().join(store::SECRET_KEY_FILE))?;
    let s = store::Store::open(store::StoreOptions { path: server.db_path(), secret_key: store::SecretKey::parse(&key)?, sip_realm: None, max_connections: 1 })
        .await?;
    let t0 = store::Timestamp::parse("2026-01-10T09:00:00Z").unwrap();
    for i in 0..30i64 {
        let dir = if i % 3 == 0 { store::CallDirection::Outbound } else { store::CallDirection::Inbound };
        let id = s
            .cdrs()
            .insert_start(&store::NewCdr {
                call_id: format!("call-{i}@test"),
                start_time: t0 + time_days(i),
                // the first caller's name is a spreadsheet formula (a trunk sends what it likes)
                caller_id_name: Some(if i == 0 { "=cmd|' /C calc'!A0".into() } else { "Caller, \"Quoted\"".into() }),
                caller_id_num: Some(format!("+6140000{i:04}")),
                callee: Some("101".into()),
                trunk_id: None,
                direction: dir,
                flow_id: None,
                flow_version: None,
                extension_id: None,
                route_id: None,
            })
            .await?;
        s.cdrs()
            .update_end(
                id,
                &store::CdrEnd {
                    end_time: t0 + time_days(i) + time::Duration::seconds(30),
                    disposition: store::CallDisposition::NoAnswer,
                    hangup_cause: Some("no_answer".into()),
                    flow_path: json!(["n1"]),
                    recording_file: None,
                    trunk_id: None,
                    transfers: None,
                },
            )
            .await?;
    }
    s.close().await;

    let r = c.get("/cdrs").await?;
    assert_eq!(r.body["meta"]["total"], 30);
    assert_eq!(r.data()[0]["call_id"], "call-29@test", "newest first");
    let r = c.get("/cdrs?direction=outbound").await?;
    assert_eq!(r.body["meta"]["total"], 10);
    let r = c.get("/cdrs?direction=inbound&from=2026-01-20&to=2026-01-25").await?;
    assert_eq!(r.body["meta"]["total"], 4, "{}", r.text); // days 10..=15 minus outbound 12 and 15
    let r = c.get("/cdrs?direction=sideways").await?;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_fields(), vec!["direction"]);
    let r = c.get("/cdrs?from=yesterday").await?;
    assert_eq!((r.status, r.error_fields()), (400, vec!["from".to_owned()]));
    let id = c.get("/cdrs?limit=1").await?.data()[0]["id"].as_i64().unwrap();
    let r = c.get(&format!("/cdrs/{id}")).await?;
    assert_eq!(r.data()["flow_path"], json!(["n1"]));
    assert_eq!(r.data()["duration"], 30);

    let resp = c.http().get(c.url("/cdrs/export?direction=outbound")).send().await?;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str()?.starts_with("text/csv"));
    let csv = resp.text().await?;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 11, "{csv}");
    assert!(lines[0].starts_with("id,call_id,start_time"));
    assert!(lines[1].contains("\"Caller, \"\"Quoted\"\"\""), "{}", lines[1]);
    // cells a spreadsheet would run as formulas stay text: prefixed with '
    assert!(lines[10].contains(",'=cmd|' /C calc'!A0,'+61400000000,"), "{}", lines[10]);
    assert!(lines.iter().all(|l| !l.contains(",=") && !l.contains(",+") && !l.contains(",@")), "{csv}");
    Ok(())
}

fn time_days(i: i64) -> time::Duration {
    time::Duration::days(i)
}

#[tokio::test]
async fn health_status_openapi() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.client();
    let r = c.get("/health").await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["status"], "ok");
    assert_eq!(r.data()["components"]["database"]["status"], "ok");
    assert!(r.data()["version"].is_string() && r.data()["uptime_seconds"].is_u64());

    let r = c.get("/openapi.json").await?;
    assert_eq!(r.status, 200);
    let paths = r.body["paths"].as_object().expect("paths");
    for p in [
        "/api/v1/extensions",
        "/api/v1/extensions/{id}",
        "/api/v1/trunks",
        "/api/v1/numbers",
        "/api/v1/voicemail-boxes",
        "/api/v1/ring-groups",
        "/api/v1/ivr-menus",
        "/api/v1/time-switches",
        "/api/v1/conferences",
        "/api/v1/flows",
        "/api/v1/flows/{id}/versions",
        "/api/v1/cdrs",
        "/api/v1/cdrs/export",
        "/api/v1/prompts",
        "/api/v1/settings",
        "/api/v1/health",
        "/api/v1/system/status",
        "/api/v1/auth/login",
        "/api/v1/setup",
    ] {
        assert!(paths.contains_key(p), "OpenAPI lacks {p}");
    }
    let schemas = r.body["components"]["schemas"].as_object().expect("schemas");
    for s in ["Extension", "ExtensionInput", "Trunk", "ErrorEnvelope", "ListMeta"] {
        assert!(schemas.contains_key(s), "OpenAPI lacks schema {s}");
    }
    // the conventions every operation follows are in the document: public operations need
    // no credentials, the others may answer 401; every one may answer 400 and 422; list
    // bounds are stated
    let op = |path: &str, method: &str| r.body["paths"][path][method].clone();
    assert_eq!(op("/api/v1/health", "get")["security"], json!([{}]));
    assert_eq!(op("/api/v1/auth/login", "post")["security"], json!([{}]));
    for (path, method) in [("/api/v1/extensions", "get"), ("/api/v1/extensions", "post"), ("/api/v1/cdrs", "get"), ("/api/v1/settings", "put")] {
        let responses = op(path, method)["responses"].clone();
        for code in ["400", "401", "422"] {
            assert!(responses.get(code).is_some(), "{method} {path} does not document {code}: {responses}");
        }
    }
    assert!(op("/api/v1/extensions", "post")["responses"].get("415").is_some());
    let limit = op("/api/v1/cdrs", "get")["parameters"].as_array().and_then(|ps| ps.iter().find(|p| p["name"] == "limit").cloned()).expect("limit");
    assert_eq!((limit["schema"]["minimum"].as_i64(), limit["schema"]["maximum"].as_i64()), (Some(1), Some(100)), "{limit}");

    // every $ref points at a schema that exists
    let text = r.text.clone();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }

    let admin = server.admin().await?;
    let st = admin.get("/system/status").await?;
    assert_eq!(st.status, 200, "{}", st.text);
    assert!(st.data()["schema_version"].as_i64().unwrap() >= 1);
    assert_eq!(st.data()["counts"]["extensions"], 0);
    Ok(())
}

/// The flow engine starts beside HTTP and SIP: with nothing in the component cache (it
/// compiles every built-in node) the API answers long before the engine is up, health says
/// so meanwhile, and flow routes work once it is.
#[tokio::test]
async fn http_serves_while_the_flow_engine_compiles() -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let server = Server::start_with(flowpbx_tests::ServerOptions {
        args: vec!["--cache-dir".into(), cache.path().to_string_lossy().into_owned()],
        ..Default::default()
    })
    .await?;
    let gap = server.ready_time().saturating_sub(server.startup_time());
    assert!(
        gap > std::time::Duration::from_millis(300),
        "health answered after {:?}, the engine was up after {:?}: HTTP waited for the engine",
        server.startup_time(),
        server.ready_time()
    );
    let c = server.admin().await?;
    let r = c.get("/health").await?;
    assert_eq!(r.data()["components"]["flows"]["status"], "ok", "{}", r.text);
    let r = c.get("/node-types").await?;
    assert_eq!(r.status, 200);
    assert!(r.data().as_array().is_some_and(|a| a.len() >= 12), "{}", r.text);
    // the compiled components are now in the cache for the next start
    assert!(std::fs::read_dir(cache.path().join("components"))?.count() >= 12);
    Ok(())
}

/// A GET of `path` naming `host` in the Host header: the status and the error code.
async fn get_as_host(server: &Server, path: &str, host: &str) -> anyhow::Result<(u16, Option<String>)> {
    let r = flowpbx_tests::http_builder().build()?.get(server.url(path)).header("host", host).send().await?;
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    Ok((status, body["error"]["code"].as_str().map(str::to_owned)))
}

/// DNS rebinding: with a hostname configured, a request naming another host is refused with
/// 421 and the envelope (the API, the SPA and /ws alike); the hostname, localhost and the
/// address the server is bound to are served.
#[tokio::test]
async fn a_request_for_another_host_is_refused() -> anyhow::Result<()> {
    let server = Server::start_with(flowpbx_tests::ServerOptions { args: vec!["--hostname".into(), "pbx.test".into()], ..Default::default() }).await?;
    let port = server.ports().http;
    let _ = server.admin().await?;
    for host in
        ["rebind.attacker.example".to_owned(), format!("rebind.attacker.example:{port}"), "pbx.test.attacker.example".into(), format!("192.0.2.1:{port}")]
    {
        for path in ["/api/v1/health", "/api/v1/setup", "/", "/ws"] {
            assert_eq!(get_as_host(&server, path, &host).await?, (421, Some("misdirected_request".into())), "{host} {path}");
        }
    }
    for host in [format!("pbx.test:{port}"), "PBX.TEST".into(), format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        assert_eq!(get_as_host(&server, "/api/v1/health", &host).await?.0, 200, "{host}");
    }
    Ok(())
}

/// Before first-boot setup a server with no hostname answers only to its addresses and
/// localhost: a rebinding page cannot run setup and take the PBX.
#[tokio::test]
async fn setup_cannot_be_reached_through_a_rebound_name() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let r = flowpbx_tests::http_builder()
        .build()?
        .post(server.url("/api/v1/setup"))
        .header("host", "rebind.attacker.example")
        .json(&json!({"username": "attacker", "password": "attacker password"}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 421);
    assert_eq!(server.client().get("/setup").await?.data()["required"], true, "setup was not done");
    // after setup (no hostname set) names are not checked
    let _ = server.admin().await?;
    assert_eq!(get_as_host(&server, "/api/v1/health", "pbx.lan").await?.0, 200);
    Ok(())
}

/// Health tells an anonymous caller each component's status, never its details (internal
/// error text, figures); a signed-in administrator sees them.
#[tokio::test]
async fn health_details_only_for_the_signed_in() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let r = server.client().get("/health").await?;
    let components = r.data()["components"].as_object().expect("components");
    assert!(components.contains_key("sip") && components.contains_key("database"), "{}", r.text);
    assert!(components.values().all(|c| c.get("detail").is_none() && c["status"].is_string()), "{}", r.text);
    let admin = server.admin().await?;
    let r = admin.get("/health").await?;
    assert!(r.data()["components"]["sip"]["detail"].as_str().is_some_and(|d| d.contains("extensions")), "{}", r.text);
    Ok(())
}
