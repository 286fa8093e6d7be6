//! The event loop: one OS thread owning the sockets (UDP, the TCP listener and its
//! connections, via mio), the clock, and the [`Core`]. Each turn it waits for readiness, a
//! command (woken through a `mio::Waker`) or the core's next deadline; feeds the core; sends
//! what the core produced; and hands the core's store writes to the write-behind outbox.
//!
//! TLS and WebSocket transports plug in beside TCP: a connection that yields frames to the
//! core and takes bytes to write (see [`Conn`]).

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use sip::msg::Frame;
use sip::transaction::{Peer, Transmit, Transport};
use sip::{Instant, StreamFramer};

use crate::clock::Clock;
use crate::config::SipLogMode;
use crate::core::{Command, Core};
use crate::events::Shared;
use crate::persist::{Outbox, PersistOp};
use crate::siplog;

pub(crate) const UDP: Token = Token(0);
pub(crate) const LISTENER: Token = Token(1);
pub(crate) const WAKER: Token = Token(2);
const FIRST_CONN: usize = 16;

/// Datagrams read per turn before the loop sends what they produced.
const UDP_BATCH: usize = 64;
/// Bytes a TCP connection may have queued for writing before it is closed as stuck.
const MAX_TCP_BACKLOG: usize = 1 << 20;
/// How long an accepted connection may go without one whole message.
const SILENT_TCP_LIMIT: Duration = Duration::from_secs(30);
/// How long the loop keeps running after a shutdown, to send the last BYEs.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);

/// One stream connection.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    framer: StreamFramer,
    out: VecDeque<Bytes>,
    /// Bytes of `out`'s front already written.
    written: usize,
    queued: usize,
    connecting: bool,
    writable_interest: bool,
    last_active: Instant,
    /// Whether a whole message ever arrived (a connection that sends none is closed soon).
    spoke: bool,
    opened: Instant,
}

pub(crate) struct Loop {
    pub poll: Poll,
    pub udp: Option<UdpSocket>,
    pub listener: Option<TcpListener>,
    pub core: Core,
    pub clock: Clock,
    pub commands: Receiver<Command>,
    pub outbox: Arc<Outbox>,
    pub shared: Arc<Shared>,
    pub log: SipLogMode,
    pub tcp_idle: Duration,
    pub max_tcp: usize,
    pub max_tcp_per_ip: usize,
    conns: HashMap<Token, Conn>,
    by_addr: HashMap<SocketAddr, Token>,
    next_token: usize,
    udp_pending: bool,
    ops: Vec<PersistOp>,
    stop_at: Option<Instant>,
    next_idle_check: Instant,
}

