//! Putting every master's answer to a `SCRIPT` or `FUNCTION` command back together as the one
//! reply a single Redis server would give. Each master keeps its own script and function caches,
//! so slotgate sends these to all of them; a client must not be able to tell.
//!
//! The answer every master gives alike (a sha, a library name, `+OK`) is `merge::same`'s; the
//! merges here are the ones particular to scripts.

use super::error::RouteError;
use super::merge::PartResult;
use crate::protocol::{Frame, Limits, Reply};

/// `SCRIPT EXISTS`: a script exists for the client only where every master has it, since its
/// `EVALSHA` may run on any of them.
pub(super) fn all_have(results: Vec<PartResult>) -> PartResult {
    let mut have: Option<Vec<bool>> = None;
    for result in results {
        let reply = result?;
        if reply.error().is_some() {
            return Ok(reply);
        }
        let flags = flags(&reply).ok_or(RouteError::UnexpectedReply("SCRIPT EXISTS"))?;
        match &mut have {
            None => have = Some(flags),
            Some(have) if have.len() == flags.len() => {
                have.iter_mut().zip(flags).for_each(|(h, f)| *h &= f);
            }
            Some(_) => return Err(RouteError::UnexpectedReply("SCRIPT EXISTS")),
        }
    }
    let have = have.ok_or(RouteError::NoMasters)?;
    let elements: Vec<Reply> = have
        .into_iter()
        .map(|h| Reply::integer_reply(i64::from(h)))
        .collect();
    // An array of integers reads the same in RESP2 and RESP3.
    Ok(Reply::array(&elements))
}

/// The 0s and 1s of one master's `SCRIPT EXISTS` reply.
fn flags(reply: &Reply) -> Option<Vec<bool>> {
    reply
        .array_elements()?
        .iter()
        .map(|e| e.integer().map(|n| n == 1))
        .collect()
}

/// `SCRIPT KILL`, `FUNCTION KILL`: a node running nothing answers `NOTBUSY`. The client asked
/// for *the* running script to be killed, so `+OK` if any master killed one; else a refusal that
/// says more than NOTBUSY (`UNKILLABLE`, a script of the other kind, slotgate's own error); else
/// NOTBUSY.
pub(super) fn kill(results: Vec<PartResult>) -> PartResult {
    let mut refusal: Option<PartResult> = None;
    let mut notbusy: Option<Reply> = None;
    for result in results {
        match result {
            Ok(reply) if reply.error().is_none() => return Ok(reply),
            Ok(reply) if is_notbusy(&reply) => {
                notbusy.get_or_insert(reply);
            }
            other => {
                refusal.get_or_insert(other);
            }
        }
    }
    refusal
        .or(notbusy.map(Ok))
        .unwrap_or(Err(RouteError::NoMasters))
}

fn is_notbusy(reply: &Reply) -> bool {
    reply.error().is_some_and(|e| e.starts_with(b"NOTBUSY"))
}

/// `FUNCTION STATS`: the engines' counts are the same on every master when libraries are loaded
/// through slotgate, but `running_script` is each node's own. What a client wants from it is the
/// function it may want to kill, so the answer is the reply of a master running one, else the
/// first master's.
pub(super) fn function_stats(results: Vec<PartResult>) -> PartResult {
    let mut first: Option<Reply> = None;
    let mut running: Option<Reply> = None;
    for result in results {
        let reply = result?;
        if reply.error().is_some() {
            return Ok(reply);
        }
        if running.is_none() && runs_a_function(&reply) {
            running = Some(reply);
        } else {
            first.get_or_insert(reply);
        }
    }
    running.or(first).ok_or(RouteError::NoMasters)
}

