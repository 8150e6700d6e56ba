//! The load benchmark's physical reference: a minimal tokio + tokio-tungstenite broadcast server.
//!
//! One runtime thread. Each tick is encoded once into a shared buffer (`Utf8Bytes`, a refcounted
//! `Bytes`) and handed to every subscriber's unbounded queue; each connection's task feeds every
//! frame waiting in its queue into the WebSocket sink and flushes once, so the frames of a burst
//! share one write. The read buffer is set explicitly to 4 KiB. It speaks the subset of the
//! protocol the load client uses, as `picows_broadcast.py` does: `auth` (HS256 JWT, `sub` and
//! `exp` required), `subscribe` (answered `subscribed` with the known symbols and an `epoch`),
//! `ping`; `tick` frames only, no batching, no queue bound.
//!
//! Ingest is a minimal keep-alive HTTP/1.1 server on its own port: `POST /api/ticks` (bearer
//! token with `scope=publish`), `GET /api/symbols`, `GET /healthz`.
//!
//!     rust-broadcast-peer --port 8002 --ingest-port 8003     (secret: TICKFAN_JWT_SECRET)
//!     rust-broadcast-peer --ws fastwebsockets ...              (the same on fastwebsockets)

mod fws;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

pub(crate) const PATH: &str = "/ws/market-data";
/// The read buffer of every connection, set explicitly (tungstenite's default is 128 KiB).
const READ_BUFFER: usize = 4096;
/// Symbol, price decimals, size decimals: the load benchmark's default universe (wire.py).
const UNIVERSE: [(&str, u32, u32); 10] = [
    ("BTC/USD", 2, 8),
    ("ETH/USD", 2, 8),
    ("SOL/USD", 3, 6),
    ("XRP/USD", 5, 2),
    ("ADA/USD", 5, 2),
    ("DOGE/USD", 6, 2),
    ("LTC/USD", 2, 6),
    ("DOT/USD", 4, 4),
    ("AVAX/USD", 3, 5),
    ("LINK/USD", 4, 4),
];

type Queue = mpsc::UnboundedSender<Utf8Bytes>;

#[derive(Default)]
struct Symbol {
    seq: u64,
    subscribers: Vec<(u64, Queue)>,
}

pub(crate) struct Hub {
    secret: Vec<u8>,
    epoch: String,
    pub(crate) next_id: AtomicU64,
    symbols: Mutex<HashMap<String, Symbol>>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct Tick<'a> {
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(borrow)]
    size: &'a RawValue,
    ts: i64,
}

impl Hub {
    /// The claims of a valid HS256 token that has not expired; None otherwise.
    fn verify(&self, token: &str) -> Option<Claims> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        if header.alg != "HS256" {
            return None;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).ok()?;
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
        (claims.exp > now).then_some(claims)
    }

    /// Number, encode and frame each tick once; every subscriber's queue gets a shared handle.
    fn ingest(&self, body: &[u8]) -> Result<usize, String> {
        let ticks: Vec<Tick> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let mut symbols = self.symbols.lock().unwrap();
        for t in &ticks {
            let Some(sym) = symbols.get_mut(t.symbol.as_ref()) else {
                return Err(format!("unknown symbol {}", t.symbol));
            };
            sym.seq += 1;
            let frame = Utf8Bytes::from(format!(
                r#"{{"type":"market_data","symbol":"{}","seq":{},"ts":{},"price":{},"size":{}}}"#,
                t.symbol,
                sym.seq,
                t.ts,
                t.price.get(),
                t.size.get()
            ));
            for (_, q) in &sym.subscribers {
                let _ = q.send(frame.clone());
            }
        }
        Ok(ticks.len())
    }

    fn subscribe(&self, id: u64, queue: &Queue, wanted: &[Value]) -> Vec<String> {
        let mut symbols = self.symbols.lock().unwrap();
        let mut known = Vec::new();
        for s in wanted.iter().filter_map(Value::as_str) {
            if let Some(sym) = symbols.get_mut(s) {
                if !sym.subscribers.iter().any(|(i, _)| *i == id) {
                    sym.subscribers.push((id, queue.clone()));
                }
                known.push(s.to_owned());
            }
        }
        known
    }

    pub(crate) fn forget(&self, id: u64) {
        for sym in self.symbols.lock().unwrap().values_mut() {
            sym.subscribers.retain(|(i, _)| *i != id);
        }
    }
}

/// What one client message asks of the connection.
pub(crate) enum Answer {
    Reply(String),
    Refuse(String),
    Nothing,
}

