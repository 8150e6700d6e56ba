//! `tickfan._core.FastLane`: the extension's own WebSocket listener for `/ws/market-data`.
//!
//! One tokio runtime on one thread of its own serves every lane connection: tokio-tungstenite
//! with a 4 KiB read buffer. The protocol is not here: the lane hands what Python must decide
//! (a connection opened, a message, a connection gone) to the event loop through an event queue
//! and a wake-up socket ([`FastLane::fileno`], [`FastLane::take_events`]), and Python's
//! `Session` answers through the core's per-connection queue and [`FastLane::close`]. Data
//! frames go from the core's queue to the socket without Python: the connection's writer is
//! woken (every lane connection among the core's ready ones by one [`FastLane::wake_ready`]
//! call, which unparks the lane's runtime once; a single one by [`FastLane::wake`]), drains its
//! queue under the core lock, releases it, then feeds every frame and flushes once per burst.
//!
//! Rules (see docs/architecture.md, "The fast lane"): no lane thread attaches to the
//! interpreter, so it never creates, clones or drops a Python object (frames whose Python `str`
//! is cached go back to Python to be dropped, see [`PyFrame::needs_interpreter`]); the core
//! lock is held only to drain; a panic in a connection's reader or writer, or while handing an
//! event to Python, is caught, counted, reported to Python (logged there) and closes that
//! connection with 1011. Large frames go out in fragments of at most [`WRITE_CHUNK`] bytes, so
//! tungstenite's output buffer (which never shrinks) stays bounded by [`WRITE_BUFFER`] plus one
//! fragment.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::core::{lock, PyCore, SharedCore};
use crate::frame::PyFrame;

/// The path the lane serves (the Granian endpoint's).
pub const PATH: &str = "/ws/market-data";
/// Frames a writer drains per burst (one write and one flush for all of them).
const BURST_FRAMES: i64 = 256;
/// The read buffer of every lane connection (tungstenite's default is 128 KiB).
const READ_BUFFER: usize = 4096;
/// The largest frame payload the lane writes: a longer message goes out as fragments (RFC 6455
/// section 5.4). tungstenite copies each frame into a per-connection output buffer whose
/// capacity it never gives back, so this bounds that buffer instead of the largest frame seen.
pub const WRITE_CHUNK: usize = 4096;
/// tungstenite's write threshold: fed frames collect in its output buffer until they pass this
/// many bytes or the burst's flush, so a burst of small frames is one write, not one per frame.
/// The buffer's capacity is kept per connection, at most about twice this plus one
/// [`WRITE_CHUNK`] frame (see docs/architecture.md, "Memory", for the measured choice).
pub const WRITE_BUFFER: usize = 4096;
/// Test-only fault injection: `where:marker` items separated by spaces, `where` one of `reader`
/// (a message containing `marker` arrives), `writer` (a frame containing it is about to be
/// written), `handoff` (a message containing it is handed to Python). Read once per lane.
pub const PANIC_ENV: &str = "TICKFAN_FAST_LANE_PANIC";
/// After its close frame, how long a connection waits for the client's close.
const CLOSE_REPLY: Duration = Duration::from_secs(1);

type Ws = WebSocketStream<TcpStream>;

/// What the lane hands to Python.
#[derive(Debug, PartialEq)]
pub enum Event {
    Open {
        lane: u64,
        peer: String,
    },
    Text {
        lane: u64,
        text: String,
    },
    Binary {
        lane: u64,
        data: Vec<u8>,
    },
    /// A message over the lane's size limit (Python answers `message_too_large`, 1009).
    TooLarge {
        lane: u64,
    },
    Gone {
        lane: u64,
    },
    Panic {
        lane: u64,
        what: String,
    },
}

/// The session's close decision, carried out by the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct Close {
    pub frames: Vec<String>,
    pub code: u16,
    pub reason: String,
    /// Drop the frames the writer has in hand, unwritten (a slow consumer).
    pub discard: bool,
}

/// One lane connection's shared state (its writer task, Python's calls).
#[derive(Default)]
pub struct Conn {
    notify: Notify,
    /// The core connection id once Python attached a session (0 before).
    conn_id: AtomicI64,
    close: Mutex<Option<Close>>,
    gone: AtomicBool,
    in_hand: AtomicUsize,
    written: AtomicU64,
}

impl Conn {
    /// What the writer must do next (its state machine, without I/O).
    pub fn next_step(&self) -> Step {
        if self.gone.load(Ordering::Acquire) {
            return Step::PeerGone;
        }
        if let Some(close) = self.close.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Step::Close(close);
        }
        match self.conn_id.load(Ordering::Acquire) {
            0 => Step::Wait,
            id => Step::Drain(id),
        }
    }

    /// While a burst is being written: whether it must be abandoned (a discarding close).
    pub fn discard_requested(&self) -> bool {
        self.gone.load(Ordering::Acquire)
            || self
                .close
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_some_and(|c| c.discard)
    }
}

/// The writer's next step.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// The client closed or the socket broke: flush what tungstenite owes it, end.
    PeerGone,
    /// The session decided to close: final frames, then the close frame.
    Close(Close),
    /// Drain the core queue of this connection id.
    Drain(i64),
    /// No session yet: wait for a wake-up.
    Wait,
}

/// Where a test-only panic is injected ([`PANIC_ENV`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    Reader,
    Writer,
    Handoff,
}

