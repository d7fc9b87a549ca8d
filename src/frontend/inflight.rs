//! One client's requests in flight, answered strictly in arrival order.
//!
//! Most requests take the router's fast path: already sent when they are queued here, they cost an
//! entry in a ring buffer and a reply channel, and are polled only when they reach the head,
//! since nothing can be written before the head anyway. Everything else runs as a future in an
//! ordered set that is driven on every poll, so that a fanned-out MGET makes progress while
//! requests ahead of it are still waiting. A fast-path request whose reply needs the router
//! (a redirection, a lost node) turns into such a future once it is at the head.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::stream::{FuturesOrdered, Stream, StreamExt};

use crate::backend::Lane;
use crate::budget::Budget;
use crate::command::CommandId;
use crate::order::{Line, Turn};
use crate::protocol::{Reply, Request};
use crate::route::{Router, Started};

pub(super) type ReplyFuture = Pin<Box<dyn Future<Output = Answered> + Send>>;

/// A task's reply, with the request it answers when the task owned it: handed back rather than
/// dropped, so that a slow request can be shown in SLOWLOG without a copy of every request.
pub(super) struct Answered {
    pub reply: Reply,
    pub req: Option<Request>,
}

impl Answered {
    pub fn to(reply: Reply, req: Request) -> Answered {
        Answered {
            reply,
            req: Some(req),
        }
    }
}

impl From<Reply> for Answered {
    fn from(reply: Reply) -> Answered {
        Answered { reply, req: None }
    }
}

/// What the session knows of a request from the moment it reads it, kept with its entry until
/// its reply is written: which command it is, and when it was read. `Copy` and small: every
/// request has one.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stamp {
    pub command: CommandId,
    pub read_at: Instant,
}

/// A reply leaving the queue in turn, with its request's stamp. The request itself, where the
/// queue still had it, stays behind in [`Inflight::popped_request`]: only a slow one is looked
/// at, and a smaller item is cheaper to hand along.
pub(super) struct Popped {
    pub reply: Reply,
    pub stamp: Stamp,
}

/// A task whose reply, once made, counts against the client's budget until it is popped: it may
/// wait behind a slow head for long. A type rather than a wrapping `async` block, to save an
/// allocation per task.
struct Counted {
    inner: ReplyFuture,
    budget: Arc<Budget>,
}

impl Future for Counted {
    type Output = Answered;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answered> {
        let answered = std::task::ready!(self.inner.as_mut().poll(cx));
        self.budget.made(answered.reply.bytes().len());
        Poll::Ready(answered)
    }
}

enum Entry {
    Ready(Reply, Option<Request>),
    /// Sent on the fast path; the request is kept in case the router has to take over.
    Fast {
        req: Request,
        started: Started,
    },
    /// The next output of `tasks` still owed.
    Task,
    /// A fast-path request the router took over, at the head of the queue.
    Resumed(ReplyFuture),
}

pub(super) struct Inflight {
    queue: VecDeque<(Entry, Stamp)>,
    /// The stamp of the request being dispatched: every entry pushed meanwhile is its.
    stamp: Stamp,
    /// Entries pushed so far; with `line`, tells a task when its turn to send again comes.
    pushed: u64,
    line: Arc<Line>,
    tasks: FuturesOrdered<Counted>,
    /// Task outputs that came out before their turn; `tasks` yields them in queue order.
    done: VecDeque<Answered>,
    router: Arc<Router>,
    /// Where a fast-path request the router takes over is sent again: the client's lane when it
    /// was sent, since a protocol switch waits for every earlier request to be answered.
    lane: Lane,
    /// The client's output budget: fast-path replies count there until taken.
    budget: Arc<Budget>,
    /// Bytes of the replies in `Ready` entries (task outputs count in the budget itself).
    held: usize,
    /// The request the last popped reply answers, when it was kept.
    popped_req: Option<Request>,
}

