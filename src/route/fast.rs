//! The fast path for the request most clients send most: one slot, its master known, and room on
//! the connection. Such a request is written to the connection's queue while the session
//! dispatches it, and its reply is polled in place by the session: no future, no task and no
//! timer of its own. Whatever needs more (a redirection, an unreachable node, a full queue) goes
//! to the router's general path, [`Router::execute`] or [`Router::resume`], which handles it as
//! if it had been there from the start.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::redirect;
use super::router::{Router, Via};
use super::split;
use crate::backend::{BackendError, Lane, Node, PendingReply};
use crate::budget::Budget;
use crate::cluster::Slot;
use crate::command::{Action, Plan, Traits};
use crate::order::Turn;
use crate::protocol::{Reply, Request};

/// A request on the fast path, sent and awaiting its reply.
pub struct Started {
    slot: Slot,
    traits: Traits,
    /// Sent with the client's budget: its reply counts there from its arrival.
    budgeted: bool,
    node: Arc<Node>,
    reply: PendingReply,
}

/// What came back for a [`Started`] request that the fast path cannot finish on its own.
pub struct Unsettled {
    slot: Slot,
    traits: Traits,
    node: Arc<Node>,
    outcome: Result<Reply, BackendError>,
}

impl Started {
    /// `Ready(Ok)` is the client's reply; `Ready(Err)` must go to [`Router::resume`].
    /// `budget` is the client's; it is used only if the request was sent with it.
    pub fn poll_settled(
        &mut self,
        cx: &mut Context<'_>,
        budget: &Budget,
    ) -> Poll<Result<Reply, Unsettled>> {
        let budget = self.budgeted.then_some(budget);
        let outcome = std::task::ready!(self.reply.poll_reply(cx, &self.node, budget));
        Poll::Ready(match outcome {
            Ok(reply) if is_final(&reply, self.traits) => Ok(reply),
            outcome => Err(Unsettled {
                slot: self.slot,
                traits: self.traits,
                node: self.node.clone(),
                outcome,
            }),
        })
    }
}

/// A reply the router would pass through untouched: anything but a redirection, the cluster
/// refusing the command while it reconfigures, or an EVALSHA's NOSCRIPT, which the router heals.
/// Only error replies are looked into.
fn is_final(reply: &Reply, traits: Traits) -> bool {
    reply.error().is_none()
        || !(redirect::is_redirect(reply)
            || redirect::is_cluster_down(reply)
            || (traits.script_sha() && redirect::is_noscript(reply)))
}

impl Router {
    /// Sends a single-slot request at once if it can take the fast path, or returns `None`
    /// (nothing sent) for [`Router::execute`] to handle: no keys, keys in several slots, no known
    /// master, or a full connection queue. Falling back keeps a client's order: a full queue
    /// refuses every later request too until the slow path's waiting send gets in first.
    pub fn start(
        &self,
        req: &Request,
        plan: Plan,
        lane: Lane,
        budget: Option<&Arc<Budget>>,
    ) -> Option<Started> {
        let Action::Keyed(keys) = plan.action else {
            return None;
        };
        if plan.traits.blocking() {
            return None;
        }
        let slot = split::one_slot(req.args(), keys).ok()??;
        let node = match lane.replica_reads && plan.traits.readonly() {
            // No replica: the general path falls back to the master or says why not.
            true => self.replica(slot, lane.affinity).ok()??,
            false => self.table.load().master_for(slot)?.clone(),
        };
        let reply = node.try_send(req.to_resp(), lane, budget)?;
        Some(Started {
            slot,
            traits: plan.traits,
            budgeted: budget.is_some(),
            node,
            reply,
        })
    }

    /// Takes over a fast-path request whose outcome needs redirections, holding or a replay. It is
    /// at the head of its client's queue by now, so its turn has come.
    pub async fn resume(
        &self,
        req: &Request,
        unsettled: Unsettled,
        lane: Lane,
        budget: Option<Arc<Budget>>,
    ) -> Reply {
        let Unsettled {
            slot,
            traits,
            node,
            outcome,
        } = unsettled;
        let sha = traits.script_sha().then(|| req.args().get(1).cloned());
        let follow = self
            .follow_for(slot, traits.replay_safe())
            .healing(sha.flatten());
        let result = self
            .follow(
                follow,
                req.to_resp(),
                Via::Shared {
                    lane,
                    budget: budget.as_ref(),
                },
                Some((node, outcome)),
                &Turn::now(),
            )
            .await;
        self.answer(result)
    }
}
