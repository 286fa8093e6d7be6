//! A published flow version captures its entities: through the real store and the real flow
//! engine (simulated calls on the live version), an IVR menu edited after publishing does
//! not change what the live version does; publishing again takes the edit; rolling back
//! brings the old menu back; a menu shared by two flows changes only the flow that is
//! published; resetting a draft puts the live menu back into the row; a version published
//! before versions captured entities keeps them from its first load.

use std::sync::Arc;

use flow::entity::{EntityCache, EntityKind};
use flow::services::Services;
use flow::sim::Script;
use flow::Limits;
use pbx::flows::{FlowRuntime, FlowService, VersionSel};
use pbx::versions;
use serde_json::{json, Value};
use store::{Actor, CallFlowFields, IvrMenuFields, ResourceKind, SecretKey, Store, StoreOptions};

struct Rig {
    store: Store,
    service: FlowService,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("flowpbx.db"), SecretKey::generate(), "flowpbx")).await.unwrap();
        let service = start_service(&store, dir.path()).await;
        Rig { store, service, _dir: dir }
    }

    fn rt(&self) -> &FlowRuntime {
        self.service.runtime().unwrap()
    }

    async fn set_menu(&self, id: i64, options: &[(&str, &str)]) {
        let mut f = self.store.ivr_menus().get(id).await.unwrap().unwrap().fields.clone();
        f.options = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.store.ivr_menus().update(id, &f).await.unwrap();
        self.service.entity_changed(ResourceKind::IvrMenu, id).await;
    }

    /// The output the menu took when the caller pressed `digit` on the live version.
    async fn live_menu_output(&self, flow: i64, digit: &str) -> String {
        let script = Script::parse(&json!({"menu_dtmf": [{"digits": digit}]}).to_string()).unwrap();
        let r = self.rt().simulate(flow, VersionSel::Live, script).await.unwrap();
        let path = r.trace.path();
        path.iter().find(|(n, _)| n == "menu").map(|(_, o)| o.clone()).unwrap_or_else(|| panic!("no menu step: {path:?}"))
    }
}

async fn start_service(store: &Store, data_dir: &std::path::Path) -> FlowService {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("flow-components");
    let services = Services { entities: Arc::new(EntityCache::new()), ..Services::in_memory() };
    let engine = pbx::engine::build_engine(Some(cache), services, Limits { max_concurrent_runs: 8, ..Limits::default() }).await.unwrap();
    let service = FlowService::new(store.clone(), data_dir.to_path_buf());
    service.start(engine).await.unwrap();
    service
}

fn admin() -> Actor {
    Actor { name: "admin:test".into(), ip: None }
}

fn node(id: &str, ty: &str, data: Value) -> Value {
    json!({"id": id, "type": ty, "position": {"x": 0, "y": 0}, "data": data})
}

fn edge(from: &str, output: &str, to: &str) -> Value {
    json!({"id": format!("{from}-{output}"), "source": from, "sourceHandle": output, "target": to})
}

/// entry → menu; 1 → "one", 3 → "three" (when `with_three`), invalid/timeout → "other".
fn menu_graph(menu: i64, with_three: bool) -> Value {
    let mut nodes = vec![
        node("in", "inbound_number", json!({})),
        node("menu", "ivr_menu", json!({"label": "Main menu", "entity_type": "ivr_menu", "entity_id": menu})),
        node("one", "play_message", json!({"config": {"prompt": "system/goodbye"}})),
        node("other", "hangup", json!({})),
    ];
    let mut edges = vec![edge("in", "next", "menu"), edge("menu", "1", "one"), edge("menu", "invalid", "other"), edge("menu", "timeout", "other")];
    if with_three {
        nodes.push(node("three", "play_message", json!({"config": {"prompt": "system/welcome"}})));
        edges.push(edge("menu", "3", "three"));
    }
    json!({"nodes": nodes, "edges": edges})
}

async fn new_flow(store: &Store, name: &str, graph: Value) -> i64 {
    store.call_flows().insert(&CallFlowFields { name: name.into(), flow_data: graph }).await.unwrap().id
}

async fn new_menu(store: &Store) -> i64 {
    let f = IvrMenuFields {
        name: "Main menu".into(),
        greeting_tts: Some("Press one.".into()),
        max_retries: 0,
        timeout: 3,
        digit_timeout: 2,
        options: [("1".to_string(), "Sales".to_string())].into(),
        ..IvrMenuFields::default()
    };
    store.ivr_menus().insert(&f).await.unwrap().id
}

