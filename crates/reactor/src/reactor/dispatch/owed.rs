//! The responses owed on a connection, in request order: a job's completion put in its place,
//! the ones past their deadline answered 503, and the ready ones at the front of the line
//! encoded, counted and logged. Encoding is here too, for the answers sent at once.

use std::time::Duration;

use rtserve_protocol::{ResponseContext, StatusCode, send_continue, send_error, send_response};

use super::{Dispatcher, Turn};
use crate::{
    Response, Shed, answers,
    budget::Charge,
    log::LogEntry,
    mailbox::{Answer, Completion},
    session::{OwedState, Session},
};

impl Dispatcher {
    /// Puts a job's response in its place; returns whether it was wanted (a late one, whose
    /// place was answered 503 at the deadline, or whose connection is gone, is dropped).
    pub(crate) fn complete(
        &mut self,
        t: &mut Turn<'_>,
        session: &mut Session,
        completion: Completion,
    ) -> bool {
        let Some(owed) = session
            .exchange
            .as_deref_mut()
            .and_then(|e| e.owed.iter_mut().find(|o| o.seq == completion.seq))
        else {
            return false;
        };
        let OwedState::Job { deadline, .. } = owed.state else {
            return false;
        };
        // Finished, but after its deadline: the timer has not popped yet (poll timeouts are
        // whole milliseconds), and the late result is dropped all the same.
        let response = match completion.answer {
            _ if t.clock.now >= deadline => {
                t.stats.late(t.clock.now - deadline);
                t.stats.admitted_missed(owed.route);
                if let Some((_, class)) = completion.finished.filter(|&(at, _)| at < deadline) {
                    // Done in time, and late only here: the pool counted it made.
                    self.pool.delivered_late(owed.route, class);
                }
                self.shed(t, owed.route, Shed::Deadline)
            }
            Answer::NotStarted => {
                t.stats.admitted_missed(owed.route);
                self.shed(t, owed.route, Shed::NotStarted)
            }
            #[cfg(feature = "tokio")]
            Answer::Cancelled => answers::internal_error(),
            Answer::Ran(response) => response,
        };
        let (response, charge) = self.admit(t, owed.ctx, response);
        // Only a response that ran can be a success here (the others are 503s and 500s), and
        // it is counted as it will be sent: one the output budget turns into a 503 is not.
        if response.status().is_success() {
            t.stats.in_time(owed.route);
        }
        owed.state = OwedState::Ready(response, charge);
        true
    }

    /// Answers 503 in place of every job past its deadline (RFC 9110 §15.6.4); each is told,
    /// and its late result will be dropped.
    pub(crate) fn expire(&mut self, t: &Turn<'_>, session: &mut Session) {
        let Some(exchange) = session.exchange.as_deref_mut() else {
            return;
        };
        for owed in &mut exchange.owed {
            if let OwedState::Job { pending, deadline } = &owed.state
                && *deadline <= t.clock.now
            {
                pending.cancel();
                t.stats.late(t.clock.now - *deadline);
                t.stats.admitted_missed(owed.route);
                let response = self.shed(t, owed.route, Shed::Deadline);
                owed.state = OwedState::Ready(response, Charge::none());
            }
        }
    }

    /// Sends the owed responses at the front of the line that are ready, in order; returns
    /// whether the connection must close after them. `input_waits`: the reactor holds input
    /// it has not parsed yet (it paused reading), so the last response here is not the last.
    pub(crate) fn release(
        &mut self,
        t: &mut Turn<'_>,
        session: &mut Session,
        input_waits: bool,
    ) -> bool {
        let close_after = t.draining && session.input.is_empty() && !input_waits;
        let Some(exchange) = session.exchange.as_deref_mut() else {
            return false;
        };
        loop {
            let ready = match exchange.owed.front().map(|o| &o.state) {
                Some(OwedState::Job { .. }) | None => break,
                Some(_) => exchange.owed.pop_front(),
            };
            let Some(owed) = ready else {
                break;
            };
            // Shutting down: the last response owed says the connection closes.
            let ctx = if close_after && exchange.owed.is_empty() {
                owed.ctx.with_close()
            } else {
                owed.ctx
            };
            let (keep_alive, status) = match owed.state {
                OwedState::Continue => {
                    send_continue(&mut t.out.buf);
                    continue;
                }
                OwedState::Refusal(error) => Self::send_refusal(t, error),
                OwedState::Ready(response, charge) => self.encode(t, ctx, &response, charge),
                OwedState::Job { .. } => unreachable!("jobs stop the loop above"),
            };
            let latency = t.clock.now.saturating_duration_since(owed.received);
            self.record(t, owed.route, status, latency);
            if !keep_alive {
                exchange.proto.close();
                exchange.cancel_owed();
                return true;
            }
        }
        false
    }

