//! Bytes on the wire, as telnet or a hand-written client sends them: inline commands, odd
//! splits, malformed input.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::env;

pub fn connect() -> TcpStream {
    let s = TcpStream::connect(env().proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until exactly `want.len()` bytes arrived and checks them.
pub fn expect(s: &mut TcpStream, want: &[u8]) {
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got)
        .unwrap_or_else(|e| panic!("reading {:?}: {e}", String::from_utf8_lossy(want)));
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

fn expect_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "expected close, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("expected close, got {e}"),
    }
}

#[test]
fn inline_commands() {
    let mut s = connect();
    s.write_all(b"PING\r\n").unwrap();
    expect(&mut s, b"+PONG\r\n");
    s.write_all(b"SET raw:inline \"a b\\r\\n\"\r\nGET raw:inline\n")
        .unwrap();
    expect(&mut s, b"+OK\r\n$5\r\na b\r\n\r\n");
    s.write_all(b"\r\n\r\nECHO 'it''s'\r\n").unwrap();
    // Empty lines are ignored; adjacent quoted strings are an error in Redis' splitter.
    expect(
        &mut s,
        b"-ERR Protocol error: unbalanced quotes in request\r\n",
    );
    expect_closed(&mut s);
}

#[test]
fn any_split_of_the_bytes_works() {
    let mut s = connect();
    s.set_nodelay(true).unwrap();
    let req = b"*3\r\n$3\r\nSET\r\n$9\r\nraw:split\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$9\r\nraw:split\r\n";
    for b in req.iter() {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    expect(&mut s, b"+OK\r\n$5\r\nhello\r\n");
}

#[test]
fn malformed_input_closes_only_that_connection() {
    let mut other = connect();
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"*abc\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$x\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n:5\r\n",
            b"-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"*2\r\n$3\r\nGET\r\n$999999999999\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    for (input, reply) in cases {
        let mut s = connect();
        // A good command first: it must still be answered before the error.
        s.write_all(b"PING\r\n").unwrap();
        s.write_all(input).unwrap();
        expect(&mut s, b"+PONG\r\n");
        expect(&mut s, reply);
        expect_closed(&mut s);
        other.write_all(b"PING\r\n").unwrap();
        expect(&mut other, b"+PONG\r\n");
    }
}

#[test]
fn oversized_inline_is_refused() {
    let mut s = connect();
    let line = vec![b'a'; 70 * 1024];
    let _ = s.write_all(&line);
    expect(&mut s, b"-ERR Protocol error: too big inline request\r\n");
    expect_closed(&mut s);
}

#[test]
fn unknown_and_unsupported_commands_keep_the_connection() {
    let mut s = connect();
    s.write_all(b"NOSUCHCMD a b\r\n").unwrap();
    expect(
        &mut s,
        b"-ERR unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' \r\n",
    );
    s.write_all(b"GET\r\n").unwrap();
    expect(
        &mut s,
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    s.write_all(b"PING\r\n").unwrap();
    expect(&mut s, b"+PONG\r\n");
    for cmd in ["MONITOR", "SCRIPT DEBUG yes", "CONFIG SET maxmemory 1"] {
        s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        let line = String::from_utf8_lossy(&buf[..n]).to_string();
        let name = cmd.split(' ').next().unwrap();
        assert!(line.starts_with("-ERR"), "{cmd}: {line}");
        assert!(
            line.to_uppercase().contains(name),
            "{cmd}: error must name the command: {line}"
        );
        s.write_all(b"PING\r\n").unwrap();
        expect(&mut s, b"+PONG\r\n");
    }
}
