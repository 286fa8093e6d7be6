//! What every part of the PBX core writes SIP through: the transaction layer, the id
//! generator, our own addresses as a peer sees them, and answers (in a transaction or
//! stateless). The registrar's handling and the B2BUA borrow it from the core for the length
//! of one input; it never touches a socket (its output is the transaction layer's
//! `poll_transmit` and the stateless queue).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use sip::msg::HeaderInjection;
use sip::transaction::{Peer, ServerTxId, Transmit, Transport};
use sip::{IdGenerator, Instant, Message, TransactionLayer};

/// Finds the local IP a peer reaches us at (the route's source address, or the external
/// address for peers outside the local networks).
pub(crate) type Locator = Box<dyn FnMut(IpAddr) -> IpAddr + Send>;

/// Where the core is bound, per transport.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub udp: u16,
    pub tcp: u16,
    pub tls: u16,
    pub wss: u16,
    pub ws: u16,
}

/// See the module documentation.
pub(crate) struct Signalling {
    pub(crate) txl: TransactionLayer,
    pub(crate) ids: IdGenerator,
    ports: Ports,
    locate: Locator,
    /// The domain of the From/To we write (else our address toward the peer).
    hostname: Option<String>,
    pub(crate) user_agent: String,
    /// Stateless answers and other sends outside the transaction layer.
    stateless: VecDeque<Transmit>,
}

impl Signalling {
    pub(crate) fn new(txl: TransactionLayer, ids: IdGenerator, ports: Ports, locate: Locator, hostname: Option<String>, user_agent: String) -> Signalling {
        Signalling { txl, ids, ports, locate, hostname, user_agent, stateless: VecDeque::new() }
    }

    /// The next bytes to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.stateless.pop_front().or_else(|| self.txl.poll_transmit())
    }

    /// Queues bytes outside any transaction.
    pub(crate) fn send_stateless(&mut self, t: Transmit) {
        self.stateless.push_back(t);
    }

    // ----- answers -----

    /// Answers a server transaction with a status and its standard reason.
    pub(crate) fn reply(&mut self, now: Instant, tx: ServerTxId, code: u16) {
        self.reply_with(now, tx, code, None, |_| Ok(()));
    }

    /// Answers with extra headers; final responses get a To-tag. A header the closure adds
    /// that is refused ([`HeaderInjection`]) turns the answer into a plain 500: nothing
    /// unchecked reaches the wire.
    pub(crate) fn reply_with(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        code: u16,
        reason: Option<&str>,
        f: impl FnOnce(&mut Message) -> Result<(), HeaderInjection>,
    ) {
        let Some(req) = self.txl.request(tx) else { return };
        let tag = if code > 100 { Some(self.ids.tag()) } else { None };
        let mut resp = Message::response_to(req, code, reason, tag.as_deref());
        if f(&mut resp).is_err() {
            tracing::warn!(code, "a response header was refused (CR/LF/NUL): answered 500");
            resp = Message::response_to(req, 500, None, tag.as_deref());
        }
        if let Err(e) = self.txl.send_response(now, tx, resp) {
            tracing::debug!(error = %e, code, "response not sent");
        }
    }

    /// Answers `req` statelessly, to `dest` (see [`Signalling::reply_with`] for `f`).
    pub(crate) fn reply_to(&mut self, dest: Peer, req: &Message, code: u16, reason: Option<&str>, f: impl FnOnce(&mut Message) -> Result<(), HeaderInjection>) {
        let tag = self.ids.tag();
        let mut resp = Message::response_to(req, code, reason, Some(&tag));
        if f(&mut resp).is_err() {
            tracing::warn!(code, "a response header was refused (CR/LF/NUL): answered 500");
            resp = Message::response_to(req, 500, None, Some(&tag));
        }
        self.stateless.push_back(Transmit { dest, payload: resp.to_bytes() });
    }

    // ----- addresses -----

    /// Our address as `peer` should see it.
    pub(crate) fn local_addr(&mut self, peer: Peer) -> SocketAddr {
        let ip = (self.locate)(peer.addr.ip());
        let port = match peer.transport {
            Transport::Udp => self.ports.udp,
            Transport::Tls => self.ports.tls,
            Transport::Wss => self.ports.wss,
            Transport::Ws => self.ports.ws,
            _ => self.ports.tcp,
        };
        SocketAddr::new(ip, port)
    }

    /// A top Via for a request to `peer`, with a fresh branch.
    pub(crate) fn via_for(&mut self, peer: Peer) -> String {
        let addr = self.local_addr(peer);
        let branch = self.ids.branch();
        format!("SIP/2.0/{} {};branch={branch};rport", peer.transport.as_str(), fmt_addr(addr))
    }

    /// Our Contact URI (without brackets) for `user` towards `peer`.
    pub(crate) fn contact_for(&mut self, user: &str, peer: Peer) -> String {
        self.contact_for_scheme(user, peer, false)
    }

    /// Our Contact URI for a dialog whose Request-URI is `sips:` when `sips` (RFC 3261
    /// §8.1.1.8, §12.1.1: the Contact of a SIPS request and of its answer must be SIPS;
    /// RFC 5630: `sips:` means TLS on every hop, so without `transport=tls`). Only over TLS:
    /// over anything else it is the plain form.
    pub(crate) fn contact_for_scheme(&mut self, user: &str, peer: Peer, sips: bool) -> String {
        let addr = self.local_addr(peer);
        if sips && peer.transport == Transport::Tls {
            return format!("sips:{}@{}", sanitize_user(user), fmt_addr(addr));
        }
        let mut c = format!("sip:{}@{}", sanitize_user(user), fmt_addr(addr));
        if peer.transport != Transport::Udp {
            c.push_str(";transport=");
            // RFC 7118 §5.2: `transport=ws` for WS and WSS alike
            c.push_str(match peer.transport {
                Transport::Wss => "ws",
                t => crate::registrar::transport_name(t),
            });
        }
        c
    }

    /// The domain we write in From/To of the calls we place.
    pub(crate) fn domain_for(&mut self, peer: Peer) -> String {
        match &self.hostname {
            Some(h) => h.clone(),
            None => {
                let addr = self.local_addr(peer);
                match addr.ip() {
                    IpAddr::V6(a) => format!("[{a}]"),
                    IpAddr::V4(a) => a.to_string(),
                }
            }
        }
    }
}

