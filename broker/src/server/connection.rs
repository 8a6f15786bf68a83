//! One client connection: reads length-prefixed frames, dispatches them in order, and
//! writes their responses in the same order while later requests are already running.
//!
//! Memory is bounded before it is used, the way Kafka bounds it: a frame whose declared
//! size is negative or above `socket.request.max.bytes` closes the connection before
//! anything is allocated, and a frame's whole size is reserved before its body is read,
//! from the broker-wide budget (`queued.max.request.bytes`) and from the connection's own
//! (`socket.request.max.bytes`, so one connection cannot take the whole budget), until
//! the response to it is written. A reserved frame can always be read to its end, so
//! partial frames never deadlock the budget; a client that stalls inside a frame is
//! disconnected after `socket.request.read.timeout.ms`, giving its reservation back.
//! One small frame (up to [`SMALL_FRAME`]) per connection is read from the connection's
//! own allowance instead, so that while large frames wait for budget every other client
//! can still be answered. At most `MAX_IN_FLIGHT` requests per connection run at once,
//! one Fetch at a time (its response may be `fetch.max.bytes` large), and a response the
//! client does not take within `socket.write.timeout.ms` closes the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::FutureExt;
use proto_kafka::protocol::SegmentedBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::handlers::{self, Connection, Context, ResponseFuture};
use crate::metrics::ReasonLabels;
use crate::protocol::frame::{api_versions_fallback, Rejection};
use crate::protocol::request::{decode, Decoded};

/// Requests of one connection running at once.
const MAX_IN_FLIGHT: usize = 32;
/// Frames up to this size may use the connection's own allowance (one at a time) rather
/// than wait for the broker-wide budget.
pub const SMALL_FRAME: usize = 64 * 1024;

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

/// The memory one frame holds until its response is written.
#[derive(Debug)]
enum Reservation {
    /// The connection's small-frame allowance.
    Allowance(#[allow(dead_code)] OwnedSemaphorePermit),
    /// The broker-wide budget and the connection's share of it.
    Budget {
        _total: OwnedSemaphorePermit,
        _connection: OwnedSemaphorePermit,
    },
}

type Acquiring = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Reservation, tokio::sync::AcquireError>> + Send>,
>;

/// The read side with its partial-frame buffer (kept across cancelled reads).
struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
    max_frame: usize,
    memory: Arc<Semaphore>,
    /// This connection's share of `memory` (`socket.request.max.bytes` permits).
    connection_memory: Arc<Semaphore>,
    /// One permit: the small-frame allowance.
    allowance: Arc<Semaphore>,
    /// The reservation for the frame being read.
    reserved: Option<Reservation>,
    /// A reservation being waited for; kept across cancelled reads so the wait keeps
    /// its place in the budget's queue.
    acquiring: Option<Acquiring>,
    read_timeout: Duration,
    /// When the frame being read must be complete.
    deadline: Option<Instant>,
}

impl Reader {
    /// Reserves memory for a frame of `size` bytes (whole, before reading its body).
    /// Cancel-safe: a wait in progress is kept in `self`.
    async fn reserve(&mut self, size: usize) -> Result<(), ReadEnd> {
        if self.acquiring.is_none() && size <= SMALL_FRAME {
            if let Ok(permit) = self.allowance.clone().try_acquire_owned() {
                self.reserved = Some(Reservation::Allowance(permit));
                return Ok(());
            }
        }
        let (connection, total) = (self.connection_memory.clone(), self.memory.clone());
        let permits = u32::try_from(size.max(1)).unwrap_or(u32::MAX);
        let acquiring = self.acquiring.get_or_insert_with(|| {
            Box::pin(async move {
                let connection = connection.acquire_many_owned(permits).await?;
                let total = total.acquire_many_owned(permits).await?;
                Ok(Reservation::Budget {
                    _total: total,
                    _connection: connection,
                })
            })
        });
        let reserved = acquiring.as_mut().await;
        self.acquiring = None;
        self.reserved =
            Some(reserved.map_err(|_| ReadEnd::Refuse("shutdown", "broker is stopping".into()))?);
        Ok(())
    }

    /// Reads the next frame. Cancel-safe: bytes read and the reservation covering them
    /// stay in `self` for the next call.
    async fn next_frame(&mut self) -> Result<(Bytes, Option<Reservation>), ReadEnd> {
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
                if self.reserved.is_none() {
                    self.reserve(size).await?;
                    // The client's time starts once the broker is ready to read.
                    self.deadline = Some(Instant::now() + self.read_timeout);
                }
                if self.buf.len() >= 4 + size {
                    self.buf.advance(4);
                    let frame = self.buf.split_to(size).freeze();
                    self.deadline = None;
                    return Ok((frame, self.reserved.take()));
                }
                want = (4 + size - self.buf.len()).min(READ_CHUNK);
            }
            self.buf.reserve(want);
            let mut limited = (&mut self.half).take(want as u64);
            let read = limited.read_buf(&mut self.buf);
            let n = match self.deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, read).await {
                    Ok(n) => n,
                    Err(_) => {
                        return Err(ReadEnd::Refuse(
                            "stalled_frame",
                            format!(
                                "a frame was not complete within socket.request.read.timeout.ms ({} ms; {} bytes buffered)",
                                self.read_timeout.as_millis(),
                                self.buf.len()
                            ),
                        ))
                    }
                },
                None => read.await,
            }
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
            if self.deadline.is_none() {
                // The first bytes of a frame: its header must follow in time too.
                self.deadline = Some(Instant::now() + self.read_timeout);
            }
        }
    }
}

