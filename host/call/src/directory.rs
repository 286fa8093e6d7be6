//! The in-memory directory: what the SIP path reads instead of the database — the
//! extensions with their decrypted HA1s, the IP-authenticated trunks and the inbound
//! numbers. A snapshot is immutable (`Arc<Directory>`); the refresher task polls the store's
//! change stamp and hands the event loop a new snapshot when something changed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use sip::auth::Algorithm;
use sip::transaction::{Peer, Transport};
use store::{CallClass, Page, SrtpPolicy, Store, TrunkType};

use crate::routing::{CallerId, Numbering, Pattern, Route};

/// One extension, as the SIP stack needs it.
pub struct User {
    /// The extension's id.
    pub id: i64,
    /// Its number ("101").
    pub extension: String,
    /// Its display name.
    pub name: String,
    /// The digest username.
    pub username: String,
    /// Lowercase hex HA1 over the realm, MD5.
    ha1_md5: String,
    /// Lowercase hex HA1 over the realm, SHA-256.
    ha1_sha256: String,
    /// Do not disturb: calls get 486.
    pub dnd: bool,
    /// How long a call rings before the caller gets 480, seconds.
    pub ring_timeout: u32,
    /// Contacts the extension may register at once.
    pub max_registrations: u32,
    /// Its calls are recorded (recording mode `always`).
    pub record_always: bool,
    /// It may start and stop recording during a call with `*1` (recording mode `on_demand`).
    pub record_on_demand: bool,
    /// What it presents when it calls out.
    pub outbound_caller_id: Option<CallerId>,
    /// What emergency services see.
    pub emergency_caller_id: Option<CallerId>,
    /// The classes of outbound numbers it may call.
    pub call_classes: Vec<CallClass>,
    /// Outbound calls at once (0: none).
    pub max_outbound_calls: u32,
    /// Outbound minutes a day (0: no cap).
    pub daily_outbound_minutes: u32,
    /// Follow-me, when enabled (with at least one number).
    pub follow_me: Option<FollowMe>,
    /// SRTP (SDES) for its media.
    pub srtp: SrtpPolicy,
    /// Its registered contacts without a message-summary subscription get unsolicited MWI
    /// NOTIFYs.
    pub mwi_unsolicited: bool,
}

/// An extension's follow-me: what rings after (or beside) its devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowMe {
    /// Sequential: devices for the ring time, then each number in turn; simultaneous: all
    /// together, each number after its delay.
    pub simultaneous: bool,
    /// A number outside must press 1 before the call is put through.
    pub confirm: bool,
    /// The numbers, in order.
    pub numbers: Vec<FollowMeTarget>,
}

/// One follow-me number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowMeTarget {
    /// An internal extension number or a number outside (through the outbound routes).
    pub number: String,
    /// Simultaneous mode: how long after the start it starts ringing.
    pub delay: Duration,
    /// How long it rings.
    pub timeout: Duration,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("id", &self.id).field("extension", &self.extension).field("username", &self.username).finish_non_exhaustive()
    }
}

impl User {
    /// The stored HA1 for the base algorithm of `alg`.
    pub fn ha1(&self, alg: Algorithm) -> &str {
        match alg.base() {
            Algorithm::Sha256 => &self.ha1_sha256,
            _ => &self.ha1_md5,
        }
    }

    /// A user for tests.
    #[cfg(test)]
    pub(crate) fn for_test(id: i64, extension: &str, username: &str, realm: &str, password: &str) -> User {
        User {
            id,
            extension: extension.to_owned(),
            name: format!("User {extension}"),
            username: username.to_owned(),
            ha1_md5: sip::auth::ha1(Algorithm::Md5, username, realm, password),
            ha1_sha256: sip::auth::ha1(Algorithm::Sha256, username, realm, password),
            dnd: false,
            ring_timeout: 30,
            max_registrations: 5,
            record_always: false,
            record_on_demand: false,
            outbound_caller_id: None,
            emergency_caller_id: None,
            call_classes: vec![CallClass::Local, CallClass::National],
            max_outbound_calls: 2,
            daily_outbound_minutes: 0,
            follow_me: None,
            srtp: SrtpPolicy::Off,
            mwi_unsolicited: false,
        }
    }
}

