//! Every command family a cluster-unaware client uses, through the proxy, with keys that land on
//! every master.

use redis::{Commands, Value};

use crate::{env, q, q_err};

fn s(v: &str) -> Value {
    Value::BulkString(v.as_bytes().to_vec())
}

#[test]
fn strings() {
    let mut c = env().proxy.client();
    let _: () = c.del(&["fam:s1", "fam:s2", "fam:n"]).unwrap();
    assert_eq!(q(&mut c, &["SET", "fam:s1", "hello"]), Value::Okay);
    assert_eq!(q(&mut c, &["GET", "fam:s1"]), s("hello"));
    assert_eq!(q(&mut c, &["APPEND", "fam:s1", " world"]), Value::Int(11));
    assert_eq!(q(&mut c, &["GETRANGE", "fam:s1", "0", "4"]), s("hello"));
    assert_eq!(
        q(&mut c, &["SETRANGE", "fam:s1", "6", "WORLD"]),
        Value::Int(11)
    );
    assert_eq!(q(&mut c, &["STRLEN", "fam:s1"]), Value::Int(11));
    assert_eq!(q(&mut c, &["INCR", "fam:n"]), Value::Int(1));
    assert_eq!(q(&mut c, &["INCRBY", "fam:n", "9"]), Value::Int(10));
    assert_eq!(q(&mut c, &["DECR", "fam:n"]), Value::Int(9));
    assert_eq!(q(&mut c, &["INCRBYFLOAT", "fam:n", "0.5"]), s("9.5"));
    assert_eq!(q(&mut c, &["GETSET", "fam:s2", "a"]), Value::Nil);
    assert_eq!(q(&mut c, &["SETNX", "fam:s2", "b"]), Value::Int(0));
    assert_eq!(q(&mut c, &["GETDEL", "fam:s2"]), s("a"));
    assert_eq!(q(&mut c, &["SETEX", "fam:s2", "100", "x"]), Value::Okay);
    assert_eq!(q(&mut c, &["GETEX", "fam:s2", "PERSIST"]), s("x"));
    assert_eq!(q(&mut c, &["TTL", "fam:s2"]), Value::Int(-1));
    assert_eq!(
        q(&mut c, &["SET", "fam:s2", "y", "GET"]),
        s("x"),
        "SET .. GET returns the old value"
    );
    assert!(q_err(&mut c, &["INCR", "fam:s1"]).contains("not an integer"));
}

#[test]
fn hashes() {
    let mut c = env().proxy.client();
    let _: () = c.del("fam:h").unwrap();
    assert_eq!(
        q(&mut c, &["HSET", "fam:h", "a", "1", "b", "2"]),
        Value::Int(2)
    );
    assert_eq!(q(&mut c, &["HGET", "fam:h", "a"]), s("1"));
    assert_eq!(
        q(&mut c, &["HMGET", "fam:h", "a", "zz", "b"]),
        Value::Array(vec![s("1"), Value::Nil, s("2")])
    );
    assert_eq!(q(&mut c, &["HINCRBY", "fam:h", "a", "5"]), Value::Int(6));
    assert_eq!(q(&mut c, &["HLEN", "fam:h"]), Value::Int(2));
    assert_eq!(q(&mut c, &["HEXISTS", "fam:h", "b"]), Value::Int(1));
    assert_eq!(q(&mut c, &["HDEL", "fam:h", "b"]), Value::Int(1));
    assert_eq!(
        q(&mut c, &["HGETALL", "fam:h"]),
        Value::Array(vec![s("a"), s("6")])
    );
    let Value::Array(scan) = q(&mut c, &["HSCAN", "fam:h", "0"]) else {
        panic!("HSCAN reply")
    };
    assert_eq!(scan[0], s("0"));
}

#[test]
fn lists() {
    let mut c = env().proxy.client();
    let _: () = c.del("fam:l").unwrap();
    assert_eq!(q(&mut c, &["RPUSH", "fam:l", "a", "b", "c"]), Value::Int(3));
    assert_eq!(q(&mut c, &["LPUSH", "fam:l", "z"]), Value::Int(4));
    assert_eq!(
        q(&mut c, &["LRANGE", "fam:l", "0", "-1"]),
        Value::Array(vec![s("z"), s("a"), s("b"), s("c")])
    );
    assert_eq!(q(&mut c, &["LINDEX", "fam:l", "1"]), s("a"));
    assert_eq!(q(&mut c, &["LSET", "fam:l", "1", "A"]), Value::Okay);
    assert_eq!(
        q(&mut c, &["LINSERT", "fam:l", "BEFORE", "b", "x"]),
        Value::Int(5)
    );
    assert_eq!(q(&mut c, &["LPOS", "fam:l", "x"]), Value::Int(2));
    assert_eq!(q(&mut c, &["LREM", "fam:l", "0", "x"]), Value::Int(1));
    assert_eq!(q(&mut c, &["LPOP", "fam:l"]), s("z"));
    assert_eq!(q(&mut c, &["RPOP", "fam:l"]), s("c"));
    assert_eq!(q(&mut c, &["LTRIM", "fam:l", "0", "0"]), Value::Okay);
    assert_eq!(q(&mut c, &["LLEN", "fam:l"]), Value::Int(1));
}

