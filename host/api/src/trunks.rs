//! A trunk's live status, as the trunk list, the dashboard and `/ws` show it.
//!
//! What the SIP stack can tell today, and nothing more: it trusts `ip` trunks by source
//! address (calls from their `remote_hosts` are accepted) but neither probes them (no OPTIONS
//! ping) nor registers `register` trunks (no outbound REGISTER). So an enabled IP trunk is
//! `unmonitored` and an enabled registration trunk `unregistered`, each with a detail saying
//! why; when the `call` crate gains trunk registration and OPTIONS pings, their state is
//! read here and `POST /trunks/{id}/test` joins.

use serde::Serialize;
use store::{Trunk, TrunkType};
use utoipa::ToSchema;

use crate::AppState;

/// A trunk's status and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TrunkStatus {
    pub id: i64,
    /// registered | registering | failed | unregistered | unmonitored | disabled
    pub status: &'static str,
    pub detail: Option<String>,
}

/// The status of `t` now.
pub(crate) fn status_of(state: &AppState, t: &Trunk) -> TrunkStatus {
    let running = state.pbx().is_some_and(|p| p.health().running);
    let (status, detail) = if !t.enabled {
        ("disabled", None)
    } else if !running {
        ("failed", Some("the SIP stack is not running".to_owned()))
    } else {
        match t.trunk_type {
            TrunkType::Ip if t.remote_hosts.is_empty() => {
                ("failed", Some("no remote hosts: calls from this trunk cannot be recognised".to_owned()))
            }
            TrunkType::Ip => (
                "unmonitored",
                Some(format!(
                    "calls from {} are accepted; reachability is not probed (the SIP stack sends no OPTIONS pings yet)",
                    t.remote_hosts.join(", ")
                )),
            ),
            TrunkType::Register => {
                ("unregistered", Some("the SIP stack does not register to providers yet (no outbound REGISTER)".to_owned()))
            }
        }
    };
    TrunkStatus { id: t.row.id, status, detail }
}

/// Every trunk's status (the `/ws` snapshot).
pub(crate) async fn all(state: &AppState) -> Result<Vec<TrunkStatus>, store::StoreError> {
    let trunks = state.store().trunks().list(store::Page::all()).await?;
    Ok(trunks.items.iter().map(|t| status_of(state, t)).collect())
}
