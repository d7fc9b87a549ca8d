//! Micro-benchmarks of the pure per-request path: bytes to `Request`, request to `Plan`, key to
//! `Slot`, a multi-key command split by slot and its part-replies merged back. No sockets, so a
//! regression here shows up as a number rather than as noise in the load benchmark.
//!
//! `cargo bench --bench hotpath` measures; `cargo test --bench hotpath` (and `--all-targets`) runs
//! every routine once, so the sanity asserts in the setup below also guard the fixtures.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use tokio_util::codec::Decoder;

use slotgate::cluster::Slot;
use slotgate::command::{Action, CommandTable, SplitKind};
use slotgate::protocol::{encode_command, Limits, Reply, ReplyCodec, Request, RequestCodec};
use slotgate::route::merge::{merge, PartResult};
use slotgate::route::split::{split, Part, Split};

/// A size that must take several reads and cross the codecs' 64 KiB reserve chunk.
const BIG: usize = 1024 * 1024;

/// A common socket read size; replaying a big frame in reads of this size exercises the codecs'
/// resumable parsing the way a real connection does.
const READ: usize = 64 * 1024;

fn wire(args: &[&[u8]]) -> Vec<u8> {
    let mut dst = BytesMut::new();
    encode_command(args.iter().copied(), &mut dst);
    dst.to_vec()
}

fn decode_one(wire: &[u8]) -> Request {
    let mut src = BytesMut::from(wire);
    let request = RequestCodec::new(Limits::default())
        .decode(&mut src)
        .expect("fixture is valid RESP")
        .expect("fixture is one whole request");
    assert!(src.is_empty(), "fixture is exactly one request");
    request
}

/// `MGET`/`MSET` arguments for `n` keys; `tagged` puts key `i` in hash tag `i % 3`, so the keys land
/// in three slots interleaved, and merging has to restore the client's order.
fn multi_key(name: &str, n: usize, with_values: bool, tagged: bool) -> Vec<Vec<u8>> {
    let mut args = vec![name.as_bytes().to_vec()];
    for i in 0..n {
        let key = if tagged {
            format!("{{{}}}key:{i:04}", ["a", "b", "c"][i % 3])
        } else {
            format!("key:{i:04}")
        };
        args.push(key.into_bytes());
        if with_values {
            args.push(format!("value:{i:04}").into_bytes());
        }
    }
    args
}

fn as_slices(args: &[Vec<u8>]) -> Vec<&[u8]> {
    args.iter().map(Vec::as_slice).collect()
}

/// Decodes every frame in `src`; the caller checks the count so a fixture that stops parsing
/// cannot turn into a fast, meaningless number.
fn decode_all<D: Decoder>(codec: &mut D, src: &mut BytesMut) -> usize
where
    D::Error: std::fmt::Debug,
{
    let mut n = 0;
    while let Some(item) = codec.decode(src).expect("fixture is valid RESP") {
        black_box(item);
        n += 1;
    }
    n
}

/// Feeds `wire` into a reused buffer in `chunk`-sized reads, decoding after each as a `Framed`
/// would; returns how many frames came out. The copy stands in for the socket read, which the
/// real path pays too.
fn decode_in_reads<D: Decoder>(
    codec: &mut D,
    buf: &mut BytesMut,
    wire: &[u8],
    chunk: usize,
) -> usize
where
    D::Error: std::fmt::Debug,
{
    let mut n = 0;
    for read in wire.chunks(chunk) {
        buf.extend_from_slice(read);
        n += decode_all(codec, buf);
    }
    n
}

