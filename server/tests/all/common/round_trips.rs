//! A loopback proxy in front of PostgreSQL that counts round trips: each
//! burst of the client's messages between two answers of the server that
//! carries a statement (`Bind` of the extended protocol, or a simple
//! `Query`). Prepares (`Parse`, `Describe`, `Sync` alone), once per
//! connection, and the start-up packet are not counted.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct RoundTripCounter {
    pub port: u16,
    count: Arc<AtomicU64>,
}

impl RoundTripCounter {
    /// Starts the proxy towards PostgreSQL on `upstream_port`.
    pub fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&count);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(("127.0.0.1", upstream_port)).unwrap();
                relay(client, server, Arc::clone(&counted));
            }
        });
        Self { port, count }
    }

    /// Round trips counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

fn relay(client: TcpStream, server: TcpStream, count: Arc<AtomicU64>) {
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    // Set by the server's side before it forwards an answer, so the
    // client's next bytes (sent after reading that answer) start a burst.
    let answered = Arc::new(AtomicBool::new(true));
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut from_server, mut to_client) = (server, client);
    let heard = Arc::clone(&answered);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 65536];
        while let Ok(n @ 1..) = from_server.read(&mut buffer) {
            heard.store(true, Ordering::SeqCst);
            if to_client.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(std::net::Shutdown::Both);
    });
    std::thread::spawn(move || {
        let mut buffer = [0u8; 65536];
        let mut pending: Vec<u8> = Vec::new();
        let mut started = false;
        let mut burst_counted = false;
        while let Ok(n @ 1..) = from_client.read(&mut buffer) {
            if answered.swap(false, Ordering::SeqCst) {
                burst_counted = false;
            }
            pending.extend_from_slice(&buffer[..n]);
            loop {
                // The start-up packet: a length, then no type byte.
                let (kind, header) = if started {
                    (pending.first().copied(), 1)
                } else {
                    (None, 0)
                };
                let Some(length) = pending
                    .get(header..header + 4)
                    .map(|b| u32::from_be_bytes(b.try_into().unwrap()) as usize)
                else {
                    break;
                };
                if pending.len() < header + length {
                    break;
                }
                if matches!(kind, Some(b'B' | b'Q')) && !burst_counted {
                    burst_counted = true;
                    count.fetch_add(1, Ordering::SeqCst);
                }
                pending.drain(..header + length);
                started = true;
            }
            if to_server.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to_server.shutdown(std::net::Shutdown::Both);
    });
}
