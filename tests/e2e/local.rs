//! What clients send when they connect, answered by slotgate itself.

use redis::Value;

use crate::{env, q, q_err};

#[test]
fn handshake_commands() {
    let mut c = env().proxy.client();
    assert_eq!(q(&mut c, &["PING"]), Value::SimpleString("PONG".into()));
    assert_eq!(
        q(&mut c, &["ECHO", "hi"]),
        Value::BulkString(b"hi".to_vec())
    );
    assert_eq!(q(&mut c, &["SELECT", "0"]), Value::Okay);
    assert!(q_err(&mut c, &["SELECT", "3"]).contains("SELECT is not allowed"));
    assert_eq!(q(&mut c, &["CLIENT", "SETNAME", "e2e"]), Value::Okay);
    assert_eq!(
        q(&mut c, &["CLIENT", "GETNAME"]),
        Value::BulkString(b"e2e".to_vec())
    );
    assert!(matches!(q(&mut c, &["CLIENT", "ID"]), Value::Int(n) if n > 0));
    assert_eq!(
        q(&mut c, &["CLIENT", "SETINFO", "LIB-NAME", "e2e"]),
        Value::Okay
    );
    let Value::Array(hello) = q(&mut c, &["HELLO", "2"]) else {
        panic!("HELLO reply")
    };
    assert_eq!(hello[4], Value::BulkString(b"proto".to_vec()));
    assert_eq!(hello[5], Value::Int(2));
    assert!(q_err(&mut c, &["HELLO", "4"]).contains("NOPROTO"));
}

#[test]
fn command_introspection_comes_from_the_cluster() {
    let mut c = env().proxy.client();
    let Value::Int(count) = q(&mut c, &["COMMAND", "COUNT"]) else {
        panic!("COMMAND COUNT reply")
    };
    assert!(count > 200, "COMMAND COUNT = {count}");
    let Value::Array(info) = q(&mut c, &["COMMAND", "INFO", "get"]) else {
        panic!("COMMAND INFO reply")
    };
    assert_eq!(info.len(), 1);
    assert!(matches!(
        q(&mut c, &["COMMAND", "DOCS", "get"]),
        Value::Array(_)
    ));
}

#[test]
fn info_has_own_sections_and_cluster_keyspace() {
    let mut c = env().proxy.client();
    q(&mut c, &["SET", "info:k", "1"]);
    let Value::BulkString(text) = q(&mut c, &["INFO"]) else {
        panic!("INFO reply")
    };
    let text = String::from_utf8(text).unwrap();
    for field in [
        "redis_version:",
        "connected_clients:",
        "total_commands_processed:",
        "# Keyspace",
        "db0:keys=",
    ] {
        assert!(text.contains(field), "INFO lacks {field}: {text}");
    }
    let Value::Int(n) = q(&mut c, &["DBSIZE"]) else {
        panic!("DBSIZE reply")
    };
    assert!(n >= 1);
}

#[test]
fn readiness_and_metrics_endpoints() {
    let proxy = &env().proxy;
    assert_eq!(proxy.http_get("/readyz").0, 200);
    let (status, body) = proxy.http_get("/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("slotgate_client_connections"), "{body}");
}
