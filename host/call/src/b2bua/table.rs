//! The calls and the indexes that find them from a message: the caller's dialog (Call-ID and
//! From-tag), the caller's INVITE transaction, each callee leg's Call-ID, our client
//! transactions and what they are for, and the CANCELs owed to legs that have not answered
//! provisionally yet. Only this module writes the indexes, so they stay in step with the
//! calls: inserting a call registers it, removing it unregisters it and its legs.

use std::collections::HashMap;

use sip::transaction::{ClientTxId, Peer, ServerTxId};
use sip::Message;

use super::{ALeg, Call, ClientRole, LegIdx};
use crate::events::CallKey;

/// See the module documentation.
#[derive(Default)]
pub(crate) struct CallTable {
    last_key: CallKey,
    calls: HashMap<CallKey, Call>,
    /// The caller's dialog: (Call-ID, From-tag).
    by_a: HashMap<(String, String), CallKey>,
    /// Each callee leg's own Call-ID.
    by_b: HashMap<String, (CallKey, LegIdx)>,
    /// The caller's INVITE transaction.
    a_invites: HashMap<ServerTxId, CallKey>,
    /// Invariant: every client transaction of ours that is still running, and where it goes.
    clients: HashMap<ClientTxId, (ClientRole, Peer)>,
    /// CANCELs owed to legs that have not sent a provisional response yet (RFC 3261 §9.1):
    /// sent when one arrives, even after the call is gone.
    cancel_on_provisional: HashMap<ClientTxId, (Peer, Message)>,
}

impl CallTable {
    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Every call.
    pub(crate) fn calls(&self) -> impl Iterator<Item = &Call> {
        self.calls.values()
    }

    pub(crate) fn keys(&self) -> Vec<CallKey> {
        self.calls.keys().copied().collect()
    }

    /// The key the next call will get.
    pub(crate) fn peek_key(&self) -> CallKey {
        self.last_key.next()
    }

    pub(crate) fn get(&self, key: CallKey) -> Option<&Call> {
        self.calls.get(&key)
    }

    pub(crate) fn get_mut(&mut self, key: CallKey) -> Option<&mut Call> {
        self.calls.get_mut(&key)
    }

    /// Adds a call (its key is [`CallTable::peek_key`]), found from then on by the
    /// caller's dialog and INVITE transaction.
    pub(crate) fn insert(&mut self, call: Call, call_id: String, from_tag: String) {
        let key = call.key;
        self.last_key = self.last_key.max(key);
        self.by_a.insert((call_id, from_tag), key);
        self.a_invites.insert(call.a.tx, key);
        self.calls.insert(key, call);
    }

    /// Removes a call and every index entry that finds it or its legs.
    pub(crate) fn remove(&mut self, key: CallKey) -> Option<Call> {
        let call = self.calls.remove(&key)?;
        if let (Some(cid), Some(ft)) = (call.a.invite.call_id(), call.a.invite.from_tag()) {
            self.by_a.remove(&(cid.to_owned(), ft.to_owned()));
        }
        self.a_invites.remove(&call.a.tx);
        for leg in &call.legs {
            self.by_b.remove(&leg.call_id);
        }
        Some(call)
    }

    /// Puts `new` in the caller's place (an INVITE with Replaces took it): the call is found
    /// by the new dialog and INVITE transaction from now on, no longer by the old ones.
    /// Returns the caller's side it replaced; `None` (nothing changed) for an unknown call.
    pub(crate) fn replace_a(&mut self, key: CallKey, new: ALeg) -> Option<ALeg> {
        let call = self.calls.get_mut(&key)?;
        let (Some(cid), Some(ft)) = (new.invite.call_id(), new.invite.from_tag()) else { return None };
        let new_index = (cid.to_owned(), ft.to_owned());
        let new_tx = new.tx;
        let old = std::mem::replace(&mut call.a, new);
        if let (Some(cid), Some(ft)) = (old.invite.call_id(), old.invite.from_tag()) {
            self.by_a.remove(&(cid.to_owned(), ft.to_owned()));
        }
        self.a_invites.remove(&old.tx);
        self.by_a.insert(new_index, key);
        self.a_invites.insert(new_tx, key);
        Some(old)
    }

    /// A callee leg's Call-ID finds it.
    pub(crate) fn index_leg(&mut self, call_id: String, key: CallKey, leg: LegIdx) {
        self.by_b.insert(call_id, (key, leg));
    }

    pub(crate) fn by_caller_dialog(&self, call_id: &str, from_tag: &str) -> Option<CallKey> {
        // (one allocation per lookup: in-dialog requests are rare next to the media)
        self.by_a.get(&(call_id.to_owned(), from_tag.to_owned())).copied()
    }

    pub(crate) fn by_leg_call_id(&self, call_id: &str) -> Option<(CallKey, LegIdx)> {
        self.by_b.get(call_id).copied()
    }

    pub(crate) fn by_a_invite(&self, tx: ServerTxId) -> Option<CallKey> {
        self.a_invites.get(&tx).copied()
    }

    // ----- our client transactions -----

    pub(crate) fn add_client(&mut self, tx: ClientTxId, role: ClientRole, dest: Peer) {
        self.clients.insert(tx, (role, dest));
    }

    pub(crate) fn client(&self, tx: ClientTxId) -> Option<(ClientRole, Peer)> {
        self.clients.get(&tx).copied()
    }

    /// The transaction ended (a final response, a timeout, a transport error).
    pub(crate) fn take_client(&mut self, tx: ClientTxId) -> Option<(ClientRole, Peer)> {
        self.clients.remove(&tx)
    }

    pub(crate) fn client_txs_to(&self, peer: Peer) -> Vec<ClientTxId> {
        self.clients.iter().filter(|(_, (_, p))| *p == peer).map(|(t, _)| *t).collect()
    }

    pub(crate) fn owe_cancel(&mut self, tx: ClientTxId, dest: Peer, cancel: Message) {
        self.cancel_on_provisional.insert(tx, (dest, cancel));
    }

    pub(crate) fn take_owed_cancel(&mut self, tx: ClientTxId) -> Option<(Peer, Message)> {
        self.cancel_on_provisional.remove(&tx)
    }
}
