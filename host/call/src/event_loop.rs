//! The event loop: one OS thread owning the sockets (UDP, the TCP and TLS listeners and their
//! connections, via mio), the clock, and the [`Core`]. Each turn it waits for readiness, a
//! command (woken through a `mio::Waker`) or the core's next deadline; feeds the core; sends
//! what the core produced; and hands the core's store writes to the write-behind outbox.
//!
//! TCP and TLS are one kind of connection ([`Conn`]): a TLS one runs a rustls state machine
//! between the socket and the framer (`read_tls`/`process_new_packets`/`reader` in,
//! `writer`/`write_tls` out), everything else — framing, keep-alive pongs, limits per source,
//! idle timeouts, reuse by `(transport, address)` — is shared. SIP over WebSocket (RFC 7118)
//! is a connection too: WSS is TLS then WebSocket, plain WS (loopback testing) WebSocket on
//! TCP; a [`WsConn`] sits where the framer would (one SIP message per WebSocket message) and
//! what is sent is put in a frame. WebSocket connections are never opened by us: a phone that
//! registered over one gets its calls down the same connection.

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

use crate::sip_tls::{self, Clients};
use crate::websocket::{self, WsConn, WsEvent};

use crate::clock::Clock;
use crate::config::SipLogMode;
use crate::core::{Command, Core};
use crate::events::Shared;
use crate::persist::{Outbox, PersistOp};
use crate::siplog;

pub(crate) const UDP: Token = Token(0);
pub(crate) const LISTENER: Token = Token(1);
pub(crate) const WAKER: Token = Token(2);
pub(crate) const TLS_LISTENER: Token = Token(3);
pub(crate) const WSS_LISTENER: Token = Token(4);
pub(crate) const WS_LISTENER: Token = Token(5);
const FIRST_CONN: usize = 16;

/// Datagrams read per turn before the loop sends what they produced.
const UDP_BATCH: usize = 64;
/// Bytes a TCP connection may have queued for writing before it is closed as stuck.
const MAX_TCP_BACKLOG: usize = 1 << 20;
/// How long an accepted connection may go without one whole message.
const SILENT_TCP_LIMIT: Duration = Duration::from_secs(30);
/// How long the loop keeps running after a shutdown, to send the last BYEs.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);

