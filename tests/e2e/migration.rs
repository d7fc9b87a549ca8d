//! A slot moves between masters (MIGRATING/IMPORTING, MIGRATE, SETSLOT NODE) while clients read
//! and write it through the proxy: they must see no error and lose no write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use crate::{env, q};

#[test]
fn slot_migration_under_load_loses_nothing() {
    let env = env();
    let cluster = &env.cluster;
    let any = cluster.nodes[0].port;
    let slot: u16 = cluster
        .cli(any, &["CLUSTER", "KEYSLOT", "{mig}"])
        .parse()
        .unwrap();
    let src = cluster.master_of_slot(slot);
    let dst = *cluster.masters().iter().find(|&&m| m != src).unwrap();
    let src_id = cluster.cli(src, &["CLUSTER", "MYID"]);
    let dst_id = cluster.cli(dst, &["CLUSTER", "MYID"]);

    let mut c = env.proxy.client();
    for i in 0..300 {
        q(
            &mut c,
            &["SET", &format!("{{mig}}:pre:{i}"), &i.to_string()],
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let mut c = env.proxy.client();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut errors = Vec::new();
                let mut j = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{{mig}}:t{t}:{j}");
                    match redis::cmd("SET").arg(&key).arg(j).query::<Value>(&mut c) {
                        Ok(Value::Okay) => acked.push((key, j)),
                        other => errors.push(format!("SET {key}: {other:?}")),
                    }
                    let pre = j % 300;
                    match redis::cmd("GET")
                        .arg(format!("{{mig}}:pre:{pre}"))
                        .query::<Value>(&mut c)
                    {
                        Ok(Value::BulkString(v)) if v == pre.to_string().as_bytes() => {}
                        other => errors.push(format!("GET pre:{pre}: {other:?}")),
                    }
                    j += 1;
                }
                (acked, errors)
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(200));
    let port = dst.to_string();
    cluster.cli(
        dst,
        &[
            "CLUSTER",
            "SETSLOT",
            &slot.to_string(),
            "IMPORTING",
            &src_id,
        ],
    );
    cluster.cli(
        src,
        &[
            "CLUSTER",
            "SETSLOT",
            &slot.to_string(),
            "MIGRATING",
            &dst_id,
        ],
    );
    let mut batches = 0;
    loop {
        let keys = cluster.cli(src, &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "20"]);
        let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(keys);
        assert_eq!(cluster.cli(src, &args), "OK");
        batches += 1;
        // Let the load run against a half-migrated slot.
        std::thread::sleep(Duration::from_millis(20));
    }
    for node in [dst, src] {
        cluster.cli(
            node,
            &["CLUSTER", "SETSLOT", &slot.to_string(), "NODE", &dst_id],
        );
    }
    for m in cluster.masters() {
        if m != dst && m != src {
            cluster.cli(
                m,
                &["CLUSTER", "SETSLOT", &slot.to_string(), "NODE", &dst_id],
            );
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);

    let mut all_acked = Vec::new();
    for w in workers {
        let (acked, errors) = w.join().unwrap();
        assert!(
            errors.is_empty(),
            "clients saw errors: {:?}",
            &errors[..errors.len().min(5)]
        );
        all_acked.extend(acked);
    }
    assert!(batches > 0, "the slot had keys to migrate");
    assert!(
        all_acked.len() > 100,
        "load ran: {} writes",
        all_acked.len()
    );
    for (key, val) in &all_acked {
        assert_eq!(
            q(&mut c, &["GET", key]),
            Value::BulkString(val.to_string().into_bytes()),
            "acknowledged write {key} lost"
        );
    }
    // The data really moved: the new owner holds it.
    assert_eq!(cluster.master_of_slot(slot), dst);
    assert_eq!(cluster.cli(dst, &["GET", "{mig}:pre:7"]), "7");
    println!(
        "migration: {batches} MIGRATE batches, {} acknowledged writes verified",
        all_acked.len()
    );
}
