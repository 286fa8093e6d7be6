//! What refers to an entity (so deleting it would break something), whether an entity exists,
//! and who owns a dialable number.

use super::References;
use crate::*;

impl References<'_> {
    /// Does the entity exist?
    pub async fn exists(self, kind: ResourceKind, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        // The table name comes from a closed enum, never from input.
        let sql = match kind.table() {
            "extensions" => "SELECT EXISTS (SELECT 1 FROM extensions WHERE id = ?)",
            "trunks" => "SELECT EXISTS (SELECT 1 FROM trunks WHERE id = ?)",
            "inbound_numbers" => "SELECT EXISTS (SELECT 1 FROM inbound_numbers WHERE id = ?)",
            "voicemail_boxes" => "SELECT EXISTS (SELECT 1 FROM voicemail_boxes WHERE id = ?)",
            "ring_groups" => "SELECT EXISTS (SELECT 1 FROM ring_groups WHERE id = ?)",
            "ivr_menus" => "SELECT EXISTS (SELECT 1 FROM ivr_menus WHERE id = ?)",
            "time_switches" => "SELECT EXISTS (SELECT 1 FROM time_switches WHERE id = ?)",
            "conference_bridges" => "SELECT EXISTS (SELECT 1 FROM conference_bridges WHERE id = ?)",
            "call_flows" => "SELECT EXISTS (SELECT 1 FROM call_flows WHERE id = ?)",
            "outbound_routes" => "SELECT EXISTS (SELECT 1 FROM outbound_routes WHERE id = ?)",
            _ => "SELECT EXISTS (SELECT 1 FROM prompts WHERE id = ?)",
        };
        let (e,): (bool,) = sqlx::query_as(sql).bind(id).fetch_one(&mut *c).await?;
        Ok(e)
    }

    /// Everything that refers to the entity: other entities' columns, flow drafts' nodes and the
    /// live (latest published) versions' nodes. Empty: it can be deleted safely.
    pub async fn to(self, kind: ResourceKind, id: i64) -> Result<Vec<Reference>> {
        let mut c = self.db.acquire().await?;
        let mut out: Vec<Reference> = Vec::new();
        let mut push = |rows: Vec<(String, i64, String, String)>| {
            out.extend(rows.into_iter().map(|(entity_type, entity_id, name, via)| Reference { entity_type, entity_id, name, via }));
        };

        match kind {
            ResourceKind::Extension => {
                push(
                    sqlx::query_as(
                        "SELECT 'ring_group', g.id, g.name, 'members' FROM ring_groups g \
                         WHERE EXISTS (SELECT 1 FROM json_each(g.members) m WHERE m.value = ?)",
                    )
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?,
                );
                push(
                    sqlx::query_as(
                        "SELECT 'voicemail_box', b.id, b.name, 'notify_extension_id' FROM voicemail_boxes b \
                         WHERE b.notify_extension_id = ?",
                    )
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?,
                );
                // a route limited to some extensions: removing one would leave a dangling id
                push(
                    sqlx::query_as(
                        "SELECT 'outbound_route', r.id, r.name, 'extension_ids' FROM outbound_routes r \
                         WHERE EXISTS (SELECT 1 FROM json_each(r.extension_ids) e WHERE e.value = ?) ORDER BY r.position, r.id",
                    )
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?,
                );
            }
            ResourceKind::Trunk => {
                push(
                    sqlx::query_as("SELECT 'inbound_number', n.id, n.number, 'trunk_id' FROM inbound_numbers n WHERE n.trunk_id = ?")
                        .bind(id)
                        .fetch_all(&mut *c)
                        .await?,
                );
                push(
                    sqlx::query_as(
                        "SELECT 'outbound_route', r.id, r.name, 'trunk_ids' FROM outbound_routes r \
                         JOIN outbound_route_trunks t ON t.route_id = r.id WHERE t.trunk_id = ? ORDER BY r.position, r.id",
                    )
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?,
                );
            }
            ResourceKind::CallFlow => push(
                sqlx::query_as("SELECT 'inbound_number', n.id, n.number, 'flow_id' FROM inbound_numbers n WHERE n.flow_id = ?")
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?,
            ),
            ResourceKind::Prompt => {
                push(
                    sqlx::query_as(
                        "SELECT 'ivr_menu', m.id, m.name, 'greeting_file' FROM ivr_menus m \
                         WHERE m.greeting_file IN ((SELECT name FROM prompts WHERE id = ?1), CAST(?1 AS TEXT))",
                    )
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?,
                );
                push(
                    sqlx::query_as(
                        "SELECT 'voicemail_box', b.id, b.name, 'greeting_file' FROM voicemail_boxes b \
                         WHERE b.greeting_file IN ((SELECT name FROM prompts WHERE id = ?1), CAST(?1 AS TEXT))",
                    )
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?,
                );
                // a greeting the live version of a flow captured: calls play it until another
                // version is published
                push(
                    sqlx::query_as(
                        "SELECT 'call_flow', f.id, f.name, 'published:v' || e.version || ':' || e.entity_type || ':' || e.entity_id || ':greeting_file' \
                         FROM call_flows f JOIN flow_version_entities e ON e.flow_id = f.id AND e.version = f.version \
                         WHERE e.data ->> '$.greeting_file' IN ((SELECT name FROM prompts WHERE id = ?1), CAST(?1 AS TEXT)) ORDER BY f.id",
                    )
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?,
                );
                // nodes' `prompt` / `…_prompt` settings, in drafts and live versions (by name,
                // or custom/<name>)
                push(
                    sqlx::query_as(
                        "SELECT 'call_flow', f.id, f.name, 'node:' || COALESCE(n.value ->> '$.id', '?') || ':config.' || k.key \
                         FROM call_flows f, json_each(f.flow_data, '$.nodes') n, json_each(n.value, '$.data.config') k \
                         WHERE (k.key = 'prompt' OR k.key LIKE '%\\_prompt' ESCAPE '\\') \
                         AND k.value IN ((SELECT name FROM prompts WHERE id = ?1), (SELECT 'custom/' || name FROM prompts WHERE id = ?1)) ORDER BY f.id",
                    )
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?,
                );
                push(
                    sqlx::query_as(
                        "SELECT 'call_flow', f.id, f.name, 'published:v' || v.version || ':node:' || COALESCE(n.value ->> '$.id', '?') || ':config.' || k.key \
                         FROM call_flows f JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.version, \
                         json_each(v.flow_data, '$.nodes') n, json_each(n.value, '$.data.config') k \
                         WHERE (k.key = 'prompt' OR k.key LIKE '%\\_prompt' ESCAPE '\\') \
                         AND k.value IN ((SELECT name FROM prompts WHERE id = ?1), (SELECT 'custom/' || name FROM prompts WHERE id = ?1)) ORDER BY f.id",
                    )
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?,
                );
            }
            _ => {}
        }

        // flow drafts
        push(
            sqlx::query_as(
                "SELECT 'call_flow', f.id, f.name, 'node:' || COALESCE(n.value ->> '$.id', '?') \
                 FROM call_flows f, json_each(f.flow_data, '$.nodes') n \
                 WHERE n.value ->> '$.data.entity_type' = ? AND CAST(n.value ->> '$.data.entity_id' AS INTEGER) = ? \
                 ORDER BY f.id",
            )
            .bind(kind.as_str())
            .bind(id)
            .fetch_all(&mut *c)
            .await?,
        );
        // live published versions (calls are routed by these)
        push(
            sqlx::query_as(
                "SELECT 'call_flow', f.id, f.name, 'published:v' || v.version || ':node:' || COALESCE(n.value ->> '$.id', '?') \
                 FROM call_flows f JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.version, \
                 json_each(v.flow_data, '$.nodes') n \
                 WHERE n.value ->> '$.data.entity_type' = ? AND CAST(n.value ->> '$.data.entity_id' AS INTEGER) = ? \
                 ORDER BY f.id",
            )
            .bind(kind.as_str())
            .bind(id)
            .fetch_all(&mut *c)
            .await?,
        );
        Ok(out)
    }

    /// Who already uses `number` in the dial plan (extensions, conference bridges and
    /// voicemail boxes' mailbox numbers), leaving out `except` (the entity being edited).
    pub async fn number_owners(self, number: &str, except: Option<(ResourceKind, i64)>) -> Result<Vec<NumberOwner>> {
        let mut c = self.db.acquire().await?;
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT 'extension', id, name FROM extensions WHERE extension = ?1 \
             UNION ALL SELECT 'conference_bridge', id, name FROM conference_bridges WHERE extension = ?1 \
             UNION ALL SELECT 'voicemail_box', id, name FROM voicemail_boxes WHERE mailbox_number = ?1",
        )
        .bind(number)
        .fetch_all(&mut *c)
        .await?;
        Ok(rows
            .into_iter()
            .filter(|(t, id, _)| except.is_none_or(|(k, eid)| !(k.as_str() == t && eid == *id)))
            .map(|(entity_type, entity_id, name)| NumberOwner { entity_type, entity_id, name })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::open_temp;
    use crate::*;

    #[tokio::test]
    async fn finds_column_and_flow_references() {
        let (s, _d) = open_temp().await;
        let e = s
            .extensions()
            .insert(&ExtensionFields { extension: "101".into(), name: "A".into(), sip_username: "a".into(), ..Default::default() }, "pw")
            .await
            .unwrap();
        s.ring_groups().insert(&RingGroupFields { name: "Sales".into(), members: vec![e.id], ..Default::default() }).await.unwrap();
        let graph = serde_json::json!({"nodes": [{"id": "n1", "type": "extension", "data": {"entity_type": "extension", "entity_id": e.id}}], "edges": []});
        let f = s.call_flows().insert(&CallFlowFields { name: "Main".into(), flow_data: graph.clone() }).await.unwrap();
        s.flow_versions().publish(f.id, &graph, "t").await.unwrap();
        let refs = s.references().to(ResourceKind::Extension, e.id).await.unwrap();
        let vias: Vec<&str> = refs.iter().map(|r| r.via.as_str()).collect();
        assert_eq!(vias, vec!["members", "node:n1", "published:v1:node:n1"], "{refs:?}");
        assert!(s.references().to(ResourceKind::Trunk, 1).await.unwrap().is_empty());

        assert!(s.references().exists(ResourceKind::Extension, e.id).await.unwrap());
        assert!(!s.references().exists(ResourceKind::IvrMenu, 9).await.unwrap());
        assert_eq!(s.references().number_owners("101", None).await.unwrap().len(), 1);
        assert!(s.references().number_owners("101", Some((ResourceKind::Extension, e.id))).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_prompt_is_used_by_what_live_versions_captured_and_by_node_settings() {
        let (s, _d) = open_temp().await;
        let new = |name: &str| NewPrompt {
            name: name.into(),
            file_path: format!("prompts/custom/{name}.wav"),
            original_name: None,
            sample_rate: 8000,
            channels: 1,
            bits_per_sample: 16,
            duration_ms: 1,
            size_bytes: 1,
        };
        let hello = s.prompts().insert(&new("hello")).await.unwrap();
        let bye = s.prompts().insert(&new("bye")).await.unwrap();
        let other = s.prompts().insert(&new("other")).await.unwrap();
        let graph = serde_json::json!({"nodes": [
            {"id": "p", "type": "play_message", "data": {"config": {"prompt": "custom/bye"}}},
            {"id": "h", "type": "hangup", "data": {"config": {"sorry_prompt": "other", "note": "hello"}}}
        ], "edges": []});
        let f = s.call_flows().insert(&CallFlowFields { name: "Main".into(), flow_data: graph.clone() }).await.unwrap();
        let mut tx = s.begin().await.unwrap();
        let v = tx.flow_versions().publish(f.id, &graph, "t").await.unwrap();
        // the menu's row no longer names it, but the live version captured it
        tx.flow_version_entities().insert(f.id, v.version, "ivr_menu", 4, &serde_json::json!({"greeting_file": hello.id.to_string()})).await.unwrap();
        tx.commit().await.unwrap();
        let vias = |refs: Vec<Reference>| refs.into_iter().map(|r| r.via).collect::<Vec<_>>();
        assert_eq!(vias(s.references().to(ResourceKind::Prompt, hello.id).await.unwrap()), ["published:v1:ivr_menu:4:greeting_file"]);
        assert_eq!(vias(s.references().to(ResourceKind::Prompt, bye.id).await.unwrap()), ["node:p:config.prompt", "published:v1:node:p:config.prompt"]);
        assert_eq!(
            vias(s.references().to(ResourceKind::Prompt, other.id).await.unwrap()),
            ["node:h:config.sorry_prompt", "published:v1:node:h:config.sorry_prompt"]
        );
        // a version that is no longer live holds nothing: publish one without them
        let empty = serde_json::json!({"nodes": [], "edges": []});
        s.call_flows().update(f.id, &CallFlowFields { name: "Main".into(), flow_data: empty.clone() }).await.unwrap();
        s.flow_versions().publish(f.id, &empty, "t").await.unwrap();
        for p in [&hello, &bye, &other] {
            assert!(s.references().to(ResourceKind::Prompt, p.id).await.unwrap().is_empty(), "{}", p.name);
        }
    }

    #[tokio::test]
    async fn outbound_routes_hold_their_trunks_and_extensions() {
        let (s, _d) = open_temp().await;
        let e = s
            .extensions()
            .insert(&ExtensionFields { extension: "101".into(), name: "A".into(), sip_username: "a".into(), ..Default::default() }, "pw")
            .await
            .unwrap();
        let other = s
            .extensions()
            .insert(&ExtensionFields { extension: "102".into(), name: "B".into(), sip_username: "b".into(), ..Default::default() }, "pw")
            .await
            .unwrap();
        let trunk = |name: &str| TrunkFields { name: name.into(), host: Some("sip.example.com".into()), ..Default::default() };
        let a = s.trunks().insert(&trunk("a"), None).await.unwrap().row;
        let b = s.trunks().insert(&trunk("b"), None).await.unwrap().row;
        let r = s
            .outbound_routes()
            .insert(&OutboundRouteFields {
                name: "National".into(),
                patterns: vec!["0".into()],
                trunk_ids: vec![a.id],
                extension_ids: vec![e.id],
                ..Default::default()
            })
            .await
            .unwrap();
        let refs = s.references().to(ResourceKind::Trunk, a.id).await.unwrap();
        assert_eq!(refs, vec![Reference { entity_type: "outbound_route".into(), entity_id: r.id, name: "National".into(), via: "trunk_ids".into() }]);
        assert!(s.references().to(ResourceKind::Trunk, b.id).await.unwrap().is_empty());
        let refs = s.references().to(ResourceKind::Extension, e.id).await.unwrap();
        assert_eq!(refs.iter().map(|r| r.via.as_str()).collect::<Vec<_>>(), vec!["extension_ids"]);
        assert!(s.references().to(ResourceKind::Extension, other.id).await.unwrap().is_empty());
        assert!(s.references().exists(ResourceKind::OutboundRoute, r.id).await.unwrap());
        assert!(!s.references().exists(ResourceKind::OutboundRoute, r.id + 1).await.unwrap());
        assert!(s.references().to(ResourceKind::OutboundRoute, r.id).await.unwrap().is_empty());
    }
}