/// The injected panics of one lane (none unless [`PANIC_ENV`] is set).
#[derive(Debug, Default, PartialEq)]
pub struct Faults(Vec<(Fault, Vec<u8>)>);

impl Faults {
    /// Parse [`PANIC_ENV`]'s value; unknown items are ignored.
    pub fn parse(spec: &str) -> Faults {
        let items = spec.split_whitespace().filter_map(|item| {
            let (at, marker) = item.split_once(':')?;
            let at = match at {
                "reader" => Fault::Reader,
                "writer" => Fault::Writer,
                "handoff" => Fault::Handoff,
                _ => return None,
            };
            (!marker.is_empty()).then(|| (at, marker.as_bytes().to_vec()))
        });
        Faults(items.collect())
    }

    /// Whether any fault is set (never in production).
    pub fn armed(&self) -> bool {
        !self.0.is_empty()
    }

    /// Panic if a fault is set `at` this point for a payload containing its marker.
    pub fn trip(&self, at: Fault, payload: &[u8]) {
        for (place, marker) in &self.0 {
            if *place == at
                && payload
                    .windows(marker.len())
                    .any(|w| w == marker.as_slice())
            {
                panic!("injected by {PANIC_ENV} ({at:?})");
            }
        }
    }
}

/// A panic's message, as far as it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

/// The close a panicked connection gets: 1011, the frames in hand dropped.
fn internal_error() -> Close {
    Close {
        frames: Vec::new(),
        code: 1011,
        reason: String::new(),
        discard: true,
    }
}

/// A text message as frames of at most [`WRITE_CHUNK`] payload bytes, split at UTF-8 character
/// boundaries (so every fragment is valid UTF-8 on its own, for lenient clients too).
pub fn text_frames(payload: bytes::Bytes) -> Vec<Message> {
    if payload.len() <= WRITE_CHUNK {
        return vec![text_message(payload)];
    }
    let mut out = Vec::with_capacity(payload.len() / WRITE_CHUNK + 2);
    let mut start = 0;
    while start < payload.len() {
        let mut end = (start + WRITE_CHUNK).min(payload.len());
        // A UTF-8 continuation byte is 0b10xx_xxxx: never cut before one.
        while end < payload.len() && end > start + 1 && payload[end] & 0xC0 == 0x80 {
            end -= 1;
        }
        let data = if start == 0 {
            Data::Text
        } else {
            Data::Continue
        };
        let fin = end == payload.len();
        out.push(Message::Frame(Frame::message(
            payload.slice(start..end),
            OpCode::Data(data),
            fin,
        )));
        start = end;
    }
    out
}

/// Feed one text message (fragmented if large); the caller flushes.
async fn feed_text(
    sink: &mut SplitSink<Ws, Message>,
    payload: bytes::Bytes,
) -> Result<(), WsError> {
    for m in text_frames(payload) {
        sink.feed(m).await?;
    }
    Ok(())
}

/// Every lane connection's WebSocket settings (the read buffer is set here, explicitly).
pub fn ws_config(max_message_bytes: usize) -> WebSocketConfig {
    let limit = max_message_bytes.max(1) * 4 + 1024;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
}

/// Which attached lane connection has which core connection id, and the ones found ready for
/// the lane's thread to wake: a notify from another thread unparks the lane's runtime (one
/// eventfd write) per connection, one from its own thread schedules the writer for nothing.
#[derive(Default)]
pub struct Wakes {
    by_conn_id: Mutex<HashMap<i64, Arc<Conn>>>,
    woken: Mutex<Vec<Arc<Conn>>>,
    /// `woken` went non-empty.
    notify: Notify,
}

impl Wakes {
    /// `conn` carries the core connection `conn_id` (a later one with the same id replaces it).
    pub fn attach(&self, conn_id: i64, conn: &Arc<Conn>) {
        self.by_conn_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conn_id, Arc::clone(conn));
    }

    /// `conn` is gone: forget its id (unless the id now names another connection).
    pub fn forget(&self, conn: &Arc<Conn>) {
        let conn_id = conn.conn_id.load(Ordering::Acquire);
        let mut by_conn_id = self.by_conn_id.lock().unwrap_or_else(|e| e.into_inner());
        if by_conn_id
            .get(&conn_id)
            .is_some_and(|c| Arc::ptr_eq(c, conn))
        {
            by_conn_id.remove(&conn_id);
        }
    }

    /// Queue the attached connections among the core's `ready` ids for [`Wakes::run`] (one
    /// notify for all of them); the other ids, in order.
    pub fn wake_ready(&self, ready: &[u64]) -> Vec<u64> {
        let mut rest = Vec::new();
        let by_conn_id = self.by_conn_id.lock().unwrap_or_else(|e| e.into_inner());
        let mut woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = woken.is_empty();
        for &id in ready {
            match by_conn_id.get(&(id as i64)) {
                Some(conn) => woken.push(Arc::clone(conn)),
                None => rest.push(id),
            }
        }
        if was_empty && !woken.is_empty() {
            self.notify.notify_one();
        }
        rest
    }

    /// On the lane's thread, for ever: notify the writers [`Wakes::wake_ready`] queued.
    pub async fn run(&self) {
        let mut batch = Vec::new();
        loop {
            self.notify.notified().await;
            std::mem::swap(
                &mut batch,
                &mut *self.woken.lock().unwrap_or_else(|e| e.into_inner()),
            );
            for conn in batch.drain(..) {
                conn.notify.notify_one();
            }
        }
    }
}

