//! One client connection: reads length-prefixed frames, dispatches them in order, and
//! writes their responses in the same order while later requests are already running.
//!
//! Memory is bounded before it is used: a frame whose declared size is negative or above
//! `socket.request.max.bytes` closes the connection before anything is allocated, and
//! every byte read is first taken from a broker-wide budget (`queued.max.request.bytes`)
//! and given back once the response to its request is written. At most
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
use crate::protocol::frame::{api_versions_fallback, Rejection};
use crate::protocol::request::{decode, Decoded};

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

/// Bytes read from the socket at a time once a frame's size is known.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes read at a time while the next frame's size is unknown.
const HEADER_CHUNK: usize = 4096;

/// The read side with its partial-frame buffer (kept across cancelled reads). `held`
/// is the share of the broker-wide budget covering exactly the bytes in `buf`.
struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
    max_frame: usize,
    memory: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl Reader {
    fn hold(&mut self, permit: OwnedSemaphorePermit) {
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
    }

    /// Splits `n` bytes' worth of budget off what is held.
    fn release(&mut self, n: usize) -> Option<OwnedSemaphorePermit> {
        let held = self.held.as_mut()?;
        if held.num_permits() == n {
            return self.held.take();
        }
        held.split(n)
    }

    /// Reads the next frame. Cancel-safe: bytes read and the budget covering them stay
    /// in `self` for the next call. The budget is taken as bytes arrive, never for what
    /// a frame merely declares, so a slow or lying client holds only what it sent.
    async fn next_frame(&mut self) -> Result<(Bytes, Option<OwnedSemaphorePermit>), ReadEnd> {
        loop {
            let mut want = HEADER_CHUNK;
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
                if self.buf.len() >= 4 + size {
                    let _ = self.release(4);
                    self.buf.advance(4);
                    let frame = self.buf.split_to(size).freeze();
                    let permit = if size > 0 { self.release(size) } else { None };
                    return Ok((frame, permit));
                }
                want = (4 + size - self.buf.len()).min(READ_CHUNK);
            }
            let permit = self
                .memory
                .clone()
                .acquire_many_owned(want as u32)
                .await
                .map_err(|_| ReadEnd::Refuse("shutdown", "broker is stopping".into()))?;
            self.buf.reserve(want);
            let n = (&mut self.half)
                .take(want as u64)
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| ReadEnd::Refuse("io", e.to_string()))?;
            let mut permit = permit;
            if n < want {
                // Give back the part of the budget the read did not use.
                drop(permit.split(want - n));
            }
            if n > 0 {
                self.hold(permit);
            }
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
    Box<dyn std::future::Future<Output = (Outcome, Option<OwnedSemaphorePermit>)> + Send>,
>;
/// A finished request: its response bytes, none (acks=0), or a failure to build them.
type Outcome = crate::error::Result<Option<Bytes>>;

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
        held: None,
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

/// Decodes and dispatches one frame.
fn start(
    ctx: &Arc<Context>,
    connection: &Connection,
    frame: Bytes,
) -> Result<ResponseFuture, Rejection> {
    Ok(match decode(frame)? {
        Decoded::ApiVersionsFallback { correlation_id } => Box::pin(std::future::ready(
            api_versions_fallback(correlation_id).map(Some),
        )),
        Decoded::Request { header, request } => {
            handlers::dispatch(ctx, connection, header, request)
        }
    })
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
    first: Outcome,
    permit: Option<OwnedSemaphorePermit>,
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
