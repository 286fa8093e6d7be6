//! First-boot setup, login, CSRF, lockout, API tokens: over HTTP against the real binary.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use flowpbx_tests::{http_builder, Client, Server, ADMIN_PASSWORD, ADMIN_USER};
use serde_json::{json, Value};

#[tokio::test]
async fn setup_login_csrf_logout() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.client();

    let r = c.get("/setup").await?;
    assert_eq!((r.status, r.data()["required"].as_bool()), (200, Some(true)), "{}", r.text);
    // the wizard starts from the SIP ports in force: the harness gives --sip-port
    let ports = &r.data()["sip_ports"];
    assert_eq!(ports["sip_udp_port"]["value"], server.ports().sip, "{}", r.text);
    assert_eq!(ports["sip_udp_port"]["source"], "flag");
    assert_eq!(ports["sip_udp_port"]["set_by"], "--sip-port");
    assert_eq!(ports["sip_tls_port"]["source"], "flag", "the harness gives --sip-tls-port too");
    assert_eq!(ports["sip_tls_port"]["value"], server.ports().sip_tls);
    // everything but health, login and setup needs auth
    let r = c.get("/extensions").await?;
    assert_eq!((r.status, r.error_code()), (401, Some("unauthorized")), "{}", r.text);
    assert_eq!(c.get("/health").await?.status, 200);

    // weak password refused, naming the field
    let r = c.post("/setup", &json!({"username": ADMIN_USER, "password": "short"})).await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.error_fields(), vec!["password"]);

    let r = c.post("/setup", &json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD, "hostname": "pbx.example.com"})).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.data()["username"], ADMIN_USER);
    assert!(r.data().get("password_hash").is_none());
    // refused once done
    let r = c.post("/setup", &json!({"username": "other", "password": "another password"})).await?;
    assert_eq!((r.status, r.error_code()), (409, Some("conflict")), "{}", r.text);
    assert_eq!(c.get("/setup").await?.data()["required"], false);
    assert!(c.get("/setup").await?.data().get("sip_ports").is_none(), "the ports are the settings' once set up");

    let r = c.post("/auth/login", &json!({"username": ADMIN_USER, "password": "wrong password"})).await?;
    assert_eq!((r.status, r.error_code()), (401, Some("unauthorized")), "{}", r.text);

    let r = c.login(ADMIN_USER, ADMIN_PASSWORD).await?;
    let cookie = r.header("set-cookie").unwrap_or_default().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "no TLS here: {cookie}");
    let csrf = c.csrf_token().expect("login returns a CSRF token");

    let r = c.get("/auth/me").await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["user"]["username"], ADMIN_USER);
    assert_eq!(r.data()["csrf_token"], csrf.as_str());

    // a state-changing request without the CSRF token is refused
    let body = json!({"name": "Sales", "members": []});
    c.clear_csrf();
    let r = c.post("/ring-groups", &body).await?;
    assert_eq!((r.status, r.error_code()), (403, Some("forbidden")), "{}", r.text);
    // a wrong token too
    let r = c.send(c.http().post(c.url("/ring-groups")).header("x-csrf-token", "0000").json(&body)).await?;
    assert_eq!(r.status, 403);
    // reads do not need it
    assert_eq!(c.get("/extensions").await?.status, 200);

    // the setup wrote the wizard's hostname, which becomes the SIP realm
    let c = server.admin().await?;
    let r = c.get("/settings").await?;
    assert_eq!(r.data()["hostname"]["value"], "pbx.example.com", "{}", r.text);
    assert_eq!(r.data()["sip_realm"]["value"], "pbx.example.com");

    let r = c.post("/auth/logout", &json!({})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.get("/extensions").await?.status, 401);
    Ok(())
}

/// An HTTP client whose connections come from `ip` (another loopback address is another
/// source: the server does not trust X-Forwarded-For).
fn client_from(ip: &str) -> reqwest::Client {
    http_builder().local_address(ip.parse::<IpAddr>().expect("an address")).build().expect("a client")
}

