//! CRUD of every entity, validation errors naming their fields, delete impact (409 with the
//! references), pagination bounds and bad input: over HTTP against the real binary.

use flowpbx_tests::{Client, Server};
use serde_json::{json, Value};

async fn create(c: &Client, path: &str, body: Value) -> anyhow::Result<Value> {
    let r = c.post(path, &body).await?;
    assert_eq!(r.status, 201, "POST {path} {body}: {}", r.text);
    Ok(r.data().clone())
}

/// create → get → list → update → delete → 404, checking the fields round-trip.
async fn crud(c: &Client, path: &str, body: Value, update: Value) -> anyhow::Result<()> {
    let created = create(c, path, body.clone()).await?;
    let id = created["id"].as_i64().expect("id");
    for (k, v) in body.as_object().unwrap() {
        if ["sip_password", "password", "pin"].contains(&k.as_str()) {
            assert!(created.get(k).is_none(), "{path}: secret {k} returned");
        } else {
            assert_eq!(&created[k], v, "{path}: field {k}");
        }
    }
    let got = c.get(&format!("{path}/{id}")).await?;
    assert_eq!(got.status, 200);
    assert_eq!(got.data(), &created);
    let list = c.get(path).await?;
    assert_eq!(list.status, 200);
    assert!(list.body["meta"]["total"].as_i64().unwrap() >= 1);
    assert!(list.data().as_array().unwrap().iter().any(|r| r["id"] == id));

    let r = c.put(&format!("{path}/{id}"), &update).await?;
    assert_eq!(r.status, 200, "PUT {path}/{id} {update}: {}", r.text);
    for (k, v) in update.as_object().unwrap() {
        if !["sip_password", "password", "pin"].contains(&k.as_str()) {
            assert_eq!(&r.data()[k], v, "{path}: updated field {k}");
        }
    }
    // fields not sent are kept
    for (k, v) in body.as_object().unwrap() {
        if update.get(k).is_none() && !["sip_password", "password", "pin"].contains(&k.as_str()) {
            assert_eq!(&r.data()[k], v, "{path}: untouched field {k}");
        }
    }

    let r = c.delete(&format!("{path}/{id}")).await?;
    assert_eq!((r.status, &r.data()["deleted"]), (200, &json!(true)), "{}", r.text);
    let r = c.get(&format!("{path}/{id}")).await?;
    assert_eq!((r.status, r.error_code()), (404, Some("not_found")));
    assert_eq!(c.delete(&format!("{path}/{id}")).await?.status, 404);
    assert_eq!(c.put(&format!("{path}/{id}"), &update).await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn crud_for_every_entity() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.admin().await?;

    crud(
        &c,
        "/extensions",
        json!({"extension": "101", "name": "Nick", "email": "nick@example.com", "sip_username": "nick", "sip_password": "s3cret-pass-101",
               "ring_timeout": 25, "dnd": false, "follow_me_enabled": true,
               "follow_me_numbers": [{"number": "0412345678", "delay": 10, "timeout": 20}], "recording_mode": "always", "max_registrations": 3}),
        json!({"name": "Nick B", "dnd": true, "email": null, "sip_password": "new-secret-pass"}),
    )
    .await?;
    crud(
        &c,
        "/trunks",
        json!({"name": "Provider", "type": "register", "host": "sip.provider.example", "port": 5060, "transport": "udp",
               "username": "acct1", "password": "trunk-secret", "codecs": ["g711a", "opus"], "priority": 5}),
        json!({"enabled": false, "codecs": ["g711u"]}),
    )
    .await?;
    crud(&c, "/trunks", json!({"name": "IP trunk", "type": "ip", "remote_hosts": ["203.0.113.0/24", "198.51.100.7"]}), json!({"max_channels": 10})).await?;
    crud(&c, "/numbers", json!({"number": "+61299990000", "name": "Main"}), json!({"name": "Main office", "enabled": false})).await?;
    crud(
        &c,
        "/voicemail-boxes",
        json!({"name": "Sales VM", "mailbox_number": "901", "pin": "4821", "email_notify": true, "email_address": "sales@example.com", "retention_days": 30}),
        json!({"max_messages": 20, "pin": null}),
    )
    .await?;
    let ext = create(&c, "/extensions", json!({"extension": "102", "name": "B", "sip_password": "password-102"})).await?;
    crud(
        &c,
        "/ring-groups",
        json!({"name": "Sales", "strategy": "round_robin", "ring_timeout": 20, "members": [ext["id"]], "caller_id_mode": "prepend", "caller_id_value": "Sales:"}),
        json!({"strategy": "ring_all"}),
    )
    .await?;
    crud(
        &c,
        "/ivr-menus",
        json!({"name": "Main menu", "greeting_tts": "Press 1 for sales", "timeout": 8, "options": {"1": "sales", "2": "support", "t": "timeout"}}),
        json!({"max_retries": 2}),
    )
    .await?;
    crud(
        &c,
        "/time-switches",
        json!({"name": "Business hours", "timezone": "Australia/Sydney",
               "rules": [{"label": "Open", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:30", "end": "17:00", "dest_node": "open"}],
               "overrides": [{"label": "Christmas", "date": "2026-12-25", "dest_node": "default"}], "default_dest": "closed"}),
        json!({"timezone": "Europe/London"}),
    )
    .await?;
    crud(&c, "/conferences", json!({"name": "Standup", "extension": "800", "pin": "1234", "max_members": 8, "mute_on_join": true}), json!({"record": true}))
        .await?;
    crud(
        &c,
        "/flows",
        json!({"name": "Main", "flow_data": {"nodes": [{"id": "n1", "type": "hangup", "position": {"x": 0, "y": 0}, "data": {"label": "Bye", "config": {}}}], "edges": []}}),
        json!({"name": "Main inbound"}),
    )
    .await?;

    // pin_set / password_set replace the secrets
    let vm = create(&c, "/voicemail-boxes", json!({"name": "Night", "pin": "9999"})).await?;
    assert_eq!(vm["pin_set"], true);
    let r = c.put(&format!("/voicemail-boxes/{}", vm["id"]), &json!({"pin": null})).await?;
    assert_eq!(r.data()["pin_set"], false);
    let t = create(&c, "/trunks", json!({"name": "T", "type": "register", "host": "h.example", "username": "u", "password": "p"})).await?;
    assert_eq!(t["password_set"], true);
    Ok(())
}

#[tokio::test]
async fn validation_errors_name_their_fields() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.admin().await?;

    let check = |r: flowpbx_tests::Response, status: u16, field: &str| {
        assert_eq!(r.status, status, "{}", r.text);
        assert!(r.error_fields().iter().any(|f| f == field), "expected field {field}: {}", r.text);
    };

    check(c.post("/extensions", &json!({"extension": "1", "name": "X", "sip_password": "password1"})).await?, 422, "extension");
    check(c.post("/extensions", &json!({"extension": "1234567", "name": "X", "sip_password": "password1"})).await?, 422, "extension");
    check(c.post("/extensions", &json!({"extension": "201", "name": "X"})).await?, 422, "sip_password");
    check(c.post("/extensions", &json!({"extension": "201", "name": "X", "sip_password": "password1", "email": "nope"})).await?, 422, "email");
    check(
        c.post("/extensions", &json!({"extension": "201", "name": "X", "sip_password": "password1", "recording_mode": "sometimes"})).await?,
        422,
        "recording_mode",
    );
    check(c.post("/extensions", &json!({"extension": "201", "name": "X", "sip_password": "password1", "srtp": "sometimes"})).await?, 422, "srtp");
    check(c.post("/extensions", &json!({"extension": "201", "name": "X", "sip_password": "password1", "srtp": true})).await?, 422, "srtp");
    check(c.post("/trunks", &json!({"name": "T", "type": "ip", "remote_hosts": ["192.0.2.1"], "srtp": "REQUIRED"})).await?, 422, "srtp");
    let x = create_ok(&c, "/extensions", json!({"extension": "201", "name": "X", "sip_password": "password1"})).await?;
    assert_eq!(x["srtp"], "optional", "SRTP is offered by default: {x}");
    // unique in the dial plan: another extension, a conference bridge or a mailbox number
    check(c.post("/extensions", &json!({"extension": "201", "name": "Y", "sip_username": "y", "sip_password": "password1"})).await?, 422, "extension");
    check(c.post("/conferences", &json!({"name": "C", "extension": "201"})).await?, 422, "extension");
    check(c.post("/voicemail-boxes", &json!({"name": "V", "mailbox_number": "201"})).await?, 422, "mailbox_number");
    check(c.post("/extensions", &json!({"extension": "202", "name": "Y", "sip_username": "201", "sip_password": "password1"})).await?, 422, "sip_username");

    check(c.post("/numbers", &json!({"number": "0299990000"})).await?, 422, "number");
    check(c.post("/numbers", &json!({"number": "+61299990000", "trunk_id": 999})).await?, 422, "trunk_id");
    check(c.post("/numbers", &json!({"number": "+61299990000", "flow_id": 999})).await?, 422, "flow_id");
    check(c.post("/time-switches", &json!({"name": "T", "timezone": "Mars/Olympus", "rules": []})).await?, 422, "timezone");
    check(
        c.post("/time-switches", &json!({"name": "T", "rules": [{"label": "x", "days": ["mon", "funday"], "start": "9:00", "end": "17:00"}]})).await?,
        422,
        "rules[0].days[1]",
    );
    check(
        c.post("/time-switches", &json!({"name": "T", "rules": [{"label": "x", "days": ["mon"], "start": "9:00", "end": "17:00"}]})).await?,
        422,
        "rules[0].start",
    );
    check(c.post("/ring-groups", &json!({"name": "R", "members": [12345]})).await?, 422, "members[0]");
    check(c.post("/trunks", &json!({"name": "T", "type": "register"})).await?, 422, "host");
    check(c.post("/trunks", &json!({"name": "T", "type": "ip", "remote_hosts": ["300.1.1.1"]})).await?, 422, "remote_hosts[0]");
    check(c.post("/ivr-menus", &json!({"name": "I", "options": {"x": "a"}})).await?, 422, "options.x");
    // an unfinished node saves (drafts always save): a linked entity that does not exist is
    // the validator's to report, at Validate and Publish; a broken shape is still refused
    let unfinished = c.post("/flows", &json!({"name": "Draft", "flow_data": {"nodes": [{"id": "n1", "type": "extension", "data": {"entity_type": "extension", "entity_id": 4242, "config": {"timeout": -5}}}], "edges": []}})).await?;
    assert_eq!(unfinished.status, 201, "{}", unfinished.text);
    let draft_id = unfinished.data()["id"].as_i64().unwrap();
    let del = c.delete(&format!("/flows/{draft_id}")).await?;
    assert_eq!(del.status, 200, "{}", del.text);
    check(
        c.post("/flows", &json!({"name": "F", "flow_data": {"nodes": [{"id": "n1", "type": "x", "data": {"entity_id": "seven"}}], "edges": []}})).await?,
        422,
        "flow_data.nodes[0].data.entity_id",
    );
    check(
        c.post("/flows", &json!({"name": "F", "flow_data": {"nodes": [{"id": "n1", "type": "a"}], "edges": [{"id": "e", "source": "n1", "target": "zz"}]}}))
            .await?,
        422,
        "flow_data.edges[0].target",
    );

    // bad input: unknown field, wrong type, malformed JSON, wrong content type, too large
    check(c.post("/extensions", &json!({"extension": "203", "name": "X", "sip_password": "password1", "colour": "red"})).await?, 422, "colour");
    check(c.post("/extensions", &json!({"extension": 203, "name": "X", "sip_password": "password1"})).await?, 422, "extension");
    check(c.post("/ring-groups", &json!({"name": "R", "members": [1, "two"]})).await?, 422, "members[1]");
    let r = c.post_raw("/extensions", "application/json", "{\"extension\": \"203\",").await?;
    assert_eq!((r.status, r.error_code()), (400, Some("bad_request")), "{}", r.text);
    // an array is not an object, even where serde would read it as the fields in order
    let r = c.post_raw("/extensions", "application/json", r#"["203", "X", null, "password1"]"#).await?;
    assert_eq!((r.status, r.error_fields()), (422, vec!["body".to_string()]), "{}", r.text);
    let r = c.post_raw("/extensions", "text/plain", "extension=203").await?;
    assert_eq!((r.status, r.error_code()), (415, Some("unsupported_media_type")), "{}", r.text);
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let r = c.post_raw("/ring-groups", "application/json", big).await?;
    assert_eq!((r.status, r.error_code()), (413, Some("payload_too_large")), "{}", r.text);
    let r = c.get("/extensions/abc").await?;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.body["error"]["code"].is_string());
    let r = c.request(reqwest::Method::PATCH, "/extensions", None).await?;
    assert_eq!((r.status, r.error_code()), (405, Some("method_not_allowed")), "{}", r.text);
    let r = c.get("/no-such-route").await?;
    assert_eq!((r.status, r.error_code()), (404, Some("not_found")), "{}", r.text);

    // nothing was half-written by any of the refused requests
    let list = c.get("/extensions").await?;
    assert_eq!(list.body["meta"]["total"], 1, "{}", list.text);
    assert_eq!(c.get("/numbers").await?.body["meta"]["total"], 0);
    assert_eq!(c.get("/flows").await?.body["meta"]["total"], 0);
    // the server is fine
    assert!(!server.logs().contains("panicked"), "{}", server.logs());
    Ok(())
}

async fn create_ok(c: &Client, path: &str, body: Value) -> anyhow::Result<Value> {
    create(c, path, body).await
}

#[tokio::test]
async fn delete_of_a_referenced_entity_is_a_409_listing_references() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.admin().await?;
    let ext = create(&c, "/extensions", json!({"extension": "101", "name": "A", "sip_password": "password-101"})).await?;
    let id = ext["id"].as_i64().unwrap();
    let rg = create(&c, "/ring-groups", json!({"name": "Sales", "members": [id]})).await?;
    let vm = create(&c, "/voicemail-boxes", json!({"name": "A's VM", "notify_extension_id": id})).await?;
    let flow = create(
        &c,
        "/flows",
        json!({"name": "Main", "flow_data": {"nodes": [{"id": "n1", "type": "extension", "data": {"entity_type": "extension", "entity_id": id}}], "edges": []}}),
    )
    .await?;
    let trunk = create(&c, "/trunks", json!({"name": "T", "type": "ip", "remote_hosts": ["198.51.100.1"]})).await?;
    let did = create(&c, "/numbers", json!({"number": "+15555550100", "trunk_id": trunk["id"], "flow_id": flow["id"], "flow_entry_node": "n1"})).await?;

    let r = c.delete(&format!("/extensions/{id}")).await?;
    assert_eq!((r.status, r.error_code()), (409, Some("conflict")), "{}", r.text);
    let refs = r.body["error"]["references"].as_array().expect("references");
    let mut got: Vec<(String, String)> = refs.iter().map(|r| (r["entity_type"].as_str().unwrap().to_owned(), r["via"].as_str().unwrap().to_owned())).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("call_flow".to_owned(), "node:n1".to_owned()),
            ("ring_group".to_owned(), "members".to_owned()),
            ("voicemail_box".to_owned(), "notify_extension_id".to_owned())
        ]
    );
    assert_eq!(r.error_fields().len(), 3);
    // the 409's message and details are in words: no node id, no field name
    let msg = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("still in use (3 places)"), "{msg}");
    for d in r.body["error"]["details"].as_array().unwrap() {
        let m = d["message"].as_str().unwrap();
        assert!(!m.contains("n1") && !m.contains('_'), "{m}");
    }
    // what a delete would be refused for, asked before: the same references
    let r = c.get(&format!("/extensions/{id}/references")).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data().as_array().map(|a| a.len()), Some(3), "{}", r.text);
    assert_eq!(c.get("/extensions/999999/references").await?.status, 404);
    let r = c.delete(&format!("/trunks/{}", trunk["id"])).await?;
    assert_eq!(r.status, 409, "{}", r.text);
    let r = c.delete(&format!("/flows/{}", flow["id"])).await?;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["references"][0]["entity_type"], "inbound_number");

    // remove the references, then the delete goes through
    assert_eq!(c.delete(&format!("/numbers/{}", did["id"])).await?.status, 200);
    assert_eq!(c.delete(&format!("/flows/{}", flow["id"])).await?.status, 200);
    assert_eq!(c.delete(&format!("/ring-groups/{}", rg["id"])).await?.status, 200);
    assert_eq!(c.put(&format!("/voicemail-boxes/{}", vm["id"]), &json!({"notify_extension_id": null})).await?.status, 200);
    assert_eq!(c.get(&format!("/extensions/{id}/references")).await?.data(), &json!([]));
    let r = c.delete(&format!("/extensions/{id}")).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.delete(&format!("/trunks/{}", trunk["id"])).await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn pagination_bounds() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.admin().await?;
    for i in 0..25 {
        create(&c, "/ivr-menus", json!({"name": format!("Menu {i:02}")})).await?;
    }
    let r = c.get("/ivr-menus").await?;
    assert_eq!(r.data().as_array().unwrap().len(), 20);
    assert_eq!(r.body["meta"], json!({"total": 25, "limit": 20, "offset": 0}));
    let r = c.get("/ivr-menus?limit=10&offset=20").await?;
    assert_eq!(r.data().as_array().unwrap().len(), 5);
    assert_eq!(r.data()[0]["name"], "Menu 20");
    let r = c.get("/ivr-menus?limit=100").await?;
    assert_eq!(r.data().as_array().unwrap().len(), 25);
    let r = c.get("/ivr-menus?offset=500").await?;
    assert_eq!((r.status, r.data().as_array().unwrap().len()), (200, 0));
    for (q, field) in [("limit=0", "limit"), ("limit=101", "limit"), ("offset=-1", "offset"), ("limit=abc", "limit")] {
        let r = c.get(&format!("/ivr-menus?{q}")).await?;
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert!(r.error_fields().contains(&field.to_owned()), "{q}: {}", r.text);
    }
    Ok(())
}