/// One stream connection (TCP, or TLS over TCP).
struct Conn {
    stream: TcpStream,
    /// The transport (TCP or TLS) and the remote address: how the core names it.
    peer: Peer,
    /// The TLS session of a TLS connection.
    tls: Option<Box<rustls::Connection>>,
    framer: StreamFramer,
    /// The WebSocket layer of a WS/WSS connection (SIP messages come out of it, not the framer).
    ws: Option<WsConn>,
    out: VecDeque<Bytes>,
    /// Bytes of `out`'s front already written.
    written: usize,
    queued: usize,
    connecting: bool,
    /// Whether we opened it (a failure fails our requests, with the reason).
    outbound: bool,
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
    tls_listener: Option<TcpListener>,
    wss_listener: Option<TcpListener>,
    ws_listener: Option<TcpListener>,
    tls_server: Option<Arc<rustls::ServerConfig>>,
    tls_clients: Option<Clients>,
    tls_handshake_timeout: Duration,
    conns: HashMap<Token, Conn>,
    by_addr: HashMap<Peer, Token>,
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
        let tls_handshake_timeout = core.cfg.security.tls_handshake_timeout;
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
            tls_listener: None,
            wss_listener: None,
            ws_listener: None,
            tls_server: None,
            tls_clients: None,
            tls_handshake_timeout,
            conns: HashMap::new(),
            by_addr: HashMap::new(),
            next_token: FIRST_CONN,
            udp_pending: false,
            ops: Vec::new(),
            stop_at: None,
            next_idle_check: Instant::ZERO,
        }
    }

    /// Adds SIP over TLS: the listener (when there is one), the server configuration it
    /// hands every accepted connection, and the client configurations of outbound ones.
    pub(crate) fn with_tls(mut self, listener: Option<TcpListener>, server: Arc<rustls::ServerConfig>, clients: Clients) -> Loop {
        self.tls_listener = listener;
        self.tls_server = Some(server);
        self.tls_clients = Some(clients);
        self
    }

    /// Adds SIP over WebSocket: the WSS listener (served with the TLS server configuration of
    /// [`Loop::with_tls`]) and the plain WS one.
    pub(crate) fn with_ws(mut self, wss: Option<TcpListener>, ws: Option<TcpListener>) -> Loop {
        self.wss_listener = wss;
        self.ws_listener = ws;
        self
    }

    /// Runs until shutdown.
    pub(crate) fn run(mut self) {
        if let Some(u) = self.udp.as_mut()
            && let Err(e) = self.poll.registry().register(u, UDP, Interest::READABLE)
        {
            tracing::error!(error = %e, "cannot poll the SIP UDP socket");
        }
        if let Some(l) = self.listener.as_mut()
            && let Err(e) = self.poll.registry().register(l, LISTENER, Interest::READABLE)
        {
            tracing::error!(error = %e, "cannot poll the SIP TCP listener");
        }
        if let Some(l) = self.tls_listener.as_mut()
            && let Err(e) = self.poll.registry().register(l, TLS_LISTENER, Interest::READABLE)
        {
            tracing::error!(error = %e, "cannot poll the SIP TLS listener");
        }
        for (l, token, what) in [(self.wss_listener.as_mut(), WSS_LISTENER, "WSS"), (self.ws_listener.as_mut(), WS_LISTENER, "WS")] {
            if let Some(l) = l
                && let Err(e) = self.poll.registry().register(l, token, Interest::READABLE)
            {
                tracing::error!(error = %e, "cannot poll the SIP {what} listener");
            }
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
                && e.kind() != ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "SIP event loop poll failed");
                std::thread::sleep(Duration::from_millis(10));
            }
            let now = self.clock.now();
            let pending = std::mem::take(&mut self.udp_pending);
            let mut read_udp = pending;
            for ev in events.iter() {
                match ev.token() {
                    UDP => read_udp = true,
                    LISTENER => self.accept(now, Transport::Tcp),
                    TLS_LISTENER => self.accept(now, Transport::Tls),
                    WSS_LISTENER => self.accept(now, Transport::Wss),
                    WS_LISTENER => self.accept(now, Transport::Ws),
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
                // every second: a TLS handshake's deadline is a few seconds
                self.next_idle_check = now + Duration::from_secs(1);
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
            Transport::Tcp | Transport::Tls | Transport::Ws | Transport::Wss => self.send_stream(now, t.dest, t.payload),
        }
    }

    // ----- TCP and TLS -----

    fn accept(&mut self, now: Instant, transport: Transport) {
        loop {
            let l = match transport {
                Transport::Tls => self.tls_listener.as_ref(),
                Transport::Wss => self.wss_listener.as_ref(),
                Transport::Ws => self.ws_listener.as_ref(),
                _ => self.listener.as_ref(),
            };
            let Some(l) = l else { return };
            match l.accept() {
                Ok((stream, addr)) => {
                    // TCP and TLS connections share the limits: per IP and overall
                    let per_ip = self.conns.values().filter(|c| c.peer.addr.ip() == addr.ip()).count();
                    if self.conns.len() >= self.max_tcp || per_ip >= self.max_tcp_per_ip {
                        tracing::warn!(%addr, transport = transport.as_str(), "SIP connection refused: too many connections");
                        continue;
                    }
                    if self.core.guard.is_banned(addr.ip(), now) {
                        continue;
                    }
                    let tls = match transport {
                        Transport::Tls | Transport::Wss => {
                            let Some(cfg) = self.tls_server.clone() else { continue };
                            match rustls::ServerConnection::new(cfg) {
                                Ok(c) => Some(Box::new(rustls::Connection::Server(c))),
                                Err(e) => {
                                    tracing::warn!(error = %e, "SIP TLS connection refused: no TLS session");
                                    continue;
                                }
                            }
                        }
                        _ => None,
                    };
                    let _ = stream.set_nodelay(true);
                    self.add_conn(now, stream, Peer { transport, addr }, tls, false);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, transport = transport.as_str(), "SIP accept failed");
                    return;
                }
            }
        }
    }

    fn add_conn(&mut self, now: Instant, mut stream: TcpStream, peer: Peer, mut tls: Option<Box<rustls::Connection>>, connecting: bool) -> Option<Token> {
        let token = Token(self.next_token);
        self.next_token += 1;
        let interest = if connecting { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
            tracing::warn!(error = %e, "cannot poll a SIP connection");
            return None;
        }
        if let Some(t) = tls.as_mut() {
            // plaintext rustls may hold for us (the rest waits in `out`)
            t.set_buffer_limit(Some(MAX_TCP_BACKLOG));
        }
        if let Some(old) = self.by_addr.insert(peer, token) {
            self.close(old, false, None);
            self.by_addr.insert(peer, token);
        }
        self.conns.insert(
            token,
            Conn {
                stream,
                peer,
                tls,
                framer: StreamFramer::default(),
                ws: matches!(peer.transport, Transport::Ws | Transport::Wss).then(|| WsConn::new(sip::msg::MAX_MESSAGE_SIZE)),
                out: VecDeque::new(),
                written: 0,
                queued: 0,
                connecting,
                outbound: connecting,
                writable_interest: connecting,
                last_active: now,
                spoke: connecting,
                opened: now,
            },
        );
        Some(token)
    }

    /// Opens a connection to `dest` (TCP, or TLS as a client of the trunk it belongs to).
    fn connect(&mut self, now: Instant, dest: Peer) -> Result<Token, Option<String>> {
        let tls = match dest.transport {
            // a WebSocket phone is reached only on the connection it opened
            Transport::Ws | Transport::Wss => return Err(Some("the WebSocket connection is closed".into())),
            Transport::Tls => {
                let Some(clients) = self.tls_clients.as_ref() else { return Err(Some("SIP over TLS is off".into())) };
                // a trunk's certificate is checked against its host name (unless its
                // tls_verify is off); anything else against the address
                let (name, verify) = match self.core.dir.tls_peer(dest.addr) {
                    Some((host, verify)) => (sip_tls::server_name(Some(host), dest.addr), verify),
                    None => (sip_tls::server_name(None, dest.addr), true),
                };
                let cfg = if verify { clients.verify.clone() } else { clients.no_verify.clone() };
                match rustls::ClientConnection::new(cfg, name) {
                    Ok(c) => Some(Box::new(rustls::Connection::Client(c))),
                    Err(e) => return Err(Some(sip_tls::describe(&e))),
                }
            }
            _ => None,
        };
        match TcpStream::connect(dest.addr) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                self.add_conn(now, s, dest, tls, true).ok_or(None)
            }
            Err(e) => {
                tracing::debug!(error = %e, dest = %dest.addr, transport = dest.transport.as_str(), "SIP connect failed");
                Err(None)
            }
        }
    }

    fn send_stream(&mut self, now: Instant, dest: Peer, payload: Bytes) {
        let token = match self.by_addr.get(&dest) {
            Some(t) => *t,
            None => match self.connect(now, dest) {
                Ok(t) => t,
                Err(why) => return self.stream_failed(now, dest, why),
            },
        };
        let Some(c) = self.conns.get_mut(&token) else { return };
        let payload = match c.ws.as_ref() {
            Some(ws) if ws.is_open() => websocket::encode_message(&payload),
            // before the handshake (we never open one) or after a close: nothing to say
            Some(_) => return self.stream_failed(now, dest, None),
            None => payload,
        };
        c.queued += payload.len();
        c.out.push_back(payload);
        if c.queued > MAX_TCP_BACKLOG {
            tracing::warn!(addr = %dest.addr, "SIP peer does not read: connection closed");
            return self.close(token, true, None);
        }
        if !c.connecting {
            self.write(token);
        }
    }

    fn stream_failed(&mut self, now: Instant, peer: Peer, why: Option<String>) {
        self.shared.counters.send_errors.fetch_add(1, Ordering::Relaxed);
        self.core.handle_transport_error(now, peer, why);
    }

    fn conn_event(&mut self, now: Instant, token: Token, readable: bool, writable: bool, buf: &mut [u8]) {
        let Some(c) = self.conns.get_mut(&token) else { return };
        if c.connecting && (writable || readable) {
            match c.stream.take_error() {
                Ok(None) if c.stream.peer_addr().is_ok() => c.connecting = false,
                Ok(None) => {}
                _ => return self.close(token, true, None),
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
        let mut ws_events = Vec::new();
        let mut close = false;
        let mut tls_error = None;
        let peer;
        {
            let Some(c) = self.conns.get_mut(&token) else { return };
            peer = c.peer;
            loop {
                match c.tls.as_deref_mut() {
                    None => match c.stream.read(buf) {
                        Ok(0) => {
                            close = true;
                            break;
                        }
                        Ok(n) => {
                            c.last_active = now;
                            match c.ws.as_mut() {
                                Some(ws) => ws.push(&buf[..n], &mut ws_events),
                                None => c.framer.push(&buf[..n]),
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => {
                            close = true;
                            break;
                        }
                    },
                    Some(tls) => {
                        let mut blocked = false;
                        match tls.read_tls(&mut c.stream) {
                            Ok(0) => close = true,
                            Ok(_) => c.last_active = now,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => blocked = true,
                            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                            Err(_) => {
                                close = true;
                                break;
                            }
                        }
                        if let Err(e) = tls.process_new_packets() {
                            tls_error = Some(e);
                            close = true;
                            break;
                        }
                        loop {
                            match tls.reader().read(buf) {
                                // the peer's close_notify
                                Ok(0) => {
                                    close = true;
                                    break;
                                }
                                Ok(n) => match c.ws.as_mut() {
                                    Some(ws) => ws.push(&buf[..n], &mut ws_events),
                                    None => c.framer.push(&buf[..n]),
                                },
                                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                                Err(_) => {
                                    close = true;
                                    break;
                                }
                            }
                        }
                        if close || blocked {
                            break;
                        }
                    }
                }
                while let Some(f) = c.framer.next_frame() {
                    frames.push(f);
                }
                if c.framer.is_broken() {
                    close = true;
                    break;
                }
            }
            while let Some(f) = c.framer.next_frame() {
                frames.push(f);
            }
        }
        // handshake messages, or the alert of a failed handshake
        if self.conns.get(&token).is_some_and(|c| c.tls.as_ref().is_some_and(|t| t.wants_write()) && !c.connecting) {
            self.write(token);
        }
        if !ws_events.is_empty() && self.ws_events(now, token, peer, ws_events) {
            close = true;
        }
        for f in frames {
            self.shared.counters.received.fetch_add(1, Ordering::Relaxed);
            match f {
                Ok(Frame::Ping) => self.send_stream(now, peer, Bytes::from_static(b"\r\n")),
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
            let why = tls_error.map(|e| {
                let why = sip_tls::describe(&e);
                tracing::debug!(addr = %peer.addr, %why, "SIP TLS connection failed");
                why
            });
            // a handshake that failed is a failure to send (a trunk hears why); a peer that
            // closed is not
            let failed = why.is_some() && self.conns.get(&token).is_some_and(|c| c.outbound);
            self.close(token, failed, why);
        }
    }

    /// Acts on what a WebSocket connection produced; true when it must close.
    fn ws_events(&mut self, now: Instant, token: Token, peer: Peer, events: Vec<WsEvent>) -> bool {
        for ev in events {
            match ev {
                WsEvent::Send(bytes) => {
                    if let Some(c) = self.conns.get_mut(&token) {
                        c.queued += bytes.len();
                        c.out.push_back(bytes);
                        self.write(token);
                    }
                }
                WsEvent::Bad(why) => {
                    self.shared.counters.ws_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(addr = %peer.addr, why, "SIP WebSocket protocol error");
                }
                WsEvent::Close => {
                    // what was queued (the refusal, the close frame) has been tried; the rest
                    // is not owed to anyone
                    if let Some(c) = self.conns.get_mut(&token) {
                        c.out.clear();
                        c.queued = 0;
                    }
                    return true;
                }
                WsEvent::Message(data) => {
                    self.shared.counters.received.fetch_add(1, Ordering::Relaxed);
                    if data.iter().all(|&b| b == b'\r' || b == b'\n') {
                        continue; // keep-alive
                    }
                    match sip::Message::parse(&data) {
                        Ok(m) => {
                            if let Some(c) = self.conns.get_mut(&token) {
                                c.spoke = true;
                            }
                            siplog::log(self.log, "recv", peer, &data);
                            self.core.handle_frame(now, peer, Ok(m));
                        }
                        Err(e) => {
                            // not SIP (or not readable): dropped and counted; a request
                            // readable enough is answered 400 by the core
                            self.shared.counters.ws_dropped.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(addr = %peer.addr, error = %e, "a WebSocket message that is not SIP");
                            self.core.handle_frame(now, peer, Err(e));
                        }
                    }
                    self.flush(now);
                }
            }
        }
        false
    }

    fn write(&mut self, token: Token) {
        let mut failed = false;
        let Some(c) = self.conns.get_mut(&token) else { return };
        match c.tls.as_deref_mut() {
            None => {
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
            }
            Some(tls) => {
                // plaintext into the session (it buffers until the handshake is done)…
                while let Some(front) = c.out.front() {
                    match tls.writer().write(&front[c.written..]) {
                        Ok(0) => break,
                        Ok(n) => {
                            c.written += n;
                            if c.written == front.len() {
                                c.queued -= front.len();
                                c.written = 0;
                                c.out.pop_front();
                            }
                        }
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                }
                // …and records onto the socket
                while !failed && tls.wants_write() {
                    match tls.write_tls(&mut c.stream) {
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => failed = true,
                    }
                }
            }
        }
        if failed {
            return self.close(token, true, None);
        }
        let want = !c.out.is_empty() || c.tls.as_ref().is_some_and(|t| t.wants_write());
        if want != c.writable_interest {
            c.writable_interest = want;
            let interest = if want { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            let _ = self.poll.registry().reregister(&mut c.stream, token, interest);
        }
    }

    /// Closes a connection; when it `failed` (or unsent messages are lost) the core hears of
    /// it, with `why` when there is more to say than "not reachable".
    fn close(&mut self, token: Token, failed: bool, why: Option<String>) {
        let Some(mut c) = self.conns.remove(&token) else { return };
        let _ = self.poll.registry().deregister(&mut c.stream);
        if self.by_addr.get(&c.peer) == Some(&token) {
            self.by_addr.remove(&c.peer);
        }
        if failed || !c.out.is_empty() {
            let now = self.clock.now();
            self.stream_failed(now, c.peer, why);
        }
    }

    fn close_idle(&mut self, now: Instant) {
        let idle: Vec<(Token, bool)> = self
            .conns
            .iter()
            .filter_map(|(t, c)| {
                let handshaking = c.tls.as_ref().is_some_and(|s| s.is_handshaking());
                if handshaking && now - c.opened > self.tls_handshake_timeout {
                    return Some((*t, true));
                }
                let idle = now - c.last_active > self.tcp_idle || (!c.spoke && now - c.opened > SILENT_TCP_LIMIT);
                idle.then_some((*t, false))
            })
            .collect();
        for (t, handshake) in idle {
            if handshake {
                let outbound = self.conns.get(&t).is_some_and(|c| c.outbound);
                tracing::debug!(addr = ?self.conns.get(&t).map(|c| c.peer.addr), "SIP TLS handshake timed out: connection closed");
                self.close(t, outbound, Some("TLS handshake timed out".into()));
            } else {
                self.close(t, false, None);
            }
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