impl Loop {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        poll: Poll,
        udp: Option<UdpSocket>,
        listener: Option<TcpListener>,
        core: Core,
        clock: Clock,
        commands: Receiver<Command>,
        outbox: Arc<Outbox>,
        shared: Arc<Shared>,
        log: SipLogMode,
        tcp_idle: Duration,
    ) -> Loop {
        let max_tcp = core.cfg.security.max_tcp_connections;
        let max_tcp_per_ip = core.cfg.security.max_tcp_per_ip;
        Loop {
            poll,
            udp,
            listener,
            core,
            clock,
            commands,
            outbox,
            shared,
            log,
            tcp_idle,
            max_tcp,
            max_tcp_per_ip,
            conns: HashMap::new(),
            by_addr: HashMap::new(),
            next_token: FIRST_CONN,
            udp_pending: false,
            ops: Vec::new(),
            stop_at: None,
            next_idle_check: Instant::ZERO,
        }
    }

    /// Runs until shutdown.
    pub(crate) fn run(mut self) {
        if let Some(u) = self.udp.as_mut()
            && let Err(e) = self.poll.registry().register(u, UDP, Interest::READABLE) {
                tracing::error!(error = %e, "cannot poll the SIP UDP socket");
            }
        if let Some(l) = self.listener.as_mut()
            && let Err(e) = self.poll.registry().register(l, LISTENER, Interest::READABLE) {
                tracing::error!(error = %e, "cannot poll the SIP TCP listener");
            }
        self.shared.running.store(true, Ordering::Release);
        self.core.start(self.clock.now());
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; sip::msg::MAX_MESSAGE_SIZE + 1];
        loop {
            let now = self.clock.now();
            let timeout = if self.udp_pending {
                Some(Duration::ZERO)
            } else {
                let next = [self.core.poll_timeout(), self.stop_at].into_iter().flatten().min();
                next.map(|t| t - now)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != ErrorKind::Interrupted {
                    tracing::error!(error = %e, "SIP event loop poll failed");
                    std::thread::sleep(Duration::from_millis(10));
                }
            let now = self.clock.now();
            let pending = std::mem::take(&mut self.udp_pending);
            let mut read_udp = pending;
            for ev in events.iter() {
                match ev.token() {
                    UDP => read_udp = true,
                    LISTENER => self.accept(now),
                    WAKER => {}
                    t => self.conn_event(now, t, ev.is_readable(), ev.is_writable(), &mut buf),
                }
            }
            self.commands(now);
            if read_udp {
                self.read_udp(now, &mut buf);
            }
            let now = self.clock.now();
            if self.core.poll_timeout().is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
            }
            self.flush(now);
            if now >= self.next_idle_check {
                self.next_idle_check = now + Duration::from_secs(10);
                self.close_idle(now);
                if let Ok(mut g) = self.shared.guard.lock() {
                    *g = self.core.guard.stats();
                }
            }
            if self.core.shutting_down && self.stop_at.is_none() {
                self.stop_at = Some(now + SHUTDOWN_GRACE);
            }
            if self.stop_at.is_some_and(|t| now >= t) && self.core.is_stopped() {
                break;
            }
        }
        self.core.take_ops(&mut self.ops);
        self.outbox.extend(&mut self.ops);
        self.shared.running.store(false, Ordering::Release);
        tracing::debug!("SIP event loop stopped");
    }

    fn commands(&mut self, now: Instant) {
        loop {
            match self.commands.try_recv() {
                Ok(cmd) => self.core.handle_command(now, cmd),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // Every handle is gone: stop as if asked to.
                    if !self.core.shutting_down {
                        self.core.handle_command(now, Command::Shutdown);
                    }
                    break;
                }
            }
        }
    }

    fn read_udp(&mut self, now: Instant, buf: &mut [u8]) {
        for _ in 0..UDP_BATCH {
            let Some(udp) = self.udp.as_ref() else { return };
            match udp.recv_from(buf) {
                Ok((n, addr)) => {
                    self.shared.counters.received.fetch_add(1, Ordering::Relaxed);
                    let peer = Peer { transport: Transport::Udp, addr };
                    if n > sip::msg::MAX_MESSAGE_SIZE {
                        tracing::debug!(%addr, "over-size datagram dropped");
                        continue;
                    }
                    let data = &buf[..n];
                    if data.iter().all(|&b| b == b'\r' || b == b'\n' || b == 0) {
                        continue; // keep-alive
                    }
                    siplog::log(self.log, "recv", peer, data);
                    self.core.handle_datagram(now, peer, data);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors surface here on some systems; nothing to do but go on.
                    tracing::debug!(error = %e, "SIP UDP receive error");
                    return;
                }
            }
            // Send what this datagram produced before reading the next batch.
            self.flush(now);
        }
        self.udp_pending = true;
    }

    /// Sends everything the core produced and hands its store writes on.
    fn flush(&mut self, now: Instant) {
        while let Some(t) = self.core.poll_transmit() {
            self.send(now, t);
        }
        self.core.take_ops(&mut self.ops);
        self.outbox.extend(&mut self.ops);
    }

    fn send(&mut self, now: Instant, t: Transmit) {
        siplog::log(self.log, "send", t.dest, &t.payload);
        self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
        match t.dest.transport {
            Transport::Udp => {
                let Some(udp) = self.udp.as_ref() else { return };
                if let Err(e) = udp.send_to(&t.payload, t.dest.addr) {
                    self.shared.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, dest = %t.dest.addr, "SIP UDP send failed");
                }
            }
            Transport::Tcp => self.send_tcp(now, t.dest.addr, t.payload),
            other => {
                self.shared.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(transport = other.as_str(), "no such transport yet");
            }
        }
    }

    // ----- TCP -----

    fn accept(&mut self, now: Instant) {
        loop {
            let Some(l) = self.listener.as_ref() else { return };
            match l.accept() {
                Ok((stream, addr)) => {
                    let per_ip = self.conns.values().filter(|c| c.peer.ip() == addr.ip()).count();
                    if self.conns.len() >= self.max_tcp || per_ip >= self.max_tcp_per_ip {
                        tracing::warn!(%addr, "SIP TCP connection refused: too many connections");
                        continue;
                    }
                    if self.core.guard.is_banned(addr.ip(), now) {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.add_conn(now, stream, addr, false);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "SIP TCP accept failed");
                    return;
                }
            }
        }
    }

    fn add_conn(&mut self, now: Instant, mut stream: TcpStream, peer: SocketAddr, connecting: bool) -> Option<Token> {
        let token = Token(self.next_token);
        self.next_token += 1;
        let interest = if connecting { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
            tracing::warn!(error = %e, "cannot poll a SIP TCP connection");
            return None;
        }
        if let Some(old) = self.by_addr.insert(peer, token) {
            self.close(old, false);
            self.by_addr.insert(peer, token);
        }
        self.conns.insert(
            token,
            Conn {
                stream,
                peer,
                framer: StreamFramer::default(),
                out: VecDeque::new(),
                written: 0,
                queued: 0,
                connecting,
                writable_interest: connecting,
                last_active: now,
                spoke: connecting,
                opened: now,
            },
        );
        Some(token)
    }

    fn send_tcp(&mut self, now: Instant, addr: SocketAddr, payload: Bytes) {
        let token = match self.by_addr.get(&addr) {
            Some(t) => *t,
            None => match TcpStream::connect(addr) {
                Ok(s) => match self.add_conn(now, s, addr, true) {
                    Some(t) => t,
                    None => return self.tcp_failed(now, addr),
                },
                Err(e) => {
                    tracing::debug!(error = %e, %addr, "SIP TCP connect failed");
                    return self.tcp_failed(now, addr);
                }
            },
        };
        let Some(c) = self.conns.get_mut(&token) else { return };
        c.queued += payload.len();
        c.out.push_back(payload);
        if c.queued > MAX_TCP_BACKLOG {
            tracing::warn!(%addr, "SIP TCP peer does not read: connection closed");
            return self.close(token, true);
        }
        if !c.connecting {
            self.write(token);
        }
    }

    fn tcp_failed(&mut self, now: Instant, addr: SocketAddr) {
        self.shared.counters.send_errors.fetch_add(1, Ordering::Relaxed);
        self.core.handle_transport_error(now, Peer { transport: Transport::Tcp, addr });
    }

    fn conn_event(&mut self, now: Instant, token: Token, readable: bool, writable: bool, buf: &mut [u8]) {
        let Some(c) = self.conns.get_mut(&token) else { return };
        if c.connecting && (writable || readable) {
            match c.stream.take_error() {
                Ok(None) if c.stream.peer_addr().is_ok() => c.connecting = false,
                Ok(None) => {}
                _ => return self.close(token, true),
            }
        }
        if writable && !c.connecting {
            self.write(token);
        }
        if readable {
            self.read(now, token, buf);
        }
    }

    fn read(&mut self, now: Instant, token: Token, buf: &mut [u8]) {
        let mut frames = Vec::new();
        let mut close = false;
        let peer;
        {
            let Some(c) = self.conns.get_mut(&token) else { return };
            peer = Peer { transport: Transport::Tcp, addr: c.peer };
            loop {
                match c.stream.read(buf) {
                    Ok(0) => {
                        close = true;
                        break;
                    }
                    Ok(n) => {
                        c.last_active = now;
                        c.framer.push(&buf[..n]);
                        while let Some(f) = c.framer.next_frame() {
                            frames.push(f);
                        }
                        if c.framer.is_broken() {
                            close = true;
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        close = true;
                        break;
                    }
                }
            }
        }
        for f in frames {
            self.shared.counters.received.fetch_add(1, Ordering::Relaxed);
            match f {
                Ok(Frame::Ping) => self.send_tcp(now, peer.addr, Bytes::from_static(b"\r\n")),
                Ok(Frame::Message(m)) => {
                    if let Some(c) = self.conns.get_mut(&token) {
                        c.spoke = true;
                    }
                    if self.log != SipLogMode::Off {
                        siplog::log(self.log, "recv", peer, &m.to_bytes());
                    }
                    self.core.handle_frame(now, peer, Ok(m));
                }
                Err(e) => self.core.handle_frame(now, peer, Err(e)),
            }
            self.flush(now);
        }
        if close {
            self.close(token, false);
        }
    }

    fn write(&mut self, token: Token) {
        let mut failed = false;
        let Some(c) = self.conns.get_mut(&token) else { return };
        while let Some(front) = c.out.front() {
            match c.stream.write(&front[c.written..]) {
                Ok(n) => {
                    c.written += n;
                    if c.written == front.len() {
                        c.queued -= front.len();
                        c.written = 0;
                        c.out.pop_front();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            return self.close(token, true);
        }
        let want = !c.out.is_empty();
        if want != c.writable_interest {
            c.writable_interest = want;
            let interest = if want { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            let _ = self.poll.registry().reregister(&mut c.stream, token, interest);
        }
    }

    fn close(&mut self, token: Token, failed: bool) {
        let Some(mut c) = self.conns.remove(&token) else { return };
        let _ = self.poll.registry().deregister(&mut c.stream);
        if self.by_addr.get(&c.peer) == Some(&token) {
            self.by_addr.remove(&c.peer);
        }
        if failed || !c.out.is_empty() {
            let now = self.clock.now();
            self.tcp_failed(now, c.peer);
        }
    }

    fn close_idle(&mut self, now: Instant) {
        let idle: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| now - c.last_active > self.tcp_idle || (!c.spoke && now - c.opened > SILENT_TCP_LIMIT))
            .map(|(t, _)| *t)
            .collect();
        for t in idle {
            self.close(t, false);
        }
    }
}

/// The local address the kernel would use towards `dest` (no packet is sent).
pub(crate) fn route_source(dest: IpAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if dest.is_ipv4() { "0.0.0.0:0".parse().ok()? } else { "[::]:0".parse().ok()? };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(SocketAddr::new(dest, 9)).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// Whether an address is on the public internet (not private, loopback, link-local, CGNAT,
/// unique-local).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_private() || a.is_loopback() || a.is_link_local() || a.is_unspecified() || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            !(a.is_loopback() || a.is_unspecified() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// The locator the core uses: the bind address when it is specific, else the route's source
/// (cached); the external address for public peers when we are not public ourselves.
pub(crate) fn locator(bind: IpAddr, external: Option<IpAddr>) -> crate::core::Locator {
    let mut cache: HashMap<IpAddr, IpAddr> = HashMap::new();
    Box::new(move |dest: IpAddr| {
        let local = if !bind.is_unspecified() {
            bind
        } else {
            if cache.len() > 4096 {
                cache.clear();
            }
            *cache.entry(dest).or_insert_with(|| route_source(dest).unwrap_or(IpAddr::from([127, 0, 0, 1])))
        };
        match external {
            Some(ext) if is_public(dest) && !is_public(local) => ext,
            _ => local,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for p in ["10.1.2.3", "192.168.0.1", "172.16.5.5", "127.0.0.1", "169.254.1.1", "100.64.0.1", "fd00::1", "fe80::1", "::1"] {
            assert!(!is_public(p.parse().unwrap()), "{p}");
        }
        for p in ["8.8.8.8", "203.0.113.5", "100.128.0.1", "2001:db8::1"] {
            assert!(is_public(p.parse().unwrap()), "{p}");
        }
    }

    #[test]
    fn locator_prefers_external_for_public_peers() {
        let mut l = locator("192.168.1.10".parse().unwrap(), Some("203.0.113.7".parse().unwrap()));
        assert_eq!(l("8.8.8.8".parse().unwrap()), "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(l("192.168.1.20".parse().unwrap()), "192.168.1.10".parse::<IpAddr>().unwrap());
        let mut l = locator("0.0.0.0".parse().unwrap(), None);
        assert_eq!(l("127.0.0.1".parse().unwrap()), "127.0.0.1".parse::<IpAddr>().unwrap());
    }
}
