//! One client's transaction as the session sees it: the slot it is bound to, the commands queued
//! between MULTI and EXEC, and whether one of them was refused. Queueing is answered here
//! (`+QUEUED`, or the error Redis Cluster would give), so nothing reaches a node before EXEC;
//! WATCH and EXEC run on the client's reserved connection (`route::transaction`).

use std::sync::Arc;

use crate::cluster::Slot;
use crate::command::{Action, FanOut, Plan, Reason, RejectKind};
use crate::protocol::{Reply, Request};
use crate::route::split::{self, Split};
use crate::route::Reserved;

/// Commands one transaction may queue before EXEC; beyond it, like a queued error, EXEC aborts.
const MAX_QUEUED: usize = 65_536;

const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

#[derive(Default)]
pub(super) struct Transaction {
    /// Every keyed command and every WATCHed key must hash here: set by the first of them.
    slot: Option<Slot>,
    /// Between MULTI and EXEC: what EXEC sends, in order.
    queued: Option<Vec<Request>>,
    /// A command was refused while queued: EXEC answers EXECABORT, as Redis does.
    dirty: bool,
    pub(super) reserved: Arc<Reserved>,
}

/// What EXEC runs.
pub(super) struct Exec {
    pub slot: Option<Slot>,
    pub queued: Vec<Request>,
    pub reserved: Arc<Reserved>,
}

impl Transaction {
    pub fn in_multi(&self) -> bool {
        self.queued.is_some()
    }

    /// Commands queued so far, inside a MULTI.
    pub fn queued(&self) -> Option<usize> {
        self.queued.as_ref().map(Vec::len)
    }

    /// `MULTI`: keeps what WATCH bound.
    pub fn multi(&mut self) -> Reply {
        if self.in_multi() {
            return Reply::error_line("ERR MULTI calls can not be nested");
        }
        self.queued = Some(Vec::new());
        self.dirty = false;
        Reply::ok()
    }

    /// Binds the transaction to the slot of `WATCH`'s keys; `Err` is the client's error line.
    pub fn watch(&mut self, req: &Request) -> Result<Slot, Reply> {
        if self.in_multi() {
            return Err(Reply::error_line("ERR WATCH inside MULTI is not allowed"));
        }
        let args = req.args();
        let keys = crate::command::Keys::range(1, args.len(), 1);
        match split::one_slot(args, keys) {
            Ok(Some(slot)) => self.bind(slot).map(|()| slot),
            _ => Err(Reply::error_line(CROSSSLOT)),
        }
    }

    /// Queues one command of a MULTI: `+QUEUED`, or the error that makes EXEC abort.
    pub fn queue(&mut self, req: Request, plan: Plan) -> Reply {
        let refusal = match self.slot_of(&req, plan) {
            Err(reply) => Some(reply),
            Ok(Some(slot)) => self.bind(slot).err(),
            Ok(None) => None,
        };
        let queued = self.queued.get_or_insert_with(Vec::new);
        let refusal = refusal.or_else(|| {
            (queued.len() >= MAX_QUEUED).then(|| {
                Reply::error_line(&format!(
                    "ERR slotgate: a transaction queues at most {MAX_QUEUED} commands"
                ))
            })
        });
        match refusal {
            Some(reply) => {
                self.dirty = true;
                reply
            }
            None => {
                queued.push(req);
                Reply::simple("QUEUED")
            }
        }
    }

    /// `EXEC`: what to run, or the reply when there is nothing to run. Ends the transaction
    /// either way (EXEC also ends every WATCH).
    pub fn exec(self) -> Result<Exec, Reply> {
        let Some(queued) = self.queued else {
            return Err(Reply::error_line("ERR EXEC without MULTI"));
        };
        if self.dirty {
            return Err(Reply::error_line(
                "EXECABORT Transaction discarded because of previous errors.",
            ));
        }
        Ok(Exec {
            slot: self.slot,
            queued,
            reserved: self.reserved,
        })
    }

    /// The slot a queued command needs, `None` for none; `Err` is Redis' refusal of it.
    fn slot_of(&self, req: &Request, plan: Plan) -> Result<Option<Slot>, Reply> {
        let args = req.args();
        match plan.action {
            Action::Keyed(keys) => {
                split::one_slot(args, keys).map_err(|_| Reply::error_line(CROSSSLOT))
            }
            Action::Split(kind) => match split::split(args, kind) {
                Split::OneSlot(slot) => Ok(Some(slot)),
                Split::Parts(_) => Err(Reply::error_line(CROSSSLOT)),
            },
            Action::Reject(kind) => Err(Reply::error_line(&kind.rejection(req).to_string())),
            Action::PubSub(_) => Err(Reply::error_line(
                "ERR slotgate: subscribing inside a transaction is not supported",
            )),
            // Redis answers a queued WAIT at once with the replicas that have the client's
            // writes; the transaction's one connection, to one master, has seen none of them.
            Action::Wait => Err(Reply::error_line(
                "ERR slotgate: WAIT inside a transaction is not supported (it counts the replicas \
                 of every master, and a transaction runs on one)",
            )),
            // DBSIZE has always been its master's count here, as on Redis Cluster; the others
            // would silently list, pick or flush one master's keys as if they were all.
            Action::FanOut(
                FanOut::ConcatArrays | FanOut::AllOk | FanOut::FirstValue | FanOut::Scan,
            ) => {
                let kind = RejectKind::Unsupported {
                    reason: Reason::KeyspaceInTransaction,
                    subcommand: false,
                };
                Err(Reply::error_line(&kind.rejection(req).to_string()))
            }
            // Run by the node the transaction is bound to, as on Redis Cluster.
            Action::AnyMaster
            | Action::FanOut(_)
            | Action::Local(_)
            | Action::Transaction(_)
            | Action::PubSubQuery(_) => Ok(None),
        }
    }