/// An enabled trunk of type `ip`: requests from its addresses are trusted.
#[derive(Debug, Clone)]
pub struct TrustedTrunk {
    /// The trunk's id.
    pub id: i64,
    /// Its name.
    pub name: String,
    nets: Vec<IpNet>,
}

impl TrustedTrunk {
    /// A trunk for tests.
    #[cfg(test)]
    pub(crate) fn for_test(id: i64, name: &str, hosts: &[&str]) -> TrustedTrunk {
        TrustedTrunk { id, name: name.into(), nets: hosts.iter().filter_map(|h| parse_net(h)).collect() }
    }
}

/// The account a registration trunk registers with. Password-equivalent: kept in memory as
/// the HA1s are.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// The user part of the address of record (`sip:user@host`).
    pub username: String,
    /// The digest username (often the same).
    pub auth_username: String,
    /// The digest password.
    pub password: String,
    /// The registration interval asked for, seconds.
    pub expiry: u32,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("username", &self.username)
            .field("auth_username", &self.auth_username)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

/// An enabled trunk: where its requests go, how numbers and caller ids are written for it,
/// and (registration trunks) the account.
#[derive(Debug, Clone)]
pub struct Trunk {
    /// The trunk's id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The account, for a registration trunk.
    pub account: Option<Account>,
    /// The carrier's domain as written (`sip.carrier.example`): Request-URI, To and From host.
    pub domain: String,
    /// The port written with the domain (absent for 5060/5061).
    pub port: u16,
    /// The transport its requests use.
    pub transport: Transport,
    /// Where its requests are sent: the outbound proxy's address, else the domain's
    /// (resolved when the directory loaded; `None` when it does not resolve).
    pub next_hop: Option<Peer>,
    /// The outbound proxy's URI for the Route header (`sip:proxy.example;lr`).
    pub route: Option<String>,
    /// Seconds between OPTIONS keep-alives (0: none).
    pub options_interval: u32,
    /// Calls at once (0: no limit).
    pub max_channels: u32,
    /// The caller id it presents when a route says "the trunk's".
    pub caller_id: Option<CallerId>,
    /// Digits taken off every number sent to it.
    pub prefix_strip: usize,
    /// Then put in front.
    pub prefix_add: String,
    /// How it writes numbers (to make E.164 of inbound ones).
    pub numbering: Numbering,
    /// Where its calls come from: the `ip` trunk's remote hosts, or the registration trunk's
    /// resolved domain and proxy addresses.
    nets: Vec<IpNet>,
    /// What its registration depends on: a change re-registers (and lifts a 403 stop).
    pub fingerprint: String,
    /// Over TLS: the host name its certificate must name (the outbound proxy's, else the
    /// domain), and whether it is verified at all.
    pub tls_name: String,
    /// See [`Trunk::tls_name`].
    pub tls_verify: bool,
    /// SRTP (SDES) toward the carrier.
    pub srtp: SrtpPolicy,
    /// Calls that arrive through it are recorded from answer to end.
    pub record_inbound: bool,
    /// Calls that leave through it are recorded from answer to end.
    pub record_outbound: bool,
}

