//! The RFC 3261 §17 transaction layer (with RFC 6026's Accepted states), sans-IO.
//!
//! [`TransactionLayer`] matches messages to transactions, retransmits over unreliable
//! transports, absorbs retransmissions, generates the ACK for non-2xx final responses and
//! runs timers A–M. It is driven the way quinn-proto's `Connection` is; see the type's docs.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::error::TransactionError;
use crate::msg::{HeaderName, Message, Method};
use crate::time::Instant;

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (unreliable: the layer retransmits).
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket.
    Wss,
}

impl Transport {
    /// Whether the transport delivers reliably (no retransmissions, zero wait timers).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// Whether the hop is encrypted (TLS or secure WebSocket): what a `sips:` request needs
    /// on every hop (RFC 5630).
    pub fn is_secure(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    /// The Via transport token.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }
}

/// The other end of a message: transport and address. For connection-oriented transports
/// the driver maps `(transport, addr)` to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The transport.
    pub transport: Transport,
    /// The remote address.
    pub addr: SocketAddr,
}

/// Bytes for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub dest: Peer,
    /// The serialised message.
    pub payload: Bytes,
}

/// Timer values (RFC 3261 §17.1.1.1 and table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// RTT estimate; default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses; default 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network; default 5 s.
    pub t4: Duration,
    /// Send `100 Trying` as soon as a new INVITE arrives (a PBX always wants this).
    pub auto_trying: bool,
    /// Most transactions held at once; new requests beyond it get a stateless 503.
    pub max_transactions: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { t1: Duration::from_millis(500), t2: Duration::from_secs(4), t4: Duration::from_secs(5), auto_trying: true, max_transactions: 200_000 }
    }
}

/// A server transaction (a request we received).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(u64);

/// A client transaction (a request we sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(u64);

