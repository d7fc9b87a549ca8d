//! What an operator sees: `/metrics` after a known workload, parsed as Prometheus parses it, and
//! SLOWLOG as a Redis client reads it. Each test runs a proxy of its own, so the shared proxy's
//! other clients do not move its counters.

use std::time::{Duration, Instant};

use redis::Value;

use crate::common::proxy::Scrape;
use crate::transactions::own_proxy;
use crate::{env, q, q_err};

/// The node label slotgate gives the node on `port`, as the cluster announces it.
fn node_of(scrape: &Scrape, port: u16) -> String {
    let suffix = format!(":{port}");
    scrape
        .find("slotgate_node_role", &[])
        .filter_map(|s| s.label("node"))
        .find(|n| n.ends_with(&suffix))
        .unwrap_or_else(|| panic!("no node_role for port {port}"))
        .to_owned()
}

#[test]
fn requests_are_counted_by_command_and_result_and_timed() {
    let proxy = own_proxy(|_| {});
    let mut c = proxy.client();
    let before = proxy.scrape();
    for i in 0..10 {
        q(&mut c, &["GET", &format!("{{obs1}}:k{i}")]);
    }
    q(&mut c, &["LPUSH", "{obs1}:list", "x"]);
    // The node's own error reply: counted as the command's error, not slotgate's.
    let wrongtype = q_err(&mut c, &["GET", "{obs1}:list"]);
    assert!(wrongtype.contains("WRONGTYPE"), "{wrongtype}");
    // slotgate's own refusal: an error of the command, and of slotgate's kind.
    q_err(&mut c, &["GET"]);
    q_err(&mut c, &["NOSUCHCOMMAND", "x"]);

    let after = proxy.scrape();
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels).unwrap_or(0.0) - before.value(name, labels).unwrap_or(0.0)
    };
    let requests = "slotgate_requests_total";
    assert_eq!(
        moved(requests, &[("command", "get"), ("result", "ok")]),
        10.0
    );
    assert_eq!(
        moved(requests, &[("command", "get"), ("result", "error")]),
        2.0
    );
    assert_eq!(
        moved(requests, &[("command", "lpush"), ("result", "ok")]),
        1.0
    );
    assert_eq!(
        moved(requests, &[("command", "other"), ("result", "error")]),
        1.0
    );
    let own = "slotgate_errors_total";
    assert_eq!(moved(own, &[("kind", "wrong_arity")]), 1.0);
    assert_eq!(moved(own, &[("kind", "unknown_command")]), 1.0);

    // A histogram per command, every bucket there, the count matching the requests.
    assert_eq!(
        after.types["slotgate_request_duration_seconds"],
        "histogram"
    );
    let get = [("command", "get")];
    let buckets: Vec<f64> = after
        .find("slotgate_request_duration_seconds_bucket", &get)
        .map(|s| s.value)
        .collect();
    assert_eq!(buckets.len(), 18, "17 bounds and +Inf");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "cumulative");
    assert_eq!(
        after.value(
            "slotgate_request_duration_seconds_bucket",
            &[("command", "get"), ("le", "+Inf")]
        ),
        Some(12.0)
    );
    assert_eq!(
        after.value("slotgate_request_duration_seconds_count", &get),
        Some(12.0)
    );
    let sum = after
        .value("slotgate_request_duration_seconds_sum", &get)
        .unwrap();
    assert!(sum > 0.0 && sum < 12.0, "{sum}");
    // Nothing in flight between requests; the depth histogram saw every request.
    assert_eq!(after.value("slotgate_inflight_requests", &[]), Some(0.0));
    assert!(after.value("slotgate_pipeline_depth_count", &[]).unwrap() >= 14.0);
    // Commands never sent have no series.
    assert_eq!(after.find(requests, &[("command", "hgetall")]).count(), 0);
}