#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    frames: AtomicU64,
    bytes: AtomicU64,
    write_ns: AtomicU64,
    bursts: AtomicU64,
    panics: AtomicU64,
}

struct Lane {
    /// The core the writers drain; the hub swaps it on a new epoch or a loaded checkpoint.
    core: Mutex<SharedCore>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    wakes: Wakes,
    events: Mutex<Vec<Event>>,
    /// Frames holding a Python `str` that the lane is done with: dropped by Python.
    graveyard: Mutex<Vec<PyFrame>>,
    wake_tx: UnixStream,
    next_id: AtomicU64,
    stopping: Notify,
    stopped: AtomicBool,
    allowed_origins: Vec<String>,
    max_message_bytes: usize,
    close_timeout: Duration,
    stats: Stats,
    faults: Faults,
}

impl Lane {
    /// A connection's task panicked: count it, tell Python (which logs it); the close to send.
    fn panicked(&self, lane: u64, panic: &(dyn std::any::Any + Send)) -> Close {
        self.stats.panics.fetch_add(1, Ordering::Relaxed);
        self.post(Event::Panic {
            lane,
            what: panic_message(panic),
        });
        internal_error()
    }

    fn post(&self, event: Event) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = events.is_empty();
        events.push(event);
        drop(events);
        if was_empty {
            // Full means a wake-up is already pending; either way Python will look.
            let _ = (&self.wake_tx).write(&[1]);
        }
    }

    fn bury(&self, frames: impl IntoIterator<Item = PyFrame>) {
        let mut keep = Vec::new();
        for f in frames {
            if f.needs_interpreter() {
                keep.push(f);
            }
        }
        if !keep.is_empty() {
            self.graveyard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(keep);
        }
    }

    fn conn(&self, lane: u64) -> Option<Arc<Conn>> {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&lane)
            .cloned()
    }
}

fn text_message(bytes: bytes::Bytes) -> Message {
    // SAFETY: frame bytes are always built from a Rust `str` or a Python `str` (UTF-8).
    Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(bytes) })
}

async fn accept_loop(lane: Arc<Lane>, listener: TcpListener) {
    loop {
        tokio::select! {
            _ = lane.stopping.notified() => return,
            accepted = listener.accept() => {
                if let Ok((tcp, peer)) = accepted {
                    let _ = tcp.set_nodelay(true);
                    let shared = Arc::clone(&lane);
                    tokio::spawn(async move {
                        // Reader and writer catch their own panics (1011); this is the rest.
                        let guarded = AssertUnwindSafe(serve(Arc::clone(&shared), tcp, peer));
                        if let Err(panic) = guarded.catch_unwind().await {
                            shared.panicked(0, &*panic);
                        }
                    });
                }
            }
        }
    }
}

async fn serve(lane: Arc<Lane>, tcp: TcpStream, peer: SocketAddr) {
    let origins = lane.allowed_origins.clone();
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let refuse = |status: StatusCode| {
            let mut r = ErrorResponse::new(None);
            *r.status_mut() = status;
            Err(r)
        };
        if req.uri().path() != PATH {
            return refuse(StatusCode::NOT_FOUND);
        }
        if let Some(origin) = req.headers().get("origin") {
            let origin = origin.to_str().unwrap_or("");
            if !origins.is_empty() && !origins.iter().any(|o| o == origin) {
                return refuse(StatusCode::FORBIDDEN);
            }
        }
        Ok(resp)
    };
    let config = ws_config(lane.max_message_bytes);
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(tcp, check, Some(config)).await
    else {
        return;
    };
    let id = lane.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let conn = Arc::new(Conn::default());
    lane.conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, Arc::clone(&conn));
    lane.stats.connections.fetch_add(1, Ordering::Relaxed);
    // From here on the connection is forgotten (and Python told) however this task ends.
    let _registered = Registered { lane: &lane, id };
    lane.post(Event::Open {
        lane: id,
        peer: peer.ip().to_string(),
    });
    let (mut sink, mut stream) = ws.split();
    let reader = async {
        let guarded = AssertUnwindSafe(read_loop(&lane, &conn, id, &mut stream));
        if let Err(panic) = guarded.catch_unwind().await {
            let close = lane.panicked(id, &*panic);
            *conn.close.lock().unwrap_or_else(|e| e.into_inner()) = Some(close);
            conn.notify.notify_one();
            // Keep reading (and ignoring) until the close handshake ends: unread input at
            // close time would make the kernel reset the connection over the close frame.
            while let Some(Ok(m)) = tokio::select! {
                m = stream.next() => m,
                _ = wait_closed(&conn) => None,
            } {
                if m.is_close() {
                    break;
                }
            }
        }
        conn.gone.store(true, Ordering::Release);
        conn.notify.notify_one();
    };
    let writer = async {
        let mut owed = Vec::new();
        let guarded = AssertUnwindSafe(write_loop(&lane, &conn, id, &mut sink, &mut owed));
        let outcome = match guarded.catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => Some(lane.panicked(id, &*panic)),
        };
        if let Some(close) = outcome {
            let finish = async {
                for m in owed {
                    sink.feed(m).await?;
                }
                for f in close.frames {
                    feed_text(&mut sink, bytes::Bytes::from(f)).await?;
                }
                sink.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::from(close.code),
                    reason: close.reason.into(),
                })))
                .await
            };
            let _ = tokio::time::timeout(lane.close_timeout, finish).await;
        }
        conn.in_hand.store(usize::MAX, Ordering::Release);
    };
    tokio::join!(reader, writer);
}

