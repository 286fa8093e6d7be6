//! [`TlsListener`]: TLS connections accepted on a TCP listener, each handshake in a task of
//! its own (bounded in number and time), so a slow or silent client never holds up the
//! others. HTTPS uses it now; SIP over TLS and WSS can use it the same way.
//!
//! A handshake that negotiated `acme-tls/1` was a TLS-ALPN-01 validation: it is closed once
//! done (RFC 8737 §3) and never handed on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::store::ACME_TLS_ALPN;

/// Bounds on handshakes.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeLimits {
    /// A handshake not done by then is dropped.
    pub timeout: Duration,
    /// Handshakes in progress at once; further connections wait in the kernel's backlog.
    pub max_pending: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits { timeout: Duration::from_secs(10), max_pending: 256 }
    }
}

/// Connections that completed their TLS handshake.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp` with `config` (e.g. [`crate::CertStore::https_server_config`]).
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>, limits: HandshakeLimits) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), limits, tx));
        Ok(TlsListener { rx, local, task })
    }

    /// The next connection that completed its handshake.
    pub async fn accept(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.rx.recv().await
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(tcp: TcpListener, acceptor: TlsAcceptor, limits: HandshakeLimits, tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    let slots = Arc::new(Semaphore::new(limits.max_pending.max(1)));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, peer) = tokio::select! {
            r = tcp.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // out of descriptors and the like: wait, as axum's own loop does
                    tracing::debug!(error = %e, "TLS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tx.closed() => return,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(limits.timeout, acceptor.accept(stream)).await {
                Ok(Ok(mut tls)) => {
                    if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
                        tracing::debug!(%peer, "answered a TLS-ALPN-01 validation");
                        let _ = tls.shutdown().await;
                        return;
                    }
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}