/// A login from `http`: the status, Retry-After, the body.
async fn login_from(http: &reqwest::Client, server: &Server, username: &str, password: &str) -> anyhow::Result<(u16, Option<u64>, Value)> {
    let r = http.post(server.url("/api/v1/auth/login")).json(&json!({"username": username, "password": password})).send().await?;
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    Ok((status, retry, r.json().await.unwrap_or(Value::Null)))
}

/// How many failed logins the audit log holds (each is a password hash that was checked).
async fn failed_logins(admin: &Client) -> anyhow::Result<usize> {
    let all = admin.get("/audit-log?entity_type=session&limit=100").await?;
    anyhow::ensure!(all.status == 200, "{}", all.text);
    Ok(all.data().as_array().map(|a| a.iter().filter(|e| e["action"] == "login_failed").count()).unwrap_or(0))
}

/// 200 wrong passwords for one user from one address, all at once: the attempts are reserved
/// before the hash is checked, so exactly five are checked (401) and the rest are refused at
/// once (429 with Retry-After). The address is then locked even with the right password, and
/// the administrator still signs in from an address that has not failed.
#[tokio::test]
async fn parallel_wrong_passwords_get_five_checks_and_a_clean_address_still_signs_in() -> anyhow::Result<()> {
    let server = Arc::new(Server::start().await?);
    let admin = server.admin().await?;
    let attacker = client_from("127.0.0.3");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (http, server) = (attacker.clone(), server.clone());
        tasks.push(tokio::spawn(async move { login_from(&http, &server, ADMIN_USER, &format!("wrong password {i}")).await }));
    }
    let (mut checked, mut refused) = (0, 0);
    for t in tasks {
        let (status, retry, body) = t.await??;
        match status {
            401 => checked += 1,
            429 => {
                refused += 1;
                assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
                assert!(retry.is_some_and(|s| s >= 1), "429 without Retry-After: {body}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!((checked, refused), (5, 195), "at most five attempts are checked");
    assert_eq!(failed_logins(&admin).await?, 5, "five hashes were checked");

    // locked: the right password from that address is refused too, for the lock's length
    let (status, retry, _) = login_from(&attacker, &server, ADMIN_USER, ADMIN_PASSWORD).await?;
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|s| (800..=900).contains(&s)), "{retry:?}");
    // the owner, from an address that has not failed
    let (status, _, body) = login_from(&client_from("127.0.0.2"), &server, ADMIN_USER, ADMIN_PASSWORD).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

/// A username attacked from many addresses (one failure each, under every per-address limit):
/// each failing address is shut out of that username, and the owner still signs in from an
/// address with a clean record.
#[tokio::test]
async fn a_username_attacked_from_many_addresses_stays_reachable_from_a_clean_one() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let admin = server.admin().await?;
    for i in 0..20 {
        let (status, _, body) = login_from(&client_from(&format!("127.0.1.{}", i + 1)), &server, ADMIN_USER, "guessed wrong").await?;
        assert_eq!(status, 401, "{body}");
    }
    let (status, retry, _) = login_from(&client_from("127.0.1.1"), &server, ADMIN_USER, "another guess").await?;
    assert_eq!(status, 429, "a failing address cannot keep guessing this username");
    assert!(retry.is_some_and(|s| s > 60), "{retry:?}");
    // every guess that reached the hash is in the audit log: no more than the addresses
    assert_eq!(failed_logins(&admin).await?, 20);
    let (status, _, body) = login_from(&client_from("127.0.2.1"), &server, ADMIN_USER, ADMIN_PASSWORD).await?;
    assert_eq!(status, 200, "a clean address signs in: {body}");
    // it is only this username a failing address is shut out of (no such user: 401)
    let (status, _, _) = login_from(&client_from("127.0.1.1"), &server, "someone-else", "a password").await?;
    assert_eq!(status, 401);
    Ok(())
}

/// Runs one SQL statement on the server's database (to age a token or a session).
async fn sql(server: &Server, statement: &str) -> anyhow::Result<u64> {
    use sqlx::ConnectOptions;
    let mut c = sqlx::sqlite::SqliteConnectOptions::new().filename(server.db_path()).busy_timeout(Duration::from_secs(5)).connect().await?;
    Ok(sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(&mut c).await?.rows_affected())
}

/// A token of each scope, created by the signed-in administrator: (id, bearer client).
async fn token(admin: &Client, name: &str, scope: &str) -> anyhow::Result<(i64, Client)> {
    let r = admin.post("/api-tokens", &json!({"name": name, "scope": scope})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    Ok((r.data()["id"].as_i64().unwrap_or_default(), admin.with_bearer(r.data()["token"].as_str().unwrap_or_default())))
}

#[tokio::test]
async fn api_tokens_bearer_expiry_and_revocation() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let admin = server.admin().await?;
    // the scope is required; the lifetime defaults to 90 days and is at most 365
    let r = admin.post("/api-tokens", &json!({"name": "crm"})).await?;
    assert_eq!((r.status, r.error_fields()), (422, vec!["scope".to_owned()]), "{}", r.text);
    let r = admin.post("/api-tokens", &json!({"name": "crm", "scope": "root"})).await?;
    assert_eq!((r.status, r.error_fields()), (422, vec!["scope".to_owned()]), "{}", r.text);
    let r = admin.post("/api-tokens", &json!({"name": "crm", "scope": "write", "expires_in_days": 366})).await?;
    assert_eq!((r.status, r.error_fields()), (422, vec!["expires_in_days".to_owned()]), "{}", r.text);
    let r = admin.post("/api-tokens", &json!({"name": "crm", "scope": "write"})).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.data()["scope"], "write");
    let days = |d: &Value| {
        let exp = time::OffsetDateTime::parse(d["expires_at"].as_str().unwrap_or_default(), &time::format_description::well_known::Rfc3339).unwrap();
        (exp - time::OffsetDateTime::now_utc()).whole_hours() as f64 / 24.0
    };
    assert!((89.9..=90.0).contains(&days(r.data())), "{}", r.text);
    let jwt = r.data()["token"].as_str().expect("token shown once").to_owned();
    let id = r.data()["id"].as_i64().unwrap();
    assert!(r.data().get("jti").is_none());
    let r = admin.post("/api-tokens", &json!({"name": "short", "scope": "read", "expires_in_days": 7})).await?;
    assert!((6.9..=7.0).contains(&days(r.data())), "{}", r.text);

    let list = admin.get("/api-tokens").await?;
    assert_eq!(list.body["meta"]["total"], 2);
    assert!(list.data()[0].get("token").is_none(), "the JWT is never listed");
    assert_eq!(list.data()[1]["scope"], "write");

    let bot = server.client().with_bearer(&jwt);
    assert_eq!(bot.get("/extensions").await?.status, 200);
    // no CSRF for bearer tokens (no ambient credentials)
    let r = bot.post("/ring-groups", &json!({"name": "x"})).await?;
    assert_eq!(r.status, 422, "authenticated, then validated: {}", r.text);
    let r = bot.get("/auth/me").await?;
    assert_eq!((&r.data()["token"], &r.data()["scope"]), (&json!("crm"), &json!("write")));

    // a forged token is refused
    let forged = server.client().with_bearer(&format!("{jwt}x"));
    assert_eq!(forged.get("/extensions").await?.status, 401);

    // an expired token: 401 (its expiry is the database's, whatever the JWT says)
    let (old_id, old) = token(&admin, "old", "admin").await?;
    assert_eq!(old.get("/extensions").await?.status, 200);
    sql(&server, &format!("UPDATE api_tokens SET expires_at = '2020-01-01T00:00:00.000Z' WHERE id = {old_id}")).await?;
    let r = old.get("/extensions").await?;
    assert_eq!((r.status, r.error_code()), (401, Some("unauthorized")), "{}", r.text);

    assert_eq!(admin.delete(&format!("/api-tokens/{id}")).await?.status, 200);
    assert_eq!(bot.get("/extensions").await?.status, 401);

    // audit rows name the actor
    let log = admin.get("/audit-log?entity_type=api_token").await?;
    let actions: Vec<&str> = log.data().as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, vec!["revoke", "create", "create", "create"]);
    assert_eq!(log.data()[0]["actor"], format!("admin:{ADMIN_USER}"));
    Ok(())
}