impl Inflight {
    pub fn new(router: Arc<Router>, lane: Lane, budget: Arc<Budget>) -> Inflight {
        Inflight {
            queue: VecDeque::new(),
            stamp: Stamp {
                command: CommandId::OTHER,
                read_at: Instant::now(),
            },
            pushed: 0,
            line: Arc::new(Line::default()),
            tasks: FuturesOrdered::new(),
            done: VecDeque::new(),
            router,
            lane,
            budget,
            held: 0,
            popped_req: None,
        }
    }

    /// The request the reply popped last answers, if its entry kept it.
    pub fn popped_request(&self) -> Option<&Request> {
        self.popped_req.as_ref()
    }

    /// The client switched protocol; nothing is in flight (see `Session::dispatch`).
    pub fn set_lane(&mut self, lane: Lane) {
        debug_assert!(self.queue.is_empty());
        self.lane = lane;
    }

    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Bytes of finished replies waiting here for their turn to be written.
    pub fn held(&self) -> usize {
        self.held
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Entries pushed so far: the next one pushed is number `pushed()`, counting from 0.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// The number of the entry popped last.
    pub fn last_popped(&self) -> u64 {
        self.pushed - self.queue.len() as u64 - 1
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The request about to be dispatched: what it pushes is stamped with this.
    pub fn stamp(&mut self, stamp: Stamp) {
        self.stamp = stamp;
    }

    pub fn ready(&mut self, reply: Reply) {
        self.held += reply.bytes().len();
        self.push(Entry::Ready(reply, None));
    }

    /// [`ready`](Self::ready), keeping the request it answers for SLOWLOG.
    pub fn answer(&mut self, reply: Reply, req: Request) {
        self.held += reply.bytes().len();
        self.push(Entry::Ready(reply, Some(req)));
    }

    pub fn fast(&mut self, req: Request, started: Started) {
        self.push(Entry::Fast { req, started });
    }

    /// The turn of the next entry pushed: a task made with it sends a request a second time only
    /// once everything before it has been answered.
    pub fn next_turn(&self) -> Turn {
        self.line.turn(self.pushed)
    }

    fn push(&mut self, entry: Entry) {
        self.pushed += 1;
        self.queue.push_back((entry, self.stamp));
    }

    /// Polls the future once right here, before the session reads another request: whatever it
    /// sends first must be queued to its node ahead of the client's later requests. In the ordered
    /// set its first poll could come after a later request's fast-path send (the set polls only so
    /// many futures per call). The waker of this poll does nothing; that loses no wake-up, since the
    /// set polls every newly added future again with the session's own.
    pub fn task(&mut self, future: ReplyFuture) {
        let mut future = Counted {
            inner: future,
            budget: self.budget.clone(),
        };
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        match Pin::new(&mut future).poll(&mut cx) {
            Poll::Ready(Answered { reply, req }) => {
                self.budget.taken(reply.bytes().len());
                self.held += reply.bytes().len();
                self.push(Entry::Ready(reply, req));
            }
            Poll::Pending => {
                self.tasks.push_back(future);
                self.push(Entry::Task);
            }
        }
    }

    /// Pops the head, which `reply` answers, with the request its entry or task kept.
    #[inline]
    fn pop(&mut self, reply: Reply, req: Option<Request>) -> Poll<Option<Popped>> {
        let (entry, stamp) = self.queue.pop_front().expect("the head is there");
        self.popped_req = match entry {
            Entry::Fast { req, .. } => Some(req),
            _ => req,
        };
        self.line.advance();
        Poll::Ready(Some(Popped { reply, stamp }))
    }
}

impl Stream for Inflight {
    type Item = Popped;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Popped>> {
        let this = self.get_mut();
        // Skipping an empty set matters: polling it still registers the waker, on every reply.
        while !this.tasks.is_empty() {
            match this.tasks.poll_next_unpin(cx) {
                Poll::Ready(Some(answered)) => this.done.push_back(answered),
                _ => break,
            }
        }
        loop {
            let Some((head, _)) = this.queue.front_mut() else {
                return Poll::Ready(None);
            };
            match head {
                Entry::Ready(..) => {
                    let Some((Entry::Ready(reply, req), stamp)) = this.queue.pop_front() else {
                        unreachable!("the head was just matched as ready");
                    };
                    this.held -= reply.bytes().len();
                    this.popped_req = req;
                    this.line.advance();
                    return Poll::Ready(Some(Popped { reply, stamp }));
                }
                Entry::Task => {
                    return match this.done.pop_front() {
                        Some(Answered { reply, req }) => {
                            this.budget.taken(reply.bytes().len());
                            this.pop(reply, req)
                        }
                        None => Poll::Pending,
                    }
                }
                Entry::Resumed(future) => {
                    let Answered { reply, req } = std::task::ready!(future.as_mut().poll(cx));
                    return this.pop(reply, req);
                }
                Entry::Fast { started, .. } => {
                    match std::task::ready!(started.poll_settled(cx, &this.budget)) {
                        Ok(reply) => return this.pop(reply, None),
                        Err(unsettled) => {
                            let Entry::Fast { req, .. } = std::mem::replace(head, Entry::Task)
                            else {
                                unreachable!("the head was just matched as fast");
                            };
                            let (router, budget) = (this.router.clone(), this.budget.clone());
                            let lane = this.lane;
                            *head = Entry::Resumed(Box::pin(async move {
                                let reply =
                                    router.resume(&req, unsettled, lane, Some(budget)).await;
                                Answered::to(reply, req)
                            }));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;
    use crate::command::CommandTable;
    use crate::fake::{all_slots_at, fake_node, redirect, request, router, Answer};
    use crate::metrics::Metrics;

    /// A slot migrating: the old owner answers everything with ASK. The client's SET (fast path),
    /// MSET (a split task) and GET of one key must reach the importing node in that order, though
    /// the task learns of its redirection as soon as the fast-path requests do.
    #[tokio::test]
    async fn redirected_requests_are_sent_again_in_the_clients_order() {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = log.clone();
        let (importing, _) = fake_node(Arc::new(move |args: &[Bytes], _| {
            let words: Vec<String> = args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let reply: &'static [u8] = match words[0].as_str() {
                "GET" => b"$1\r\n2\r\n",
                _ => b"+OK\r\n",
            };
            if words[0] != "ASKING" {
                seen.lock().unwrap().push(words.join(" "));
            }
            Answer::Reply(Bytes::from_static(reply))
        }))
        .await;
        let ask = redirect("ASK", &importing);
        let (owner, _) =
            fake_node(Arc::new(move |_: &[Bytes], _| Answer::Reply(ask.clone()))).await;
        let router = Arc::new(router(Arc::new(Metrics::new())));
        router.install(&all_slots_at(&owner));

        let table = CommandTable::builtin();
        let budget = Arc::new(Budget::new(crate::budget::OutputLimits {
            hard: 1 << 20,
            soft: 0,
            soft_for: std::time::Duration::ZERO,
        }));
        let mut inflight = Inflight::new(router.clone(), Lane::default(), budget.clone());
        for words in [
            &["SET", "k", "1"][..],
            &["MSET", "k", "2", "other", "3"],
            &["GET", "k"],
        ] {
            let req = request(words);
            let plan = table.classify(&req);
            match router.start(&req, plan, Lane::default(), Some(&budget)) {
                Some(started) => inflight.fast(req, started),
                None => {
                    let (router, turn) = (router.clone(), inflight.next_turn());
                    inflight.task(Box::pin(async move {
                        router
                            .execute(&req, plan, Lane::default(), turn, None)
                            .await
                            .into()
                    }));
                }
            }
        }
        let mut replies = Vec::new();
        while let Some(popped) = inflight.next().await {
            replies.push(popped.reply);
        }
        assert_eq!(replies, [Reply::ok(), Reply::ok(), Reply::bulk(b"2")]);
        let order = log.lock().unwrap().clone();
        let position = |prefix: &str| order.iter().position(|c| c.starts_with(prefix)).unwrap();
        assert!(position("SET k 1") < position("MSET k 2"), "{order:?}");
        assert!(position("MSET k 2") < position("GET k"), "{order:?}");
    }
}
