//! The decisions of following one request to a real answer, apart from the sending: what a
//! redirection, a refusal or a lost connection means for the next attempt. Pure, so every rule
//! (the redirect limit, ASK's one-off detour, which failures may be sent again) is tested without
//! a node; the router's async loop only carries them out.

use std::time::Duration;

use bytes::Bytes;

use super::error::RouteError;
use super::redirect::{self, Redirect};
use crate::backend::BackendError;
use crate::cluster::{NodeAddr, Slot};
use crate::protocol::Reply;

/// What the router does after one attempt.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// The client's answer.
    Done(Result<Reply, RouteError>),
    /// The slot's owner cannot take it now: wait for the slot map to change, then send again to
    /// whoever owns the slot; once the request has been held too long, answer `otherwise`.
    Hold {
        otherwise: Result<Reply, RouteError>,
    },
    /// The slot has moved for good: remember it, then send there.
    Moved { slot: Slot, addr: NodeAddr },
    /// Send this one request to `addr`, preceded by `ASKING`; the slot map stays as it is.
    Ask { addr: NodeAddr },
    /// A multi-key request met a half-migrated slot: wait this long, then send again.
    TryAgain(Duration),
    /// The node at `addr` lacks the EVALSHA's script: load the script named `sha` there, then
    /// send the request to it again; if slotgate does not know the script, answer `otherwise`.
    Heal {
        sha: Bytes,
        addr: NodeAddr,
        otherwise: Result<Reply, RouteError>,
    },
}

/// Where the next attempt of one request goes, and how many redirections it has followed.
#[derive(Debug)]
pub(super) struct Follow {
    slot: Slot,
    replay_safe: bool,
    max_redirects: u32,
    redirects: u32,
    /// Set by a redirection, used by the next attempt only.
    detour: Option<(NodeAddr, bool)>,
    /// The last attempt followed an ASK: one sent to the same node again must ask again.
    asked: bool,
    /// An EVALSHA's sha, until its one NOSCRIPT has been healed.
    heal: Option<Bytes>,
}

impl Follow {
    /// `replay_safe`: the request may be sent again when a connection lost it after writing it.
    pub(super) fn new(slot: Slot, replay_safe: bool, max_redirects: u32) -> Follow {
        Follow {
            slot,
            replay_safe,
            max_redirects,
            redirects: 0,
            detour: None,
            asked: false,
            heal: None,
        }
    }

    /// For an EVALSHA of the script named `sha`: a NOSCRIPT is healed, once.
    pub(super) fn healing(mut self, sha: Option<Bytes>) -> Follow {
        self.heal = sha;
        self
    }

    pub(super) fn slot(&self) -> Slot {
        self.slot
    }

    /// Where a redirection sent the next attempt, and whether it must `ASK`; `None` means the
    /// slot's owner in the current map.
    pub(super) fn take_detour(&mut self) -> Option<(NodeAddr, bool)> {
        let detour = self.detour.take();
        self.asked = detour.as_ref().is_some_and(|&(_, asking)| asking);
        detour
    }

    /// The slot map has no owner for the slot.
    pub(super) fn unserved(&self) -> Next {
        Next::Hold {
            otherwise: Err(RouteError::SlotUnserved(self.slot)),
        }
    }

    /// A request that never reached the node is sent again wherever the slot goes; one that may
    /// have run only when running it twice is harmless, else the client decides.
    pub(super) fn after_error(&self, e: BackendError) -> Next {
        if let BackendError::NoDedicatedSeat { .. } = e {
            // Seats free up as other clients finish, not as the cluster heals: say so now.
            return Next::Done(Err(e.into()));
        }
        let resend = !e.maybe_executed() || self.replay_safe;
        match resend {
            true => Next::Hold {
                otherwise: Err(e.into()),
            },
            false => Next::Done(Err(e.into())),
        }
    }