fn decode_big<D: Decoder>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut codec: D,
    wire: &[u8],
    chunk: usize,
) where
    D::Error: std::fmt::Debug,
{
    group.throughput(Throughput::Bytes(wire.len() as u64));
    let mut buf = BytesMut::new();
    group.bench_function(name, |b| {
        b.iter(|| assert_eq!(decode_in_reads(&mut codec, &mut buf, wire, chunk), 1))
    });
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");

    let pipeline: Vec<u8> = (0..1000)
        .flat_map(|i| wire(&[b"GET", format!("key:{i:04}").as_bytes()]))
        .collect();
    // One codec for all iterations, as one connection keeps its codec: its scratch index is
    // reused, so its first growth is not charged to every pipeline.
    let mut requests = RequestCodec::new(Limits::default());
    group.throughput(Throughput::Elements(1000));
    group.bench_function("decode_pipeline_1000_get", |b| {
        b.iter_batched(
            || BytesMut::from(&pipeline[..]),
            |mut src| {
                let n = decode_all(&mut requests, &mut src);
                assert_eq!(n, 1000);
            },
            BatchSize::SmallInput,
        )
    });

    let mget_args = multi_key("MGET", 100, false, false);
    let mget = wire(&as_slices(&mget_args));
    group.throughput(Throughput::Elements(100));
    group.bench_function("decode_mget_100_keys", |b| {
        b.iter_batched(
            || BytesMut::from(&mget[..]),
            |mut src| {
                let n = decode_all(&mut requests, &mut src);
                assert_eq!(n, 1);
            },
            BatchSize::SmallInput,
        )
    });
    // The path of every sub-request a split writes: encoding from argument slices, not forwarding.
    let mget_slices = as_slices(&mget_args);
    let mut out = BytesMut::new();
    group.bench_function("encode_mget_100_keys", |b| {
        b.iter(|| {
            out.clear();
            encode_command(black_box(&mget_slices).iter().copied(), &mut out);
            assert_eq!(out.len(), mget.len());
        })
    });

    let payload = vec![b'x'; BIG];
    let set = wire(&[b"SET", b"key:big", &payload]);
    let reply_wire = Reply::bulk(&payload).bytes().to_vec();

    // Decoding a whole bulk is O(1) in its length, so a decode-only timing would be a few
    // nanoseconds dwarfed by any per-iteration setup. These include copying the frame into the
    // read buffer, as the socket read does: "one_read" vs "64k_reads" isolates what resuming a
    // partly received frame costs.
    for (reads, chunk) in [("one_read", set.len()), ("64k_reads", READ)] {
        let name = format!("decode_1mib_set_request_{reads}");
        let codec = RequestCodec::new(Limits::default());
        decode_big(&mut group, &name, codec, &set, chunk);
    }
    for (reads, chunk) in [("one_read", reply_wire.len()), ("64k_reads", READ)] {
        let name = format!("decode_1mib_bulk_reply_{reads}");
        let codec = ReplyCodec::new(Limits::default());
        decode_big(&mut group, &name, codec, &reply_wire, chunk);
    }

    // Forwarding a decoded request is handing on a slice of the client's read buffer, never a
    // re-encoding: this stays near zero however big the request.
    let set_request = decode_one(&set);
    group.throughput(Throughput::Bytes(set.len() as u64));
    group.bench_function("forward_1mib_set_request", |b| {
        b.iter(|| black_box(black_box(&set_request).to_resp()))
    });
    group.finish();
}

fn slot(c: &mut Criterion) {
    let mut group = c.benchmark_group("slot_for_key");
    let long = [b'k'; 100];
    let keys: [(&str, &[u8]); 3] = [
        ("short", b"user:1000"),
        ("hash_tag", b"{user1000}.following"),
        ("100_bytes", &long),
    ];
    for (name, key) in keys {
        group.throughput(Throughput::Bytes(key.len() as u64));
        group.bench_function(name, |b| b.iter(|| Slot::for_key(black_box(key))));
    }
    group.finish();
}

fn classify(c: &mut Criterion) {
    let mut group = c.benchmark_group("classify");
    let table = CommandTable::builtin();
    let get = decode_one(&wire(&[b"GET", b"user:1000"]));
    assert!(matches!(table.classify(&get).action, Action::Keyed(_)));
    let mset = decode_one(&wire(&as_slices(&multi_key("MSET", 100, true, false))));
    assert_eq!(table.classify(&mset).action, Action::Split(SplitKind::MSet));
    group.bench_function("get", |b| b.iter(|| table.classify(black_box(&get))));
    group.bench_function("mset_100_keys", |b| {
        b.iter(|| table.classify(black_box(&mset)))
    });
    group.finish();
}

fn parts_of(s: Split) -> Vec<Part> {
    match s {
        Split::Parts(p) => p,
        Split::OneSlot(_) => panic!("fixture should span several slots"),
    }
}

fn split_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("split_merge");
    group.throughput(Throughput::Elements(100));
    // Unrelated keys nearly all hash to different slots, so this is the one-part-per-key worst
    // case; three hash tags is the case applications arrange on purpose.
    for (name, tagged, parts) in [("distinct_slots", false, 100), ("3_hash_tags", true, 3)] {
        let request = decode_one(&wire(&as_slices(&multi_key("MSET", 100, true, tagged))));
        assert_eq!(
            parts_of(split(request.args(), SplitKind::MSet)).len(),
            parts
        );
        group.bench_function(format!("split_mset_100_keys_{name}"), |b| {
            b.iter(|| split(black_box(request.args()), SplitKind::MSet))
        });
    }

    let request = decode_one(&wire(&as_slices(&multi_key("MGET", 100, false, true))));
    let parts = parts_of(split(request.args(), SplitKind::MGet));
    let mut sizes: Vec<usize> = parts.iter().map(|p| p.positions.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [33, 33, 34]);
    let value = |pos: usize| match pos % 10 {
        9 => Reply::null_bulk(),
        _ => Reply::bulk(format!("value:{pos:04}").as_bytes()),
    };
    let results: Vec<PartResult> = parts
        .iter()
        .map(|p| {
            let elements: Vec<Reply> = p.positions.iter().map(|&pos| value(pos)).collect();
            Ok(Reply::array(&elements))
        })
        .collect();
    let expected = Reply::array(&(0..100).map(value).collect::<Vec<_>>());
    assert_eq!(
        merge(SplitKind::MGet, &parts, results.clone()),
        Ok(expected)
    );
    group.bench_function("merge_mget_3_parts_into_100", |b| {
        b.iter_batched(
            || results.clone(),
            |results| merge(SplitKind::MGet, black_box(&parts), results),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, codec, slot, classify, split_merge);
criterion_main!(benches);