#[test]
fn every_master_has_its_backend_series_and_role() {
    let env = env();
    let proxy = own_proxy(|_| {});
    let mut c = proxy.client();
    // Keys of many slots reach every master.
    for i in 0..64 {
        q(&mut c, &["SET", &format!("obs2:{i}"), "v"]);
    }
    let scrape = proxy.scrape();
    assert_eq!(scrape.value("slotgate_slots_covered", &[]), Some(16384.0));
    assert!(scrape.value("slotgate_slot_map_epoch", &[]).unwrap() >= 1.0);
    let age = scrape.value("slotgate_slot_map_age_seconds", &[]).unwrap();
    assert!((0.0..600.0).contains(&age), "{age}");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        scrape.value("slotgate_build_info", &[("version", version)]),
        Some(1.0)
    );
    // Every node of the cluster has its role. Which are masters is taken from the proxy's own
    // map: another test of this binary may be failing a master over right now.
    for port in env.cluster.ports() {
        node_of(&scrape, port);
    }
    let masters: Vec<String> = scrape
        .find("slotgate_node_role", &[("role", "master")])
        .filter_map(|s| s.label("node").map(str::to_owned))
        .collect();
    assert_eq!(masters.len(), env.cluster.masters().len(), "{masters:?}");
    assert_eq!(
        scrape.find("slotgate_node_role", &[]).count(),
        env.cluster.ports().len()
    );
    for node in &masters {
        let n = [("node", node.as_str())];
        assert!(scrape.value("slotgate_backend_connections", &n).unwrap() >= 1.0);
        let replies = scrape
            .value("slotgate_backend_request_duration_seconds_count", &n)
            .unwrap();
        assert!(replies > 0.0, "{node}: {replies}");
        assert_eq!(
            scrape
                .find("slotgate_backend_request_duration_seconds_bucket", &n)
                .count(),
            18
        );
        assert!(
            scrape
                .value("slotgate_backend_sent_bytes_total", &n)
                .unwrap()
                > 0.0
        );
        assert!(
            scrape
                .value("slotgate_backend_received_bytes_total", &n)
                .unwrap()
                > 0.0
        );
        assert!(scrape
            .value("slotgate_backend_inflight_requests", &n)
            .is_some());
        for kind in ["connect_failed", "timeout", "closed"] {
            let labels = [("node", node.as_str()), ("kind", kind)];
            assert!(scrape
                .value("slotgate_backend_errors_total", &labels)
                .is_some());
        }
    }
    // The client connection counted, under a name OpenMetrics keeps apart from the gauge.
    assert!(
        scrape
            .value("slotgate_client_connections_accepted_total", &[])
            .unwrap()
            >= 1.0
    );
    assert_eq!(scrape.value("slotgate_client_connections", &[]), Some(1.0));
    assert!(scrape.value("process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(scrape.value("process_open_fds", &[]).unwrap() > 0.0);
    let startup = [("trigger", "startup"), ("outcome", "ok")];
    assert_eq!(
        scrape.value("slotgate_topology_refreshes_total", &startup),
        Some(1.0)
    );
}

/// A slot of this test's own moves to another master behind the proxy's back: the next request
/// for it gets MOVED, which slotgate follows, and counts.
#[test]
fn a_followed_moved_is_counted() {
    let env = env();
    let cluster = &env.cluster;
    let proxy = own_proxy(|c| c.topology.refresh_interval_ms = 60_000);
    let mut c = proxy.client();
    let any = cluster.nodes[0].port;
    let key = "{obs3-moved}:k";
    let slot = cluster.cli(any, &["CLUSTER", "KEYSLOT", key]);
    q(&mut c, &["GET", key]);
    let moved = || {
        proxy
            .scrape()
            .value("slotgate_redirections_total", &[("kind", "moved")])
            .unwrap()
    };
    let before = moved();
    let slot: u16 = slot.parse().unwrap();
    let src = cluster.master_of_slot(slot);
    let dst = *cluster.masters().iter().find(|&&m| m != src).unwrap();
    // Imported, so that the new owner's epoch rises and every node takes its claim.
    crate::transactions::move_slot(slot, src, dst);
    assert_eq!(q(&mut c, &["SET", key, "v"]), Value::Okay);
    assert_eq!(moved() - before, 1.0);
    assert_eq!(q(&mut c, &["GET", key]), Value::BulkString(b"v".to_vec()));
    assert_eq!(moved() - before, 1.0, "the slot was remembered");
    // The map changed just now.
    let age = proxy
        .scrape()
        .value("slotgate_slot_map_age_seconds", &[])
        .unwrap();
    assert!(age < 30.0, "{age}");
    q(&mut c, &["DEL", key]);
    crate::transactions::move_slot(slot, dst, src);
    cluster.wait_ok(Duration::from_secs(20));
}

#[test]
fn slowlog_keeps_slotgate_s_requests_as_redis_shows_them() {
    let proxy = own_proxy(|c| c.slowlog.log_slower_than_us = 0);
    let mut c = proxy.client();
    assert_eq!(q(&mut c, &["SLOWLOG", "RESET"]), Value::Okay);
    // As on Redis, the RESET itself is logged once answered.
    assert_eq!(q(&mut c, &["SLOWLOG", "LEN"]), Value::Int(1));
    q(&mut c, &["CLIENT", "SETNAME", "obs4"]);
    q(&mut c, &["SET", "{obs4}:k", "v"]);
    let mut many = vec!["MGET".to_owned()];
    many.extend((0..40).map(|i| format!("{{obs4}}:{i}")));
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    q(&mut c, &many);
    let Value::Array(entries) = q(&mut c, &["SLOWLOG", "GET", "2"]) else {
        panic!("SLOWLOG GET is an array");
    };
    assert_eq!(entries.len(), 2);
    let fields = |e: &Value| match e {
        Value::Array(f) => f.clone(),
        other => panic!("an entry is an array: {other:?}"),
    };
    let (mget, set) = (fields(&entries[0]), fields(&entries[1]));
    assert_eq!(mget.len(), 6, "{mget:?}");
    let (Value::Int(mget_id), Value::Int(set_id)) = (&mget[0], &set[0]) else {
        panic!("ids are integers: {mget:?}");
    };
    assert_eq!(mget_id - set_id, 1, "newest first");
    let Value::Int(when) = mget[1] else { panic!() };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - when).abs() < 60, "{when} vs {now}");
    assert!(matches!(mget[2], Value::Int(us) if us >= 0));
    let Value::Array(args) = &mget[3] else {
        panic!()
    };
    assert_eq!(args.len(), 32, "cut at 32 arguments as Redis does");
    assert_eq!(args[0], Value::BulkString(b"MGET".to_vec()));
    assert_eq!(
        args[31],
        Value::BulkString(b"... (10 more arguments)".to_vec())
    );
    let Value::BulkString(addr) = &mget[4] else {
        panic!()
    };
    let local = String::from_utf8(addr.clone()).unwrap();
    assert!(local.starts_with("127.0.0.1:"), "{local}");
    assert_eq!(mget[5], Value::BulkString(b"obs4".to_vec()));
    assert_eq!(
        set[3],
        Value::Array(vec![
            Value::BulkString(b"SET".to_vec()),
            Value::BulkString(b"{obs4}:k".to_vec()),
            Value::BulkString(b"v".to_vec()),
        ])
    );
    let Value::Int(len) = q(&mut c, &["SLOWLOG", "LEN"]) else {
        panic!()
    };
    assert!(len >= 5, "{len}");
    assert_eq!(q(&mut c, &["SLOWLOG", "RESET"]), Value::Okay);
    assert_eq!(q(&mut c, &["SLOWLOG", "LEN"]), Value::Int(1));
    assert!(q_err(&mut c, &["SLOWLOG", "GET", "-2"])
        .contains("count should be greater than or equal to -1"));
    assert!(q_err(&mut c, &["SLOWLOG", "NOPE"]).contains("unknown subcommand"));
    let Value::Array(help) = q(&mut c, &["SLOWLOG", "HELP"]) else {
        panic!()
    };
    assert_eq!(help.len(), 12);
}