    /// `replied_by` is the node that sent `reply`; it fills in a redirection's missing host.
    pub(super) fn after_reply(&mut self, reply: Reply, replied_by: &str) -> Next {
        let Some(redirect) = redirect::classify(&reply, replied_by) else {
            if redirect::is_cluster_down(&reply) || redirect::is_unblocked(&reply) {
                // The cluster refused the command (it did not run): while a failed master is
                // being replaced, full-coverage clusters refuse every slot for about a second,
                // and a blocked command whose master turned replica is released with UNBLOCKED.
                return Next::Hold {
                    otherwise: Ok(reply),
                };
            }
            if redirect::is_noscript(&reply) {
                return self.after_noscript(reply, replied_by);
            }
            return Next::Done(Ok(reply));
        };
        self.redirects += 1;
        if self.redirects > self.max_redirects {
            return Next::Done(Err(RouteError::TooManyRedirects {
                slot: self.slot,
                limit: self.max_redirects,
            }));
        }
        match redirect {
            Redirect::Moved { slot, addr } => {
                self.detour = Some((addr.clone(), false));
                Next::Moved { slot, addr }
            }
            Redirect::Ask { addr } => {
                self.detour = Some((addr.clone(), true));
                Next::Ask { addr }
            }
            Redirect::TryAgain => Next::TryAgain(Duration::from_millis(5 << self.redirects.min(6))),
        }
    }

