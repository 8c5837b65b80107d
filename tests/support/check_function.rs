//! A team's smoke test as the check function of a pair's traffic gate: served on loopback behind
//! the emulator's Lambda Invoke, it answers what the test says of each question (an answer, or
//! the error object of a function that failed) and keeps every question it was asked.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::harness::Stack;

/// What the check answers: its payload, and `true` when the function failed (Lambda's
/// `X-Amz-Function-Error: Unhandled`).
pub type Answer = (Value, bool);

pub struct CheckFunction {
    questions: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
    address: std::net::SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CheckFunction {
    /// Serves the function `name` of `stack`'s account, carrying `tags`, until dropped.
    pub fn serve(
        stack: &Stack,
        (name, tags): (&str, &Value),
        mut answer: impl FnMut(&Value) -> Answer + Send + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let address = listener.local_addr().expect("its address");
        stack.run_named_function_at(name, &format!("http://{address}/check"), tags);
        let questions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (asked, stopped) = (questions.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let question = read_body(&mut stream);
                asked.lock().unwrap().push(question.clone());
                let (payload, failed) = answer(&question);
                let body = payload.to_string();
                let error = if failed {
                    "X-Function-Error: Unhandled\r\n"
                } else {
                    ""
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{error}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self {
            questions,
            stop,
            address,
            thread: Some(thread),
        }
    }

    /// Every question asked, in order.
    pub fn questions(&self) -> Vec<Value> {
        self.questions.lock().unwrap().clone()
    }
}

impl Drop for CheckFunction {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The JSON body of one HTTP request.
fn read_body(stream: &mut TcpStream) -> Value {
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut buffer).unwrap_or(0);
        if n == 0 {
            return Value::Null;
        }
        read.extend_from_slice(&buffer[..n]);
        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&read[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while read.len() < head_end + length {
        let n = stream.read(&mut buffer).unwrap_or(0);
        if n == 0 {
            break;
        }
        read.extend_from_slice(&buffer[..n]);
    }
    serde_json::from_slice(&read[head_end..]).unwrap_or(Value::Null)
}
