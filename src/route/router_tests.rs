//! The router's follow loop against scripted fake nodes on loopback: what a client gets when a
//! node redirects, refuses or drops a request, and what the router learns from it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::router::Router;
use crate::backend::Lane;
use crate::cluster::Slot;
use crate::command::CommandTable;
use crate::fake::{all_slots_at, always, fake_node, redirect, request, router, Answer};
use crate::metrics::Metrics;
use crate::order::Turn;
use crate::protocol::Reply;

/// Runs `words` the way a session's slow path does.
async fn run(router: &Router, words: &[&str]) -> Reply {
    let req = request(words);
    let plan = CommandTable::builtin().classify(&req);
    router
        .execute(&req, plan, Lane::default(), Turn::now(), None)
        .await
}

#[tokio::test]
async fn moved_is_followed_and_the_slot_remembered() {
    let (new_owner, new_seen) = fake_node(always(&b"$1\r\nv\r\n"[..])).await;
    let (old_owner, old_seen) = fake_node(always(redirect("MOVED", &new_owner))).await;
    let metrics = Arc::new(Metrics::new());
    let router = router(metrics.clone());
    router.install(&all_slots_at(&old_owner));

    assert_eq!(run(&router, &["GET", "k"]).await, Reply::bulk(b"v"));
    assert_eq!(metrics.redirections_moved.get(), 1);
    assert_eq!(
        router.topology().master_of(Slot::for_key(b"k")),
        Some(&new_owner)
    );
    // The next request goes to the new owner directly.
    assert_eq!(run(&router, &["GET", "k"]).await, Reply::bulk(b"v"));
    assert_eq!(old_seen.load(Ordering::SeqCst), 1);
    assert_eq!(new_seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn ask_sends_asking_first_and_leaves_the_map_alone() {
    let (importing, _) = fake_node(Arc::new(|args, _| {
        match args[0].eq_ignore_ascii_case(b"ASKING") {
            true => Answer::Reply(Bytes::from_static(b"+OK\r\n")),
            // Without ASKING first, a node importing the slot would redirect back.
            false => Answer::Reply(Bytes::from_static(b"$8\r\nimported\r\n")),
        }
    }))
    .await;
    let (owner, _) = fake_node(always(redirect("ASK", &importing))).await;
    let metrics = Arc::new(Metrics::new());
    let router = router(metrics.clone());
    router.install(&all_slots_at(&owner));

    assert_eq!(run(&router, &["GET", "k"]).await, Reply::bulk(b"imported"));
    assert_eq!(metrics.redirections_ask.get(), 1);
    assert_eq!(
        router.topology().master_of(Slot::for_key(b"k")),
        Some(&owner)
    );
}

#[tokio::test]
async fn a_redirect_loop_ends_at_the_limit() {
    let slot = Slot::for_key(b"k").get();
    let (a, _) = fake_node(always(&b"-TRYAGAIN later\r\n"[..])).await;
    let metrics = Arc::new(Metrics::new());
    let router = router(metrics.clone());
    router.install(&all_slots_at(&a));
    let reply = run(&router, &["GET", "k"]).await;
    assert_eq!(
        reply,
        Reply::error_line(&format!(
            "ERR slotgate: too many redirections for slot {slot} (limit 5)"
        ))
    );
    assert_eq!(metrics.redirect_giveups.get(), 1);
}

/// The node reads the command and closes the connection before answering: the command may have
/// run. Only one that is safe to repeat is sent again; the node answers the second attempt.
#[tokio::test]
async fn a_lost_request_is_sent_again_only_when_safe() {
    let (node, seen) = fake_node(Arc::new(|_, n| match n {
        0 | 2 => Answer::HangUp,
        _ => Answer::Reply(Bytes::from_static(b"+OK\r\n")),
    }))
    .await;
    let metrics = Arc::new(Metrics::new());
    let router = router(metrics.clone());
    router.install(&all_slots_at(&node));

    assert_eq!(run(&router, &["SET", "k", "v"]).await, Reply::ok());
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    let reply = run(&router, &["INCR", "k"]).await;
    assert_eq!(
        reply,
        Reply::error_line(&format!(
            "ERR slotgate: connection to {node} lost, outcome unknown"
        ))
    );
    assert_eq!(seen.load(Ordering::SeqCst), 3, "INCR was not sent twice");
    let text = metrics.encode_text().unwrap();
    assert!(
        text.contains("slotgate_errors_total{kind=\"backend_connection_lost\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn cross_slot_keys_are_refused_without_a_round_trip() {
    let (node, seen) = fake_node(always(&b"+OK\r\n"[..])).await;
    let metrics = Arc::new(Metrics::new());
    let router = router(metrics.clone());
    router.install(&all_slots_at(&node));
    assert_eq!(
        run(&router, &["RENAME", "a", "b"]).await,
        Reply::error_line("CROSSSLOT Keys in request don't hash to the same slot")
    );
    assert_eq!(seen.load(Ordering::SeqCst), 0);
    let text = metrics.encode_text().unwrap();
    assert!(text.contains("slotgate_errors_total{kind=\"crossslot\"} 1"));
}

/// A master that lost its scripts: EVALSHA gets NOSCRIPT until SCRIPT LOAD brings the script back.
/// Every command it sees is logged.
async fn forgetful_node() -> (crate::cluster::NodeAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    let loaded = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (node, _) = fake_node(Arc::new(move |args: &[Bytes], _| {
        let words: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        seen.lock().unwrap().push(words.join(" "));
        let reply: &'static [u8] = match words[0].to_ascii_uppercase().as_str() {
            "SCRIPT" if words[1].eq_ignore_ascii_case("LOAD") => {
                loaded.store(true, Ordering::SeqCst);
                b"$40\r\ne0e1f9fabfc9d4800c877a703b823ac0578ff8db\r\n"
            }
            "SCRIPT" => b"+OK\r\n",
            _ if loaded.load(Ordering::SeqCst) => b":1\r\n",
            _ => b"-NOSCRIPT No matching script. Please use EVAL.\r\n",
        };
        Answer::Reply(Bytes::from_static(reply))
    }))
    .await;
    (node, log)
}

const SHA: &str = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db";

#[tokio::test]
async fn an_evalsha_of_an_evald_script_is_healed_where_the_script_was_lost() {
    let (node, log) = forgetful_node().await;
    let metrics = Arc::new(Metrics::new());
    let router = router(metrics.clone());
    router.install(&all_slots_at(&node));
    router.remember_script(&request(&["EVAL", "return 1", "1", "k"]));

    assert_eq!(
        run(&router, &["EVALSHA", SHA, "1", "k"]).await,
        Reply::integer_reply(1)
    );
    assert_eq!(
        *log.lock().unwrap(),
        [
            format!("EVALSHA {SHA} 1 k"),
            "SCRIPT LOAD return 1".to_owned(),
            format!("EVALSHA {SHA} 1 k"),
        ]
    );
    assert_eq!(metrics.noscript_heals.get(), 1);
}

#[tokio::test]
async fn an_unknown_sha_gets_the_nodes_noscript() {
    let (node, log) = forgetful_node().await;
    let router = router(Arc::new(Metrics::new()));
    router.install(&all_slots_at(&node));
    for words in [&["EVALSHA", SHA, "1", "k"][..], &["EVALSHA_RO", SHA, "0"]] {
        assert_eq!(
            run(&router, words).await,
            Reply::error_line("NOSCRIPT No matching script. Please use EVAL.")
        );
    }
    assert_eq!(
        log.lock().unwrap().len(),
        2,
        "nothing loaded, nothing sent again"
    );
}

#[tokio::test]
async fn a_keyless_evalsha_of_a_loaded_script_is_healed_too() {
    let (node, log) = forgetful_node().await;
    let router = router(Arc::new(Metrics::new()));
    router.install(&all_slots_at(&node));
    // SCRIPT LOAD through slotgate remembers it (the node forgets it again below).
    let sha = Reply::bulk(SHA.as_bytes());
    assert_eq!(run(&router, &["SCRIPT", "LOAD", "return 1"]).await, sha);
    let (node2, log2) = forgetful_node().await;
    router.install(&all_slots_at(&node2));

    assert_eq!(
        run(&router, &["evalsha_ro", &SHA.to_ascii_uppercase(), "0"]).await,
        Reply::integer_reply(1)
    );
    assert_eq!(log.lock().unwrap().len(), 1);
    assert_eq!(log2.lock().unwrap()[1], "SCRIPT LOAD return 1");
    assert_eq!(log2.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn script_flush_forgets_what_slotgate_would_heal_with() {
    let (node, log) = forgetful_node().await;
    let router = router(Arc::new(Metrics::new()));
    router.install(&all_slots_at(&node));
    router.remember_script(&request(&["EVAL", "return 1", "0"]));
    assert_eq!(run(&router, &["SCRIPT", "FLUSH"]).await, Reply::ok());
    assert_eq!(
        run(&router, &["EVALSHA", SHA, "0"]).await,
        Reply::error_line("NOSCRIPT No matching script. Please use EVAL.")
    );
    assert_eq!(log.lock().unwrap().len(), 2);
}

/// The session's fast path hands the NOSCRIPT of an EVALSHA to the router instead of the client.
#[tokio::test]
async fn the_fast_path_hands_noscript_to_the_router() {
    let (node, log) = forgetful_node().await;
    let router = router(Arc::new(Metrics::new()));
    router.install(&all_slots_at(&node));
    router.remember_script(&request(&["EVAL", "return 1", "1", "k"]));
    let req = request(&["EVALSHA", SHA, "1", "k"]);
    let plan = CommandTable::builtin().classify(&req);
    let mut started = router.start(&req, plan, Lane::default(), None).unwrap();
    let budget = crate::budget::Budget::new(crate::budget::OutputLimits {
        hard: 1 << 20,
        soft: 0,
        soft_for: std::time::Duration::ZERO,
    });
    let settled = std::future::poll_fn(|cx| started.poll_settled(cx, &budget)).await;
    let Err(unsettled) = settled else {
        panic!("a NOSCRIPT for an EVALSHA is not the client's answer");
    };
    let reply = router.resume(&req, unsettled, Lane::default(), None).await;
    assert_eq!(reply, Reply::integer_reply(1));
    assert_eq!(log.lock().unwrap().len(), 3);
}
