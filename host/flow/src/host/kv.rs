//! `flowpbx:node/kv`: per-node-type persistent state (needs `kv`), with the size limits and
//! the key quota enforced here.

use super::HostState;
use crate::bindings::kv::{Host, KvError};
use crate::services::KvError as StoreError;
use crate::types::Capability;

pub(crate) const MAX_KEY: usize = 256;
pub(crate) const MAX_VALUE: usize = 64 * 1024;
pub(crate) const MAX_KEYS: u64 = 10_000;

fn store_error(e: StoreError) -> KvError {
    match e {
        StoreError::NotANumber => KvError::NotANumber,
        StoreError::QuotaExceeded => KvError::QuotaExceeded,
        StoreError::Failed(m) => KvError::Failed(m),
    }
}

impl HostState {
    fn kv_check(&mut self, key: &str) -> Result<(), KvError> {
        self.require(&Capability::Kv).map_err(|_| KvError::Denied)?;
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(KvError::TooLarge);
        }
        Ok(())
    }

    /// Refuses a new key when the namespace is full.
    async fn kv_room_for(&mut self, key: &str) -> Result<(), KvError> {
        let kv = self.services.kv.clone();
        let ns = self.type_id.clone();
        let exists = self.timed(kv.get(&ns, key)).await.map_err(store_error)?.is_some();
        if !exists && self.timed(kv.count(&ns)).await.map_err(store_error)? >= MAX_KEYS {
            return Err(KvError::QuotaExceeded);
        }
        Ok(())
    }
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        self.kv_check(&key)?;
        let (kv, ns) = (self.services.kv.clone(), self.type_id.clone());
        self.timed(kv.get(&ns, &key)).await.map_err(store_error)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        self.kv_check(&key)?;
        if value.len() > MAX_VALUE {
            return Err(KvError::TooLarge);
        }
        self.kv_room_for(&key).await?;
        let (kv, ns) = (self.services.kv.clone(), self.type_id.clone());
        self.timed(kv.set(&ns, &key, &value)).await.map_err(store_error)
    }

    async fn delete(&mut self, key: String) -> Result<(), KvError> {
        self.kv_check(&key)?;
        let (kv, ns) = (self.services.kv.clone(), self.type_id.clone());
        self.timed(kv.delete(&ns, &key)).await.map_err(store_error)
    }

    async fn increment(&mut self, key: String, delta: i64) -> Result<i64, KvError> {
        self.kv_check(&key)?;
        self.kv_room_for(&key).await?;
        let (kv, ns) = (self.services.kv.clone(), self.type_id.clone());
        self.timed(kv.increment(&ns, &key, delta)).await.map_err(store_error)
    }
}