/// What the layer tells its user.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A new request (not a retransmission, not an ACK). Answer it with
    /// [`TransactionLayer::send_response`] or [`TransactionLayer::reply`].
    Request {
        /// The server transaction to answer on.
        tx: ServerTxId,
        /// The request, its top Via stamped with `received`/`rport`.
        msg: Message,
        /// Where it came from.
        source: Peer,
    },
    /// A CANCEL matching an INVITE server transaction that has not sent a final response.
    /// Answer the CANCEL (`tx`) with 200 and the INVITE (`invite`) with 487, and stop whatever
    /// the INVITE started. (A CANCEL matching nothing is answered 481, and one arriving after
    /// the INVITE's final response 200, by the layer itself.)
    Cancel {
        /// The CANCEL's own server transaction.
        tx: ServerTxId,
        /// The INVITE it cancels.
        invite: ServerTxId,
        /// The CANCEL.
        msg: Message,
    },
    /// An ACK for a 2xx: it belongs to the dialog (end to end, RFC 3261 §13.2.2.4). `tx` is the
    /// INVITE server transaction whose 2xx it acknowledges, when it is still known; the layer
    /// has then stopped retransmitting that 2xx.
    Ack {
        /// The INVITE transaction acknowledged.
        tx: Option<ServerTxId>,
        /// The ACK.
        msg: Message,
        /// Where it came from.
        source: Peer,
    },
    /// A response to a request we sent. For INVITE every 2xx with a new To-tag comes up (forking),
    /// and the user answers each with [`TransactionLayer::send_ack`].
    Response {
        /// The client transaction.
        tx: ClientTxId,
        /// The response.
        msg: Message,
    },
    /// A 2xx to an INVITE that matches no transaction any more (a late fork or a retransmission
    /// after Timer M). ACK it (and BYE it if the dialog is unwanted).
    StrayResponse {
        /// The response.
        msg: Message,
        /// Where it came from.
        source: Peer,
    },
    /// No final response in time (Timer B or F, or 64·T1 after a CANCEL): act as for 408.
    Timeout {
        /// The client transaction.
        tx: ClientTxId,
    },
    /// The driver reported that the transport failed for this transaction: act as for 503.
    TransportError {
        /// The client transaction.
        tx: ClientTxId,
    },
    /// Our final response was never acknowledged (Timer H for non-2xx, Timer L for 2xx). For a
    /// 2xx the dialog should be ended with BYE (RFC 3261 §13.3.1.4).
    AckTimeout {
        /// The INVITE server transaction.
        tx: ServerTxId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ServerKey {
    /// RFC 3261 §17.2.3: branch, sent-by, method (ACK and CANCEL look up INVITE).
    Branch { branch: Box<str>, sent_by: Box<str>, method: Method },
    /// RFC 2543 matching when the branch lacks the magic cookie.
    Legacy { ruri: Box<str>, from_tag: Box<str>, call_id: Box<str>, cseq: u32, via: Box<str>, method: Method },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: Box<str>,
    method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AckKey {
    call_id: Box<str>,
    cseq: u32,
    from_tag: Box<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Client: Calling (INVITE) / Trying (non-INVITE). Server non-INVITE: Trying.
    Trying,
    Proceeding,
    Completed,
    /// Server INVITE only: ACK for a non-2xx received.
    Confirmed,
    /// RFC 6026: a 2xx was sent (server) or received (client).
    Accepted,
}

#[derive(Debug)]
struct ClientTx {
    key: ClientKey,
    invite: bool,
    state: State,
    request: Message,
    payload: Bytes,
    dest: Peer,
    interval: Duration,
    retransmit_at: Option<Instant>,
    deadline: Option<Instant>,
    /// ACKs sent for 2xx responses, by To-tag, re-sent when that 2xx is retransmitted.
    acks: Vec<(Box<str>, Peer, Bytes)>,
    non2xx_ack: Option<Bytes>,
    /// Set when a CANCEL for this INVITE was sent: give up 64·T1 after it.
    cancel_guard: Option<Instant>,
}

#[derive(Debug)]
struct ServerTx {
    key: ServerKey,
    invite: bool,
    state: State,
    request: Message,
    source: Peer,
    resp_dest: Peer,
    last_response: Option<Bytes>,
    final_to_tag: Option<Box<str>>,
    ack_key: Option<AckKey>,
    acked: bool,
    interval: Duration,
    retransmit_at: Option<Instant>,
    deadline: Option<Instant>,
}

/// The transaction layer.
///
/// # Driving it
///
/// The driver (the `call` crate) owns the sockets and the clock and calls, in a loop:
///
/// 1. Inputs, as they happen:
///    - [`handle_message`](Self::handle_message)`(now, source, msg)` for every message parsed
///      from the network (answer parse errors yourself, per
///      [`ParseError::disposition`](crate::ParseError::disposition));
///    - [`handle_timeout`](Self::handle_timeout)`(now)` when the instant last returned by
///      [`poll_timeout`](Self::poll_timeout) has passed;
///    - the user's own actions: [`send_request`](Self::send_request),
///      [`send_response`](Self::send_response) / [`reply`](Self::reply),
///      [`send_ack`](Self::send_ack), [`send_stateless`](Self::send_stateless),
///      [`handle_transport_error`](Self::handle_transport_error).
/// 2. Then drain the outputs, in this order, until each returns `None`:
///    - [`poll_transmit`](Self::poll_transmit): bytes to send, to `dest`;
///    - [`poll_event`](Self::poll_event): what happened, for the transaction user
///      (registrar, B2BUA) — acting on an event is an input again (step 1);
///    - [`poll_timeout`](Self::poll_timeout): the next instant to call `handle_timeout`
///      (re-read it after every input; it only moves when something happened).
///
/// Nothing happens between calls: no clock is read, no socket touched. `now` must not go
/// backwards.
///
/// # What it does for you
/// Retransmits requests (timers A, E) and final responses (G, and 2xx until the ACK
/// arrives) over UDP; absorbs retransmitted requests by re-sending the last response;
/// sends `100 Trying` for a new INVITE ([`Config::auto_trying`]); builds and re-sends the ACK
/// for non-2xx responses; re-sends your 2xx ACK when a 2xx is retransmitted; answers CANCELs
/// that match nothing (481) or come too late (200); fills in `received`/`rport` on incoming
/// requests and sends responses where RFC 3261 §18.2.2 and RFC 3581 say.
#[derive(Debug)]
pub struct TransactionLayer {
    config: Config,
    next_id: u64,
    clients: HashMap<u64, ClientTx>,
    client_index: HashMap<ClientKey, u64>,
    servers: HashMap<u64, ServerTx>,
    server_index: HashMap<ServerKey, u64>,
    ack_index: HashMap<AckKey, u64>,
    timers: BTreeSet<(Instant, u64)>,
    scheduled: HashMap<u64, Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// Messages sent again by a timer (a counter for metrics).
    retransmissions: u64,
}

fn server_key(msg: &Message, method: Method) -> Option<ServerKey> {
    let via = msg.top_via()?;
    match via.branch() {
        Some(b) if via.has_magic_cookie() => Some(ServerKey::Branch { branch: b.into(), sent_by: via.sent_by.to_ascii_lowercase().into(), method }),
        _ => Some(ServerKey::Legacy {
            ruri: msg.uri_str()?.into(),
            from_tag: msg.from_tag().unwrap_or("").into(),
            call_id: msg.call_id()?.into(),
            cseq: msg.cseq()?.seq,
            via: format!("{}/{}", via.sent_by, via.branch().unwrap_or("")).into(),
            method,
        }),
    }
}

fn client_key(msg: &Message) -> Option<ClientKey> {
    let via = msg.top_via()?;
    Some(ClientKey { branch: via.branch()?.into(), method: msg.cseq()?.method })
}

/// Where a response to a request from `source` goes (RFC 3261 §18.2.2, RFC 3581 §4), to the
/// letter and never further: on a reliable transport the connection it came on; otherwise
/// always the source IP, at the source port when `rport` was asked for (or when the Via names
/// another host: the port written beside a host that did not send the request means nothing),
/// and at the Via's port only when the Via names the source IP itself and no `rport`. Nothing
/// the client wrote can aim a response at another address.
fn response_destination(req: &Message, source: Peer) -> Peer {
    if source.transport.is_reliable() {
        return source;
    }
    let port = match req.top_via() {
        Some(via) if via.rport().is_none() && via.host.ip() == Some(source.addr.ip()) => via.port.unwrap_or(via.default_port()),
        _ => source.addr.port(),
    };
    Peer { transport: source.transport, addr: SocketAddr::new(source.addr.ip(), port) }
}

/// The CANCEL for an INVITE we sent (RFC 3261 §9.1): same Request-URI, top Via (so the same
/// branch), From, To, Call-ID, CSeq number and Route set. Send it with
/// [`TransactionLayer::send_request`] to the INVITE's destination.
pub fn cancel_for(invite: &Message) -> Option<Message> {
    let mut c = Message::request_copied(Method::Cancel, invite.uri_str()?);
    c.push_copied(HeaderName::Via, invite.headers(HeaderName::Via).next()?);
    for h in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        c.push_copied(h, invite.header(h)?);
    }
    c.push_copied(HeaderName::CSeq, &format!("{} CANCEL", invite.cseq()?.seq));
    for r in invite.headers(HeaderName::Route) {
        c.push_copied(HeaderName::Route, r);
    }
    c.push_copied(HeaderName::MaxForwards, "70");
    Some(c)
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
fn ack_for_non2xx(invite: &Message, resp: &Message) -> Option<Message> {
    let mut a = Message::request_copied(Method::Ack, invite.uri_str()?);
    a.push_copied(HeaderName::Via, invite.headers(HeaderName::Via).next()?);
    a.push_copied(HeaderName::From, invite.header(HeaderName::From)?);
    a.push_copied(HeaderName::To, resp.header(HeaderName::To)?);
    a.push_copied(HeaderName::CallId, invite.header(HeaderName::CallId)?);
    a.push_copied(HeaderName::CSeq, &format!("{} ACK", invite.cseq()?.seq));
    for r in invite.headers(HeaderName::Route) {
        a.push_copied(HeaderName::Route, r);
    }
    a.push_copied(HeaderName::MaxForwards, "70");
    Some(a)
}

impl TransactionLayer {
    /// A layer with these timers.
    pub fn new(config: Config) -> Self {
        TransactionLayer {
            config,
            next_id: 1,
            clients: HashMap::new(),
            client_index: HashMap::new(),
            servers: HashMap::new(),
            server_index: HashMap::new(),
            ack_index: HashMap::new(),
            timers: BTreeSet::new(),
            scheduled: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            retransmissions: 0,
        }
    }

    /// How many messages the timers sent again since the layer was made (requests by timers
    /// A and E, responses by timer G and the 2xx retransmissions).
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many transactions are alive.
    pub fn len(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    /// Whether no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The request of a server transaction.
    pub fn request(&self, tx: ServerTxId) -> Option<&Message> {
        self.servers.get(&tx.0).map(|t| &t.request)
    }

    /// Where the request of a server transaction came from.
    pub fn source(&self, tx: ServerTxId) -> Option<Peer> {
        self.servers.get(&tx.0).map(|t| t.source)
    }

    /// Where the responses of a server transaction go.
    pub fn response_peer(&self, tx: ServerTxId) -> Option<Peer> {
        self.servers.get(&tx.0).map(|t| t.resp_dest)
    }

    /// The request of a client transaction (as sent).
    pub fn client_request(&self, tx: ClientTxId) -> Option<&Message> {
        self.clients.get(&tx.0).map(|t| &t.request)
    }

    // ----- outputs -----

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    // ----- inputs -----

    /// Feeds a message received from `source`.
    pub fn handle_message(&mut self, now: Instant, source: Peer, mut msg: Message) {
        if msg.is_request() {
            msg.stamp_received(source.addr);
            self.handle_request(now, source, msg);
        } else {
            self.handle_response(now, source, msg);
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id));
            self.scheduled.remove(&id);
            if self.clients.contains_key(&id) {
                self.client_timer(now, id);
            } else if self.servers.contains_key(&id) {
                self.server_timer(now, id);
            }
        }
    }

    /// Tells the layer that sending for `tx` failed (connection refused or reset, ICMP
    /// unreachable). The transaction ends with [`Event::TransportError`].
    pub fn handle_transport_error(&mut self, tx: ClientTxId) {
        if self.clients.contains_key(&tx.0) {
            self.remove_client(tx.0);
            self.events.push_back(Event::TransportError { tx });
        }
    }

    /// Starts a client transaction: sends `req` to `dest` and retransmits it as needed.
    /// The request must carry a top Via whose branch is new and starts with the magic cookie
    /// ([`crate::IdGenerator::branch`]). ACKs go through [`send_ack`](Self::send_ack) or
    /// [`send_stateless`](Self::send_stateless) instead. A CANCEL (see [`cancel_for`]) makes
    /// the INVITE it cancels give up 64·T1 later if no final response comes.
    pub fn send_request(&mut self, now: Instant, dest: Peer, req: Message) -> Result<ClientTxId, TransactionError> {
        let method = req.method().cloned().ok_or(TransactionError::InvalidMessage("not a request"))?;
        if method == Method::Ack {
            return Err(TransactionError::InvalidMessage("ACK is not a transaction"));
        }
        let key = client_key(&req).ok_or(TransactionError::InvalidMessage("missing Via branch or CSeq"))?;
        if !key.branch.starts_with(crate::msg::MAGIC_COOKIE) {
            return Err(TransactionError::InvalidMessage("branch lacks the magic cookie"));
        }
        if self.client_index.contains_key(&key) {
            return Err(TransactionError::Duplicate);
        }
        if method == Method::Cancel {
            let invite_key = ClientKey { branch: key.branch.clone(), method: Method::Invite };
            if let Some(&inv) = self.client_index.get(&invite_key) {
                let guard = now + self.config.t1 * 64;
                if let Some(t) = self.clients.get_mut(&inv)
                    && matches!(t.state, State::Trying | State::Proceeding)
                {
                    t.cancel_guard = Some(guard);
                    t.deadline = Some(t.deadline.map_or(guard, |d| d.min(guard)));
                }
                self.reschedule(inv);
            }
        }
        let id = self.alloc_id();
        let payload = req.to_bytes();
        let invite = method == Method::Invite;
        let reliable = dest.transport.is_reliable();
        let t1 = self.config.t1;
        let tx = ClientTx {
            key: key.clone(),
            invite,
            state: State::Trying,
            request: req,
            payload: payload.clone(),
            dest,
            interval: t1,
            retransmit_at: (!reliable).then_some(now + t1),
            deadline: Some(now + t1 * 64),
            acks: Vec::new(),
            non2xx_ack: None,
            cancel_guard: None,
        };
        self.clients.insert(id, tx);
        self.client_index.insert(key, id);
        self.transmits.push_back(Transmit { dest, payload });
        self.reschedule(id);
        Ok(ClientTxId(id))
    }

    /// Sends a response on a server transaction. 1xx keep it open; a final response completes
    /// it (and, for INVITE, a 2xx is retransmitted over UDP until the ACK arrives).
    pub fn send_response(&mut self, now: Instant, tx: ServerTxId, resp: Message) -> Result<(), TransactionError> {
        let code = resp.status().ok_or(TransactionError::InvalidMessage("not a response"))?;
        let t1 = self.config.t1;
        let t4 = self.config.t4;
        let (ack_key, dest, payload) = {
            let t = self.servers.get_mut(&tx.0).ok_or(TransactionError::NoSuchTransaction)?;
            if !matches!(t.state, State::Trying | State::Proceeding) {
                return Err(TransactionError::AlreadyCompleted);
            }
            let payload = resp.to_bytes();
            let reliable = t.resp_dest.transport.is_reliable();
            t.last_response = Some(payload.clone());
            let mut ack_key = None;
            if code < 200 {
                t.state = State::Proceeding;
            } else {
                t.final_to_tag = resp.to_tag().map(Into::into);
                t.interval = t1;
                if !t.invite {
                    t.state = State::Completed;
                    t.deadline = Some(now + if reliable { Duration::ZERO } else { t1 * 64 });
                } else if code < 300 {
                    t.state = State::Accepted;
                    t.retransmit_at = (!reliable).then_some(now + t1);
                    t.deadline = Some(now + t1 * 64);
                    ack_key = t.ack_key.clone();
                } else {
                    t.state = State::Completed;
                    t.retransmit_at = (!reliable).then_some(now + t1);
                    t.deadline = Some(now + t1 * 64);
                }
                let _ = t4;
            }
            (ack_key, t.resp_dest, payload)
        };
        if let Some(k) = ack_key {
            self.ack_index.insert(k, tx.0);
        }
        self.transmits.push_back(Transmit { dest, payload });
        self.reschedule(tx.0);
        Ok(())
    }

    /// Builds the response to a server transaction's request ([`Message::response_to`]) and
    /// sends it. `to_tag` is added to To unless it has one (dialog-creating responses and
    /// final responses need one).
    pub fn reply(&mut self, now: Instant, tx: ServerTxId, code: u16, reason: Option<&str>, to_tag: Option<&str>) -> Result<(), TransactionError> {
        let req = self.request(tx).ok_or(TransactionError::NoSuchTransaction)?;
        let resp = Message::response_to(req, code, reason, to_tag);
        self.send_response(now, tx, resp)
    }

    /// Sends the ACK for a 2xx received on INVITE transaction `tx` (build it with
    /// [`crate::dialog::Dialog::ack`]) to `dest`, and re-sends it whenever that 2xx (same
    /// To-tag) is retransmitted.
    pub fn send_ack(&mut self, tx: ClientTxId, dest: Peer, ack: Message) -> Result<(), TransactionError> {
        if ack.method() != Some(&Method::Ack) {
            return Err(TransactionError::InvalidMessage("not an ACK"));
        }
        let payload = ack.to_bytes();
        if let Some(t) = self.clients.get_mut(&tx.0) {
            let tag: Box<str> = ack.to_tag().unwrap_or("").into();
            t.acks.retain(|(k, _, _)| *k != tag);
            t.acks.push((tag, dest, payload.clone()));
        }
        self.transmits.push_back(Transmit { dest, payload });
        Ok(())
    }

    /// Sends a message outside any transaction: a 2xx ACK whose transaction is gone, the 400
    /// for a request that failed to parse, a stateless 503.
    pub fn send_stateless(&mut self, dest: Peer, msg: &Message) {
        self.transmits.push_back(Transmit { dest, payload: msg.to_bytes() });
    }

    /// Where the response to a request received from `source` goes (RFC 3261 §18.2.2,
    /// RFC 3581): for stateless answers such as the 400 of a parse error.
    pub fn response_destination(req: &Message, source: Peer) -> Peer {
        response_destination(req, source)
    }

    // ----- internals -----

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn reschedule(&mut self, id: u64) {
        if let Some(old) = self.scheduled.remove(&id) {
            self.timers.remove(&(old, id));
        }
        let next = if let Some(t) = self.clients.get(&id) {
            min_opt(t.retransmit_at, t.deadline)
        } else if let Some(t) = self.servers.get(&id) {
            min_opt(t.retransmit_at, t.deadline)
        } else {
            None
        };
        if let Some(at) = next {
            self.timers.insert((at, id));
            self.scheduled.insert(id, at);
        }
    }

    fn remove_client(&mut self, id: u64) {
        if let Some(t) = self.clients.remove(&id) {
            self.client_index.remove(&t.key);
        }
        if let Some(old) = self.scheduled.remove(&id) {
            self.timers.remove(&(old, id));
        }
        shrink_when_sparse(&mut self.clients);
        shrink_when_sparse(&mut self.client_index);
        shrink_when_sparse(&mut self.scheduled);
    }

    fn remove_server(&mut self, id: u64) {
        if let Some(t) = self.servers.remove(&id) {
            self.server_index.remove(&t.key);
            if let Some(k) = t.ack_key
                && self.ack_index.get(&k) == Some(&id)
            {
                self.ack_index.remove(&k);
            }
        }
        if let Some(old) = self.scheduled.remove(&id) {
            self.timers.remove(&(old, id));
        }
        shrink_when_sparse(&mut self.servers);
        shrink_when_sparse(&mut self.server_index);
        shrink_when_sparse(&mut self.ack_index);
        shrink_when_sparse(&mut self.scheduled);
    }

    fn handle_request(&mut self, now: Instant, source: Peer, msg: Message) {
        let Some(method) = msg.method().cloned() else { return };
        if method == Method::Ack {
            return self.handle_ack(now, source, msg);
        }
        let Some(key) = server_key(&msg, method.clone()) else { return };
        if let Some(&id) = self.server_index.get(&key) {
            // A retransmission: re-send the last response, if any.
            if let Some(t) = self.servers.get(&id)
                && let Some(p) = &t.last_response
                && t.state != State::Confirmed
            {
                self.transmits.push_back(Transmit { dest: t.resp_dest, payload: p.clone() });
            }
            return;
        }
        let resp_dest = response_destination(&msg, source);
        if self.len() >= self.config.max_transactions {
            let mut resp = Message::response_to(&msg, 503, None, None);
            resp.push_copied(HeaderName::RetryAfter, "5");
            self.send_stateless(resp_dest, &resp);
            return;
        }
        let invite = method == Method::Invite;
        let ack_key = if invite {
            match (msg.call_id(), msg.cseq(), msg.from_tag()) {
                (Some(c), Some(s), Some(f)) => Some(AckKey { call_id: c.into(), cseq: s.seq, from_tag: f.into() }),
                _ => None,
            }
        } else {
            None
        };
        let id = self.alloc_id();
        let tx = ServerTx {
            key: key.clone(),
            invite,
            state: if invite { State::Proceeding } else { State::Trying },
            request: msg,
            source,
            resp_dest,
            last_response: None,
            final_to_tag: None,
            ack_key,
            acked: false,
            interval: self.config.t1,
            retransmit_at: None,
            deadline: None,
        };
        self.servers.insert(id, tx);
        self.server_index.insert(key, id);
        let sid = ServerTxId(id);
        if invite && self.config.auto_trying {
            let _ = self.reply(now, sid, 100, None, None);
        }
        if method == Method::Cancel {
            return self.handle_cancel(now, sid);
        }
        let Some(t) = self.servers.get(&id) else { return };
        self.events.push_back(Event::Request { tx: sid, msg: t.request.clone(), source });
    }

    fn handle_cancel(&mut self, now: Instant, tx: ServerTxId) {
        let Some(cancel) = self.servers.get(&tx.0).map(|t| t.request.clone()) else { return };
        let invite = server_key(&cancel, Method::Invite).and_then(|k| self.server_index.get(&k).copied());
        match invite.and_then(|i| self.servers.get(&i).map(|t| (i, t.state))) {
            None => {
                let _ = self.reply(now, tx, 481, None, None);
            }
            Some((_, State::Completed | State::Confirmed | State::Accepted)) => {
                let _ = self.reply(now, tx, 200, None, None);
            }
            Some((inv, _)) => {
                self.events.push_back(Event::Cancel { tx, invite: ServerTxId(inv), msg: cancel });
            }
        }
    }

    fn handle_ack(&mut self, now: Instant, source: Peer, msg: Message) {
        let key = server_key(&msg, Method::Invite);
        if let Some(&id) = key.as_ref().and_then(|k| self.server_index.get(k)) {
            let t4 = self.config.t4;
            if let Some(t) = self.servers.get_mut(&id) {
                let tag_ok = match (&t.key, &t.final_to_tag) {
                    (ServerKey::Legacy { .. }, Some(tag)) => msg.to_tag() == Some(tag),
                    _ => true,
                };
                match t.state {
                    State::Completed if tag_ok => {
                        t.state = State::Confirmed;
                        t.retransmit_at = None;
                        let reliable = t.resp_dest.transport.is_reliable();
                        t.deadline = Some(now + if reliable { Duration::ZERO } else { t4 });
                        self.reschedule(id);
                        return;
                    }
                    State::Confirmed => return,
                    _ => {}
                }
            }
        }
        // An ACK for a 2xx: stop retransmitting that 2xx and pass the ACK up.
        let ack_key = match (msg.call_id(), msg.cseq(), msg.from_tag()) {
            (Some(c), Some(s), Some(f)) => Some(AckKey { call_id: c.into(), cseq: s.seq, from_tag: f.into() }),
            _ => None,
        };
        let tx = ack_key.and_then(|k| self.ack_index.get(&k).copied());
        if let Some(id) = tx {
            if let Some(t) = self.servers.get_mut(&id) {
                if t.acked {
                    return; // a retransmitted ACK
                }
                t.acked = true;
                t.retransmit_at = None;
            }
            self.reschedule(id);
        }
        self.events.push_back(Event::Ack { tx: tx.map(ServerTxId), msg, source });
    }

    fn handle_response(&mut self, now: Instant, source: Peer, msg: Message) {
        let Some(code) = msg.status() else { return };
        let Some(key) = client_key(&msg) else { return };
        let Some(&id) = self.client_index.get(&key) else {
            if (200..300).contains(&code) && key.method == Method::Invite {
                self.events.push_back(Event::StrayResponse { msg, source });
            } else {
                tracing::debug!(code, branch = &*key.branch, "response matches no transaction, dropped");
            }
            return;
        };
        let t1 = self.config.t1;
        let t4 = self.config.t4;
        let Some(t) = self.clients.get_mut(&id) else { return };
        let reliable = t.dest.transport.is_reliable();
        let tx = ClientTxId(id);
        let mut emit = false;
        let mut remove = false;
        if t.invite {
            match (t.state, code) {
                (State::Trying | State::Proceeding, 100..=199) => {
                    // Timer B only runs in Calling; once the far end is proceeding we wait
                    // for its final response (or our CANCEL's guard).
                    t.state = State::Proceeding;
                    t.retransmit_at = None;
                    t.deadline = t.cancel_guard;
                    emit = true;
                }
                (State::Trying | State::Proceeding, 200..=299) => {
                    t.state = State::Accepted;
                    t.retransmit_at = None;
                    t.deadline = Some(now + t1 * 64);
                    emit = true;
                }
                (State::Trying | State::Proceeding, _) => {
                    t.state = State::Completed;
                    t.retransmit_at = None;
                    let ack = ack_for_non2xx(&t.request, &msg).map(|a| a.to_bytes());
                    if let Some(a) = &ack {
                        self.transmits.push_back(Transmit { dest: t.dest, payload: a.clone() });
                    }
                    t.non2xx_ack = ack;
                    let d = if reliable { Duration::ZERO } else { Duration::from_secs(32).max(t1 * 64) };
                    t.deadline = Some(now + d);
                    emit = true;
                }
                (State::Completed, 300..) => {
                    if let Some(a) = &t.non2xx_ack {
                        self.transmits.push_back(Transmit { dest: t.dest, payload: a.clone() });
                    }
                }
                (State::Accepted, 200..=299) => {
                    let tag = msg.to_tag().unwrap_or("");
                    match t.acks.iter().find(|(k, _, _)| &**k == tag) {
                        Some((_, dest, payload)) => self.transmits.push_back(Transmit { dest: *dest, payload: payload.clone() }),
                        None => emit = true,
                    }
                }
                _ => {}
            }
        } else {
            match (t.state, code) {
                (State::Trying | State::Proceeding, 100..=199) => {
                    t.state = State::Proceeding;
                    if !reliable {
                        t.interval = self.config.t2;
                    }
                    emit = true;
                }
                (State::Trying | State::Proceeding, 200..) => {
                    t.state = State::Completed;
                    t.retransmit_at = None;
                    if reliable {
                        remove = true;
                    } else {
                        t.deadline = Some(now + t4);
                    }
                    emit = true;
                }
                _ => {}
            }
        }
        if remove {
            self.remove_client(id);
        } else {
            self.reschedule(id);
        }
        if emit {
            self.events.push_back(Event::Response { tx, msg });
        }
    }

    fn client_timer(&mut self, now: Instant, id: u64) {
        let t2 = self.config.t2;
        let Some(t) = self.clients.get_mut(&id) else { return };
        if t.deadline.is_some_and(|d| d <= now) {
            let timed_out = matches!(t.state, State::Trying | State::Proceeding);
            self.remove_client(id);
            if timed_out {
                self.events.push_back(Event::Timeout { tx: ClientTxId(id) });
            }
            return;
        }
        if t.retransmit_at.is_some_and(|r| r <= now) {
            self.transmits.push_back(Transmit { dest: t.dest, payload: t.payload.clone() });
            self.retransmissions += 1;
            // Timer A doubles without bound; timer E is capped at T2 (and is T2 once a 1xx came).
            t.interval = if t.invite { t.interval * 2 } else { (t.interval * 2).min(t2) };
            if !t.invite && t.state == State::Proceeding {
                t.interval = t2;
            }
            t.retransmit_at = Some(now + t.interval);
        }
        self.reschedule(id);
    }

    fn server_timer(&mut self, now: Instant, id: u64) {
        let t2 = self.config.t2;
        let Some(t) = self.servers.get_mut(&id) else { return };
        if t.deadline.is_some_and(|d| d <= now) {
            // H (Completed) and L (Accepted without ACK) tell the user; I, J and L after the
            // ACK end quietly.
            let unacked = t.invite && (t.state == State::Completed || (t.state == State::Accepted && !t.acked));
            self.remove_server(id);
            if unacked {
                self.events.push_back(Event::AckTimeout { tx: ServerTxId(id) });
            }
            return;
        }
        if t.retransmit_at.is_some_and(|r| r <= now) {
            if let Some(p) = &t.last_response {
                self.transmits.push_back(Transmit { dest: t.resp_dest, payload: p.clone() });
                self.retransmissions += 1;
            }
            t.interval = (t.interval * 2).min(t2);
            t.retransmit_at = Some(now + t.interval);
        }
        self.reschedule(id);
    }
}

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod tests;

/// The capacity a transaction map keeps however empty it gets.
const MAP_FLOOR: usize = 1024;

/// Gives back most of a map's capacity once three quarters of it are unused. A burst of calls
/// leaves thousands of transactions lingering their 64·T1 (at 200 calls/s, about 30,000), and
/// a `HashMap` keeps the capacity of its fullest moment: measured after 5,000 calls, one
/// 20 MiB block of empty table stayed resident (tests/bench/memory_bench.py). Shrinking to
/// twice the length only when the length falls under a quarter keeps the cost amortised O(1)
/// per removal.
fn shrink_when_sparse<K: Eq + std::hash::Hash, V>(m: &mut HashMap<K, V>) {
    if m.capacity() > MAP_FLOOR && m.len() * 4 < m.capacity() {
        m.shrink_to((m.len() * 2).max(MAP_FLOOR));
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