/// A registered lane connection: dropped (also while unwinding), it is forgotten and Python is
/// told it is gone.
struct Registered<'a> {
    lane: &'a Lane,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let lane = self.lane;
        let conn = lane
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        if let Some(conn) = conn {
            lane.wakes.forget(&conn);
        }
        lane.stats.connections.fetch_sub(1, Ordering::Relaxed);
        lane.post(Event::Gone { lane: self.id });
    }
}

async fn read_loop(lane: &Lane, conn: &Conn, id: u64, stream: &mut SplitStream<Ws>) {
    loop {
        let next = tokio::select! {
            m = stream.next() => m,
            // The writer sent its close and the client did not answer in time.
            _ = wait_closed(conn) => None,
        };
        match next {
            Some(Ok(Message::Text(t))) => {
                lane.faults.trip(Fault::Reader, t.as_bytes());
                lane.post(Event::Text {
                    lane: id,
                    text: t.as_str().to_owned(),
                })
            }
            Some(Ok(Message::Binary(b))) => lane.post(Event::Binary {
                lane: id,
                data: b.to_vec(),
            }),
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => {}
            Some(Err(WsError::Capacity(_))) => {
                // The session answers 1009; the stream cannot be read further meanwhile.
                lane.post(Event::TooLarge { lane: id });
                wait_closed(conn).await;
                break;
            }
            Some(Err(_)) => break,
        }
    }
}

/// Resolves `CLOSE_REPLY` after the writer finished (its close frame sent), never before.
async fn wait_closed(conn: &Conn) {
    while conn.in_hand.load(Ordering::Acquire) != usize::MAX {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(CLOSE_REPLY).await;
}

/// Write the connection's frames until it must close (`Some`: the close to send, after `owed`,
/// the fragments that end a message the client began) or is gone.
async fn write_loop(
    lane: &Lane,
    conn: &Conn,
    id: u64,
    sink: &mut SplitSink<Ws, Message>,
    owed: &mut Vec<Message>,
) -> Option<Close> {
    loop {
        match conn.next_step() {
            Step::PeerGone => {
                let _ = tokio::time::timeout(CLOSE_REPLY, sink.flush()).await;
                break None;
            }
            Step::Close(close) => break Some(close),
            Step::Wait => conn.notify.notified().await,
            Step::Drain(conn_id) => {
                let drained = catch_unwind(AssertUnwindSafe(|| {
                    let shared = Arc::clone(&lane.core.lock().unwrap_or_else(|e| e.into_inner()));
                    let mut core = lock(&shared);
                    let frames = core.drain_frames(conn_id, BURST_FRAMES).collect::<Vec<_>>();
                    // A degraded connection recovers below the low-water mark, as on Granian.
                    core.after_drain(conn_id);
                    frames
                }));
                let frames = match drained {
                    Ok(frames) => frames,
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic".to_string());
                        lane.stats.panics.fetch_add(1, Ordering::Relaxed);
                        lane.post(Event::Panic { lane: id, what });
                        break Some(Close {
                            frames: Vec::new(),
                            code: 1011,
                            reason: String::new(),
                            discard: true,
                        });
                    }
                };
                if frames.is_empty() {
                    conn.notify.notified().await;
                    continue;
                }
                let n = frames.len();
                conn.in_hand.store(n, Ordering::Release);
                let started = Instant::now();
                let nbytes: usize = frames.iter().map(|f| f.bytes().len()).sum();
                let payloads: Vec<bytes::Bytes> = frames.iter().map(|f| f.bytes()).collect();
                lane.bury(frames);
                if lane.faults.armed() {
                    for p in &payloads {
                        lane.faults.trip(Fault::Writer, p);
                    }
                }
                // The fragments of the message being written, and whether the client got any.
                let mut current = std::collections::VecDeque::new();
                let mut begun = false;
                let result = {
                    let mut burst = pin!(async {
                        for p in payloads {
                            if p.len() <= WRITE_CHUNK {
                                sink.feed(text_message(p)).await?;
                                continue;
                            }
                            current = text_frames(p).into();
                            begun = false;
                            // Popped once accepted: a feed dropped while pending took nothing.
                            while let Some(m) = current.front().cloned() {
                                sink.feed(m).await?;
                                current.pop_front();
                                begun = true;
                            }
                        }
                        sink.flush().await
                    });
                    loop {
                        tokio::select! {
                            r = &mut burst => break Some(r),
                            _ = conn.notify.notified() => {
                                if conn.discard_requested() {
                                    break None;
                                }
                            }
                        }
                    }
                };
                conn.in_hand.store(0, Ordering::Release);
                if begun {
                    // An abandoned burst still owes the client the rest of a message it began.
                    owed.extend(current);
                }
                match result {
                    Some(Ok(())) => {
                        conn.written.fetch_add(n as u64, Ordering::Relaxed);
                        let s = &lane.stats;
                        s.frames.fetch_add(n as u64, Ordering::Relaxed);
                        s.bytes.fetch_add(nbytes as u64, Ordering::Relaxed);
                        s.bursts.fetch_add(1, Ordering::Relaxed);
                        s.write_ns
                            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        // Frames may have come in while writing, without a wake-up left.
                        conn.notify.notify_one();
                    }
                    Some(Err(_)) => break None,
                    None => {} // discarded: the close comes next
                }
            }
        }
    }
}