    fn bind(&mut self, slot: Slot) -> Result<(), Reply> {
        match self.slot.get_or_insert(slot) {
            bound if *bound == slot => Ok(()),
            _ => Err(Reply::error_line(CROSSSLOT)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CommandTable;
    use crate::protocol::test_args as args;

    fn queue(t: &mut Transaction, words: &[&str]) -> Reply {
        let req = Request::from_args(args(words));
        let plan = CommandTable::builtin().classify(&req);
        t.queue(req, plan)
    }

    #[test]
    fn queued_commands_run_at_exec_in_order() {
        let mut t = Transaction::default();
        assert_eq!(t.multi(), Reply::ok());
        assert_eq!(
            queue(&mut t, &["SET", "{u}a", "1"]),
            Reply::simple("QUEUED")
        );
        assert_eq!(queue(&mut t, &["PING"]), Reply::simple("QUEUED"));
        assert_eq!(
            queue(&mut t, &["MGET", "{u}a", "{u}b"]),
            Reply::simple("QUEUED")
        );
        let exec = t.exec().ok().unwrap();
        assert_eq!(exec.slot, Some(Slot::for_key(b"u")));
        let names: Vec<&[u8]> = exec.queued.iter().map(|r| r.name()).collect();
        assert_eq!(names, [&b"SET"[..], b"PING", b"MGET"]);
    }

    #[test]
    fn another_slot_is_refused_and_aborts_exec() {
        let mut t = Transaction::default();
        t.multi();
        assert_eq!(queue(&mut t, &["SET", "a", "1"]), Reply::simple("QUEUED"));
        assert_eq!(
            queue(&mut t, &["SET", "b", "1"]),
            Reply::error_line(CROSSSLOT)
        );
        assert_eq!(
            queue(&mut t, &["MGET", "a", "b"]),
            Reply::error_line(CROSSSLOT)
        );
        assert_eq!(
            t.exec().err(),
            Some(Reply::error_line(
                "EXECABORT Transaction discarded because of previous errors."
            ))
        );
    }

    #[test]
    fn a_refused_command_aborts_exec_like_redis() {
        let mut t = Transaction::default();
        t.multi();
        let reply = queue(&mut t, &["GET"]);
        assert_eq!(
            reply,
            Reply::error_line("ERR wrong number of arguments for 'get' command")
        );
        assert!(t.exec().is_err());
    }

    #[test]
    fn wait_is_refused_inside_multi_and_aborts_exec() {
        let mut t = Transaction::default();
        t.multi();
        assert_eq!(queue(&mut t, &["SET", "a", "1"]), Reply::simple("QUEUED"));
        let refused = queue(&mut t, &["WAIT", "1", "0"]);
        let line = refused.error().map(String::from_utf8_lossy);
        assert!(
            line.as_deref()
                .is_some_and(|l| l.starts_with("ERR slotgate: WAIT inside a transaction")),
            "{refused:?}"
        );
        assert!(t.exec().is_err());
    }

    #[test]
    fn watch_binds_the_slot_and_is_refused_inside_multi() {
        let mut t = Transaction::default();
        let watch = Request::from_args(args(&["WATCH", "{u}a", "{u}b"]));
        assert_eq!(t.watch(&watch), Ok(Slot::for_key(b"u")));
        let other = Request::from_args(args(&["WATCH", "x"]));
        assert_eq!(t.watch(&other), Err(Reply::error_line(CROSSSLOT)));
        t.multi();
        assert_eq!(
            t.watch(&watch),
            Err(Reply::error_line("ERR WATCH inside MULTI is not allowed"))
        );
        assert_eq!(queue(&mut t, &["INCR", "x"]), Reply::error_line(CROSSSLOT));
    }

    #[test]
    fn keyspace_wide_commands_are_refused_in_a_transaction() {
        let mut t = Transaction::default();
        t.multi();
        assert_eq!(
            queue(&mut t, &["flushall", "ASYNC"]),
            Reply::error_line(
                "ERR 'FLUSHALL' is not supported by slotgate (inside MULTI it would reach one \
                 master only; send it outside the transaction)"
            )
        );
        for words in [
            &["KEYS", "*"][..],
            &["SCAN", "0"],
            &["RANDOMKEY"],
            &["FLUSHDB"],
        ] {
            assert!(queue(&mut t, words).error().is_some(), "{words:?}");
        }
        assert_eq!(queue(&mut t, &["DBSIZE"]), Reply::simple("QUEUED"));
        assert!(t.exec().is_err());
    }

    #[test]
    fn exec_without_multi_and_nested_multi() {
        assert_eq!(
            Transaction::default().exec().err(),
            Some(Reply::error_line("ERR EXEC without MULTI"))
        );
        let mut t = Transaction::default();
        t.multi();
        assert_eq!(
            t.multi(),
            Reply::error_line("ERR MULTI calls can not be nested")
        );
    }
}