/// `ip:port`, IPv6 in brackets.
pub(crate) fn fmt_addr(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// Keeps a user part to what needs no escaping.
fn sanitize_user(u: &str) -> String {
    let s: String = u.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(*c)).collect();
    if s.is_empty() {
        "flowpbx".to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> Signalling {
        let txl = TransactionLayer::new(sip::transaction::Config::default());
        Signalling::new(
            txl,
            IdGenerator::new([7; 32]),
            Ports { udp: 5060, tcp: 5060, tls: 5061, wss: 8089, ws: 0 },
            Box::new(|_| "192.0.2.1".parse().unwrap()),
            None,
            "t".into(),
        )
    }

    #[test]
    fn tls_addresses_and_sips_contacts() {
        let mut s = sig();
        let tls = Peer { transport: Transport::Tls, addr: "198.51.100.2:40000".parse().unwrap() };
        let tcp = Peer { transport: Transport::Tcp, addr: "198.51.100.2:40000".parse().unwrap() };
        assert!(s.via_for(tls).starts_with("SIP/2.0/TLS 192.0.2.1:5061;branch="));
        assert_eq!(s.contact_for("101", tls), "sip:101@192.0.2.1:5061;transport=tls");
        assert_eq!(s.contact_for_scheme("101", tls, true), "sips:101@192.0.2.1:5061");
        // sips only where the hop is TLS
        assert_eq!(s.contact_for_scheme("101", tcp, true), "sip:101@192.0.2.1:5060;transport=tcp");
    }

    #[test]
    fn websocket_addresses_and_contacts() {
        let mut s = sig();
        let wss = Peer { transport: Transport::Wss, addr: "198.51.100.2:40000".parse().unwrap() };
        assert!(s.via_for(wss).starts_with("SIP/2.0/WSS 192.0.2.1:8089;branch="));
        assert_eq!(s.contact_for("101", wss), "sip:101@192.0.2.1:8089;transport=ws");
        // no sips: form over WebSocket
        assert_eq!(s.contact_for_scheme("101", wss, true), "sip:101@192.0.2.1:8089;transport=ws");
    }
}