pub(crate) fn handle(hub: &Hub, id: u64, queue: &Queue, authed: &mut bool, text: &str) -> Answer {
    let Ok(msg) = serde_json::from_str::<Value>(text) else {
        return Answer::Reply(r#"{"type":"error","code":"invalid_json","error":"Invalid JSON"}"#.into());
    };
    let kind = msg.get("type").and_then(Value::as_str).unwrap_or("");
    if !*authed {
        let claims = match (kind, msg.get("token").and_then(Value::as_str)) {
            ("auth", Some(token)) => hub.verify(token),
            _ => None,
        };
        let Some(claims) = claims else {
            return Answer::Refuse(
                r#"{"type":"error","code":"auth_required","error":"Authentication required"}"#.into(),
            );
        };
        *authed = true;
        return Answer::Reply(
            json!({"type": "auth_success", "user_id": claims.sub, "expires_at": claims.exp}).to_string(),
        );
    }
    match kind {
        "subscribe" => {
            let wanted = msg.get("symbols").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
            let known = hub.subscribe(id, queue, wanted);
            let mode = msg.get("mode").and_then(Value::as_str).unwrap_or("auto");
            Answer::Reply(
                json!({"type": "subscribed", "symbols": known, "mode": mode, "epoch": hub.epoch}).to_string(),
            )
        }
        "ping" => Answer::Reply(json!({"type": "pong", "ts": msg.get("ts")}).to_string()),
        _ => Answer::Nothing,
    }
}

async fn serve(hub: Arc<Hub>, tcp: TcpStream) {
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != PATH {
            let mut r = ErrorResponse::new(None);
            *r.status_mut() = StatusCode::NOT_FOUND;
            return Err(r);
        }
        Ok(resp)
    };
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(tcp, check, Some(config)).await else {
        return;
    };
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let (queue, mut frames) = mpsc::unbounded_channel::<Utf8Bytes>();
    let (mut sink, mut stream) = ws.split();
    let mut authed = false;
    loop {
        tokio::select! {
            Some(first) = frames.recv() => {
                // Feed every frame already waiting, then flush once: one write per burst.
                let mut r = sink.feed(Message::Text(first)).await;
                while r.is_ok() {
                    match frames.try_recv() {
                        Ok(f) => r = sink.feed(Message::Text(f)).await,
                        Err(_) => break,
                    }
                }
                if r.is_err() || sink.flush().await.is_err() {
                    break;
                }
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => match handle(&hub, id, &queue, &mut authed, text.as_str()) {
                    Answer::Reply(s) => {
                        if sink.send(Message::Text(s.into())).await.is_err() {
                            break;
                        }
                    }
                    Answer::Refuse(s) => {
                        let _ = sink.feed(Message::Text(s.into())).await;
                        let close = CloseFrame { code: CloseCode::Policy, reason: "".into() };
                        let _ = sink.send(Message::Close(Some(close))).await;
                        break;
                    }
                    Answer::Nothing => {}
                },
                Some(Ok(Message::Close(_))) => {
                    let _ = sink.flush().await; // tungstenite has queued the close reply
                    break;
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => break,
            },
        }
    }
    hub.forget(id);
}

async fn ingest_conn(hub: Arc<Hub>, mut tcp: TcpStream) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        // One request: headers up to the blank line, then Content-Length bytes of body.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut start = lines.next().unwrap_or("").split_whitespace();
        let (method, path) = (start.next().unwrap_or("").to_owned(), start.next().unwrap_or("").to_owned());
        let mut length = 0usize;
        let mut auth = String::new();
        for line in lines {
            let (k, v) = line.split_once(':').unwrap_or((line, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "authorization" => auth = v.trim().trim_start_matches("Bearer ").to_owned(),
                _ => {}
            }
        }
        while buf.len() < head_end + 4 + length {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..head_end + 4 + length).skip(head_end + 4).collect();
        let (status, reply) = match (method.as_str(), path.as_str()) {
            ("GET", "/healthz") => (200, r#"{"status":"ok"}"#.to_owned()),
            ("GET", "/api/symbols") => {
                let list: Vec<Value> = UNIVERSE
                    .iter()
                    .map(|(s, p, d)| json!({"symbol": s, "price_decimals": p, "size_decimals": d}))
                    .collect();
                (200, json!({ "symbols": list }).to_string())
            }
            ("POST", "/api/ticks") => match hub.verify(&auth) {
                None => (401, r#"{"error":"a valid bearer token is required"}"#.to_owned()),
                Some(c) if !c.scope.as_deref().unwrap_or("").split_whitespace().any(|s| s == "publish") => {
                    (403, r#"{"error":"publish scope required"}"#.to_owned())
                }
                Some(_) => match hub.ingest(&body) {
                    Ok(n) => (202, format!(r#"{{"accepted":{n}}}"#)),
                    Err(e) => (422, json!({ "error": e }).to_string()),
                },
            },
            _ => (404, r#"{"error":"not found"}"#.to_owned()),
        };
        let out = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if tcp.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn main() {
    let mut host = "127.0.0.1".to_owned();
    let (mut port, mut ingest_port) = (8002u16, 8003u16);
    let mut fast = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--host" => host = v,
            "--port" => port = v.parse().expect("--port"),
            "--ingest-port" => ingest_port = v.parse().expect("--ingest-port"),
            "--ws" => fast = match v.as_str() {
                "tungstenite" => false,
                "fastwebsockets" => true,
                _ => panic!("--ws tungstenite|fastwebsockets"),
            },
            _ => panic!("unknown argument {a} (--host, --port, --ingest-port, --ws)"),
        }
    }
    let hub = Arc::new(Hub {
        secret: std::env::var("TICKFAN_JWT_SECRET").unwrap_or_default().into_bytes(),
        epoch: std::process::id().to_string(),
        next_id: AtomicU64::new(1),
        symbols: Mutex::new(UNIVERSE.iter().map(|(s, _, _)| (s.to_string(), Symbol::default())).collect()),
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("runtime");
    rt.block_on(async move {
        let ws = TcpListener::bind((host.as_str(), port)).await.expect("bind --port");
        let http = TcpListener::bind((host.as_str(), ingest_port)).await.expect("bind --ingest-port");
        let h = Arc::clone(&hub);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = http.accept().await {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(ingest_conn(Arc::clone(&h), tcp));
            }
        });
        while let Ok((tcp, _)) = ws.accept().await {
            let _ = tcp.set_nodelay(true);
            if fast {
                tokio::spawn(fws::serve(Arc::clone(&hub), tcp));
            } else {
                tokio::spawn(serve(Arc::clone(&hub), tcp));
            }
        }
    });
}
