//! Putting the per-slot replies of a split command back together, in the client's key order,
//! and the replies of the masters a keyspace-wide command went to into one.

use super::error::RouteError;
use super::split::Part;
use crate::command::SplitKind;
use crate::protocol::Reply;

pub type PartResult = Result<Reply, RouteError>;

/// Why one part's reply cannot be merged: the reply itself (a node's error, or the wrong type), or
/// slotgate's own error for that part.
#[derive(Debug)]
pub(super) enum PartFailure {
    Reply(Reply),
    Route(RouteError),
}

impl PartFailure {
    /// The client's answer when this failure is all there is to say: a node's error reply passed
    /// on as it is, slotgate's own error as itself.
    pub(super) fn into_answer(self, what: &'static str) -> PartResult {
        match self {
            PartFailure::Reply(r) if r.error().is_some() => Ok(r),
            PartFailure::Reply(_) => Err(RouteError::UnexpectedReply(what)),
            PartFailure::Route(e) => Err(e),
        }
    }

    /// The failure's own line, never wrapped in another: the client reads one message.
    fn describe(&self) -> String {
        match self {
            PartFailure::Reply(reply) => match reply.error() {
                Some(e) => String::from_utf8_lossy(e).into_owned(),
                None => "unexpected reply type".to_owned(),
            },
            PartFailure::Route(e) => e.to_string(),
        }
    }
}

/// The failed parts of one command: how many, and the first in part order.
#[derive(Default)]
struct Failures {
    count: usize,
    first: Option<PartFailure>,
}

impl Failures {
    fn add(&mut self, failure: PartFailure) {
        self.count += 1;
        self.first.get_or_insert(failure);
    }
}

/// Adds up integer replies, as DEL, EXISTS and DBSIZE want. `Err` holds the first part that is not
/// an integer.
pub(super) fn sum_integers(
    results: impl IntoIterator<Item = PartResult>,
) -> Result<i64, (usize, PartFailure)> {
    let mut sum = 0i64;
    let mut failures = Failures::default();
    for result in results {
        match result {
            Ok(r) => match r.integer() {
                Some(n) => sum = sum.saturating_add(n),
                None => failures.add(PartFailure::Reply(r)),
            },
            Err(e) => failures.add(PartFailure::Route(e)),
        }
    }
    match failures.first {
        None => Ok(sum),
        Some(first) => Err((failures.count, first)),
    }
}

/// The parts that did not answer `+OK`.
fn not_ok(results: impl IntoIterator<Item = PartResult>) -> Failures {
    let mut failures = Failures::default();
    for result in results {
        match result {
            Ok(r) if r.is_ok() => {}
            Ok(r) => failures.add(PartFailure::Reply(r)),
            Err(e) => failures.add(PartFailure::Route(e)),
        }
    }
    failures
}

/// The one answer every master must give alike: FLUSHALL's `+OK`, SCRIPT LOAD's sha, FUNCTION
/// LOAD's library name. When none did it, the first failure as it is (a bad argument gets
/// Redis' own error); when only some did, an error that says so, since the others did it and the
/// cluster is now half changed. Masters that answer differently are not papered over.
pub(super) fn same(results: Vec<PartResult>) -> PartResult {
    let total = results.len();
    let mut failures = Failures::default();
    let (mut agreed, mut disagree) = (None::<Reply>, false);
    for result in results {
        match result {
            Ok(r) if r.error().is_none() => match &agreed {
                None => agreed = Some(r),
                Some(a) => disagree |= *a != r,
            },
            Ok(r) => failures.add(PartFailure::Reply(r)),
            Err(e) => failures.add(PartFailure::Route(e)),
        }
    }
    match (failures.first, agreed) {
        (Some(first), _) if failures.count == total => first.into_answer("a fanned-out command"),
        (Some(first), _) => Err(RouteError::MastersFailed {
            failed: failures.count,
            total,
            first: first.describe(),
        }),
        (None, Some(_)) if disagree => Err(RouteError::UnexpectedReply("masters that disagree")),
        (None, Some(reply)) => Ok(reply),
        (None, None) => Err(RouteError::NoMasters),
    }
}

/// KEYS' answer: every master's keys, one array after another. Any failure is the answer
/// instead, since a list with one master's keys missing would look complete.
pub(super) fn concat_arrays(results: Vec<PartResult>) -> PartResult {
    let mut all = Vec::new();
    for result in results {
        let reply = result?;
        match reply.array_elements() {
            Some(elements) => all.extend(elements),
            None => return PartFailure::Reply(reply).into_answer("a fanned-out command"),
        }
    }
    Ok(Reply::array(&all))
}

