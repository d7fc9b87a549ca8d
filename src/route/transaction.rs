//! Running a client's WATCH and MULTI ... EXEC on a connection of its own. The session decides
//! what is queued and which slot the transaction is bound to; here the commands meet the node.
//!
//! A transaction is sent whole at EXEC (MULTI, the queued commands, EXEC in one write), so a
//! node answers every queued command before it runs any: if one was refused with MOVED or ASK
//! (its slot moved after WATCH or after the slot map was read), the node aborts the EXEC itself,
//! nothing runs, and the client is told why.

use bytes::Bytes;
use tokio::sync::Mutex;

use super::error::RouteError;
use super::redirect::{self, Redirect};
use super::router::Router;
use crate::backend::{BackendError, Dedicated, Purpose};
use crate::cluster::{NodeAddr, Slot};
use crate::order::Turn;
use crate::protocol::{Proto, Reply, Request};

/// The client's own connection for its transaction: opened by the first WATCH, or by EXEC, and
/// shared with the futures that run them. Closing it ends every WATCH on it.
pub type Reserved = Mutex<Reservation>;

#[derive(Default)]
pub enum Reservation {
    #[default]
    None,
    Open(Dedicated),
    /// A WATCH was lost (its slot moved after an earlier WATCH): EXEC must not run unwatched.
    Lost(RouteError),
}

const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";

impl Router {
    /// Sends `WATCH` for keys of `slot` on the client's reserved connection, opening it to the
    /// slot's master first. A MOVED on a fresh connection (the map was stale) opens it again at
    /// the new owner; any other failure loses the transaction.
    pub async fn watch(
        &self,
        slot: Slot,
        req: &Request,
        reserved: &Reserved,
        proto: Proto,
        turn: Turn,
    ) -> Reply {
        turn.wait().await;
        let mut reservation = reserved.lock().await;
        let result = self.watch_on(slot, req, &mut reservation, proto).await;
        // A WATCH that did not take, however it failed, makes EXEC fail: a client may pipeline
        // MULTI ... EXEC without looking at WATCH's reply, and must never commit unwatched.
        let lost = match &result {
            Err(
                e @ (RouteError::TransactionMoved { .. }
                | RouteError::TransactionMigrating { .. }
                | RouteError::WatchRefused { .. }),
            ) => Some(e.clone()),
            // EXEC then says EXECABORT, which clients know, with this error as the reason.
            Err(e) => Some(RouteError::WatchRefused { why: e.to_string() }),
            Ok(reply) => reply.error().map(|e| RouteError::WatchRefused {
                why: String::from_utf8_lossy(e).into_owned(),
            }),
        };
        if let Some(e) = lost {
            if !matches!(*reservation, Reservation::Lost(_)) {
                *reservation = Reservation::Lost(e);
            }
        }
        self.answer(result)
    }

    async fn watch_on(
        &self,
        slot: Slot,
        req: &Request,
        reservation: &mut Reservation,
        proto: Proto,
    ) -> Result<Reply, RouteError> {
        for _ in 0..=self.settings.max_redirects {
            // Only a connection that has watched keys is kept, so a kept one is never fresh.
            let (conn, fresh) = match std::mem::take(reservation) {
                Reservation::Open(conn) => (conn, false),
                Reservation::None => (self.open_reserved(Some(slot), proto).await?, true),
                Reservation::Lost(e) => {
                    *reservation = Reservation::Lost(e.clone());
                    return Err(e);
                }
            };
            let reply = conn.send(req.to_resp(), 0).await?;
            match redirect::classify(&reply, conn.addr()) {
                None => {
                    *reservation = Reservation::Open(conn);
                    return Ok(reply);
                }
                Some(Redirect::Moved { slot: moved, addr }) => {
                    self.apply_moved(moved, &addr);
                    if !fresh {
                        return Err(RouteError::TransactionMoved { slot: moved, addr });
                    }
                }
                Some(_) => return Err(RouteError::TransactionMigrating { slot }),
            }
        }
        Err(RouteError::TooManyRedirects {
            slot,
            limit: self.settings.max_redirects,
        })
    }

    /// Runs MULTI, `queued` and EXEC on the reserved connection (opened now if no WATCH did),
    /// bound to `slot`'s master, or any master for a transaction without keys. The connection is
    /// closed afterwards: EXEC ends every WATCH anyway. A connection opened here speaks `proto`;
    /// one a WATCH opened speaks the protocol the client had then.
    pub async fn exec(
        &self,
        slot: Option<Slot>,
        queued: Vec<Request>,
        reserved: &Reserved,
        proto: Proto,
        turn: Turn,
    ) -> Reply {
        turn.wait().await;
        let conn = match std::mem::take(&mut *reserved.lock().await) {
            Reservation::Open(c) => Ok(c),
            Reservation::None => self.open_reserved(slot, proto).await,
            Reservation::Lost(e) => Err(e),
        };
        let result = match conn {
            Ok(c) => self.run_transaction(&c, slot, queued).await,
            Err(e) => Err(e),
        };
        self.answer(result)
    }

    async fn run_transaction(
        &self,
        conn: &Dedicated,
        slot: Option<Slot>,
        queued: Vec<Request>,
    ) -> Result<Reply, RouteError> {
        let mut commands: Vec<Bytes> = Vec::with_capacity(queued.len() + 2);
        commands.push(Bytes::from_static(MULTI));
        commands.extend(queued.iter().map(Request::to_resp));
        commands.push(Bytes::from_static(EXEC));
        let mut replies = conn.send_all(commands).await;
        let exec = replies.pop().unwrap_or(Err(BackendError::Unavailable {
            addr: conn.addr().clone(),
        }));
        for reply in replies {
            // Not sent, or refused before EXEC: the transaction did not run.
            let reply = reply?;
            match redirect::classify(&reply, conn.addr()) {
                Some(Redirect::Moved { slot, addr }) => {
                    self.apply_moved(slot, &addr);
                    return Err(RouteError::TransactionMoved { slot, addr });
                }
                Some(_) => {
                    if let Some(slot) = slot {
                        return Err(RouteError::TransactionMigrating { slot });
                    }
                }
                None => {}
            }
        }
        Ok(exec?)
    }

    /// A connection of the client's own to the master of `slot`, or to any master.
    async fn open_reserved(
        &self,
        slot: Option<Slot>,
        proto: Proto,
    ) -> Result<Dedicated, RouteError> {
        let addr: NodeAddr = {
            let table = self.table.load();
            match slot {
                Some(slot) => match table.master_for(slot) {
                    Some(node) => node.addr().clone(),
                    None => return Err(RouteError::SlotUnserved(slot)),
                },
                None => match table.serving_masters().first() {
                    Some(node) => node.addr().clone(),
                    None => return Err(RouteError::NoMasters),
                },
            }
        };
        Ok(self
            .pool
            .dedicate()
            .open(&addr, Purpose::State, proto)
            .await?)
    }
}
