//! The same connection on fastwebsockets (`--ws fastwebsockets`), to measure the crate choice.
//!
//! fastwebsockets does no HTTP itself without hyper: the upgrade is answered here. Its read
//! buffer is fixed by the crate (8 KiB, not settable); its writer writes each frame to the stream
//! at once, so the write half sits on a 4 KiB `BufWriter` and is flushed once per burst. Its read
//! future is not cancel-safe, so reading and writing are two futures joined (the reader hands
//! replies to the writer through a channel) rather than one `select!`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use fastwebsockets::{after_handshake_split, Frame, OpCode, Payload, Role};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::{handle, Answer, Hub, PATH};

const WRITE_BUFFER: usize = 4096;
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

enum Ctrl {
    Text(String),
    Pong(Vec<u8>),
    Close(Vec<u8>),
}

/// Answers the HTTP upgrade of `/ws/market-data`; false (after a 404 or on bad input) otherwise.
async fn upgrade(tcp: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if buf.len() + n <= 16384 => buf.extend_from_slice(&chunk[..n]),
            Ok(_) => return false,
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut lines = head.split("\r\n");
    let path = lines.next().unwrap_or("").split_whitespace().nth(1).unwrap_or("");
    let key = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, v)| v.trim().to_owned());
    let (Some(key), true) = (key, path.split('?').next() == Some(PATH)) else {
        let _ = tcp.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await;
        return false;
    };
    let accept = STANDARD.encode(Sha1::digest(format!("{key}{GUID}").as_bytes()));
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    tcp.write_all(reply.as_bytes()).await.is_ok()
}

pub async fn serve(hub: Arc<Hub>, mut tcp: TcpStream) {
    if !upgrade(&mut tcp).await {
        return;
    }
    let (r, w) = tcp.into_split();
    let (mut rd, mut wr) = after_handshake_split(r, BufWriter::with_capacity(WRITE_BUFFER, w), Role::Server);
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let (queue, mut frames) = mpsc::unbounded_channel::<Utf8Bytes>();
    let (ctrl, mut ctrl_rx) = mpsc::unbounded_channel::<Ctrl>();
    let reader = async {
        let obligated = ctrl.clone();
        let mut send = move |f: Frame| {
            let c = if f.opcode == OpCode::Pong { Ctrl::Pong(f.payload.to_vec()) } else { Ctrl::Close(f.payload.to_vec()) };
            let r = obligated.send(c).map_err(|_| "closed");
            async move { r }
        };
        let mut authed = false;
        while let Ok(frame) = rd.read_frame(&mut send).await {
            match frame.opcode {
                OpCode::Text => {
                    let text = std::str::from_utf8(&frame.payload).unwrap_or("");
                    match handle(&hub, id, &queue, &mut authed, text) {
                        Answer::Reply(s) => {
                            let _ = ctrl.send(Ctrl::Text(s));
                        }
                        Answer::Refuse(s) => {
                            let _ = ctrl.send(Ctrl::Text(s));
                            let _ = ctrl.send(Ctrl::Close(1008u16.to_be_bytes().to_vec()));
                            break;
                        }
                        Answer::Nothing => {}
                    }
                }
                OpCode::Close => break,
                _ => {}
            }
        }
        drop(send);
        drop(ctrl);
    };
    let writer = async {
        loop {
            tokio::select! {
                Some(first) = frames.recv() => {
                    // Write every frame already waiting into the buffer, then flush once.
                    let mut r = wr.write_frame(Frame::text(Payload::Borrowed(first.as_bytes()))).await;
                    while r.is_ok() {
                        match frames.try_recv() {
                            Ok(f) => r = wr.write_frame(Frame::text(Payload::Borrowed(f.as_bytes()))).await,
                            Err(_) => break,
                        }
                    }
                    if r.is_err() || wr.flush().await.is_err() {
                        break;
                    }
                }
                c = ctrl_rx.recv() => {
                    let (frame, last) = match &c {
                        Some(Ctrl::Text(s)) => (Frame::text(Payload::Borrowed(s.as_bytes())), false),
                        Some(Ctrl::Pong(p)) => (Frame::pong(Payload::Borrowed(p)), false),
                        Some(Ctrl::Close(p)) => (Frame::close_raw(Payload::Borrowed(p)), true),
                        None => break,
                    };
                    if wr.write_frame(frame).await.is_err() || wr.flush().await.is_err() || last {
                        break;
                    }
                }
            }
        }
        drop(wr); // shuts the write side: a client that did not close sees the end
    };
    tokio::join!(reader, writer);
    hub.forget(id);
}