/// RANDOMKEY's answer from masters asked one after another: the first value, else the first
/// failure (an empty answer could be wrong while a master did not answer), else no value.
#[derive(Default)]
pub(super) struct FirstValue {
    failure: Option<PartFailure>,
}

impl FirstValue {
    /// `Some` once `result` is the answer: no other master need be asked.
    pub(super) fn offer(&mut self, result: PartResult) -> Option<Reply> {
        match result {
            Ok(r) if r.is_null() => None,
            Ok(r) if r.error().is_none() => Some(r),
            Ok(r) => self.failed(PartFailure::Reply(r)),
            Err(e) => self.failed(PartFailure::Route(e)),
        }
    }

    fn failed(&mut self, failure: PartFailure) -> Option<Reply> {
        self.failure.get_or_insert(failure);
        None
    }

    /// When every master was asked and none had a value: `null`, in the client's protocol.
    pub(super) fn finish(self, null: Reply) -> PartResult {
        match self.failure {
            None => Ok(null),
            Some(failure) => failure.into_answer("a fanned-out command"),
        }
    }
}

/// A node's SCAN page: its next cursor and its array of keys, kept as the node's bytes.
pub(super) fn scan_page(reply: &Reply) -> Option<(u64, Reply)> {
    let mut elements = reply.array_elements()?.into_iter();
    let (cursor, keys) = (elements.next()?, elements.next()?);
    if elements.next().is_some() {
        return None;
    }
    let cursor = std::str::from_utf8(cursor.bulk_payload()?)
        .ok()?
        .parse()
        .ok()?;
    Some((cursor, keys))
}

/// SCAN's reply to the client: `[cursor, keys]`, an array with the cursor as a bulk string in
/// RESP3 too, as Redis answers.
pub(super) fn scan_reply(cursor: u64, keys: Reply) -> Reply {
    Reply::array(&[Reply::bulk(cursor.to_string().as_bytes()), keys])
}

/// Merges the replies of `parts` (same order) into the one reply the client expects.
pub fn merge(kind: SplitKind, parts: &[Part], results: Vec<PartResult>) -> PartResult {
    let total = results.len();
    let split_failed = |failed, first: PartFailure| RouteError::SplitFailed {
        failed,
        total,
        first: first.describe(),
    };
    match kind {
        SplitKind::MGet => merge_mget(parts, results).map_err(|(n, f)| split_failed(n, f)),
        SplitKind::MSet => {
            let failures = not_ok(results);
            match failures.first {
                None => Ok(Reply::ok()),
                Some(first) => Err(split_failed(failures.count, first)),
            }
        }
        SplitKind::SumKeys => sum_integers(results)
            .map(Reply::integer_reply)
            .map_err(|(n, f)| split_failed(n, f)),
    }
}

/// Puts every part's values back at their keys' positions in the client's request.
fn merge_mget(parts: &[Part], results: Vec<PartResult>) -> Result<Reply, (usize, PartFailure)> {
    let keys = parts.iter().map(|p| p.positions.len()).sum();
    let mut values: Vec<Option<Reply>> = vec![None; keys];
    let mut failures = Failures::default();
    for (part, result) in parts.iter().zip(results) {
        match result
            .map_err(PartFailure::Route)
            .and_then(|r| array_of(r, part.positions.len()))
        {
            Ok(elements) => {
                for (&pos, value) in part.positions.iter().zip(elements) {
                    values[pos] = Some(value);
                }
            }
            Err(failure) => failures.add(failure),
        }
    }
    if let Some(first) = failures.first {
        return Err((failures.count, first));
    }
    match values.into_iter().collect::<Option<Vec<_>>>() {
        Some(values) => Ok(Reply::array(&values)),
        // Every position belongs to exactly one part (split's invariant); a gap is a bug, not a
        // reply to send.
        None => Err((
            1,
            PartFailure::Route(RouteError::UnexpectedReply("a split MGET part")),
        )),
    }
}