#[tokio::test]
async fn a_live_version_keeps_its_menu_until_published_and_rollback_restores_it() {
    let rig = Rig::start().await;
    let menu = new_menu(&rig.store).await;
    rig.service.entity_changed(ResourceKind::IvrMenu, menu).await;
    let flow = new_flow(&rig.store, "Main line", menu_graph(menu, false)).await;
    let v1 = rig.rt().publish(flow, &admin()).await.unwrap();
    assert_eq!(v1.version.version, 1);

    // publishing captured the menu's columns
    let captured = rig.store.flow_version_entities().of_version(flow, 1).await.unwrap();
    assert_eq!(captured.len(), 1, "{captured:?}");
    assert_eq!((captured[0].entity_type.as_str(), captured[0].entity_id), ("ivr_menu", menu));
    assert_eq!(captured[0].data["options"], json!({"1": "Sales"}));
    assert!(captured[0].data.get("id").is_none() && captured[0].data.get("updated_at").is_none());
    assert_eq!(rig.live_menu_output(flow, "3").await, "invalid");
    let status = versions::draft_status(&rig.store, &rig.store.call_flows().get(flow).await.unwrap().unwrap()).await.unwrap();
    assert!(!status.differs_from_live, "{status:?}");

    // the menu gains 3: the live version still treats 3 as invalid
    rig.set_menu(menu, &[("1", "Sales"), ("3", "Billing")]).await;
    assert_eq!(rig.live_menu_output(flow, "3").await, "invalid");
    assert_eq!(rig.live_menu_output(flow, "1").await, "1");
    let status = versions::draft_status(&rig.store, &rig.store.call_flows().get(flow).await.unwrap().unwrap()).await.unwrap();
    assert!(status.differs_from_live && !status.graph_changed, "{status:?}");
    // and the draft routes it
    rig.store.call_flows().update(flow, &CallFlowFields { name: "Main line".into(), flow_data: menu_graph(menu, true) }).await.unwrap();
    assert_eq!(rig.live_menu_output(flow, "3").await, "invalid");
    let status = versions::draft_status(&rig.store, &rig.store.call_flows().get(flow).await.unwrap().unwrap()).await.unwrap();
    assert!(status.differs_from_live && status.graph_changed, "{status:?}");
    assert_eq!(
        status.entities_changed.iter().map(|e| (e.entity_type.as_str(), e.entity_id, e.name.as_str())).collect::<Vec<_>>(),
        [("ivr_menu", menu, "Main menu")]
    );
    let diff = versions::entity_changes(
        &versions::entities_at(&rig.store, flow, VersionSel::Live).await.unwrap(),
        &versions::entities_at(&rig.store, flow, VersionSel::Draft).await.unwrap(),
    );
    assert_eq!(diff.len(), 1);
    assert_eq!(
        (diff[0].fields[0].field.as_str(), diff[0].fields[0].before.clone(), diff[0].fields[0].after.clone()),
        ("options.3", None, Some(json!("Billing")))
    );

    // published again: now 3 is taken
    let v2 = rig.rt().publish(flow, &admin()).await.unwrap();
    assert_eq!(v2.version.version, 2);
    assert_eq!(rig.live_menu_output(flow, "3").await, "3");

    // rolled back to 1: a version 3 with version 1's menu
    let v3 = rig.rt().rollback(flow, 1, &admin()).await.unwrap();
    assert_eq!((v3.version.version, v3.rolled_back_to), (3, Some(1)));
    assert_eq!(rig.live_menu_output(flow, "3").await, "invalid");
    let captured = rig.store.flow_version_entities().of_version(flow, 3).await.unwrap();
    assert_eq!(captured[0].data["options"], json!({"1": "Sales"}));
    // the row (the draft) still has 3: the draft differs from live
    let status = versions::draft_status(&rig.store, &rig.store.call_flows().get(flow).await.unwrap().unwrap()).await.unwrap();
    assert!(status.differs_from_live, "{status:?}");

    // resetting the draft puts version 3's menu back into the row
    let reset = versions::reset_draft(&rig.store, flow, &admin()).await.unwrap();
    assert_eq!(reset.version, 3);
    assert_eq!(reset.restored.iter().map(|r| r.entity_id).collect::<Vec<_>>(), [menu]);
    let row = rig.store.ivr_menus().get(menu).await.unwrap().unwrap();
    assert_eq!(row.fields.options.keys().collect::<Vec<_>>(), ["1"]);
    let status = versions::draft_status(&rig.store, &reset.flow).await.unwrap();
    assert!(!status.differs_from_live, "{status:?}");

    // a restart loads the live version with what it captured, not with the row
    rig.set_menu(menu, &[("1", "Sales"), ("3", "Billing")]).await;
    let again = start_service(&rig.store, rig._dir.path()).await;
    let script = Script::parse(&json!({"menu_dtmf": [{"digits": "3"}]}).to_string()).unwrap();
    let r = again.runtime().unwrap().simulate(flow, VersionSel::Live, script).await.unwrap();
    assert_eq!(r.trace.path()[1], ("menu".to_string(), "invalid".to_string()));
}

