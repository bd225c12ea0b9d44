//! Offsite copies: snapshots uploaded to an S3-compatible store, verified
//! there and restored from it. The store is a real S3 server process
//! (s3s-fs, see `common/s3.rs`) on loopback; the personalities come from
//! the fake service, and `chatkeep` is the real binary.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::s3::S3Server;

/// The server the other tests rely on is there and speaks S3: an unsigned
/// request is refused with an S3 error document, not served.
#[test]
fn the_test_s3_server_installs_runs_and_refuses_unsigned_requests() {
    let server = S3Server::start(&["bucket"]);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        stream,
        "GET /bucket?list-type=2 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        server.port
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default();
    assert!(status.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("<Error>") && answer.contains("<Code>"),
        "{answer}"
    );
}