/// The elements of an array reply that must hold exactly `n` of them.
fn array_of(reply: Reply, n: usize) -> Result<Vec<Reply>, PartFailure> {
    if reply.error().is_some() {
        return Err(PartFailure::Reply(reply));
    }
    match reply.array_elements() {
        Some(v) if v.len() == n => Ok(v),
        _ => Err(PartFailure::Route(RouteError::UnexpectedReply(
            "a split MGET part",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_args as args;
    use crate::route::split::{split, Part, Split};

    fn split_parts(a: &[Bytes], kind: SplitKind) -> Vec<Part> {
        match split(a, kind) {
            Split::Parts(p) => p,
            Split::OneSlot(_) => panic!("expected parts"),
        }
    }
    use bytes::Bytes;

    #[test]
    fn mget_restores_client_order() {
        let a = args(&["MGET", "foo", "bar", "{foo}x"]);
        let parts = split_parts(&a, SplitKind::MGet);
        // Part 0 holds bar (slot 5061), part 1 holds foo and {foo}x (slot 12182).
        let results = vec![
            Ok(Reply::array(&[Reply::bulk(b"B")])),
            Ok(Reply::array(&[Reply::bulk(b"F"), Reply::null_bulk()])),
        ];
        let merged = merge(SplitKind::MGet, &parts, results).unwrap();
        assert_eq!(
            merged.bytes().as_ref(),
            b"*3\r\n$1\r\nF\r\n$1\r\nB\r\n$-1\r\n"
        );
    }

    #[test]
    fn sums_and_oks() {
        let a = args(&["DEL", "foo", "bar"]);
        let parts = split_parts(&a, SplitKind::SumKeys);
        let r = merge(
            SplitKind::SumKeys,
            &parts,
            vec![Ok(Reply::integer_reply(1)), Ok(Reply::integer_reply(0))],
        );
        assert_eq!(r.unwrap(), Reply::integer_reply(1));
        let a = args(&["MSET", "foo", "1", "bar", "2"]);
        let parts = split_parts(&a, SplitKind::MSet);
        let r = merge(
            SplitKind::MSet,
            &parts,
            vec![Ok(Reply::ok()), Ok(Reply::ok())],
        );
        assert_eq!(r.unwrap(), Reply::ok());
    }

    #[test]
    fn partial_failure_says_so() {
        let a = args(&["MSET", "foo", "1", "bar", "2"]);
        let parts = split_parts(&a, SplitKind::MSet);
        let r = merge(
            SplitKind::MSet,
            &parts,
            vec![
                Ok(Reply::ok()),
                Ok(Reply::error_line("OOM command not allowed")),
            ],
        );
        let e = r.unwrap_err();
        assert_eq!(
            e.to_string(),
            "ERR slotgate: 1 of 2 slot groups failed, the others succeeded; first failure: OOM command not allowed"
        );
    }

    #[test]
    fn a_failed_mget_part_is_described_once() {
        let a = args(&["MGET", "foo", "bar"]);
        let parts = split_parts(&a, SplitKind::MGet);
        let r = merge(
            SplitKind::MGet,
            &parts,
            vec![
                Ok(Reply::error_line("WRONGTYPE Operation against a key")),
                Ok(Reply::array(&[Reply::null_bulk()])),
            ],
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "ERR slotgate: 1 of 2 slot groups failed, the others succeeded; first failure: WRONGTYPE Operation against a key"
        );
    }

    #[test]
    fn sums_report_the_first_part_that_is_not_an_integer() {
        let lost = RouteError::NoMasters;
        let (failed, first) = sum_integers(vec![
            Ok(Reply::integer_reply(2)),
            Err(lost.clone()),
            Ok(Reply::error_line("LOADING")),
        ])
        .unwrap_err();
        assert_eq!(failed, 2);
        assert!(matches!(first, PartFailure::Route(e) if e == lost));
        assert_eq!(
            sum_integers(vec![
                Ok(Reply::integer_reply(2)),
                Ok(Reply::integer_reply(3))
            ])
            .unwrap(),
            5
        );
    }

    #[test]
    fn flush_is_ok_when_every_master_says_so() {
        assert_eq!(
            same(vec![Ok(Reply::ok()), Ok(Reply::ok())]),
            Ok(Reply::ok())
        );
    }

    #[test]
    fn a_flush_that_failed_everywhere_gets_the_first_error_as_it_is() {
        let syntax = Reply::error_line("ERR syntax error");
        assert_eq!(
            same(vec![
                Ok(syntax.clone()),
                Ok(syntax.clone()),
                Ok(syntax.clone())
            ]),
            Ok(syntax)
        );
        assert_eq!(
            same(vec![Err(RouteError::NoMasters)]),
            Err(RouteError::NoMasters)
        );
    }

    #[test]
    fn a_flush_that_failed_on_some_masters_says_how_many() {
        let lost =
            RouteError::Backend(crate::backend::BackendError::Unavailable { addr: "n:2".into() });
        let e = same(vec![Ok(Reply::ok()), Err(lost), Ok(Reply::ok())]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ERR slotgate: 1 of 3 masters failed, the others succeeded; first failure: \
             ERR slotgate: backend n:2 unreachable"
        );
        assert_eq!(e.kind(), "fan_out_failed");
    }

    #[test]
    fn keys_are_every_masters_arrays_in_a_row() {
        let a = Reply::array(&[Reply::bulk(b"a"), Reply::bulk(b"b")]);
        let none = Reply::array(&[]);
        let c = Reply::array(&[Reply::bulk(b"c")]);
        let merged = concat_arrays(vec![Ok(a), Ok(none), Ok(c)]).unwrap();
        assert_eq!(
            merged.bytes().as_ref(),
            b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        assert_eq!(concat_arrays(vec![]).unwrap().bytes().as_ref(), b"*0\r\n");
    }

    #[test]
    fn keys_with_a_failed_master_is_that_failure() {
        let loading = Reply::error_line("LOADING Redis is loading the dataset in memory");
        let a = Reply::array(&[Reply::bulk(b"a")]);
        assert_eq!(
            concat_arrays(vec![Ok(a.clone()), Ok(loading.clone())]),
            Ok(loading)
        );
        assert_eq!(
            concat_arrays(vec![Ok(a.clone()), Err(RouteError::NoMasters)]),
            Err(RouteError::NoMasters)
        );
        assert_eq!(
            concat_arrays(vec![Ok(a), Ok(Reply::integer_reply(3))]),
            Err(RouteError::UnexpectedReply("a fanned-out command"))
        );
    }

    #[test]
    fn randomkey_takes_the_first_value_and_else_null_in_the_clients_protocol() {
        let mut pick = FirstValue::default();
        assert_eq!(pick.offer(Ok(Reply::null_bulk())), None);
        assert_eq!(pick.offer(Ok(Reply(Bytes::from_static(b"_\r\n")))), None);
        assert_eq!(pick.offer(Ok(Reply::bulk(b"k"))), Some(Reply::bulk(b"k")));
        let empty = FirstValue::default();
        let null3 = Reply::null(crate::protocol::Proto::Resp3);
        assert_eq!(empty.finish(null3.clone()), Ok(null3));
    }

    #[test]
    fn randomkey_with_no_value_but_a_failure_is_that_failure() {
        let mut pick = FirstValue::default();
        assert_eq!(pick.offer(Err(RouteError::NoMasters)), None);
        assert_eq!(pick.offer(Ok(Reply::null_bulk())), None);
        assert_eq!(pick.finish(Reply::null_bulk()), Err(RouteError::NoMasters));
        // A value found after a failure is still the answer.
        let mut pick = FirstValue::default();
        let loading = Reply::error_line("LOADING");
        assert_eq!(pick.offer(Ok(loading)), None);
        assert_eq!(pick.offer(Ok(Reply::bulk(b"k"))), Some(Reply::bulk(b"k")));
    }

    #[test]
    fn a_scan_page_is_its_cursor_and_the_nodes_key_array() {
        let keys = Reply::array(&[Reply::bulk(b"k1"), Reply::bulk(b"k2")]);
        let page = Reply::array(&[Reply::bulk(b"1536"), keys.clone()]);
        assert_eq!(scan_page(&page), Some((1536, keys.clone())));
        assert_eq!(
            scan_reply(7, keys).bytes().as_ref(),
            b"*2\r\n$1\r\n7\r\n*2\r\n$2\r\nk1\r\n$2\r\nk2\r\n"
        );
        for bad in [
            Reply::array(&[Reply::bulk(b"x"), Reply::array(&[])]),
            Reply::array(&[Reply::integer_reply(0), Reply::array(&[])]),
            Reply::array(&[Reply::bulk(b"0")]),
            Reply::error_line("ERR syntax error"),
        ] {
            assert_eq!(scan_page(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn short_mget_part_is_an_error() {
        let a = args(&["MGET", "foo", "bar"]);
        let parts = split_parts(&a, SplitKind::MGet);
        let r = merge(
            SplitKind::MGet,
            &parts,
            vec![
                Ok(Reply::array(&[])),
                Ok(Reply::array(&[Reply::null_bulk()])),
            ],
        );
        assert!(r.is_err());
    }
}
