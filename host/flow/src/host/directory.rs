//! `flowpbx:node/directory`: extensions and their presence (needs `directory`).

use super::HostState;
use crate::bindings::directory::{ExtensionInfo, Host};
use crate::bindings::types::NodeError;
use crate::entity::{Entity, EntityKind, Extension};
use crate::types::Capability;

impl HostState {
    fn extension_info(&self, x: &Extension) -> ExtensionInfo {
        let p = self.services.directory.presence(x.id);
        let idle_ms = p.last_call_ended.map(|t| {
            let ms = self.call_now().as_millisecond() - t.as_millisecond();
            ms.max(0) as u64
        });
        ExtensionInfo {
            id: x.id,
            number: x.extension.clone(),
            name: x.name.clone(),
            dnd: x.dnd,
            registered_devices: p.registered_devices,
            in_call: p.in_call,
            idle_ms,
        }
    }
}

impl Host for HostState {
    async fn extension(&mut self, id: i64) -> Result<Option<ExtensionInfo>, NodeError> {
        self.require(&Capability::Directory)?;
        Ok(match self.services.entities.get(EntityKind::Extension, id).map(|c| c.entity) {
            Some(e) => match &*e {
                Entity::Extension(x) => Some(self.extension_info(x)),
                _ => None,
            },
            None => None,
        })
    }

    async fn find_extension(&mut self, number: String) -> Result<Option<ExtensionInfo>, NodeError> {
        self.require(&Capability::Directory)?;
        let snap = self.services.entities.snapshot();
        Ok(snap.extension_by_number(&number).map(|x| self.extension_info(x)))
    }
}