/// What each scope reaches, route class by route class; and what no token reaches at all:
/// creating tokens (a token that could would outlive its own revocation), uploading plugins,
/// granting capabilities, the password and the sessions.
#[tokio::test]
async fn token_scopes_bound_every_route_class() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let admin = server.admin().await?;
    let ext = admin.post("/extensions", &json!({"extension": "101", "name": "Reception", "sip_password": "secret-pass-101"})).await?;
    let ext_id = ext.data()["id"].as_i64().expect("an extension");
    let (read_id, read) = token(&admin, "dashboard", "read").await?;
    let (_, write) = token(&admin, "crm", "write").await?;
    let (_, admin_token) = token(&admin, "ops", "admin").await?;
    let ring_group = json!({"name": "Sales", "members": [ext_id]});
    let plugin_form = || reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"\0asm".to_vec()).file_name("p.wasm"));

    let status = |r: flowpbx_tests::Response| r.status;
    // read: GET only, and not the admin routes
    for path in ["/extensions", &format!("/extensions/{ext_id}"), "/cdrs", "/flows", "/plugins", "/calls/active", "/auth/me"] {
        assert_eq!(read.get(path).await?.status, 200, "read GET {path}");
    }
    let r = read.post("/ring-groups", &ring_group).await?;
    assert_eq!((r.status, r.error_code()), (403, Some("forbidden")), "{}", r.text);
    assert_eq!(status(read.put(&format!("/extensions/{ext_id}"), &json!({"name": "Changed"})).await?), 403);
    assert_eq!(status(read.delete(&format!("/extensions/{ext_id}")).await?), 403);
    assert_eq!(status(read.post("/calls/1/hangup", &json!({})).await?), 403);
    for path in ["/settings", "/audit-log", "/api-tokens", "/system/status"] {
        assert_eq!(read.get(path).await?.status, 403, "read GET {path}");
    }

    // write: entity changes, not settings, tokens, plugins or the audit log
    let r = write.post("/ring-groups", &ring_group).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let rg = r.data()["id"].as_i64().unwrap();
    assert_eq!(status(write.put(&format!("/ring-groups/{rg}"), &json!({"name": "Sales team"})).await?), 200);
    assert_eq!(status(write.delete(&format!("/ring-groups/{rg}")).await?), 200);
    assert_eq!(status(write.put("/settings", &json!({"sip_log": "full"})).await?), 403);
    for path in ["/settings", "/audit-log", "/api-tokens", "/system/status"] {
        assert_eq!(write.get(path).await?.status, 403, "write GET {path}");
    }
    assert_eq!(status(write.delete(&format!("/api-tokens/{read_id}")).await?), 403);
    assert_eq!(status(write.put("/plugins/1", &json!({"enabled": false})).await?), 403);
    assert_eq!(status(write.delete("/plugins/1").await?), 403);

    // admin: settings, tokens, the audit log, the status
    for path in ["/settings", "/audit-log", "/api-tokens", "/system/status"] {
        assert_eq!(admin_token.get(path).await?.status, 200, "admin GET {path}");
    }
    let r = admin_token.put("/settings", &json!({"sip_log": "headers"})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    // enabling a plugin is the admin scope's (there is no plugin 99999: 404, not 403)
    assert_eq!(status(admin_token.put("/plugins/99999", &json!({"enabled": true})).await?), 404);

    // no token, whatever its scope: minting tokens, plugins in, capabilities granted,
    // password, sessions
    for t in [&read, &write, &admin_token] {
        let r = t.post("/api-tokens", &json!({"name": "child", "scope": "read"})).await?;
        assert_eq!((r.status, r.error_code()), (403, Some("forbidden")), "{}", r.text);
        assert_eq!(status(t.post_multipart("/plugins", plugin_form()).await?), 403);
        assert_eq!(status(t.put("/plugins/99999", &json!({"granted_capabilities": ["kv"]})).await?), 403);
        assert_eq!(status(t.post("/auth/password", &json!({"current_password": ADMIN_PASSWORD, "new_password": "taken over!"})).await?), 403);
        assert_eq!(status(t.get("/auth/sessions").await?), 403);
        assert_eq!(status(t.delete("/auth/sessions").await?), 403);
    }
    let r = admin.get("/api-tokens").await?;
    assert_eq!(r.body["meta"]["total"], 3, "no token minted another: {}", r.text);

    // an admin token can revoke, and a revoked token is refused at once
    assert_eq!(status(admin_token.delete(&format!("/api-tokens/{read_id}")).await?), 200);
    assert_eq!(status(read.get("/extensions").await?), 401);
    Ok(())
}

