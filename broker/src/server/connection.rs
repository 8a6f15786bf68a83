//! One client connection: reads length-prefixed frames, dispatches them in order, and
//! writes their responses in the same order while later requests are already running.
//!
//! Memory is bounded before it is used: a frame whose declared size is negative or above
//! `socket.request.max.bytes` closes the connection before anything is allocated, and
//! every frame's bytes are taken from a broker-wide budget (`queued.max.request.bytes`)
//! before its body is read and given back once its response is written. At most
//! `MAX_IN_FLIGHT` requests per connection run at once; beyond that the reader waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::handlers::{self, Connection, Context, ResponseFuture};
use crate::metrics::ReasonLabels;
use crate::protocol::frame::{api_versions_fallback, classify, Inbound, Rejection};

/// Requests of one connection running at once.
const MAX_IN_FLIGHT: usize = 32;

/// Why reading stopped.
#[derive(Debug)]
enum ReadEnd {
    /// The client closed its side between frames.
    Eof,
    /// The connection must close; the reason is logged and counted.
    Refuse(&'static str, String),
}

/// The read side with its partial-frame buffer (kept across cancelled reads).
struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
    max_frame: usize,
    memory: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Reader {
    /// Reads the next frame. Cancel-safe: bytes and the budget already taken stay in
    /// `self` for the next call.
    async fn next_frame(&mut self) -> Result<(Bytes, OwnedSemaphorePermit), ReadEnd> {
        loop {
            if self.buf.len() >= 4 {
                let declared =
                    i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if declared < 0 || declared as usize > self.max_frame {
                    return Err(ReadEnd::Refuse(
                        "frame_too_large",
                        format!(
                            "frame of {declared} bytes exceeds socket.request.max.bytes ({})",
                            self.max_frame
                        ),
                    ));
                }
                let size = declared as usize;
                if self.permit.is_none() {
                    let permit = self
                        .memory
                        .clone()
                        .acquire_many_owned(size.max(1) as u32)
                        .await
                        .map_err(|_| ReadEnd::Refuse("shutdown", "broker is stopping".into()))?;
                    self.permit = Some(permit);
                }
                if self.buf.len() >= 4 + size {
                    self.buf.advance(4);
                    let frame = self.buf.split_to(size).freeze();
                    let permit = self
                        .permit
                        .take()
                        .ok_or_else(|| ReadEnd::Refuse("internal", "no permit".into()))?;
                    return Ok((frame, permit));
                }
                self.buf.reserve(4 + size - self.buf.len());
            } else {
                self.buf.reserve(4096);
            }
            let n = self
                .half
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| ReadEnd::Refuse("io", e.to_string()))?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Err(ReadEnd::Eof)
                } else {
                    Err(ReadEnd::Refuse(
                        "truncated_frame",
                        format!(
                            "connection closed inside a frame ({} bytes buffered)",
                            self.buf.len()
                        ),
                    ))
                };
            }
        }
    }
}

/// What the response queue holds: the response and the budget its request took.
type Queued = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = (crate::error::Result<Option<Bytes>>, OwnedSemaphorePermit),
            > + Send,
    >,
>;

/// Serves one connection until it closes, fails, or the broker shuts down.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Context>,
    connection: Connection,
    memory: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Err(err) = stream.set_nodelay(true) {
        debug!(%peer, error = %err, "failed to set TCP_NODELAY");
    }
    let (read_half, write_half) = stream.into_split();
    let mut reader = Reader {
        half: read_half,
        buf: BytesMut::with_capacity(4096),
        max_frame: ctx.config.socket_request_max_bytes,
        memory,
        permit: None,
    };
    let mut writer = BufWriter::with_capacity(64 * 1024, write_half);
    let mut pending: FuturesOrdered<Queued> = FuturesOrdered::new();
    let idle = ctx.config.connections_max_idle;
    let mut idle_deadline = tokio::time::Instant::now() + idle;
    let mut closing = false;
    loop {
        if closing && pending.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some((result, permit)) = pending.next(), if !pending.is_empty() => {
                if !write_ready(&mut writer, result, permit, &mut pending).await {
                    closing = true;
                    pending = FuturesOrdered::new();
                }
                idle_deadline = tokio::time::Instant::now() + idle;
            }
            frame = reader.next_frame(), if !closing && pending.len() < MAX_IN_FLIGHT => {
                idle_deadline = tokio::time::Instant::now() + idle;
                match frame {
                    Ok((frame, permit)) => match start(&ctx, &connection, frame) {
                        Ok(future) => pending.push_back(Box::pin(future.map(move |r| (r, permit)))),
                        Err(rejection) => {
                            refuse(&ctx, peer, rejection.category(), &rejection.to_string());
                            closing = true;
                        }
                    },
                    Err(ReadEnd::Eof) => closing = true,
                    Err(ReadEnd::Refuse(reason, detail)) => {
                        if reason != "io" {
                            refuse(&ctx, peer, reason, &detail);
                        }
                        closing = true;
                    }
                }
            }
            _ = tokio::time::sleep_until(idle_deadline), if pending.is_empty() && !closing => {
                debug!(%peer, idle_ms = idle.as_millis() as u64, "closing an idle connection");
                closing = true;
            }
            _ = shutdown.changed(), if !closing => closing = true,
        }
    }
    let _ = writer.flush().await;
    let _ = writer.into_inner().shutdown().await;
}

/// Classifies and dispatches one frame.
fn start(
    ctx: &Arc<Context>,
    connection: &Connection,
    frame: Bytes,
) -> Result<ResponseFuture, Rejection> {
    match classify(frame)? {
        Inbound::ApiVersionsFallback { correlation_id } => Ok(Box::pin(std::future::ready(
            api_versions_fallback(correlation_id).map(Some),
        ))),
        Inbound::Request { header, body } => handlers::dispatch(ctx, connection, header, body),
    }
}

fn refuse(ctx: &Context, peer: SocketAddr, reason: &'static str, detail: &str) {
    ctx.metrics
        .rejected_frames
        .get_or_create(&ReasonLabels { reason })
        .inc();
    warn!(%peer, reason, detail, "closing connection after a bad request");
}

/// Writes a response and every following one that is already done, then flushes.
/// Returns false when the connection must close.
async fn write_ready(
    writer: &mut BufWriter<OwnedWriteHalf>,
    first: crate::error::Result<Option<Bytes>>,
    permit: OwnedSemaphorePermit,
    pending: &mut FuturesOrdered<Queued>,
) -> bool {
    let mut next = Some((first, permit));
    while let Some((result, permit)) = next.take() {
        match result {
            Ok(Some(bytes)) => {
                if writer.write_all(&bytes).await.is_err() {
                    return false;
                }
            }
            Ok(None) => {}
            Err(err) => {
                warn!(error = %err, "failed to build a response; closing the connection");
                return false;
            }
        }
        drop(permit);
        if let Some(Some(ready)) = pending.next().now_or_never() {
            next = Some(ready);
        }
    }
    tokio::time::timeout(Duration::from_secs(30), writer.flush())
        .await
        .is_ok_and(|r| r.is_ok())
}