impl Trunk {
    /// Whether a request from `ip` may be this trunk's.
    pub fn owns(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The number sent to this trunk for a route's number.
    pub fn dial_string(&self, number: &str) -> String {
        crate::routing::manipulate(number, self.prefix_strip, &self.prefix_add)
    }

    /// A registration trunk for tests, reached at `hop`.
    #[cfg(test)]
    pub(crate) fn for_test(id: i64, domain: &str, hop: &str, account: Option<Account>) -> Trunk {
        let next_hop: std::net::SocketAddr = hop.parse().unwrap();
        Trunk {
            id,
            name: format!("trunk {id}"),
            fingerprint: format!(
                "{domain}|{hop}|{account:?}|{:?}",
                account.as_ref().map(|a| sip::auth::ha1(Algorithm::Md5, &a.auth_username, "", &a.password))
            ),
            account,
            domain: domain.into(),
            port: 0,
            transport: Transport::Udp,
            next_hop: Some(Peer { transport: Transport::Udp, addr: next_hop }),
            route: None,
            options_interval: 30,
            max_channels: 0,
            caller_id: None,
            prefix_strip: 0,
            prefix_add: String::new(),
            numbering: Numbering::default(),
            nets: vec![IpNet::from(next_hop.ip())],
            tls_name: domain.into(),
            tls_verify: true,
            srtp: SrtpPolicy::Off,
            record_inbound: false,
            record_outbound: false,
        }
    }
}

/// An enabled inbound number (DID).
#[derive(Debug, Clone)]
pub struct Did {
    /// The number as stored (E.164).
    pub number: String,
    /// The trunk it belongs to, when set: then only that trunk may deliver it.
    pub trunk_id: Option<i64>,
    /// The flow it enters (the flow runner walks it; see [`crate::PbxHandle::incoming_calls`]).
    pub flow_id: Option<i64>,
}

/// A snapshot of everything the SIP path looks up.
#[derive(Default)]
pub struct Directory {
    /// The digest realm the HA1s are computed over.
    pub realm: String,
    by_username: HashMap<String, Arc<User>>,
    by_number: HashMap<String, Arc<User>>,
    by_id: HashMap<i64, Arc<User>>,
    trunks: Vec<TrustedTrunk>,
    dids: HashMap<String, Did>,
    /// Every enabled trunk, in priority order.
    all_trunks: Vec<Arc<Trunk>>,
    routes: Vec<Route>,
    /// The voicemail boxes' `mailbox_number`s (dialled from a phone: the dial-in menu).
    mailboxes: std::collections::HashSet<String>,
}

/// What a phone dials for its own voicemail box (PIN unless the box has none).
pub const VOICEMAIL_OWN: &str = "*97";
/// What a phone dials for any voicemail box (box number, then PIN).
pub const VOICEMAIL_ANY: &str = "*98";

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("realm", &self.realm)
            .field("users", &self.by_id.len())
            .field("trunks", &self.trunks.len())
            .field("dids", &self.dids.len())
            .finish()
    }
}

impl Directory {
    /// A directory from parts (the loader and tests).
    pub fn new(realm: impl Into<String>, users: Vec<User>, trunks: Vec<TrustedTrunk>, dids: Vec<Did>) -> Directory {
        let mut d = Directory { realm: realm.into(), ..Default::default() };
        for u in users {
            let u = Arc::new(u);
            d.by_username.insert(u.username.clone(), u.clone());
            d.by_number.insert(u.extension.clone(), u.clone());
            d.by_id.insert(u.id, u);
        }
        d.trunks = trunks;
        for did in dids {
            d.dids.insert(did.number.clone(), did);
        }
        d
    }

    /// The extension whose digest username is `username`.
    pub fn user(&self, username: &str) -> Option<&Arc<User>> {
        self.by_username.get(username)
    }

    /// The extension dialled as `number`.
    pub fn by_number(&self, number: &str) -> Option<&Arc<User>> {
        self.by_number.get(number)
    }

    /// The extension with this id.
    pub fn by_id(&self, id: i64) -> Option<&Arc<User>> {
        self.by_id.get(&id)
    }

    /// How many extensions there are.
    pub fn user_count(&self) -> usize {
        self.by_id.len()
    }

    /// How many trusted trunks and inbound numbers there are.
    pub fn trunk_and_number_counts(&self) -> (usize, usize) {
        (self.trunks.len(), self.dids.len())
    }

    /// The trusted trunk `ip` belongs to.
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&TrustedTrunk> {
        let ip = canonical(ip);
        self.trunks.iter().find(|t| t.nets.iter().any(|n| n.contains(&ip)))
    }