    /// Takes a large response's body from the output budget before its head is sent (its
    /// client may leave it waiting), or gives the 503 to send in its place when the budget has
    /// no room. Small answers, the 503s among them, are never refused (their bytes are counted
    /// if they wait: `Output::settle`).
    pub(super) fn admit(
        &self,
        t: &Turn<'_>,
        ctx: ResponseContext,
        response: Response,
    ) -> (Response, Charge) {
        let len = response.body().as_bytes().len();
        if len <= SMALL_OUTPUT || ctx.is_head() {
            return (response, Charge::none());
        }
        match Charge::take(&self.view.stats.budgets.output, len) {
            Some(charge) => (response, charge),
            None => {
                t.stats.output_refused();
                (answers::no_room_to_send(), Charge::none())
            }
        }
    }

    /// Encodes an admitted response, or a 500 if HTTP cannot carry it (a bad header from the
    /// handler); returns whether the connection stays open, and the status sent. Its charge
    /// goes with the turn's output, which the reactor settles when it writes.
    pub(super) fn encode(
        &self,
        t: &mut Turn<'_>,
        ctx: ResponseContext,
        response: &Response,
        charge: Charge,
    ) -> (bool, StatusCode) {
        t.out.charged += charge.hand_on();
        Self::encode_now(t, ctx, response)
    }

    /// Encodes `response` now: the [`ErrorAnswers`](crate::ErrorAnswers) hook's answer in its
    /// place if it is one of the server's own and there is a hook, or a 500 if HTTP cannot
    /// carry it.
    fn encode_now(
        t: &mut Turn<'_>,
        ctx: ResponseContext,
        response: &Response,
    ) -> (bool, StatusCode) {
        // Only built-in answers are looked at, so the hook costs nothing on a success.
        let shaped = match &t.config.error_answers {
            Some(hook) if response.server_error().is_some() => hook.shape(response),
            _ => None,
        };
        let response = shaped.as_ref().unwrap_or(response);
        let date = &t.clock.date;
        let body = response.body().as_bytes();
        match send_response(
            ctx,
            response.status(),
            response.headers(),
            body,
            date,
            &mut t.out.buf,
        ) {
            Ok(keep_alive) => (keep_alive, response.status()),
            Err(_) => {
                let error = answers::internal_error();
                let body = error.body().as_bytes();
                let sent = send_response(
                    ctx,
                    error.status(),
                    error.headers(),
                    body,
                    date,
                    &mut t.out.buf,
                );
                (sent.unwrap_or(false), error.status())
            }
        }
    }

    /// Answers a request that could not be parsed: the protocol layer's own answer, or the
    /// [`ErrorAnswers`](crate::ErrorAnswers) hook's if there is one. The connection closes
    /// after it. Returns false (the connection does not stay open) and the status sent.
    pub(super) fn send_refusal(
        t: &mut Turn<'_>,
        error: rtserve_protocol::RecvError,
    ) -> (bool, StatusCode) {
        if t.config.error_answers.is_none() {
            send_error(error, &t.clock.date, &mut t.out.buf);
            return (false, error.status());
        }
        let ctx = ResponseContext::for_error();
        let (_, status) = Self::encode_now(t, ctx, &answers::unreadable(error));
        (false, status)
    }

    /// Counts a response and hands it to the request log, if there is one (never waiting: a
    /// full log queue drops the entry and counts it).
    pub(super) fn record(&self, t: &Turn<'_>, route: usize, status: StatusCode, latency: Duration) {
        t.stats.response(route, status.as_u16(), latency);
        if let Some(log) = &self.log {
            let entry = LogEntry {
                reactor: self.reactor,
                route,
                status,
                latency,
            };
            if log.try_send(entry).is_err() {
                t.stats.log_dropped();
            }
        }
    }
}

/// A response body at most this large is never refused by the output budget: the refusals
/// themselves are this small, and refusing them would starve them.
const SMALL_OUTPUT: usize = 8 * 1024;
