//! Repositories: one type per table, reached through [`Store`](crate::Store) (reads and
//! single-statement writes on the pool) or [`Tx`](crate::Tx) (inside a transaction).
//! The method bodies are the same for both: they are generic over sqlx's `Acquire`.

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use crate::{Inner, Page, Paged, Result, Store, Tx};

mod audit;
mod auth;
mod cdrs;
mod entities;
mod extensions;
mod flows;
mod mail;
mod plugins;
mod push;
mod references;
mod registrations;
mod retention;
mod routes;
mod settings;
mod webhooks;

pub use audit::AuditFilter;
pub use auth::{NewApiToken, NewSession};
pub use entities::SecretUpdate;
pub use flows::CallFlowSummary;

macro_rules! repos {
    ($($(#[$m:meta])* $name:ident => $accessor:ident;)*) => {
        $(
            $(#[$m])*
            pub struct $name<'a> {
                pub(crate) db: Conn<'a>,
                #[allow(dead_code)]
                pub(crate) inner: &'a Inner,
            }
        )*

        impl Store {
            $(
                $(#[$m])*
                pub fn $accessor(&self) -> $name<'_> {
                    $name { db: Conn::Pool(self.pool()), inner: self.inner() }
                }
            )*
        }

        impl Tx {
            $(
                $(#[$m])*
                pub fn $accessor(&mut self) -> $name<'_> {
                    let (db, inner) = self.parts();
                    $name { db: Conn::Tx(db), inner }
                }
            )*
        }
    };
}

repos! {
    /// `system_config`: stored settings, some sealed.
    Settings => settings;
    /// `trunks`
    Trunks => trunks;
    /// `outbound_routes` with their trunks
    OutboundRoutes => outbound_routes;
    /// `inbound_numbers`
    InboundNumbers => inbound_numbers;
    /// `extensions`, with their SIP credentials
    Extensions => extensions;
    /// `voicemail_boxes`
    VoicemailBoxes => voicemail_boxes;
    /// `voicemail_messages`
    VoicemailMessages => voicemail_messages;
    /// `ring_groups`
    RingGroups => ring_groups;
    /// `ivr_menus`
    IvrMenus => ivr_menus;
    /// `time_switches`
    TimeSwitches => time_switches;
    /// `conference_bridges`
    ConferenceBridges => conference_bridges;
    /// `call_flows` (drafts)
    CallFlows => call_flows;
    /// `flow_versions` (published, immutable)
    FlowVersions => flow_versions;
    /// `flow_version_entities` (what a published version captured of its entities; immutable)
    FlowVersionEntities => flow_version_entities;
    /// `cdrs`
    Cdrs => cdrs;
    /// `recordings`
    Recordings => recordings;
    /// `registrations`
    Registrations => registrations;
    /// `prompts`
    Prompts => prompts;
    /// `plugins`
    Plugins => plugins;
    /// `plugin_kv`
    PluginKv => plugin_kv;
    /// `admin_users`
    AdminUsers => admin_users;
    /// `sessions`
    Sessions => sessions;
    /// `api_tokens`
    ApiTokens => api_tokens;
    /// `audit_log`
    AuditLog => audit_log;
    /// What refers to what (the impact of a delete) and the shared dial plan.
    References => references;
    /// `webhooks` (secrets sealed)
    Webhooks => webhooks;
    /// `webhook_deliveries`: the notifications outbox and delivery log
    WebhookDeliveries => webhook_deliveries;
    /// `mail_outbox`: e-mail waiting to be sent, and the log of sent and failed ones
    MailOutbox => mail_outbox;
    /// `push_targets`: an extension's ntfy or Gotify server
    PushTargets => push_targets;
}

/// Runs a page query and its count.
pub(crate) async fn paged<T>(conn: &mut SqliteConnection, items_sql: &'static str, count_sql: &'static str, page: Page) -> Result<Paged<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    let items: Vec<T> = sqlx::query_as(items_sql).bind(page.limit).bind(page.offset).fetch_all(&mut *conn).await?;
    let (total,): (i64,) = sqlx::query_as(count_sql).fetch_one(&mut *conn).await?;
    Ok(Paged { items, total })
}

/// Deletes by id; false when there was no such row.
pub(crate) async fn delete_by_id(conn: &mut SqliteConnection, sql: &'static str, id: i64) -> Result<bool> {
    let r = sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    Ok(r.rows_affected() > 0)
}

pub(crate) type Db = Sqlite;

/// Where a repository runs its statements: the pool (one connection per call) or an open
/// transaction.
pub(crate) enum Conn<'a> {
    Pool(&'a SqlitePool),
    Tx(&'a mut SqliteConnection),
}

/// A connection borrowed from the pool or the transaction.
pub(crate) enum Guard<'a> {
    Pooled(PoolConnection<Sqlite>),
    Borrowed(&'a mut SqliteConnection),
}

impl<'a> Conn<'a> {
    pub(crate) async fn acquire(self) -> Result<Guard<'a>> {
        Ok(match self {
            Conn::Pool(p) => Guard::Pooled(p.acquire().await?),
            Conn::Tx(c) => Guard::Borrowed(c),
        })
    }
}

impl std::ops::Deref for Guard<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        match self {
            Guard::Pooled(c) => c,
            Guard::Borrowed(c) => c,
        }
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Guard::Pooled(c) => c,
            Guard::Borrowed(c) => c,
        }
    }
}