impl Event {
    fn lane(&self) -> u64 {
        match self {
            Event::Open { lane, .. }
            | Event::Text { lane, .. }
            | Event::Binary { lane, .. }
            | Event::TooLarge { lane }
            | Event::Gone { lane }
            | Event::Panic { lane, .. } => *lane,
        }
    }
}

type EventItem<'py> = (&'static str, u64, Bound<'py, PyAny>);

impl FastLane {
    fn event_item<'py>(&self, py: Python<'py>, e: Event) -> PyResult<EventItem<'py>> {
        Ok(match e {
            Event::Open { lane, peer } => ("open", lane, peer.into_pyobject(py)?.into_any()),
            Event::Text { lane, text } => {
                self.lane.faults.trip(Fault::Handoff, text.as_bytes());
                ("text", lane, text.into_pyobject(py)?.into_any())
            }
            Event::Binary { lane, data } => ("binary", lane, PyBytes::new(py, &data).into_any()),
            Event::TooLarge { lane } => ("too_large", lane, py.None().into_bound(py)),
            Event::Gone { lane } => ("gone", lane, py.None().into_bound(py)),
            Event::Panic { lane, what } => ("panic", lane, what.into_pyobject(py)?.into_any()),
        })
    }
}

/// The lane as Python holds it; see the module doc.
#[pyclass(module = "tickfan._core", name = "FastLane", frozen)]
pub struct FastLane {
    lane: Arc<Lane>,
    wake_rx: UnixStream,
    thread: Mutex<Option<JoinHandle<()>>>,
    port: u16,
}

fn bind(host: &str, port: u16) -> std::io::Result<StdListener> {
    use socket2::{Domain, Socket, Type};
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
        .next()
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "no address"))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    // Workers of one server share the port (each runs its own lane).
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