#[test]
fn sets() {
    let mut c = env().proxy.client();
    let _: () = c.del("fam:set").unwrap();
    assert_eq!(
        q(&mut c, &["SADD", "fam:set", "a", "b", "c"]),
        Value::Int(3)
    );
    assert_eq!(q(&mut c, &["SISMEMBER", "fam:set", "a"]), Value::Int(1));
    assert_eq!(
        q(&mut c, &["SMISMEMBER", "fam:set", "a", "q"]),
        Value::Array(vec![Value::Int(1), Value::Int(0)])
    );
    assert_eq!(q(&mut c, &["SCARD", "fam:set"]), Value::Int(3));
    assert_eq!(q(&mut c, &["SREM", "fam:set", "c"]), Value::Int(1));
    let mut members: Vec<String> = c.smembers("fam:set").unwrap();
    members.sort();
    assert_eq!(members, vec!["a", "b"]);
    assert!(matches!(
        q(&mut c, &["SRANDMEMBER", "fam:set"]),
        Value::BulkString(_)
    ));
    assert!(matches!(
        q(&mut c, &["SPOP", "fam:set"]),
        Value::BulkString(_)
    ));
}

#[test]
fn sorted_sets() {
    let mut c = env().proxy.client();
    let _: () = c.del("fam:z").unwrap();
    assert_eq!(
        q(&mut c, &["ZADD", "fam:z", "1", "a", "2", "b", "3", "c"]),
        Value::Int(3)
    );
    assert_eq!(q(&mut c, &["ZSCORE", "fam:z", "b"]), s("2"));
    assert_eq!(q(&mut c, &["ZINCRBY", "fam:z", "10", "a"]), s("11"));
    assert_eq!(q(&mut c, &["ZRANK", "fam:z", "a"]), Value::Int(2));
    assert_eq!(q(&mut c, &["ZCARD", "fam:z"]), Value::Int(3));
    assert_eq!(q(&mut c, &["ZCOUNT", "fam:z", "0", "5"]), Value::Int(2));
    assert_eq!(
        q(&mut c, &["ZRANGE", "fam:z", "0", "-1"]),
        Value::Array(vec![s("b"), s("c"), s("a")])
    );
    assert_eq!(
        q(&mut c, &["ZRANGEBYSCORE", "fam:z", "2", "3"]),
        Value::Array(vec![s("b"), s("c")])
    );
    assert_eq!(
        q(&mut c, &["ZPOPMIN", "fam:z"]),
        Value::Array(vec![s("b"), s("2")])
    );
    assert_eq!(q(&mut c, &["ZREM", "fam:z", "c"]), Value::Int(1));
}

#[test]
fn streams() {
    let mut c = env().proxy.client();
    let _: () = c.del("fam:x").unwrap();
    assert_eq!(q(&mut c, &["XADD", "fam:x", "1-1", "f", "v"]), s("1-1"));
    assert_eq!(q(&mut c, &["XADD", "fam:x", "2-1", "f", "w"]), s("2-1"));
    assert_eq!(q(&mut c, &["XLEN", "fam:x"]), Value::Int(2));
    let Value::Array(range) = q(&mut c, &["XRANGE", "fam:x", "-", "+"]) else {
        panic!("XRANGE reply")
    };
    assert_eq!(range.len(), 2);
    assert_eq!(
        q(&mut c, &["XGROUP", "CREATE", "fam:x", "g", "0"]),
        Value::Okay
    );
    let Value::Array(read) = q(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            "1",
            "STREAMS",
            "fam:x",
            ">",
        ],
    ) else {
        panic!("XREADGROUP reply")
    };
    assert_eq!(read.len(), 1);
    assert_eq!(q(&mut c, &["XACK", "fam:x", "g", "1-1"]), Value::Int(1));
    let Value::Array(read) = q(&mut c, &["XREAD", "COUNT", "5", "STREAMS", "fam:x", "0"]) else {
        panic!("XREAD reply")
    };
    assert_eq!(read.len(), 1);
    assert!(matches!(
        q(&mut c, &["XINFO", "STREAM", "fam:x"]),
        Value::Array(_)
    ));
    assert_eq!(q(&mut c, &["XDEL", "fam:x", "1-1"]), Value::Int(1));
    assert_eq!(q(&mut c, &["XTRIM", "fam:x", "MAXLEN", "0"]), Value::Int(1));
}