#[test]
fn slowlog_off_keeps_nothing_and_the_default_keeps_only_slow_requests() {
    let off = own_proxy(|c| c.slowlog.log_slower_than_us = -1);
    let mut c = off.client();
    q(&mut c, &["SET", "{obs5}:k", "v"]);
    assert_eq!(q(&mut c, &["SLOWLOG", "LEN"]), Value::Int(0));

    // The default threshold is 10 ms: a quick request stays out, one held up by the node goes
    // in. DEBUG SLEEP is refused by slotgate, so a script sleeps on the node instead.
    let default = own_proxy(|_| {});
    let mut c = default.client();
    q(&mut c, &["SLOWLOG", "RESET"]);
    q(&mut c, &["GET", "{obs5}:k"]);
    let busy = "local t = redis.call('TIME') local e = t[1] * 1000000 + t[2] + 30000 \
                repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= e return 1";
    let started = Instant::now();
    q(&mut c, &["EVAL", busy, "1", "{obs5}:k"]);
    assert!(started.elapsed() >= Duration::from_millis(30));
    let Value::Array(entries) = q(&mut c, &["SLOWLOG", "GET", "-1"]) else {
        panic!()
    };
    // A busy machine may make another request slow too; none is logged below the threshold.
    for e in &entries {
        let Value::Array(fields) = e else { panic!() };
        assert!(
            matches!(fields[2], Value::Int(us) if us >= 10_000),
            "{fields:?}"
        );
    }
    let Value::Array(fields) = &entries[0] else {
        panic!("the EVAL is logged: {entries:?}")
    };
    assert!(
        matches!(fields[2], Value::Int(us) if us >= 30_000),
        "{fields:?}"
    );
    let Value::Array(args) = &fields[3] else {
        panic!()
    };
    assert_eq!(args[0], Value::BulkString(b"EVAL".to_vec()));
}