#[pymethods]
impl FastLane {
    /// Bind `host:port` now (an error is an `OSError`) and start serving on a thread of its own.
    #[new]
    #[pyo3(signature = (core, host, port, allowed_origins, max_message_bytes, close_timeout_s))]
    fn new(
        core: &Bound<'_, PyCore>,
        host: &str,
        port: u16,
        allowed_origins: Vec<String>,
        max_message_bytes: usize,
        close_timeout_s: f64,
    ) -> PyResult<Self> {
        let std_listener = bind(host, port).map_err(|e| {
            PyOSError::new_err(format!("fast lane: cannot listen on {host}:{port}: {e}"))
        })?;
        let port = std_listener.local_addr().map(|a| a.port()).unwrap_or(port);
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let lane = Arc::new(Lane {
            core: Mutex::new(core.borrow().shared()),
            conns: Mutex::new(HashMap::new()),
            wakes: Wakes::default(),
            events: Mutex::new(Vec::new()),
            graveyard: Mutex::new(Vec::new()),
            wake_tx,
            next_id: AtomicU64::new(0),
            stopping: Notify::new(),
            stopped: AtomicBool::new(false),
            allowed_origins,
            max_message_bytes,
            close_timeout: Duration::from_secs_f64(close_timeout_s.max(0.001)),
            stats: Stats::default(),
            faults: Faults::parse(&std::env::var(PANIC_ENV).unwrap_or_default()),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::clone(&lane);
        let thread = std::thread::Builder::new()
            .name("tickfan-fast-lane".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(_) => return,
                    };
                    let wakes = Arc::clone(&shared);
                    tokio::spawn(async move { wakes.wakes.run().await });
                    accept_loop(Arc::clone(&shared), listener).await;
                    // Stopping: the sessions were closed (1001) by Python; give their writers
                    // the close timeout to finish, then drop whatever is left.
                    let deadline = Instant::now() + shared.close_timeout + CLOSE_REPLY;
                    while Instant::now() < deadline
                        && !shared
                            .conns
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .is_empty()
                    {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                });
            })?;
        Ok(FastLane {
            lane,
            wake_rx,
            thread: Mutex::new(Some(thread)),
            port,
        })
    }

    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// The descriptor that becomes readable when events are waiting (`loop.add_reader`).
    fn fileno(&self) -> i32 {
        self.wake_rx.as_raw_fd()
    }

    /// The waiting events, oldest first: `(kind, lane_id, payload)` with kind one of `open`
    /// (payload: the peer address), `text` (str), `binary` (bytes), `too_large`, `gone`,
    /// `panic` (what panicked). Also drops the frames the lane handed back.
    fn take_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.wake_rx).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        let events =
            std::mem::take(&mut *self.lane.events.lock().unwrap_or_else(|e| e.into_inner()));
        drop(std::mem::take(
            &mut *self
                .lane
                .graveyard
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        ));
        let list = PyList::empty(py);
        for e in events {
            let lane_id = e.lane();
            // The hand-off of one event panicking becomes that connection's `panic` event (the
            // other events still go through); Python closes it with 1011.
            let item = match catch_unwind(AssertUnwindSafe(|| self.event_item(py, e))) {
                Ok(item) => item?,
                Err(panic) => {
                    let what = panic_message(&*panic);
                    self.lane.stats.panics.fetch_add(1, Ordering::Relaxed);
                    ("panic", lane_id, what.into_pyobject(py)?.into_any())
                }
            };
            list.append(PyTuple::new(
                py,
                [
                    item.0.into_pyobject(py)?.into_any(),
                    item.1.into_pyobject(py)?.into_any(),
                    item.2,
                ],
            )?)?;
        }
        Ok(list)
    }

    /// Bind a lane connection to its session's core connection id (then its writer drains it).
    fn attach(&self, lane_id: u64, conn_id: i64) {
        // Under the registry's lock: a connection that is being forgotten is not attached.
        let conns = self.lane.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(conn) = conns.get(&lane_id) {
            conn.conn_id.store(conn_id, Ordering::Release);
            self.lane.wakes.attach(conn_id, conn);
            conn.notify.notify_one();
        }
    }

    /// `core.take_ready()`, waking the attached lane connections among them here (one unpark of
    /// the lane's runtime for all); returns the other ids, for the caller to wake.
    fn wake_ready<'py>(
        &self,
        py: Python<'py>,
        core: &Bound<'py, PyCore>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut core = core.borrow_mut();
        let ready = lock(&core.shared()).take_ready();
        let rest = self.lane.wakes.wake_ready(&ready);
        core.id_list(py, &rest)
    }

    /// The connection's core queue went non-empty.
    fn wake(&self, lane_id: u64) {
        if let Some(conn) = self.lane.conn(lane_id) {
            conn.notify.notify_one();
        }
    }

    /// Carry out the session's close: `frames`, then the close frame `code` (`reason`);
    /// `discard`: drop the frames the writer has in hand. Bounded by the close timeout.
    #[pyo3(signature = (lane_id, frames, code, reason="", discard=false))]
    fn close(&self, lane_id: u64, frames: Vec<String>, code: u16, reason: &str, discard: bool) {
        if let Some(conn) = self.lane.conn(lane_id) {
            *conn.close.lock().unwrap_or_else(|e| e.into_inner()) = Some(Close {
                frames,
                code,
                reason: reason.to_owned(),
                discard,
            });
            conn.notify.notify_one();
        }
    }

    /// `(frames in hand, frames written)` of a connection's writer (the send watchdog's view).
    fn progress(&self, lane_id: u64) -> (usize, u64) {
        self.lane.conn(lane_id).map_or((0, 0), |c| {
            let in_hand = c.in_hand.load(Ordering::Acquire);
            (
                if in_hand == usize::MAX { 0 } else { in_hand },
                c.written.load(Ordering::Relaxed),
            )
        })
    }

    /// Drain `core` from now on (the hub replaced its core: a new epoch, a loaded checkpoint).
    /// The sessions of the old core were closed with 1012; their ids are unknown to `core`.
    fn use_core(&self, core: &Bound<'_, PyCore>) {
        *self.lane.core.lock().unwrap_or_else(|e| e.into_inner()) = core.borrow().shared();
    }

    /// Counters: connections, frames, bytes, bursts, write_ns (time spent writing), panics.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.lane.stats;
        let d = PyDict::new(py);
        d.set_item("connections", s.connections.load(Ordering::Relaxed))?;
        d.set_item("frames", s.frames.load(Ordering::Relaxed))?;
        d.set_item("bytes", s.bytes.load(Ordering::Relaxed))?;
        d.set_item("bursts", s.bursts.load(Ordering::Relaxed))?;
        d.set_item("write_ns", s.write_ns.load(Ordering::Relaxed))?;
        d.set_item("panics", s.panics.load(Ordering::Relaxed))?;
        Ok(d)
    }

    /// Stop accepting, let the writers finish their closes (bounded), stop the thread.
    /// Call after the sessions were closed; idempotent. Detached from the interpreter meanwhile.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        if self.lane.stopped.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.lane.stopping.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            py.detach(|| t.join())
                .map_err(|_| PyRuntimeError::new_err("the fast lane's thread panicked"))?;
        }
        // Frames the lane still holds are dropped here, attached.
        drop(std::mem::take(
            &mut *self
                .lane
                .graveyard
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(discard: bool) -> Close {
        Close {
            frames: vec!["{\"type\":\"error\"}".into()],
            code: 1013,
            reason: String::new(),
            discard,
        }
    }

    fn attached(wakes: &Wakes, conn_id: i64) -> Arc<Conn> {
        let conn = Arc::new(Conn::default());
        conn.conn_id.store(conn_id, Ordering::Release);
        wakes.attach(conn_id, &conn);
        conn
    }

    /// Whether `conn`'s writer would wake now (a notify is pending).
    fn notified(conn: &Conn) -> bool {
        conn.notify.notified().now_or_never().is_some()
    }

    #[test]
    fn wake_ready_wakes_attached_connections_on_the_lane_thread_and_returns_the_rest() {
        let wakes = Arc::new(Wakes::default());
        let (one, three) = (attached(&wakes, 1), attached(&wakes, 3));
        let unattached = Arc::new(Conn::default());
        assert_eq!(wakes.wake_ready(&[1, 2, 3, 4]), vec![2, 4]);
        assert_eq!(wakes.wake_ready(&[3]), Vec::<u64>::new());
        // Nothing is notified from the caller's thread: the lane's thread does it.
        assert!(!notified(&one) && !notified(&three));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let lane_thread = Arc::clone(&wakes);
            let run = tokio::spawn(async move { lane_thread.run().await });
            tokio::time::timeout(Duration::from_secs(5), async {
                one.notify.notified().await;
                three.notify.notified().await;
            })
            .await
            .expect("both attached connections are woken");
            // Woken again after the first batch was handed out.
            assert_eq!(wakes.wake_ready(&[1]), Vec::<u64>::new());
            tokio::time::timeout(Duration::from_secs(5), one.notify.notified())
                .await
                .expect("woken again");
            run.abort();
        });
        assert!(!notified(&unattached));
        assert!(wakes.woken.lock().unwrap().is_empty());
    }

    #[test]
    fn a_gone_connection_is_forgotten_but_not_its_successor_under_the_same_id() {
        let wakes = Wakes::default();
        let old = attached(&wakes, 5);
        let new = attached(&wakes, 5); // attached again under the same id
        wakes.forget(&old);
        assert_eq!(wakes.wake_ready(&[5]), Vec::<u64>::new());
        assert!(Arc::ptr_eq(&wakes.woken.lock().unwrap()[0], &new));
        wakes.forget(&new);
        assert_eq!(wakes.wake_ready(&[5]), vec![5]);
        let unattached = Arc::new(Conn::default());
        wakes.forget(&unattached); // never attached: nothing to forget
    }

    #[test]
    fn a_connection_waits_until_a_session_is_attached() {
        let conn = Conn::default();
        assert_eq!(conn.next_step(), Step::Wait);
        conn.conn_id.store(7, Ordering::Release);
        assert_eq!(conn.next_step(), Step::Drain(7));
    }

    #[test]
    fn a_close_decision_comes_before_draining_and_is_taken_once() {
        let conn = Conn::default();
        conn.conn_id.store(3, Ordering::Release);
        *conn.close.lock().unwrap() = Some(close(false));
        assert_eq!(conn.next_step(), Step::Close(close(false)));
        assert_eq!(conn.next_step(), Step::Drain(3));
    }

    #[test]
    fn a_gone_peer_ends_the_writer_whatever_else_is_pending() {
        let conn = Conn::default();
        conn.conn_id.store(3, Ordering::Release);
        *conn.close.lock().unwrap() = Some(close(true));
        conn.gone.store(true, Ordering::Release);
        assert_eq!(conn.next_step(), Step::PeerGone);
    }

    #[test]
    fn only_a_discarding_close_or_a_gone_peer_abandons_a_burst() {
        let conn = Conn::default();
        assert!(!conn.discard_requested());
        *conn.close.lock().unwrap() = Some(close(false));
        assert!(
            !conn.discard_requested(),
            "1001 at shutdown finishes the burst in hand"
        );
        *conn.close.lock().unwrap() = Some(close(true));
        assert!(
            conn.discard_requested(),
            "a slow consumer's frames in hand are dropped"
        );
        *conn.close.lock().unwrap() = None;
        conn.gone.store(true, Ordering::Release);
        assert!(conn.discard_requested());
    }
}

