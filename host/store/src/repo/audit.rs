use sqlx::types::Json;
use sqlx::QueryBuilder;

use super::{AuditLog, Db};
use crate::*;

/// Filters of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub actor: Option<String>,
}

fn push_filter(q: &mut QueryBuilder<Db>, f: &AuditFilter) {
    q.push(" WHERE 1 = 1");
    if let Some(t) = &f.entity_type {
        q.push(" AND entity_type = ").push_bind(t.clone());
    }
    if let Some(t) = &f.entity_id {
        q.push(" AND entity_id = ").push_bind(t.clone());
    }
    if let Some(t) = &f.actor {
        q.push(" AND actor = ").push_bind(t.clone());
    }
}

impl AuditLog<'_> {
    /// Records a change: who, what (action on entity type/id), before and after (secrets must
    /// already be left out of both).
    pub async fn record(
        self,
        actor: &Actor,
        action: &str,
        entity_type: &str,
        entity_id: Option<&str>,
        before: Option<&serde_json::Value>,
        after: Option<&serde_json::Value>,
    ) -> Result<()> {
        let mut c = self.db.acquire().await?;
        sqlx::query("INSERT INTO audit_log (at, actor, ip, action, entity_type, entity_id, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(Timestamp::now())
            .bind(&actor.name)
            .bind(&actor.ip)
            .bind(action)
            .bind(entity_type)
            .bind(entity_id)
            .bind(before.map(Json))
            .bind(after.map(Json))
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    /// The log, newest first.
    pub async fn list(self, filter: &AuditFilter, page: Page) -> Result<Paged<AuditEntry>> {
        let mut c = self.db.acquire().await?;
        let mut q = QueryBuilder::new("SELECT id, at, actor, ip, action, entity_type, entity_id, before, after FROM audit_log");
        push_filter(&mut q, filter);
        q.push(" ORDER BY id DESC LIMIT ").push_bind(page.limit).push(" OFFSET ").push_bind(page.offset);
        let items = q.build_query_as().fetch_all(&mut *c).await?;
        let mut q = QueryBuilder::new("SELECT COUNT(*) FROM audit_log");
        push_filter(&mut q, filter);
        let (total,): (i64,) = q.build_query_as().fetch_one(&mut *c).await?;
        Ok(Paged { items, total })
    }
}

impl Tx {
    /// Shorthand for `tx.audit_log().record(..)`.
    pub async fn audit(
        &mut self,
        actor: &Actor,
        action: &str,
        entity_type: &str,
        entity_id: Option<&str>,
        before: Option<&serde_json::Value>,
        after: Option<&serde_json::Value>,
    ) -> Result<()> {
        self.audit_log().record(actor, action, entity_type, entity_id, before, after).await
    }
}
