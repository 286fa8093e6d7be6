use sqlx::types::Json;

use super::{delete_by_id, paged, CallFlows, FlowVersionEntities, FlowVersions};
use crate::*;

macro_rules! flow_cols {
    () => {
        "id, name, flow_data, version, published, published_at, created_at, updated_at"
    };
}

/// A flow as listed: without its graph.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallFlowSummary {
    pub id: i64,
    pub name: String,
    pub version: i64,
    pub published: bool,
    pub published_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl CallFlows<'_> {
    /// Flows with their draft graphs, by name.
    pub async fn list(self, page: Page) -> Result<Paged<CallFlow>> {
        let mut c = self.db.acquire().await?;
        paged(&mut c, concat!("SELECT ", flow_cols!(), " FROM call_flows ORDER BY name, id LIMIT ? OFFSET ?"), "SELECT COUNT(*) FROM call_flows", page).await
    }

    /// Flows without their graphs, by name.
    pub async fn list_summaries(self, page: Page) -> Result<Paged<CallFlowSummary>> {
        let mut c = self.db.acquire().await?;
        paged(
            &mut c,
            "SELECT id, name, version, published, published_at, created_at, updated_at FROM call_flows \
             ORDER BY name, id LIMIT ? OFFSET ?",
            "SELECT COUNT(*) FROM call_flows",
            page,
        )
        .await
    }

    pub async fn get(self, id: i64) -> Result<Option<CallFlow>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", flow_cols!(), " FROM call_flows WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    pub async fn insert(self, f: &CallFlowFields) -> Result<CallFlow> {
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("INSERT INTO call_flows (name, flow_data, created_at, updated_at) VALUES (?, ?, ?, ?) RETURNING ", flow_cols!()))
            .bind(&f.name)
            .bind(Json(&f.flow_data))
            .bind(now)
            .bind(now)
            .fetch_one(&mut *c)
            .await?)
    }

    /// Replaces the draft (published versions are untouched).
    pub async fn update(self, id: i64, f: &CallFlowFields) -> Result<CallFlow> {
        let mut c = self.db.acquire().await?;
        sqlx::query_as(concat!("UPDATE call_flows SET name = ?, flow_data = ?, updated_at = ? WHERE id = ? RETURNING ", flow_cols!()))
            .bind(&f.name)
            .bind(Json(&f.flow_data))
            .bind(Timestamp::now())
            .bind(id)
            .fetch_optional(&mut *c)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Deletes a flow and its published versions.
    pub async fn delete(self, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        delete_by_id(&mut c, "DELETE FROM call_flows WHERE id = ?", id).await
    }
}

macro_rules! version_cols {
    () => {
        "id, flow_id, version, flow_data, plugins, published_by, published_at"
    };
}

impl FlowVersions<'_> {
    /// Publishes `graph` as the next version of `flow_id` and marks the flow published.
    /// Run it inside a transaction with the audit row (`tx.flow_versions().publish(..)`).
    pub async fn publish(self, flow_id: i64, graph: &serde_json::Value, published_by: &str) -> Result<FlowVersion> {
        self.publish_pinned(flow_id, graph, &serde_json::json!({}), published_by).await
    }

    /// [`publish`](Self::publish) recording the plugin versions the flow engine prepared the
    /// version with (`{"vendor/name": "<sha256>"}`).
    pub async fn publish_pinned(self, flow_id: i64, graph: &serde_json::Value, plugins: &serde_json::Value, published_by: &str) -> Result<FlowVersion> {
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        let (next,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(version), 0) + 1 FROM flow_versions WHERE flow_id = ?").bind(flow_id).fetch_one(&mut *c).await?;
        let v: FlowVersion = sqlx::query_as(concat!(
            "INSERT INTO flow_versions (flow_id, version, flow_data, plugins, published_by, published_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING ",
            version_cols!()
        ))
        .bind(flow_id)
        .bind(next)
        .bind(Json(graph))
        .bind(Json(plugins))
        .bind(published_by)
        .bind(now)
        .fetch_one(&mut *c)
        .await?;
        let r = sqlx::query("UPDATE call_flows SET version = ?, published = 1, published_at = ? WHERE id = ?")
            .bind(next)
            .bind(now)
            .bind(flow_id)
            .execute(&mut *c)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(v)
    }

    /// A flow's versions, newest first (without their graphs).
    pub async fn list(self, flow_id: i64, page: Page) -> Result<Paged<FlowVersionSummary>> {
        let mut c = self.db.acquire().await?;
        let items = sqlx::query_as(
            "SELECT id, flow_id, version, published_by, published_at FROM flow_versions WHERE flow_id = ? \
             ORDER BY version DESC LIMIT ? OFFSET ?",
        )
        .bind(flow_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&mut *c)
        .await?;
        let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM flow_versions WHERE flow_id = ?").bind(flow_id).fetch_one(&mut *c).await?;
        Ok(Paged { items, total })
    }

    pub async fn get(self, flow_id: i64, version: i64) -> Result<Option<FlowVersion>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", version_cols!(), " FROM flow_versions WHERE flow_id = ? AND version = ?"))
            .bind(flow_id)
            .bind(version)
            .fetch_optional(&mut *c)
            .await?)
    }

    /// The live version of a flow (the latest published), if any.
    pub async fn latest(self, flow_id: i64) -> Result<Option<FlowVersion>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", version_cols!(), " FROM flow_versions WHERE flow_id = ? ORDER BY version DESC LIMIT 1"))
            .bind(flow_id)
            .fetch_optional(&mut *c)
            .await?)
    }
}