#[tokio::test]
async fn publishing_one_flow_leaves_another_on_the_same_menu_alone() {
    let rig = Rig::start().await;
    let menu = new_menu(&rig.store).await;
    rig.service.entity_changed(ResourceKind::IvrMenu, menu).await;
    let a = new_flow(&rig.store, "A", menu_graph(menu, false)).await;
    let b = new_flow(&rig.store, "B", menu_graph(menu, false)).await;
    rig.rt().publish(a, &admin()).await.unwrap();
    rig.rt().publish(b, &admin()).await.unwrap();

    rig.set_menu(menu, &[("1", "Sales"), ("3", "Billing")]).await;
    // both drafts changed with the shared row; both live versions are untouched
    let using = versions::flows_using(&rig.store, EntityKind::IvrMenu, menu).await.unwrap();
    assert_eq!(
        using.iter().map(|u| (u.name.as_str(), u.live_version, u.entity_changed, u.needs_publish)).collect::<Vec<_>>(),
        [("A", Some(1), true, true), ("B", Some(1), true, true)]
    );

    // A routes 3 and is published; B (whose graph has no 3) is not
    rig.store.call_flows().update(a, &CallFlowFields { name: "A".into(), flow_data: menu_graph(menu, true) }).await.unwrap();
    rig.rt().publish(a, &admin()).await.unwrap();
    assert_eq!(rig.live_menu_output(a, "3").await, "3");
    // with the edited menu B would take "3" (and hang up, having no edge for it)
    assert_eq!(rig.live_menu_output(b, "3").await, "invalid", "B runs the menu it was published with");
    let using = versions::flows_using(&rig.store, EntityKind::IvrMenu, menu).await.unwrap();
    assert_eq!(using.iter().map(|u| (u.name.as_str(), u.live_version, u.needs_publish)).collect::<Vec<_>>(), [("A", Some(2), false), ("B", Some(1), true)]);

    // resetting B's draft restores the shared row: now A's draft differs from A's live
    let reset = versions::reset_draft(&rig.store, b, &admin()).await.unwrap();
    assert_eq!(reset.restored.len(), 1);
    let using = versions::flows_using(&rig.store, EntityKind::IvrMenu, menu).await.unwrap();
    assert_eq!(using.iter().map(|u| (u.name.as_str(), u.needs_publish)).collect::<Vec<_>>(), [("A", true), ("B", false)]);
    assert_eq!(rig.live_menu_output(a, "3").await, "3", "A's live version is untouched by the reset");

    // a version whose entity has been deleted cannot be made live again
    let other = new_menu(&rig.store).await;
    rig.service.entity_changed(ResourceKind::IvrMenu, other).await;
    rig.store.call_flows().update(a, &CallFlowFields { name: "A".into(), flow_data: menu_graph(other, false) }).await.unwrap();
    rig.rt().publish(a, &admin()).await.unwrap(); // v3: the other menu
    rig.store.call_flows().update(a, &CallFlowFields { name: "A".into(), flow_data: menu_graph(menu, false) }).await.unwrap();
    rig.rt().publish(a, &admin()).await.unwrap(); // v4: back on the shared menu
    assert!(rig.store.ivr_menus().delete(other).await.unwrap());
    let err = rig.rt().rollback(a, 3, &admin()).await.unwrap_err();
    let pbx::Error::Invalid(p) = &err else { panic!("{err}") };
    assert_eq!(p[0].field, "version");
    assert!(p[0].message.contains("deleted"), "{}", p[0].message);
}

#[tokio::test]
async fn a_version_published_before_capture_keeps_its_entities_from_its_first_load() {
    let rig = Rig::start().await;
    let menu = new_menu(&rig.store).await;
    let graph = menu_graph(menu, false);
    let flow = new_flow(&rig.store, "Old", graph.clone()).await;
    // what an older build wrote: the version row, nothing captured
    rig.store.flow_versions().publish(flow, &graph, "admin:old").await.unwrap();
    assert!(rig.store.flow_version_entities().of_version(flow, 1).await.unwrap().is_empty());
    let again = start_service(&rig.store, rig._dir.path()).await;
    let captured = rig.store.flow_version_entities().of_version(flow, 1).await.unwrap();
    assert_eq!(captured.iter().map(|c| c.entity_id).collect::<Vec<_>>(), [menu]);
    // from then on an edit does not reach it
    let mut f = rig.store.ivr_menus().get(menu).await.unwrap().unwrap().fields.clone();
    f.options.insert("3".into(), "Billing".into());
    rig.store.ivr_menus().update(menu, &f).await.unwrap();
    again.entity_changed(ResourceKind::IvrMenu, menu).await;
    let script = Script::parse(&json!({"menu_dtmf": [{"digits": "3"}]}).to_string()).unwrap();
    let r = again.runtime().unwrap().simulate(flow, VersionSel::Live, script).await.unwrap();
    assert_eq!(r.trace.path()[1], ("menu".to_string(), "invalid".to_string()));
}
