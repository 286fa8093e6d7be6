//! First-boot setup, login, CSRF, lockout, API tokens: over HTTP against the real binary.

use flowpbx_tests::{Server, ADMIN_PASSWORD, ADMIN_USER};
use serde_json::json;

#[tokio::test]
async fn setup_login_csrf_logout() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.client();

    let r = c.get("/setup").await?;
    assert_eq!((r.status, r.data()["required"].as_bool()), (200, Some(true)), "{}", r.text);
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
    let r = c
        .send(c.http().post(c.url("/ring-groups")).header("x-csrf-token", "0000").json(&body))
        .await?;
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

#[tokio::test]
async fn login_lockout_after_five_failures() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let _ = server.admin().await?;
    let c = server.client();
    for i in 0..4 {
        let r = c.post("/auth/login", &json!({"username": ADMIN_USER, "password": format!("wrong {i}")})).await?;
        assert_eq!(r.status, 401, "attempt {i}: {}", r.text);
    }
    let r = c.post("/auth/login", &json!({"username": ADMIN_USER, "password": "wrong 5"})).await?;
    assert_eq!((r.status, r.error_code()), (429, Some("too_many_requests")), "{}", r.text);
    let retry: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((800..=900).contains(&retry), "{retry}");
    // even the right password is refused while locked out
    let r = c.post("/auth/login", &json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD})).await?;
    assert_eq!(r.status, 429, "{}", r.text);
    // failures are audited
    let admin = server.client();
    // (a fresh client from the same IP is locked out too)
    assert_eq!(admin.post("/auth/login", &json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD})).await?.status, 429);
    Ok(())
}

#[tokio::test]
async fn api_tokens_bearer_and_revocation() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let admin = server.admin().await?;
    let r = admin.post("/api-tokens", &json!({"name": "crm", "expires_in_days": 30})).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let token = r.data()["token"].as_str().expect("token shown once").to_owned();
    let id = r.data()["id"].as_i64().unwrap();
    assert!(r.data().get("jti").is_none());

    let list = admin.get("/api-tokens").await?;
    assert_eq!(list.body["meta"]["total"], 1);
    assert!(list.data()[0].get("token").is_none(), "the JWT is never listed");

    let bot = server.client().with_bearer(&token);
    assert_eq!(bot.get("/extensions").await?.status, 200);
    // no CSRF for bearer tokens (no ambient credentials)
    let r = bot.post("/ring-groups", &json!({"name": "x"})).await?;
    assert_eq!(r.status, 422, "authenticated, then validated: {}", r.text);
    let r = bot.get("/auth/me").await?;
    assert_eq!(r.data()["token"], "crm");

    // a forged token is refused
    let forged = server.client().with_bearer(&format!("{token}x"));
    assert_eq!(forged.get("/extensions").await?.status, 401);

    assert_eq!(admin.delete(&format!("/api-tokens/{id}")).await?.status, 200);
    assert_eq!(bot.get("/extensions").await?.status, 401);

    // audit rows name the actor
    let log = admin.get("/audit-log?entity_type=api_token").await?;
    let actions: Vec<&str> = log.data().as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, vec!["revoke", "create"]);
    assert_eq!(log.data()[0]["actor"], format!("admin:{ADMIN_USER}"));
    Ok(())
}
