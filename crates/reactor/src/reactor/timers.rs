//! What each timer does when it fires (the timers themselves are in `crate::timer`).

use super::{Reactor, live};
use crate::{
    Response, answers,
    body::{BodyRules, TooSlow},
    connection::{Connection, Phase},
    timer::{Popped, TimerKind},
    token::ConnId,
};

impl Reactor {
    /// Fires every timer due by the turn's clock.
    pub(super) fn fire_timers(&mut self) {
        let now = self.dispatch.clock.now;
        while let Some((at, id, kind)) = self.timers.pop_due(now) {
            let Some(conn) = live(&mut self.conns, id) else {
                continue;
            };
            let kind = match conn.timers.on_pop(kind, at, now) {
                Popped::Ignore => continue,
                Popped::Requeue(at, kind) => {
                    self.timers.push(id, kind, at);
                    continue;
                }
                Popped::Fire(kind) => kind,
            };
            match kind {
                TimerKind::Deadline => {
                    if let Some(next) = self.dispatch.expire(&mut conn.session) {
                        self.timers
                            .set(&mut conn.timers, id, TimerKind::Deadline, next);
                    }
                    self.release(id);
                }
                TimerKind::HeadRead if conn.phase == Phase::Open => {
                    self.time_out(id, answers::request_timeout());
                }
                TimerKind::BodyRead if conn.phase == Phase::Open => {
                    let rules = BodyRules::from(&self.config);
                    let crowded = self.dispatch.view().stats.budgets.bodies.is_crowded();
                    let checked = conn.session.exchange.as_deref_mut().map(|e| {
                        let held = crowded.then(|| e.body.held());
                        e.pace.check(now, &rules, held)
                    });
                    match checked {
                        Some(Ok(next)) => {
                            self.timers
                                .set(&mut conn.timers, id, TimerKind::BodyRead, next);
                        }
                        Some(Err(cut)) => {
                            if cut == TooSlow::Crowded {
                                self.stats.body_refused();
                            } else {
                                self.stats.slow_body();
                            }
                            self.time_out(id, cut.response());
                        }
                        None => self.time_out(id, answers::request_timeout()),
                    }
                }
                TimerKind::Idle if conn.phase == Phase::Open && conn.session.is_idle() => {
                    // Closed before reading anything more: a request sent after this was never
                    // read, and the client can tell it was not served.
                    self.close_idle(id);
                }
                TimerKind::WriteStall => {
                    // No writable edge may have come even though the client reads (the
                    // kernel raises one only once a third of the buffer is free): try, and
                    // drop the client only if it took nothing since the timer was set.
                    let sent = |conn: &Connection| {
                        conn.session.exchange.as_ref().map_or(0, |e| e.output.sent)
                    };
                    let before = sent(conn);
                    if self.flush(id)
                        && let Some(conn) = self.conn_mut(id)
                    {
                        if sent(conn) == before && conn.session.pending_output() > 0 {
                            self.stats.write_timed_out();
                            self.reset(id);
                        } else if self.resumable(id) {
                            // Drained below the limit with no edge to say so: read on.
                            self.mark_still_ready(id);
                        }
                    }
                }
                TimerKind::Linger => self.close(id),
                TimerKind::HeadRead | TimerKind::BodyRead | TimerKind::Idle => {}
            }
        }
    }

    /// The request cannot go on (its client took too long, or its body would hold the body
    /// budget too long): `response`, then close (or close at once, if no byte of a request had
    /// come).
    fn time_out(&mut self, id: ConnId, response: Response) {
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        if conn.session.input.is_empty() {
            // No request begun: nothing to say.
            self.close(id);
        } else {
            // A request had begun: say so before closing.
            conn.phase = Phase::Closing;
            self.dispatch.cut_short(&mut conn.session, response);
            if self.flush(id) {
                self.release(id);
            }
        }
    }
}