    /// The inbound number `dialled` names: exact, or with/without the leading `+`.
    pub fn did(&self, dialled: &str) -> Option<&Did> {
        if let Some(d) = self.dids.get(dialled) {
            return Some(d);
        }
        match dialled.strip_prefix('+') {
            Some(bare) => self.dids.get(bare),
            None => self.dids.get(&format!("+{dialled}")),
        }
    }

    /// With every enabled trunk (in priority order) and the outbound routes.
    pub fn with_trunks(mut self, trunks: Vec<Trunk>, routes: Vec<Route>) -> Directory {
        self.all_trunks = trunks.into_iter().map(Arc::new).collect();
        self.routes = routes;
        self
    }

    /// Adds the voicemail boxes' mailbox numbers.
    pub fn with_mailboxes(mut self, numbers: impl IntoIterator<Item = String>) -> Directory {
        self.mailboxes = numbers.into_iter().collect();
        self
    }

    /// Whether a phone dialling `number` reaches the dial-in voicemail: `*97`, `*98`, or a
    /// box's mailbox number that is no extension's.
    pub fn is_voicemail_access(&self, number: &str) -> bool {
        number == VOICEMAIL_OWN || number == VOICEMAIL_ANY || (self.mailboxes.contains(number) && !self.by_number.contains_key(number))
    }

    /// Every enabled trunk, in priority order.
    pub fn trunks(&self) -> &[Arc<Trunk>] {
        &self.all_trunks
    }

    /// For a TLS connection to `addr`: the host name the certificate must name and whether
    /// it is verified, when `addr` is a TLS trunk's next hop.
    pub fn tls_peer(&self, addr: std::net::SocketAddr) -> Option<(&str, bool)> {
        self.all_trunks
            .iter()
            .find(|t| t.transport == Transport::Tls && t.next_hop.is_some_and(|p| p.addr == addr))
            .map(|t| (t.tls_name.as_str(), t.tls_verify))
    }

    /// The enabled trunk with this id.
    pub fn trunk(&self, id: i64) -> Option<&Arc<Trunk>> {
        self.all_trunks.iter().find(|t| t.id == id)
    }

    /// The outbound routes, in the order they are tried.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The registration trunk a request from `ip` to our contact user `ruri_user` belongs to:
    /// its source must be the carrier's; among several trunks of one carrier, the one whose
    /// contact user the Request-URI names.
    pub fn registration_trunk_for(&self, ip: IpAddr, ruri_user: Option<&str>) -> Option<&Arc<Trunk>> {
        let mut candidates = self.all_trunks.iter().filter(|t| t.account.is_some() && t.owns(ip));
        let first = candidates.next()?;
        let named = std::iter::once(first).chain(candidates).find(|t| ruri_user.is_some_and(|u| t.account.as_ref().is_some_and(|a| a.username == u)));
        Some(named.unwrap_or(first))
    }