/// Whether a `FUNCTION STATS` reply (a map in RESP3, its pairs flat in RESP2) has a
/// `running_script` that is not null.
fn runs_a_function(reply: &Reply) -> bool {
    let Ok(Frame::Array(pairs) | Frame::Map(pairs)) = reply.parse(&Limits::default()) else {
        return false;
    };
    pairs.chunks_exact(2).any(|pair| {
        matches!(&pair[0], Frame::Bulk(k) | Frame::Simple(k) if &k[..] == b"running_script")
            && !matches!(pair[1], Frame::Null | Frame::NullArray | Frame::Nil)
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::backend::BackendError;
    use crate::route::merge::same;

    fn raw(bytes: &'static [u8]) -> PartResult {
        Ok(Reply(Bytes::from_static(bytes)))
    }

    fn lost() -> RouteError {
        RouteError::Backend(BackendError::Unavailable { addr: "n:1".into() })
    }

    const SHA: &[u8] = b"$40\r\ne0e1f9fabfc9d4800c877a703b823ac0578ff8db\r\n";

    #[test]
    fn same_answers_pass_as_one() {
        assert_eq!(same(vec![raw(SHA), raw(SHA), raw(SHA)]), raw(SHA));
        assert_eq!(
            same(vec![Ok(Reply::ok()), Ok(Reply::ok())]),
            Ok(Reply::ok())
        );
    }

    #[test]
    fn a_failure_everywhere_is_the_nodes_own_and_a_partial_one_says_so() {
        let exists = Reply::error_line("ERR Library 'mylib' already exists");
        assert_eq!(
            same(vec![Ok(exists.clone()), Ok(exists.clone())]),
            Ok(exists.clone())
        );
        let partial = same(vec![raw(b"$5\r\nmylib\r\n"), Ok(exists), Err(lost())]);
        let e = partial.unwrap_err();
        assert_eq!(e.kind(), "fan_out_failed");
        assert!(e
            .to_string()
            .starts_with("ERR slotgate: 2 of 3 masters failed, the others succeeded; first failure: ERR Library 'mylib' already exists"));
    }

    #[test]
    fn masters_that_disagree_are_not_papered_over() {
        assert_eq!(
            same(vec![Ok(Reply::ok()), raw(SHA)]),
            Err(RouteError::UnexpectedReply("masters that disagree"))
        );
    }

    #[test]
    fn a_script_exists_only_where_every_master_has_it() {
        let merged = all_have(vec![
            raw(b"*3\r\n:1\r\n:1\r\n:0\r\n"),
            raw(b"*3\r\n:1\r\n:0\r\n:0\r\n"),
            raw(b"*3\r\n:1\r\n:1\r\n:1\r\n"),
        ]);
        assert_eq!(merged, raw(b"*3\r\n:1\r\n:0\r\n:0\r\n"));
    }

    #[test]
    fn exists_replies_that_do_not_line_up_are_an_error() {
        let short = all_have(vec![raw(b"*2\r\n:1\r\n:1\r\n"), raw(b"*1\r\n:1\r\n")]);
        assert_eq!(short, Err(RouteError::UnexpectedReply("SCRIPT EXISTS")));
        let not_an_array = all_have(vec![raw(b"+OK\r\n")]);
        assert_eq!(
            not_an_array,
            Err(RouteError::UnexpectedReply("SCRIPT EXISTS"))
        );
        let refused = Reply::error_line("ERR wrong number of arguments");
        assert_eq!(
            all_have(vec![raw(b"*1\r\n:1\r\n"), Ok(refused.clone())]),
            Ok(refused)
        );
    }

    const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";

    #[test]
    fn kill_is_ok_if_any_master_killed_one() {
        let notbusy = || Ok(Reply::error_line(NOTBUSY));
        assert_eq!(
            kill(vec![notbusy(), Ok(Reply::ok()), notbusy()]),
            Ok(Reply::ok())
        );
        assert_eq!(
            kill(vec![notbusy(), notbusy()]),
            Ok(Reply::error_line(NOTBUSY))
        );
    }

    #[test]
    fn kill_reports_a_refusal_over_notbusy() {
        let unkillable = Reply::error_line(
            "UNKILLABLE Sorry the script already executed write commands against the dataset.",
        );
        assert_eq!(
            kill(vec![
                Ok(Reply::error_line(NOTBUSY)),
                Ok(unkillable.clone()),
                Err(lost())
            ]),
            Ok(unkillable)
        );
        assert_eq!(
            kill(vec![Ok(Reply::error_line(NOTBUSY)), Err(lost())]),
            Err(lost())
        );
    }

    const IDLE2: &[u8] = b"*4\r\n$14\r\nrunning_script\r\n$-1\r\n$7\r\nengines\r\n*2\r\n$3\r\nLUA\r\n*4\r\n$15\r\nlibraries_count\r\n:1\r\n$15\r\nfunctions_count\r\n:1\r\n";
    const BUSY2: &[u8] = b"*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$3\r\nmyf\r\n$7\r\ncommand\r\n*1\r\n$5\r\nfcall\r\n$11\r\nduration_ms\r\n:7\r\n$7\r\nengines\r\n*0\r\n";
    const IDLE3: &[u8] = b"%2\r\n$14\r\nrunning_script\r\n_\r\n$7\r\nengines\r\n%0\r\n";
    const BUSY3: &[u8] =
        b"%2\r\n$14\r\nrunning_script\r\n%1\r\n$4\r\nname\r\n$3\r\nmyf\r\n$7\r\nengines\r\n%0\r\n";

    #[test]
    fn stats_show_the_master_running_a_function() {
        assert_eq!(
            function_stats(vec![raw(IDLE2), raw(BUSY2), raw(IDLE2)]),
            raw(BUSY2)
        );
        assert_eq!(function_stats(vec![raw(IDLE3), raw(BUSY3)]), raw(BUSY3));
    }

    #[test]
    fn stats_of_idle_masters_are_the_first_ones() {
        assert_eq!(function_stats(vec![raw(IDLE3), raw(IDLE3)]), raw(IDLE3));
        let busy = Reply::error_line("ERR some refusal");
        assert_eq!(function_stats(vec![raw(BUSY2), Ok(busy.clone())]), Ok(busy));
    }
}