/// Counts, per thread, the bytes allocated and not yet freed (the memory tests' meter).
#[cfg(test)]
mod live_bytes {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
    }

    fn add(n: isize) {
        let _ = LIVE.try_with(|c| c.set(c.get() + n));
    }

    /// Bytes this thread allocated and has not freed.
    pub fn now() -> isize {
        LIVE.with(|c| c.get())
    }

    struct Counting;

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            add(-(layout.size() as isize));
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            add(new_size as isize - layout.size() as isize);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;
}

#[cfg(test)]
mod memory_and_fault_tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn the_read_buffer_is_set_to_4_kib() {
        assert_eq!(ws_config(64 * 1024).read_buffer_size, 4096);
        assert_eq!(ws_config(64 * 1024).write_buffer_size, WRITE_BUFFER);
    }

    fn payloads(frames: &[Message]) -> Vec<(Vec<u8>, bool, bool)> {
        frames
            .iter()
            .map(|m| match m {
                Message::Text(t) => (t.as_bytes().to_vec(), true, true),
                Message::Frame(f) => (
                    f.payload().to_vec(),
                    f.header().opcode == OpCode::Data(Data::Text),
                    f.header().is_final,
                ),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_small_message_is_one_text_frame() {
        let frames = text_frames(bytes::Bytes::from_static(b"{\"type\":\"pong\"}"));
        assert_eq!(frames, vec![Message::text("{\"type\":\"pong\"}")]);
        let exact = bytes::Bytes::from(vec![b'a'; WRITE_CHUNK]);
        assert_eq!(text_frames(exact).len(), 1);
    }

    #[test]
    fn a_large_message_is_fragmented_at_character_boundaries() {
        // 3-byte characters, so a plain cut every WRITE_CHUNK bytes would split one.
        let text = "x".repeat(5) + &"€".repeat(3 * WRITE_CHUNK);
        let parts = payloads(&text_frames(bytes::Bytes::from(text.clone())));
        assert!(parts.len() >= 9, "{} fragments", parts.len());
        let mut joined = Vec::new();
        for (i, (data, is_text, fin)) in parts.iter().enumerate() {
            assert!(data.len() <= WRITE_CHUNK && !data.is_empty());
            assert!(
                std::str::from_utf8(data).is_ok(),
                "fragment {i} is not UTF-8 on its own"
            );
            assert_eq!(
                *is_text,
                i == 0,
                "the first fragment is Text, the others Continue"
            );
            assert_eq!(*fin, i == parts.len() - 1);
            joined.extend_from_slice(data);
        }
        assert_eq!(joined, text.as_bytes());
    }

    #[test]
    fn faults_trip_only_where_and_when_set() {
        assert_eq!(Faults::parse(""), Faults::default());
        let faults = Faults::parse("writer:\"ts\":42, reader:boom bogus:x handoff:");
        assert_eq!(faults.0.len(), 2);
        faults.trip(Fault::Writer, b"{\"ts\":41,");
        faults.trip(Fault::Handoff, b"boom");
        let hit = catch_unwind(|| faults.trip(Fault::Reader, b"{\"x\":\"boom\"}")).unwrap_err();
        assert!(panic_message(&*hit).contains(PANIC_ENV));
        assert!(catch_unwind(|| faults.trip(Fault::Writer, b"{\"ts\":42,\"y\":1}")).is_err());
    }

    /// A server connection configured as the lane's, a blocking client reading it on a thread of
    /// its own (so only the server's allocations are counted on this thread).
    async fn pair() -> (
        SplitSink<Ws, Message>,
        SplitStream<Ws>,
        mpsc::Receiver<usize>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let tcp = std::net::TcpStream::connect(addr).unwrap();
            let url = format!("ws://{addr}{PATH}");
            let (mut ws, _) = tokio_tungstenite::tungstenite::client(url, tcp).unwrap();
            while let Ok(m) = ws.read() {
                if tx.send(m.len()).is_err() {
                    break;
                }
            }
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config(64 * 1024)))
            .await
            .unwrap();
        let (sink, stream) = ws.split();
        (sink, stream, rx)
    }

    #[test]
    fn a_large_frame_leaves_no_buffer_of_its_size_behind() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (mut sink, _stream, received) = pair().await;
            let big = bytes::Bytes::from(vec![b'x'; 1 << 20]);
            let before = live_bytes::now();
            for _ in 0..3 {
                feed_text(&mut sink, big.clone()).await.unwrap();
            }
            sink.flush().await.unwrap();
            for _ in 0..3 {
                assert_eq!(received.recv().unwrap(), 1 << 20);
            }
            let kept = live_bytes::now() - before;
            assert!(
                kept < 16 * 1024,
                "the connection kept {kept} bytes after a 3 MiB burst"
            );

            // The meter sees what tungstenite keeps when a frame is written whole.
            let before = live_bytes::now();
            sink.send(text_message(big.clone())).await.unwrap();
            assert_eq!(received.recv().unwrap(), 1 << 20);
            let kept = live_bytes::now() - before;
            assert!(
                kept > 1 << 19,
                "unfragmented, tungstenite keeps about the frame's size ({kept})"
            );
        });
    }

    /// A socket that takes every byte at once and counts the writes it was asked for.
    #[derive(Clone, Default)]
    struct CountingSocket(Arc<AtomicUsize>);

    impl tokio::io::AsyncRead for CountingSocket {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Pending
        }
    }

    impl tokio::io::AsyncWrite for CountingSocket {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Feed `bursts` bursts of `n` frames of `len` bytes, flushing once per burst, on a server
    /// connection with `config`: the socket writes made and the bytes the connection kept.
    fn burst_writes_and_kept(
        config: WebSocketConfig,
        bursts: usize,
        n: usize,
        len: usize,
    ) -> (usize, isize) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let socket = CountingSocket::default();
            let writes = socket.0.clone();
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                socket,
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                Some(config),
            )
            .await;
            let payload = bytes::Bytes::from(vec![b'x'; len]);
            drop(payload.clone());
            let before = live_bytes::now();
            for _ in 0..bursts {
                for _ in 0..n {
                    ws.feed(text_message(payload.clone())).await.unwrap();
                }
                ws.flush().await.unwrap();
            }
            (writes.load(Ordering::Relaxed), live_bytes::now() - before)
        })
    }

    #[test]
    fn a_burst_of_small_frames_is_written_in_a_few_writes() {
        // A tick frame is ~150-250 bytes; S5's bursts are 20 frames, a drain takes up to 256.
        let (writes, _) = burst_writes_and_kept(ws_config(64 * 1024), 1, 20, 200);
        assert_eq!(writes, 1, "20 frames of 200 bytes, one flush");
        let drain = BURST_FRAMES as usize;
        let (writes, kept) = burst_writes_and_kept(ws_config(64 * 1024), 10, drain, 200);
        let frames = 10 * drain;
        assert!(writes * 10 < frames, "{writes} writes for {frames} frames");
        let bound = 2 * (WRITE_BUFFER + WRITE_CHUNK + 14) as isize;
        assert!(
            kept <= bound,
            "the connection kept {kept} bytes (bound {bound})"
        );
        // Without a write buffer, tungstenite writes each frame as it is fed.
        let unbuffered = ws_config(64 * 1024).write_buffer_size(0);
        assert_eq!(burst_writes_and_kept(unbuffered, 1, 20, 200).0, 20);
    }

    /// Not a check: the figures behind [`WRITE_BUFFER`]'s value
    /// (`cargo test ... write_buffer_sizes -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn write_buffer_sizes() {
        for size in [0, 2048, 4096, 8192, 16384, 32768] {
            for (n, len) in [(20, 200), (256, 200), (256, 1000), (64, 4096)] {
                let config = ws_config(64 * 1024).write_buffer_size(size);
                let (writes, kept) = burst_writes_and_kept(config, 10, n, len);
                println!(
                    "write_buffer_size {size:>5}: 10 bursts of {n:>3} x {len:>4} B: \
                     {writes:>4} writes, {kept:>6} B kept"
                );
            }
        }
    }
}