/// Trunks with their keep-alive and numbering, an outbound route over two of them in order,
/// read back as written; bad routes and trunks refused naming the field; a routed trunk kept.
#[tokio::test]
async fn outbound_routes_over_trunks() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let c = server.admin().await?;

    let primary = create(
        &c,
        "/trunks",
        json!({"name": "Primary", "type": "register", "host": "sip.carrier.example", "username": "acct", "password": "p".repeat(128),
               "outbound_proxy": "sip:edge.carrier.example:5070;lr", "options_interval": 15, "country_code": "61", "national_prefix": "0",
               "international_prefix": "0011"}),
    )
    .await?;
    assert_eq!((primary["options_interval"].as_i64(), primary["country_code"].as_str()), (Some(15), Some("61")));
    assert_eq!(primary["outbound_proxy"], "sip:edge.carrier.example:5070;lr");
    let backup = create(&c, "/trunks", json!({"name": "Backup", "type": "ip", "remote_hosts": ["198.51.100.9"], "options_interval": 0})).await?;
    assert_eq!(backup["options_interval"], 0);
    let ext = create(
        &c,
        "/extensions",
        json!({"extension": "101", "name": "A", "sip_password": "password-101", "call_classes": ["local", "national", "international"],
               "outbound_caller_id_num": "+61290000101", "emergency_caller_id_num": "+61290000100", "max_outbound_calls": 1, "daily_outbound_minutes": 120}),
    )
    .await?;
    assert_eq!(ext["call_classes"], json!(["local", "national", "international"]));

    let (p, b) = (primary["id"].as_i64().unwrap(), backup["id"].as_i64().unwrap());
    let body = json!({"name": "National", "position": 10, "patterns": ["_0[2-9]XXXXXXXX", "^\\+61[0-9]{9}$", "13"], "call_class": "national",
                      "strip_digits": 1, "prepend": "+61", "caller_id_mode": "extension", "extension_ids": [ext["id"]], "trunk_ids": [b, p]});
    let route = create(&c, "/outbound-routes", body.clone()).await?;
    let id = route["id"].as_i64().unwrap();
    for (k, v) in body.as_object().unwrap() {
        assert_eq!(&route[k], v, "{k}");
    }
    let got = c.get(&format!("/outbound-routes/{id}")).await?;
    assert_eq!(got.status, 200);
    assert_eq!(got.data()["trunk_ids"], json!([b, p]), "tried in the order given");
    assert_eq!(got.data(), &route);
    let list = c.get("/outbound-routes").await?;
    assert_eq!((list.status, list.body["meta"]["total"].as_i64()), (200, Some(1)));
    let r = c.put(&format!("/outbound-routes/{id}"), &json!({"trunk_ids": [p, b]})).await?;
    assert_eq!((r.status, &r.data()["trunk_ids"]), (200, &json!([p, b])), "{}", r.text);
    assert_eq!(r.data()["patterns"], body["patterns"], "kept");

    // bad input, each a 422 naming its field
    let check = |r: flowpbx_tests::Response, field: &str| {
        assert_eq!(r.status, 422, "{field}: {}", r.text);
        assert!(r.error_fields().iter().any(|f| f == field), "expected field {field}: {}", r.text);
    };
    let route_with = |extra: Value| {
        let mut r = json!({"name": "R", "patterns": ["9"], "trunk_ids": [p]});
        r.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        r
    };
    check(c.post("/outbound-routes", &route_with(json!({"patterns": ["9", "_0[9-2]X"]}))).await?, "patterns[1]");
    check(c.post("/outbound-routes", &route_with(json!({"patterns": ["^(0"]}))).await?, "patterns[0]");
    check(c.post("/outbound-routes", &route_with(json!({"patterns": ["nine"]}))).await?, "patterns[0]");
    check(c.post("/outbound-routes", &route_with(json!({"trunk_ids": [p, 9999]}))).await?, "trunk_ids[1]");
    check(c.post("/outbound-routes", &route_with(json!({"trunk_ids": []}))).await?, "trunk_ids");
    check(c.post("/outbound-routes", &route_with(json!({"caller_id_mode": "route"}))).await?, "caller_id_num");
    check(c.post("/outbound-routes", &route_with(json!({"position": 10, "patterns": ["13"]}))).await?, "patterns[0]");
    check(c.post("/trunks", &json!({"name": "T", "type": "register", "host": "h.example", "username": "u", "password": "p".repeat(129)})).await?, "password");
    check(c.post("/trunks", &json!({"name": "T", "type": "ip", "remote_hosts": ["198.51.100.1"], "options_interval": 3})).await?, "options_interval");
    check(c.put(&format!("/extensions/{}", ext["id"]), &json!({"call_classes": ["premium", "premium"]})).await?, "call_classes[1]");
    assert_eq!(c.get("/outbound-routes").await?.body["meta"]["total"], 1, "nothing refused was written");

    // a trunk a route uses stays until the route lets it go; the route goes plainly
    let r = c.delete(&format!("/trunks/{b}")).await?;
    assert_eq!((r.status, r.error_code()), (409, Some("conflict")), "{}", r.text);
    assert_eq!(r.body["error"]["references"][0]["entity_type"], "outbound_route");
    assert_eq!(r.body["error"]["references"][0]["entity_id"], id);
    let r = c.delete(&format!("/outbound-routes/{id}")).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.delete(&format!("/trunks/{b}")).await?.status, 200);
    assert!(!server.logs().contains("panicked"), "{}", server.logs());
    Ok(())
}