#[test]
fn keys_and_expiry() {
    let mut c = env().proxy.client();
    let _: () = c.del(&["{fam:k}a", "{fam:k}b", "{fam:k}c"]).unwrap();
    q(&mut c, &["SET", "{fam:k}a", "1"]);
    assert_eq!(
        q(&mut c, &["TYPE", "{fam:k}a"]),
        Value::SimpleString("string".into())
    );
    assert_eq!(q(&mut c, &["EXPIRE", "{fam:k}a", "100"]), Value::Int(1));
    let Value::Int(ttl) = q(&mut c, &["TTL", "{fam:k}a"]) else {
        panic!("TTL reply")
    };
    assert!((1..=100).contains(&ttl));
    assert!(matches!(q(&mut c, &["PTTL", "{fam:k}a"]), Value::Int(n) if n > 0));
    assert_eq!(q(&mut c, &["PERSIST", "{fam:k}a"]), Value::Int(1));
    assert_eq!(q(&mut c, &["RENAME", "{fam:k}a", "{fam:k}b"]), Value::Okay);
    assert_eq!(q(&mut c, &["COPY", "{fam:k}b", "{fam:k}c"]), Value::Int(1));
    assert_eq!(q(&mut c, &["OBJECT", "ENCODING", "{fam:k}c"]), s("int"));
    let Value::BulkString(dump) = q(&mut c, &["DUMP", "{fam:k}c"]) else {
        panic!("DUMP reply")
    };
    let _: () = c.del("{fam:k}c").unwrap();
    let restored: redis::Value = redis::cmd("RESTORE")
        .arg("{fam:k}c")
        .arg(0)
        .arg(dump)
        .query(&mut c)
        .unwrap();
    assert_eq!(restored, Value::Okay);
    assert_eq!(q(&mut c, &["GET", "{fam:k}c"]), s("1"));
    assert_eq!(q(&mut c, &["EXPIREAT", "{fam:k}c", "1"]), Value::Int(1));
    assert_eq!(q(&mut c, &["EXISTS", "{fam:k}c"]), Value::Int(0));
}

#[test]
fn bitmaps_hyperloglog_geo() {
    let mut c = env().proxy.client();
    let _: () = c
        .del(&[
            "fam:bits",
            "{fam:hll}1",
            "{fam:hll}2",
            "{fam:hll}3",
            "fam:geo",
        ])
        .unwrap();
    assert_eq!(q(&mut c, &["SETBIT", "fam:bits", "7", "1"]), Value::Int(0));
    assert_eq!(q(&mut c, &["GETBIT", "fam:bits", "7"]), Value::Int(1));
    assert_eq!(q(&mut c, &["BITCOUNT", "fam:bits"]), Value::Int(1));
    assert_eq!(q(&mut c, &["BITPOS", "fam:bits", "1"]), Value::Int(7));
    assert_eq!(
        q(&mut c, &["BITFIELD", "fam:bits", "GET", "u8", "0"]),
        Value::Array(vec![Value::Int(1)])
    );
    assert_eq!(q(&mut c, &["PFADD", "{fam:hll}1", "a", "b"]), Value::Int(1));
    assert_eq!(q(&mut c, &["PFADD", "{fam:hll}2", "b", "c"]), Value::Int(1));
    assert_eq!(
        q(&mut c, &["PFCOUNT", "{fam:hll}1", "{fam:hll}2"]),
        Value::Int(3)
    );
    assert_eq!(
        q(
            &mut c,
            &["PFMERGE", "{fam:hll}3", "{fam:hll}1", "{fam:hll}2"]
        ),
        Value::Okay
    );
    assert_eq!(q(&mut c, &["PFCOUNT", "{fam:hll}3"]), Value::Int(3));
    assert_eq!(
        q(
            &mut c,
            &[
                "GEOADD",
                "fam:geo",
                "13.361389",
                "38.115556",
                "Palermo",
                "15.087269",
                "37.502669",
                "Catania"
            ]
        ),
        Value::Int(2)
    );
    let Value::BulkString(d) = q(&mut c, &["GEODIST", "fam:geo", "Palermo", "Catania", "km"])
    else {
        panic!("GEODIST reply")
    };
    assert!(String::from_utf8(d).unwrap().starts_with("166.27"));
    assert!(matches!(
        q(&mut c, &["GEOPOS", "fam:geo", "Palermo"]),
        Value::Array(_)
    ));
    assert!(matches!(
        q(&mut c, &["GEOHASH", "fam:geo", "Palermo"]),
        Value::Array(_)
    ));
    let Value::Array(found) = q(
        &mut c,
        &[
            "GEOSEARCH",
            "fam:geo",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
            "ASC",
        ],
    ) else {
        panic!("GEOSEARCH reply")
    };
    assert_eq!(found.len(), 2);
}
