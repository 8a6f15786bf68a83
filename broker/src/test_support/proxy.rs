//! A loopback TCP proxy that a test can cut and heal: cutting drops every open connection
//! and refuses new ones, as a network partition between a client and its server would,
//! while the server itself keeps running for other clients.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

#[derive(Debug, Default)]
struct State {
    cut: AtomicBool,
    connections: Mutex<Vec<AbortHandle>>,
}

impl State {
    fn connections(&self) -> std::sync::MutexGuard<'_, Vec<AbortHandle>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A proxy to one target address; stops when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let accept = tokio::spawn(accept(listener, target, state.clone()));
        Ok(TcpProxy {
            addr,
            state,
            accept,
        })
    }

    /// Where clients connect to reach the target through the proxy.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` URL of the proxy, for `etcd.endpoints`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection and refuses new ones until `heal`.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for connection in self.state.connections().drain(..) {
            connection.abort();
        }
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, state: Arc<State>) {
    while let Ok((mut client, _)) = listener.accept().await {
        if state.cut.load(Ordering::SeqCst) {
            // Refused: closed at once, as a reset would be.
            continue;
        }
        let forward = tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(target).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
        let mut connections = state.connections();
        connections.retain(|c| !c.is_finished());
        connections.push(forward.abort_handle());
    }
}