impl FlowVersionEntities<'_> {
    /// Records what version `version` of `flow_id` captured of an entity. Run it in the
    /// transaction that publishes the version (or, for a version published before entities
    /// were captured, once when it is first loaded); a second capture of the same entity for
    /// the same version is refused (the primary key), never an overwrite.
    pub async fn insert(self, flow_id: i64, version: i64, entity_type: &str, entity_id: i64, data: &serde_json::Value) -> Result<()> {
        let mut c = self.db.acquire().await?;
        sqlx::query("INSERT INTO flow_version_entities (flow_id, version, entity_type, entity_id, data) VALUES (?, ?, ?, ?, ?)")
            .bind(flow_id)
            .bind(version)
            .bind(entity_type)
            .bind(entity_id)
            .bind(Json(data))
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    /// What a version captured, by entity type and id.
    pub async fn of_version(self, flow_id: i64, version: i64) -> Result<Vec<VersionEntity>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(
            "SELECT flow_id, version, entity_type, entity_id, data FROM flow_version_entities \
             WHERE flow_id = ? AND version = ? ORDER BY entity_type, entity_id",
        )
        .bind(flow_id)
        .bind(version)
        .fetch_all(&mut *c)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::open_temp;
    use crate::*;

    #[tokio::test]
    async fn publish_versions_are_immutable() {
        let (s, _d) = open_temp().await;
        let f = s.call_flows().insert(&CallFlowFields { name: "Main".into(), ..Default::default() }).await.unwrap();
        assert_eq!(f.version, 0);
        let mut tx = s.begin().await.unwrap();
        let v1 = tx.flow_versions().publish(f.id, &serde_json::json!({"nodes": [1]}), "admin:a").await.unwrap();
        tx.commit().await.unwrap();
        let v2 = s.flow_versions().publish_pinned(f.id, &serde_json::json!({"nodes": [2]}), &serde_json::json!({"acme/crm": "ab"}), "admin:a").await.unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));
        assert_eq!(v1.plugins, serde_json::json!({}));
        assert_eq!(s.flow_versions().get(f.id, 2).await.unwrap().unwrap().plugins["acme/crm"], "ab");
        let f = s.call_flows().get(f.id).await.unwrap().unwrap();
        assert!(f.published);
        assert_eq!(f.version, 2);
        assert_eq!(s.flow_versions().latest(f.id).await.unwrap().unwrap().flow_data["nodes"][0], 2);
        assert_eq!(s.flow_versions().list(f.id, Page::default()).await.unwrap().total, 2);
        // the trigger refuses edits
        let err = sqlx::query("UPDATE flow_versions SET flow_data = '{}' WHERE id = ?").bind(v1.id).execute(s.pool()).await.unwrap_err();
        assert!(err.to_string().contains("immutable"));
    }

    #[tokio::test]
    async fn version_entities_are_captured_once_and_go_with_their_flow() {
        let (s, _d) = open_temp().await;
        let f = s.call_flows().insert(&CallFlowFields { name: "Main".into(), ..Default::default() }).await.unwrap();
        let mut tx = s.begin().await.unwrap();
        let v1 = tx.flow_versions().publish(f.id, &serde_json::json!({"nodes": []}), "admin:a").await.unwrap();
        tx.flow_version_entities().insert(f.id, v1.version, "ivr_menu", 3, &serde_json::json!({"options": {"1": "A"}})).await.unwrap();
        tx.flow_version_entities().insert(f.id, v1.version, "ring_group", 2, &serde_json::json!({"members": [1]})).await.unwrap();
        tx.commit().await.unwrap();
        let got = s.flow_version_entities().of_version(f.id, 1).await.unwrap();
        assert_eq!(got.iter().map(|e| (e.entity_type.as_str(), e.entity_id)).collect::<Vec<_>>(), [("ivr_menu", 3), ("ring_group", 2)]);
        assert_eq!(got[0].data["options"]["1"], "A");
        assert!(s.flow_version_entities().of_version(f.id, 2).await.unwrap().is_empty());
        // captured once: neither a second insert nor an update changes what v1 runs with
        assert!(s.flow_version_entities().insert(f.id, 1, "ivr_menu", 3, &serde_json::json!({})).await.is_err());
        let err = sqlx::query("UPDATE flow_version_entities SET data = '{}' WHERE flow_id = ?").bind(f.id).execute(s.pool()).await.unwrap_err();
        assert!(err.to_string().contains("immutable"), "{err}");
        // only for a version that exists
        assert!(s.flow_version_entities().insert(f.id, 7, "ivr_menu", 3, &serde_json::json!({})).await.is_err());
        // deleting the flow takes its versions and what they captured
        assert!(s.call_flows().delete(f.id).await.unwrap());
        assert!(s.flow_version_entities().of_version(f.id, 1).await.unwrap().is_empty());
    }
}