    /// An EVALSHA that met a node without its script did not run: heal it there and send it to
    /// the same node again, once. Anything else with NOSCRIPT is the client's answer.
    fn after_noscript(&mut self, reply: Reply, replied_by: &str) -> Next {
        let Some(sha) = self.heal.take() else {
            return Next::Done(Ok(reply));
        };
        let addr = NodeAddr::from(replied_by);
        self.detour = Some((addr.clone(), self.asked));
        Next::Heal {
            sha,
            addr,
            otherwise: Ok(reply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Slot {
        Slot::new(3999).unwrap()
    }

    fn follow(replay_safe: bool) -> Follow {
        Follow::new(slot(), replay_safe, 5)
    }

    #[test]
    fn an_ordinary_reply_or_error_is_the_answer() {
        let mut f = follow(false);
        let ok = Reply::ok();
        assert_eq!(f.after_reply(ok.clone(), "n:1"), Next::Done(Ok(ok)));
        let wrong = Reply::error_line("WRONGTYPE Operation against a key");
        assert_eq!(f.after_reply(wrong.clone(), "n:1"), Next::Done(Ok(wrong)));
        assert_eq!(f.take_detour(), None);
    }

    #[test]
    fn moved_goes_to_the_new_owner_and_is_remembered() {
        let mut f = follow(false);
        let next = f.after_reply(Reply::error_line("MOVED 3999 10.0.0.2:7001"), "n:1");
        assert_eq!(
            next,
            Next::Moved {
                slot: slot(),
                addr: "10.0.0.2:7001".into()
            }
        );
        assert_eq!(f.take_detour(), Some(("10.0.0.2:7001".into(), false)));
        // The detour is for the next attempt only.
        assert_eq!(f.take_detour(), None);
    }

    #[test]
    fn ask_is_a_one_off_detour_with_asking() {
        let mut f = follow(false);
        let next = f.after_reply(Reply::error_line("ASK 3999 :7002"), "10.0.0.1:7000");
        assert_eq!(
            next,
            Next::Ask {
                addr: "10.0.0.1:7002".into()
            }
        );
        assert_eq!(f.take_detour(), Some(("10.0.0.1:7002".into(), true)));
        assert_eq!(f.take_detour(), None);
    }

    #[test]
    fn redirections_stop_at_the_limit() {
        let mut f = Follow::new(slot(), true, 2);
        let moved = || Reply::error_line("MOVED 3999 n:2");
        assert!(matches!(f.after_reply(moved(), "n:1"), Next::Moved { .. }));
        assert!(matches!(f.after_reply(moved(), "n:2"), Next::Moved { .. }));
        assert_eq!(
            f.after_reply(moved(), "n:2"),
            Next::Done(Err(RouteError::TooManyRedirects {
                slot: slot(),
                limit: 2
            }))
        );
    }

    #[test]
    fn tryagain_backs_off_longer_each_time() {
        let mut f = follow(false);
        let again = || Reply::error_line("TRYAGAIN Multiple keys request during rehashing of slot");
        assert_eq!(
            f.after_reply(again(), "n:1"),
            Next::TryAgain(Duration::from_millis(10))
        );
        assert_eq!(
            f.after_reply(again(), "n:1"),
            Next::TryAgain(Duration::from_millis(20))
        );
        assert_eq!(f.take_detour(), None);
    }

    #[test]
    fn clusterdown_is_held_and_given_back_if_it_lasts() {
        let mut f = follow(false);
        let down = Reply::error_line("CLUSTERDOWN The cluster is down");
        assert_eq!(
            f.after_reply(down.clone(), "n:1"),
            Next::Hold {
                otherwise: Ok(down)
            }
        );
    }

    #[test]
    fn a_blocked_command_released_by_a_failover_waits_for_the_new_master() {
        let mut f = follow(false);
        let unblocked = Reply::error_line(
            "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
        );
        assert_eq!(
            f.after_reply(unblocked.clone(), "n:1"),
            Next::Hold {
                otherwise: Ok(unblocked)
            }
        );
    }

    #[test]
    fn no_free_dedicated_seat_is_said_at_once() {
        let full = BackendError::NoDedicatedSeat {
            addr: "n:1".into(),
            max: 2,
        };
        assert_eq!(
            follow(true).after_error(full.clone()),
            Next::Done(Err(full.into()))
        );
    }

    #[test]
    fn only_what_cannot_have_run_or_is_safe_to_repeat_is_sent_again() {
        let addr: NodeAddr = "n:1".into();
        let unreachable = BackendError::Unavailable { addr: addr.clone() };
        let lost = BackendError::ConnectionLost { addr: addr.clone() };
        let timeout = BackendError::Timeout { addr, millis: 5 };
        for f in [follow(false), follow(true)] {
            assert_eq!(
                f.after_error(unreachable.clone()),
                Next::Hold {
                    otherwise: Err(unreachable.clone().into())
                }
            );
        }
        assert_eq!(
            follow(false).after_error(lost.clone()),
            Next::Done(Err(lost.clone().into()))
        );
        assert_eq!(
            follow(false).after_error(timeout.clone()),
            Next::Done(Err(timeout.clone().into()))
        );
        assert!(matches!(follow(true).after_error(lost), Next::Hold { .. }));
        assert!(matches!(
            follow(true).after_error(timeout),
            Next::Hold { .. }
        ));
    }

    const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

    #[test]
    fn an_evalshas_noscript_is_healed_once_at_the_node_that_said_it() {
        let sha = Bytes::from_static(b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        let mut f = follow(false).healing(Some(sha.clone()));
        let noscript = Reply::error_line(NOSCRIPT);
        assert_eq!(
            f.after_reply(noscript.clone(), "n:1"),
            Next::Heal {
                sha,
                addr: "n:1".into(),
                otherwise: Ok(noscript.clone())
            }
        );
        assert_eq!(f.take_detour(), Some(("n:1".into(), false)));
        // Loaded and sent again, still NOSCRIPT: the client's answer.
        assert_eq!(
            f.after_reply(noscript.clone(), "n:1"),
            Next::Done(Ok(noscript))
        );
    }

    #[test]
    fn a_noscript_after_ask_asks_again_when_sent_again() {
        let mut f = follow(false).healing(Some(Bytes::from_static(b"sha")));
        f.after_reply(Reply::error_line("ASK 3999 n:2"), "n:1");
        assert_eq!(f.take_detour(), Some(("n:2".into(), true)));
        let next = f.after_reply(Reply::error_line(NOSCRIPT), "n:2");
        assert!(matches!(next, Next::Heal { .. }), "{next:?}");
        assert_eq!(f.take_detour(), Some(("n:2".into(), true)));
    }

    #[test]
    fn noscript_for_anything_but_an_evalsha_is_the_answer() {
        let noscript = Reply::error_line(NOSCRIPT);
        assert_eq!(
            follow(false).after_reply(noscript.clone(), "n:1"),
            Next::Done(Ok(noscript))
        );
    }

    #[test]
    fn an_unserved_slot_is_held_then_reported() {
        assert_eq!(
            follow(false).unserved(),
            Next::Hold {
                otherwise: Err(RouteError::SlotUnserved(slot()))
            }
        );
    }
}