/// What a finished request still holds until its response is written: its frame's
/// reservation, and for a Fetch the connection's fetch slot.
type Held = (Option<Reservation>, Option<OwnedSemaphorePermit>);
/// What the response queue holds: the response and what its request holds.
type Queued = std::pin::Pin<Box<dyn std::future::Future<Output = (Outcome, Held)> + Send>>;
/// A finished request: its response, none (acks=0), or a failure to build it.
type Outcome = crate::error::Result<Option<SegmentedBuf>>;

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
        connection_memory: Arc::new(Semaphore::new(ctx.config.socket_request_max_bytes)),
        allowance: Arc::new(Semaphore::new(1)),
        reserved: None,
        acquiring: None,
        read_timeout: ctx.config.request_read_timeout,
        deadline: None,
    };
    let write_timeout = ctx.config.write_timeout;
    let fetch_slot = Arc::new(Semaphore::new(1));
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
            Some((result, held)) = pending.next(), if !pending.is_empty() => {
                if !write_ready(&mut writer, result, held, &mut pending, write_timeout, peer).await {
                    closing = true;
                    pending = FuturesOrdered::new();
                }
                idle_deadline = tokio::time::Instant::now() + idle;
            }
            frame = reader.next_frame(), if !closing && pending.len() < MAX_IN_FLIGHT => {
                idle_deadline = tokio::time::Instant::now() + idle;
                match frame {
                    Ok((frame, reservation)) => match start(&ctx, &connection, frame, &fetch_slot) {
                        Ok(future) => pending.push_back(Box::pin(async move {
                            let (outcome, slot) = future.await;
                            (outcome, (reservation, slot))
                        })),
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

/// A request's future, with the connection's fetch slot once a Fetch holds it.
type Started = std::pin::Pin<
    Box<dyn std::future::Future<Output = (Outcome, Option<OwnedSemaphorePermit>)> + Send>,
>;

/// Decodes and dispatches one frame. A Fetch first waits for the connection's fetch
/// slot, held until its response is written: a client never has two large responses
/// buffered here at once.
fn start(
    ctx: &Arc<Context>,
    connection: &Connection,
    frame: Bytes,
    fetch_slot: &Arc<Semaphore>,
) -> Result<Started, Rejection> {
    Ok(match decode(frame)? {
        Decoded::ApiVersionsFallback { correlation_id } => Box::pin(std::future::ready((
            api_versions_fallback(correlation_id).map(Some),
            None,
        ))),
        Decoded::Request { header, request } => {
            let is_fetch = header.request_api_key == proto_kafka::messages::ApiKey::Fetch as i16;
            let future: ResponseFuture = handlers::dispatch(ctx, connection, header, request);
            if is_fetch {
                let slot = fetch_slot.clone();
                Box::pin(async move {
                    let permit = slot.acquire_owned().await.ok();
                    (future.await, permit)
                })
            } else {
                Box::pin(future.map(|outcome| (outcome, None)))
            }
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
/// Returns false when the connection must close: a write failed, or the client did not
/// take a response within `timeout` (it holds memory while it does not read).
async fn write_ready(
    writer: &mut BufWriter<OwnedWriteHalf>,
    first: Outcome,
    held: Held,
    pending: &mut FuturesOrdered<Queued>,
    timeout: Duration,
    peer: SocketAddr,
) -> bool {
    let mut next = Some((first, held));
    while let Some((result, held)) = next.take() {
        match result {
            Ok(Some(mut response)) => {
                match tokio::time::timeout(timeout, writer.write_all_buf(&mut response)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return false,
                    Err(_) => {
                        warn!(%peer, timeout_ms = timeout.as_millis() as u64, "closing a connection whose client does not read its responses");
                        return false;
                    }
                }
            }
            Ok(None) => {}
            Err(err) => {
                warn!(error = %err, "failed to build a response; closing the connection");
                return false;
            }
        }
        drop(held);
        if let Some(Some(ready)) = pending.next().now_or_never() {
            next = Some(ready);
        }
    }
    tokio::time::timeout(timeout, writer.flush())
        .await
        .is_ok_and(|r| r.is_ok())
}
