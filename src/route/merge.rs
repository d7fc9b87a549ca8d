//! Putting the per-slot replies of a split command back together, in the client's key order.

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
            let mut failures = Failures::default();
            for result in results {
                match result {
                    Ok(r) if r.is_ok() => {}
                    Ok(r) => failures.add(PartFailure::Reply(r)),
                    Err(e) => failures.add(PartFailure::Route(e)),
                }
            }
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
