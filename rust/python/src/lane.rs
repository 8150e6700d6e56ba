//! `tickfan._core.FastLane`: the extension's own WebSocket listener for `/ws/market-data`.
//!
//! One tokio runtime on one thread of its own serves every lane connection: tokio-tungstenite
//! with a 4 KiB read buffer. The protocol is not here: the lane hands what Python must decide
//! (a connection opened, a message, a connection gone) to the event loop through an event queue
//! and a wake-up socket ([`FastLane::fileno`], [`FastLane::take_events`]), and Python's
//! `Session` answers through the core's per-connection queue and [`FastLane::close`]. Data
//! frames go from the core's queue to the socket without Python: the connection's writer is
//! woken ([`FastLane::wake`]), drains its queue under the core lock, releases it, then feeds
//! every frame and flushes once per burst.
//!
//! Rules (see docs/architecture.md, "The fast lane"): no lane thread attaches to the
//! interpreter, so it never creates, clones or drops a Python object (frames whose Python `str`
//! is cached go back to Python to be dropped, see [`PyFrame::needs_interpreter`]); the core
//! lock is held only to drain; a panic in a connection's writer is caught, counted, reported to
//! Python (logged there) and closes that connection with 1011.

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
use futures_util::{SinkExt, StreamExt};
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
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
/// After its close frame, how long a connection waits for the client's close.
const CLOSE_REPLY: Duration = Duration::from_secs(1);

type Ws = WebSocketStream<TcpStream>;

/// What the lane hands to Python.
#[derive(Debug, PartialEq)]
pub enum Event {
    Open { lane: u64, peer: String },
    Text { lane: u64, text: String },
    Binary { lane: u64, data: Vec<u8> },
    /// A message over the lane's size limit (Python answers `message_too_large`, 1009).
    TooLarge { lane: u64 },
    Gone { lane: u64 },
    Panic { lane: u64, what: String },
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
    core: SharedCore,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
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
}

impl Lane {
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
                    tokio::spawn(serve(Arc::clone(&lane), tcp, peer));
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
    let limit = lane.max_message_bytes.max(1) * 4 + 1024;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
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
    lane.post(Event::Open {
        lane: id,
        peer: peer.ip().to_string(),
    });
    let (sink, stream) = ws.split();
    let reader = read_loop(&lane, &conn, id, stream);
    let writer = write_loop(&lane, &conn, id, sink);
    tokio::join!(reader, writer);
    lane.conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    lane.stats.connections.fetch_sub(1, Ordering::Relaxed);
    lane.post(Event::Gone { lane: id });
}

async fn read_loop(lane: &Lane, conn: &Conn, id: u64, mut stream: SplitStream<Ws>) {
    loop {
        let next = tokio::select! {
            m = stream.next() => m,
            // The writer sent its close and the client did not answer in time.
            _ = wait_closed(conn) => None,
        };
        match next {
            Some(Ok(Message::Text(t))) => lane.post(Event::Text {
                lane: id,
                text: t.as_str().to_owned(),
            }),
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
    conn.gone.store(true, Ordering::Release);
    conn.notify.notify_one();
}

/// Resolves `CLOSE_REPLY` after the writer finished (its close frame sent), never before.
async fn wait_closed(conn: &Conn) {
    while conn.in_hand.load(Ordering::Acquire) != usize::MAX {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(CLOSE_REPLY).await;
}

async fn write_loop(lane: &Lane, conn: &Conn, id: u64, mut sink: SplitSink<Ws, Message>) {
    let outcome = loop {
        match conn.next_step() {
            Step::PeerGone => {
                let _ = tokio::time::timeout(CLOSE_REPLY, sink.flush()).await;
                break None;
            }
            Step::Close(close) => break Some(close),
            Step::Wait => conn.notify.notified().await,
            Step::Drain(conn_id) => {
                let drained = catch_unwind(AssertUnwindSafe(|| {
                    let mut core = lock(&lane.core);
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
                let messages: Vec<Message> = frames.iter().map(|f| text_message(f.bytes())).collect();
                lane.bury(frames);
                let result = {
                    let mut burst = pin!(async {
                        for m in messages {
                            sink.feed(m).await?;
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
    };
    if let Some(close) = outcome {
        let finish = async {
            for f in close.frames {
                sink.feed(Message::Text(f.into())).await?;
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
        let std_listener = bind(host, port)
            .map_err(|e| PyOSError::new_err(format!("fast lane: cannot listen on {host}:{port}: {e}")))?;
        let port = std_listener.local_addr().map(|a| a.port()).unwrap_or(port);
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let lane = Arc::new(Lane {
            core: core.borrow().shared(),
            conns: Mutex::new(HashMap::new()),
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
                    accept_loop(Arc::clone(&shared), listener).await;
                    // Stopping: the sessions were closed (1001) by Python; give their writers
                    // the close timeout to finish, then drop whatever is left.
                    let deadline = Instant::now() + shared.close_timeout + CLOSE_REPLY;
                    while Instant::now() < deadline
                        && !shared.conns.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
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
        let events = std::mem::take(&mut *self.lane.events.lock().unwrap_or_else(|e| e.into_inner()));
        drop(std::mem::take(
            &mut *self.lane.graveyard.lock().unwrap_or_else(|e| e.into_inner()),
        ));
        let list = PyList::empty(py);
        for e in events {
            let item = match e {
                Event::Open { lane, peer } => ("open", lane, peer.into_pyobject(py)?.into_any()),
                Event::Text { lane, text } => ("text", lane, text.into_pyobject(py)?.into_any()),
                Event::Binary { lane, data } => ("binary", lane, PyBytes::new(py, &data).into_any()),
                Event::TooLarge { lane } => ("too_large", lane, py.None().into_bound(py)),
                Event::Gone { lane } => ("gone", lane, py.None().into_bound(py)),
                Event::Panic { lane, what } => ("panic", lane, what.into_pyobject(py)?.into_any()),
            };
            list.append(PyTuple::new(py, [item.0.into_pyobject(py)?.into_any(), item.1.into_pyobject(py)?.into_any(), item.2])?)?;
        }
        Ok(list)
    }

    /// Bind a lane connection to its session's core connection id (then its writer drains it).
    fn attach(&self, lane_id: u64, conn_id: i64) {
        if let Some(conn) = self.lane.conn(lane_id) {
            conn.conn_id.store(conn_id, Ordering::Release);
            conn.notify.notify_one();
        }
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
            (if in_hand == usize::MAX { 0 } else { in_hand }, c.written.load(Ordering::Relaxed))
        })
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
            &mut *self.lane.graveyard.lock().unwrap_or_else(|e| e.into_inner()),
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
        assert!(!conn.discard_requested(), "1001 at shutdown finishes the burst in hand");
        *conn.close.lock().unwrap() = Some(close(true));
        assert!(conn.discard_requested(), "a slow consumer's frames in hand are dropped");
        *conn.close.lock().unwrap() = None;
        conn.gone.store(true, Ordering::Release);
        assert!(conn.discard_requested());
    }
}