    /// Loads a snapshot from the store.
    pub async fn load(store: &Store) -> Result<Directory, store::StoreError> {
        let creds = store.extensions().all_sip_credentials().await?;
        let exts = store.extensions().list(Page::all()).await?.items;
        let ext_by_id: HashMap<i64, &store::Extension> = exts.iter().map(|e| (e.id, e)).collect();
        let realm = creds.first().map(|c| c.realm.clone()).unwrap_or_else(|| store.sip_realm());
        // the global recording policy (the `recording_policy` setting) on top of each
        // extension's own mode: `always` records every extension's calls, `on_demand` lets
        // every extension use *1
        let policy = store.settings().get("recording_policy").await?.unwrap_or_default();
        let (all_always, all_on_demand) = (policy == "always", policy == "on_demand");
        let users = creds
            .into_iter()
            .filter_map(|c| {
                let e = ext_by_id.get(&c.extension_id)?;
                Some(User {
                    id: c.extension_id,
                    extension: c.extension,
                    name: e.name.clone(),
                    username: c.username,
                    ha1_md5: c.ha1_md5,
                    ha1_sha256: c.ha1_sha256,
                    dnd: e.dnd,
                    ring_timeout: u32::try_from(e.ring_timeout).unwrap_or(30).clamp(1, 600),
                    max_registrations: u32::try_from(e.max_registrations).unwrap_or(5).max(1),
                    record_always: all_always || e.recording_mode == store::RecordingMode::Always,
                    record_on_demand: all_on_demand || e.recording_mode == store::RecordingMode::OnDemand,
                    outbound_caller_id: e.outbound_caller_id_num.clone().map(|number| CallerId { name: e.outbound_caller_id_name.clone(), number }),
                    emergency_caller_id: e.emergency_caller_id_num.clone().map(|number| CallerId { name: None, number }),
                    call_classes: e.call_classes.clone(),
                    max_outbound_calls: u32::try_from(e.max_outbound_calls).unwrap_or(0),
                    daily_outbound_minutes: u32::try_from(e.daily_outbound_minutes).unwrap_or(0),
                    follow_me: (e.follow_me_enabled && !e.follow_me_numbers.is_empty()).then(|| FollowMe {
                        simultaneous: e.follow_me_mode == store::FollowMeMode::Simultaneous,
                        confirm: e.follow_me_confirm,
                        numbers: e
                            .follow_me_numbers
                            .iter()
                            .map(|n| FollowMeTarget {
                                number: n.number.clone(),
                                delay: Duration::from_secs(u64::from(n.delay.min(300))),
                                timeout: Duration::from_secs(u64::from(n.timeout.clamp(5, 300))),
                            })
                            .collect(),
                    }),
                    srtp: e.srtp,
                    mwi_unsolicited: e.mwi_unsolicited,
                })
            })
            .collect();
        let enabled = store.trunks().list_enabled().await?;
        let trunks = enabled
            .iter()
            .filter(|t| t.trunk_type == TrunkType::Ip)
            .map(|t| TrustedTrunk { id: t.row.id, name: t.name.clone(), nets: t.remote_hosts.iter().filter_map(|h| parse_net(h)).collect() })
            .collect();
        let mut all_trunks = Vec::with_capacity(enabled.len());
        for t in &enabled {
            let password = if t.trunk_type == TrunkType::Register { store.trunks().password(t.row.id).await? } else { None };
            all_trunks.push(load_trunk(t, password).await);
        }
        let mut routes = Vec::new();
        for r in store.outbound_routes().all().await? {
            if !r.enabled {
                continue;
            }
            let patterns: Vec<Pattern> = r
                .patterns
                .iter()
                .filter_map(|p| match Pattern::parse(p) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::warn!(route = r.id, pattern = %p, error = %e, "an outbound route pattern does not compile: skipped");
                        None
                    }
                })
                .collect();
            routes.push(Route {
                id: r.id,
                name: r.name.clone(),
                patterns,
                class: r.call_class,
                strip_digits: usize::try_from(r.strip_digits).unwrap_or(0),
                prepend: r.prepend.clone(),
                caller_id_mode: r.caller_id_mode,
                caller_id: r.caller_id_num.clone().map(|number| CallerId { name: r.caller_id_name.clone(), number }),
                extension_ids: r.extension_ids.clone(),
                trunk_ids: r.trunk_ids.clone(),
            });
        }
        let mut dids = Vec::new();
        for n in store.inbound_numbers().list(Page::all()).await?.items {
            if !n.enabled {
                continue;
            }
            dids.push(Did { number: n.number.clone(), trunk_id: n.trunk_id, flow_id: n.flow_id });
        }
        let mut mailboxes = Vec::new();
        for b in store.voicemail_boxes().list(Page::all()).await?.items {
            mailboxes.extend(b.mailbox_number.clone());
        }
        Ok(Directory::new(realm, users, trunks, dids).with_trunks(all_trunks, routes).with_mailboxes(mailboxes))
    }
}

