//! Putting the per-slot replies of a split command back together, in the client's key order.

use super::error::RouteError;
use super::split::Part;
use crate::command::SplitKind;
use crate::protocol::Reply;

pub type PartResult = Result<Reply, RouteError>;

/// Merges the replies of `parts` (same order) into the one reply the client expects.
/// `keys` is the number of keys in the client's request.
pub fn merge(kind: SplitKind, keys: usize, parts: &[Part], results: Vec<PartResult>) -> PartResult {
    let total = results.len();
    let mut failed = 0;
    let mut first: Option<String> = None;
    let mut fail = |why: String| {
        failed += 1;
        first.get_or_insert(why);
    };
    let out = match kind {
        SplitKind::MGet => {
            let mut values: Vec<Option<Reply>> = vec![None; keys];
            for (part, result) in parts.iter().zip(results) {
                match result.and_then(|r| array_of(r, part.positions.len())) {
                    Ok(elements) => {
                        for (&pos, value) in part.positions.iter().zip(elements) {
                            values[pos] = Some(value);
                        }
                    }
                    Err(e) => fail(e.to_string()),
                }
            }
            values
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .map(|v| Reply::array(&v))
        }
        SplitKind::MSet => {
            for result in results {
                match result {
                    Ok(r) if r.is_ok() => {}
                    Ok(r) => fail(describe(&r)),
                    Err(e) => fail(e.to_string()),
                }
            }
            Some(Reply::ok())
        }
        SplitKind::SumKeys => {
            let mut sum = 0i64;
            for result in results {
                match result {
                    Ok(r) => match r.integer() {
                        Some(n) => sum = sum.saturating_add(n),
                        None => fail(describe(&r)),
                    },
                    Err(e) => fail(e.to_string()),
                }
            }
            Some(Reply::integer_reply(sum))
        }
    };
    match (failed, out) {
        (0, Some(reply)) => Ok(reply),
        _ => Err(RouteError::SplitFailed {
            failed,
            total,
            first: first.unwrap_or_default(),
        }),
    }
}

/// The elements of an array reply that must hold exactly `n` of them.
fn array_of(reply: Reply, n: usize) -> Result<Vec<Reply>, RouteError> {
    if reply.error().is_some() {
        return Err(RouteError::SplitFailed {
            failed: 1,
            total: 1,
            first: describe(&reply),
        });
    }
    match reply.array_elements() {
        Some(v) if v.len() == n => Ok(v),
        _ => Err(RouteError::UnexpectedReply("a split MGET part")),
    }
}

/// A backend error line, or a note that the reply had an unexpected type.
fn describe(reply: &Reply) -> String {
    match reply.error() {
        Some(e) => String::from_utf8_lossy(e).into_owned(),
        None => "unexpected reply type".to_owned(),
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
        let merged = merge(SplitKind::MGet, 3, &parts, results).unwrap();
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
            2,
            &parts,
            vec![Ok(Reply::integer_reply(1)), Ok(Reply::integer_reply(0))],
        );
        assert_eq!(r.unwrap(), Reply::integer_reply(1));
        let a = args(&["MSET", "foo", "1", "bar", "2"]);
        let parts = split_parts(&a, SplitKind::MSet);
        let r = merge(
            SplitKind::MSet,
            2,
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
            2,
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
    fn short_mget_part_is_an_error() {
        let a = args(&["MGET", "foo", "bar"]);
        let parts = split_parts(&a, SplitKind::MGet);
        let r = merge(
            SplitKind::MGet,
            2,
            &parts,
            vec![
                Ok(Reply::array(&[])),
                Ok(Reply::array(&[Reply::null_bulk()])),
            ],
        );
        assert!(r.is_err());
    }
}