/// A password change needs the current password, ends every other session (tokens live on
/// unless asked), and the old password no longer signs in; sessions can be listed and ended;
/// a session ends after its absolute lifetime however active it is.
#[tokio::test]
async fn password_change_and_sessions() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let a = server.admin().await?;
    let b = server.admin().await?;
    let c = server.admin().await?;
    let (_, bot) = token(&a, "crm", "write").await?;

    let r = a.get("/auth/sessions").await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let sessions = r.data().as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(sessions.iter().all(|s| s["ip"] == "127.0.0.1" && s["absolute_expires_at"].is_string() && s.get("token_hash").is_none()));

    // end one other session (c's): c is signed out, b is not
    let c_id = {
        let r = c.get("/auth/sessions").await?;
        r.data().as_array().unwrap().iter().find(|s| s["current"] == true).unwrap()["id"].as_i64().unwrap()
    };
    assert_eq!(a.delete(&format!("/auth/sessions/{c_id}")).await?.status, 200);
    assert_eq!(c.get("/extensions").await?.status, 401);
    assert_eq!(b.get("/extensions").await?.status, 200);
    assert_eq!(a.delete("/auth/sessions/999999").await?.status, 404);

    // the current password is required, and checked
    let r = a.post("/auth/password", &json!({"current_password": "not it at all", "new_password": "a brand new password"})).await?;
    assert_eq!((r.status, r.error_fields()), (422, vec!["current_password".to_owned()]), "{}", r.text);
    let r = a.post("/auth/password", &json!({"current_password": ADMIN_PASSWORD, "new_password": "short"})).await?;
    assert_eq!((r.status, r.error_fields()), (422, vec!["new_password".to_owned()]), "{}", r.text);
    // without the CSRF token a session cannot change it
    a.clear_csrf();
    let r = a.post("/auth/password", &json!({"current_password": ADMIN_PASSWORD, "new_password": "a brand new password"})).await?;
    assert_eq!(r.status, 403);
    let a = {
        let fresh = server.client();
        fresh.login(ADMIN_USER, ADMIN_PASSWORD).await?;
        fresh
    };
    let r = a.post("/auth/password", &json!({"current_password": ADMIN_PASSWORD, "new_password": "a brand new password"})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["sessions_ended"], 2, "the old a and b: {}", r.text);
    assert_eq!(r.data()["tokens_revoked"], 0);
    assert_eq!(b.get("/extensions").await?.status, 401, "another session ended");
    assert_eq!(a.get("/extensions").await?.status, 200, "this one goes on");
    assert_eq!(bot.get("/extensions").await?.status, 200, "tokens are not revoked unless asked");
    let old = server.client();
    assert_eq!(old.post("/auth/login", &json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD})).await?.status, 401);
    let d = server.client();
    d.login(ADMIN_USER, "a brand new password").await?;

    // end every other session, then change it again revoking the tokens
    let r = a.delete("/auth/sessions").await?;
    assert_eq!((r.status, &r.data()["ended"]), (200, &json!(1)), "{}", r.text);
    assert_eq!(d.get("/extensions").await?.status, 401);
    let r =
        a.post("/auth/password", &json!({"current_password": "a brand new password", "new_password": "and yet another one", "revoke_tokens": true})).await?;
    assert_eq!(r.data()["tokens_revoked"], 1, "{}", r.text);
    assert_eq!(bot.get("/extensions").await?.status, 401);

    // the absolute lifetime: a session past it is over, however recently used
    assert_eq!(sql(&server, "UPDATE sessions SET absolute_expires_at = '2020-01-01T00:00:00.000Z'").await?, 1);
    let r = a.get("/extensions").await?;
    assert_eq!(r.status, 401, "{}", r.text);
    Ok(())
}