/// A transport from its stored name.
fn transport(t: store::Transport) -> Transport {
    match t {
        store::Transport::Udp => Transport::Udp,
        store::Transport::Tcp => Transport::Tcp,
        store::Transport::Tls => Transport::Tls,
    }
}

/// `host[:port]`, `[v6]:port` or a `sip:`/`sips:` URI: the host and the port when written.
fn host_port(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    let s = s.strip_prefix("sips:").or_else(|| s.strip_prefix("sip:")).unwrap_or(s);
    let s = s.split(';').next()?;
    let s = s.rsplit('@').next()?;
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (format!("[{h}]"), after.strip_prefix(':').map(str::parse).transpose().ok()?)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.parse().ok()?)),
            None => (s.to_owned(), None),
        }
    };
    if host.is_empty() {
        None
    } else {
        Some((host, port))
    }
}

/// The addresses of `host` (an IP as it is; a name resolved, five seconds at most).
async fn resolve(host: &str, port: u16) -> Vec<std::net::SocketAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return vec![std::net::SocketAddr::new(ip, port)];
    }
    match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((bare, port))).await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => {
            tracing::warn!(%host, error = %e, "a trunk's host does not resolve");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(%host, "a trunk's host took more than 5 s to resolve");
            Vec::new()
        }
    }
}

/// A stored trunk as the SIP stack holds it: its host and proxy resolved.
async fn load_trunk(t: &store::Trunk, password: Option<String>) -> Trunk {
    let transport = transport(t.transport);
    let default_port = if transport == Transport::Tls { 5061 } else { 5060 };
    let (domain, written_port) = t.host.as_deref().and_then(host_port).unwrap_or_default();
    let port = written_port.unwrap_or_else(|| u16::try_from(t.port).unwrap_or(default_port));
    let proxy = t.outbound_proxy.as_deref().and_then(host_port);
    let (hop_host, hop_port) = match &proxy {
        Some((h, p)) => (h.clone(), p.unwrap_or(default_port)),
        None => (domain.clone(), port),
    };
    let mut addrs = if hop_host.is_empty() { Vec::new() } else { resolve(&hop_host, hop_port).await };
    if proxy.is_some() && !domain.is_empty() {
        addrs.extend(resolve(&domain, port).await);
    }
    let next_hop = addrs.first().map(|a| Peer { transport, addr: *a });
    let mut nets: Vec<IpNet> = addrs.iter().map(|a| IpNet::from(canonical(a.ip()))).collect();
    nets.extend(t.remote_hosts.iter().filter_map(|h| parse_net(h)));
    let account = match (t.trunk_type, &t.username, password) {
        (TrunkType::Register, Some(user), Some(password)) => Some(Account {
            username: user.clone(),
            auth_username: t.auth_username.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| user.clone()),
            password,
            expiry: u32::try_from(t.register_expiry).unwrap_or(300).clamp(60, 86_400),
        }),
        _ => None,
    };
    let route = proxy.map(|(h, p)| match p {
        Some(p) => format!("sip:{h}:{p};lr"),
        None => format!("sip:{h};lr"),
    });
    let fingerprint = format!(
        "{}|{}|{}|{}|{:?}|{:?}|{:?}|{:?}",
        domain,
        port,
        t.transport,
        t.tls_verify,
        t.outbound_proxy,
        next_hop.map(|p| p.addr),
        account.as_ref().map(|a| (&a.username, &a.auth_username, a.expiry)),
        account.as_ref().map(|a| sip::auth::ha1(Algorithm::Md5, &a.auth_username, "", &a.password))
    );
    Trunk {
        id: t.row.id,
        name: t.name.clone(),
        account,
        domain,
        port: if port == default_port { 0 } else { port },
        transport,
        next_hop,
        route,
        options_interval: u32::try_from(t.options_interval).unwrap_or(30),
        max_channels: u32::try_from(t.max_channels).unwrap_or(0),
        caller_id: t.caller_id_num.clone().map(|number| CallerId { name: t.caller_id_name.clone(), number }),
        prefix_strip: usize::try_from(t.prefix_strip).unwrap_or(0),
        prefix_add: t.prefix_add.clone(),
        numbering: Numbering {
            country_code: t.country_code.clone(),
            national_prefix: t.national_prefix.clone(),
            international_prefix: t.international_prefix.clone(),
        },
        nets,
        fingerprint,
        tls_name: hop_host,
        tls_verify: t.tls_verify,
        srtp: t.srtp,
        record_inbound: t.record_inbound,
        record_outbound: t.record_outbound,
    }
}

