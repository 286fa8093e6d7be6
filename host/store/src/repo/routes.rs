//! Outbound routes and their trunks (`outbound_routes`, `outbound_route_trunks`): a route's
//! trunks are read as an ordered JSON list with the route and rewritten with it.

use sqlx::types::Json;
use sqlx::SqliteConnection;

use super::{delete_by_id, OutboundRoutes};
use crate::{OutboundRoute, OutboundRouteFields, Page, Paged, Result, StoreError, Timestamp};

macro_rules! cols {
    () => {
        "id, name, position, enabled, patterns, call_class, strip_digits, prepend, caller_id_mode, caller_id_name, \
         caller_id_num, extension_ids, \
         (SELECT json_group_array(trunk_id) FROM (SELECT trunk_id FROM outbound_route_trunks t \
          WHERE t.route_id = outbound_routes.id ORDER BY t.position)) AS trunk_ids, \
         created_at, updated_at"
    };
}

async fn set_trunks(c: &mut SqliteConnection, route_id: i64, trunk_ids: &[i64]) -> Result<()> {
    sqlx::query("DELETE FROM outbound_route_trunks WHERE route_id = ?").bind(route_id).execute(&mut *c).await?;
    for (position, trunk_id) in trunk_ids.iter().enumerate() {
        sqlx::query("INSERT INTO outbound_route_trunks (route_id, trunk_id, position) VALUES (?, ?, ?)")
            .bind(route_id)
            .bind(trunk_id)
            .bind(position as i64)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

impl OutboundRoutes<'_> {
    /// Routes in the order they are tried (position, then id).
    pub async fn list(self, page: Page) -> Result<Paged<OutboundRoute>> {
        let mut c = self.db.acquire().await?;
        super::paged(
            &mut c,
            concat!("SELECT ", cols!(), " FROM outbound_routes ORDER BY position, id LIMIT ? OFFSET ?"),
            "SELECT COUNT(*) FROM outbound_routes",
            page,
        )
        .await
    }

    /// Every route, in the order they are tried (what the SIP stack matches against).
    pub async fn all(self) -> Result<Vec<OutboundRoute>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", cols!(), " FROM outbound_routes ORDER BY position, id")).fetch_all(&mut *c).await?)
    }

    pub async fn get(self, id: i64) -> Result<Option<OutboundRoute>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", cols!(), " FROM outbound_routes WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    pub async fn insert(self, f: &OutboundRouteFields) -> Result<OutboundRoute> {
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO outbound_routes (name, position, enabled, patterns, call_class, strip_digits, prepend, \
             caller_id_mode, caller_id_name, caller_id_num, extension_ids, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&f.name)
        .bind(f.position)
        .bind(f.enabled)
        .bind(Json(&f.patterns))
        .bind(f.call_class)
        .bind(f.strip_digits)
        .bind(&f.prepend)
        .bind(f.caller_id_mode)
        .bind(&f.caller_id_name)
        .bind(&f.caller_id_num)
        .bind(Json(&f.extension_ids))
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?;
        set_trunks(&mut c, id, &f.trunk_ids).await?;
        Ok(sqlx::query_as(concat!("SELECT ", cols!(), " FROM outbound_routes WHERE id = ?")).bind(id).fetch_one(&mut *c).await?)
    }

    pub async fn update(self, id: i64, f: &OutboundRouteFields) -> Result<OutboundRoute> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query(
            "UPDATE outbound_routes SET name = ?, position = ?, enabled = ?, patterns = ?, call_class = ?, strip_digits = ?, \
             prepend = ?, caller_id_mode = ?, caller_id_name = ?, caller_id_num = ?, extension_ids = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(&f.name)
        .bind(f.position)
        .bind(f.enabled)
        .bind(Json(&f.patterns))
        .bind(f.call_class)
        .bind(f.strip_digits)
        .bind(&f.prepend)
        .bind(f.caller_id_mode)
        .bind(&f.caller_id_name)
        .bind(&f.caller_id_num)
        .bind(Json(&f.extension_ids))
        .bind(Timestamp::now())
        .bind(id)
        .execute(&mut *c)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        set_trunks(&mut c, id, &f.trunk_ids).await?;
        Ok(sqlx::query_as(concat!("SELECT ", cols!(), " FROM outbound_routes WHERE id = ?")).bind(id).fetch_one(&mut *c).await?)
    }

    pub async fn delete(self, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        delete_by_id(&mut c, "DELETE FROM outbound_routes WHERE id = ?", id).await
    }

    /// The routes that send calls to a trunk (what deleting the trunk would break).
    pub async fn using_trunk(self, trunk_id: i64) -> Result<Vec<(i64, String)>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(
            "SELECT r.id, r.name FROM outbound_routes r JOIN outbound_route_trunks t ON t.route_id = r.id \
             WHERE t.trunk_id = ? ORDER BY r.position, r.id",
        )
        .bind(trunk_id)
        .fetch_all(&mut *c)
        .await?)
    }

    /// When any route last changed, and how many there are (the SIP stack's reload check).
    pub async fn change_stamp(self) -> Result<String> {
        let mut c = self.db.acquire().await?;
        let (n, latest): (i64, Option<String>) = sqlx::query_as("SELECT COUNT(*), MAX(updated_at) FROM outbound_routes").fetch_one(&mut *c).await?;
        Ok(format!("{n}:{}", latest.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::open_temp;
    use crate::*;

    #[tokio::test]
    async fn routes_keep_their_trunks_in_order_and_hold_them() {
        let (s, _d) = open_temp().await;
        let trunk = |name: &str| TrunkFields { name: name.into(), host: Some("sip.example.com".into()), ..Default::default() };
        let a = s.trunks().insert(&trunk("a"), Some("pw")).await.unwrap().row;
        let b = s.trunks().insert(&trunk("b"), None).await.unwrap().row;
        assert_eq!(a.options_interval, 30);
        let f = OutboundRouteFields {
            name: "national".into(),
            patterns: vec!["_0[2-9]XXXXXXXX".into(), "^\\+61[0-9]{9}$".into()],
            call_class: CallClass::National,
            strip_digits: 1,
            prepend: "+61".into(),
            trunk_ids: vec![b.id, a.id],
            ..Default::default()
        };
        let r = s.outbound_routes().insert(&f).await.unwrap();
        assert_eq!(r.trunk_ids, vec![b.id, a.id]);
        assert_eq!(r.patterns, f.patterns);
        let mut g = r.fields.clone();
        g.trunk_ids = vec![a.id];
        g.position = 5;
        let r2 = s.outbound_routes().update(r.id, &g).await.unwrap();
        assert_eq!((r2.trunk_ids.clone(), r2.position), (vec![a.id], 5));
        assert_eq!(s.outbound_routes().all().await.unwrap().len(), 1);
        assert_eq!(s.outbound_routes().using_trunk(a.id).await.unwrap(), vec![(r.id, "national".to_string())]);
        // a trunk a route uses cannot go; an unused one can
        assert!(s.trunks().delete(a.id).await.is_err());
        assert!(s.trunks().delete(b.id).await.unwrap());
        let stamp = s.extensions().change_stamp().await.unwrap();
        assert!(s.outbound_routes().delete(r.id).await.unwrap());
        assert_ne!(s.extensions().change_stamp().await.unwrap(), stamp, "the SIP stack sees routes change");
        assert!(s.trunks().delete(a.id).await.unwrap());
        assert!(matches!(s.outbound_routes().update(r.id, &g).await, Err(StoreError::NotFound)));
    }

    #[tokio::test]
    async fn extensions_carry_their_outbound_limits() {
        let (s, _d) = open_temp().await;
        let f = ExtensionFields {
            extension: "101".into(),
            name: "A".into(),
            sip_username: "a".into(),
            call_classes: vec![CallClass::Local, CallClass::International],
            max_outbound_calls: 1,
            daily_outbound_minutes: 60,
            outbound_caller_id_num: Some("+61290000001".into()),
            emergency_caller_id_num: Some("+61290000009".into()),
            ..Default::default()
        };
        let e = s.extensions().insert(&f, "password-1").await.unwrap();
        assert_eq!(e.fields, f);
        let mut g = f.clone();
        g.call_classes = vec![];
        assert_eq!(s.extensions().update(e.id, &g, None).await.unwrap().fields, g);
    }
}