/// Maps IPv4-mapped IPv6 addresses to IPv4, so `::ffff:10.0.0.1` matches `10.0.0.0/8`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// A trunk's `remote_hosts` entry: an IP (a /32 or /128) or a CIDR, as the API parsed and
/// stored it. Anything else was not written by the API (an edited database): it is logged
/// and the entry trusts no one.
fn parse_net(s: &str) -> Option<IpNet> {
    let net = if s.contains('/') { s.parse::<IpNet>().ok().map(|n| n.trunc()) } else { s.parse::<IpAddr>().ok().map(IpNet::from) };
    if net.is_none() {
        tracing::error!(entry = %s.escape_debug(), "a trunk's remote_hosts entry is not an IP address or CIDR block; it is ignored");
    }
    net
}

/// Polls the store's change stamp and realm; sends a fresh snapshot when either changed.
/// `poke` makes it check at once (an API write can call it).
pub(crate) async fn refresher(store: Store, interval: Duration, mut stamp: String, poke: Arc<tokio::sync::Notify>, send: impl Fn(Arc<Directory>) -> bool) {
    let mut realm = store.sip_realm();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = poke.notified() => {}
        }
        let now_stamp = match store.extensions().change_stamp().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "directory: cannot read the change stamp");
                continue;
            }
        };
        let now_realm = store.sip_realm();
        if now_stamp == stamp && now_realm == realm {
            continue;
        }
        match Directory::load(&store).await {
            Ok(d) => {
                tracing::debug!(users = d.user_count(), realm = %d.realm, "directory reloaded");
                if !send(Arc::new(d)) {
                    return;
                }
                stamp = now_stamp;
                realm = now_realm;
            }
            Err(e) => tracing::warn!(error = %e, "directory: reload failed"),
        }
    }
}

/// The change stamp now (for the first snapshot).
pub(crate) async fn current_stamp(store: &Store) -> Result<String, store::StoreError> {
    store.extensions().change_stamp().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_matching_and_did_forms() {
        let t = TrustedTrunk { id: 1, name: "carrier".into(), nets: ["203.0.113.0/24", "198.51.100.7"].iter().filter_map(|s| parse_net(s)).collect() };
        let d = Directory::new("r", vec![], vec![t], vec![Did { number: "+61290000000".into(), trunk_id: None, flow_id: Some(3) }]);
        assert_eq!(d.trunk_for("203.0.113.9".parse().unwrap()).map(|t| t.id), Some(1));
        assert_eq!(d.trunk_for("::ffff:198.51.100.7".parse().unwrap()).map(|t| t.id), Some(1));
        assert!(d.trunk_for("198.51.100.8".parse().unwrap()).is_none());
        assert_eq!(d.did("61290000000").and_then(|d| d.flow_id), Some(3));
        assert_eq!(d.did("+61290000000").and_then(|d| d.flow_id), Some(3));
        assert!(d.did("0290000000").is_none());
    }

    #[test]
    fn remote_hosts_read_back_strictly() {
        assert_eq!(parse_net("10.1.2.3/8"), "10.0.0.0/8".parse().ok());
        assert_eq!(parse_net("2001:db8::1"), "2001:db8::1/128".parse().ok());
        // what the API never stores is refused (and logged), not guessed at
        for bad in [" 10.0.0.1", "10.0.0.1/33", "sip.example.com", "", "10.0.0.0/"] {
            assert_eq!(parse_net(bad), None, "{bad:?}");
        }
    }
}
