//! Which timers a connection needs, decided in one place from its state after every event
//! (quinn-proto's `poll_timeout` is the model): [`wanted`] reads the state, [`retime`] makes
//! the connection's timers match it.
//!
//! A timer is armed for a key: the request whose head or body it times, the bytes sent when
//! a write stalled. It keeps its time while the state asks for the same kind and key, and is
//! armed anew when either changes. So a head is timed from its first byte, not from each read;
//! a keep-alive connection's idle time from when it fell idle; a write stall from the last
//! progress. Nothing is timed while the server itself holds input back (paused, or cut off by
//! the per-turn budget): the client-side timers time the client.

use std::time::Instant;

use super::{Connection, Cx, Phase, Reading};
use crate::{body::BodyRules, session::Session, timer::TimerKind};

/// The client-side wait a connection's state asks for: one at a time, in one timer slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wait {
    /// The rest of a head, or the first byte of one on a new connection: `header_timeout`,
    /// then 408 (or a close, if nothing came).
    Head,
    /// More of a body, at its pace (`Pace::due`): 408 when too slow.
    Body,
    /// A new request on a keep-alive connection: `idle_timeout`, then close.
    Idle,
    /// A request on a connection with none in hand, once shutdown has begun:
    /// `shutdown_idle_wait`, never later than an idle timeout already running, then close.
    Stopping,
    /// The peer's close, after the half-close: `linger_timeout`, then close.
    Linger,
}

/// What a connection's state asks of its three timer slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Wanted {
    pub(super) client: Option<Wait>,
    /// Output waits for the client: the write-stall timer, for this many bytes sent so far.
    pub(super) write: Option<u64>,
    /// The earliest deadline among the jobs owed: 503 in place of each one due.
    pub(super) deadline: Option<Instant>,
}

impl Wait {
    fn kind(self) -> TimerKind {
        match self {
            Self::Head => TimerKind::HeadRead,
            Self::Body => TimerKind::BodyRead,
            Self::Idle => TimerKind::Idle,
            Self::Stopping => TimerKind::ShutdownWait,
            Self::Linger => TimerKind::Linger,
        }
    }
}

/// The key of the client-side timers: the request being read, or the last one answered.
fn request_key(session: &Session) -> u64 {
    u64::from(session.requests)
}

/// The timers a connection in this state needs; `stopping`: the reactor has stopped accepting
/// and waits only briefly for requests.
pub(super) fn wanted(conn: &Connection, stopping: bool) -> Wanted {
    let session = &conn.session;
    let client = match conn.phase {
        Phase::Lingering { .. } => Some(Wait::Linger),
        // Waiting for its output to be written: the write-stall timer times that.
        Phase::Closing { .. } => None,
        // Timers come with the registration (a connection answered and closed in its first
        // read never touches them), and time only the client.
        Phase::Open if !conn.registered || conn.reading != Reading::Ready => None,
        Phase::Open if session.input.has_head() => Some(Wait::Body),
        Phase::Open if !session.input.is_empty() => Some(Wait::Head),
        // Answers owed or output waiting: the deadline and write timers time those.
        Phase::Open if !session.is_idle() => None,
        Phase::Open if stopping => Some(Wait::Stopping),
        Phase::Open if session.requests > 0 => Some(Wait::Idle),
        Phase::Open => Some(Wait::Head),
    };
    let write = (session.pending_output() > 0).then(|| conn.sent());
    Wanted {
        client,
        write,
        deadline: session.next_deadline(),
    }
}

/// Makes a connection's timers what its state needs now (see the module docs).
pub(super) fn retime(conn: &mut Connection, cx: &mut Cx<'_>) {
    let wanted = wanted(conn, cx.stopping);
    let (now, config) = (cx.turn.clock.now, cx.turn.config);
    let (id, table) = (conn.id, &mut conn.timers);
    match wanted.client {
        Some(wait) => {
            let kind = wait.kind();
            let key = if wait == Wait::Linger {
                0
            } else {
                request_key(&conn.session)
            };
            if !table.holds(kind, key) {
                let at = match wait {
                    Wait::Head => Some(now + config.header_timeout),
                    Wait::Body => conn
                        .session
                        .exchange
                        .as_deref()
                        .map(|e| e.pace.due(&BodyRules::from(config))),
                    Wait::Idle => Some(now + config.idle_timeout),
                    Wait::Stopping => {
                        let at = now + config.shutdown_idle_wait;
                        Some(table.due(TimerKind::Idle).map_or(at, |due| due.min(at)))
                    }
                    Wait::Linger => Some(now + config.linger_timeout),
                };
                if let Some(at) = at {
                    cx.timers.set(table, id, (kind, key), at);
                }
            }
        }
        None => table.clear(TimerKind::HeadRead),
    }
    match wanted.write {
        Some(sent) if !table.holds(TimerKind::WriteStall, sent) => {
            let at = now + config.write_timeout;
            cx.timers.set(table, id, (TimerKind::WriteStall, sent), at);
        }
        Some(_) => {}
        None => table.clear(TimerKind::WriteStall),
    }
    match wanted.deadline {
        Some(at) if table.due(TimerKind::Deadline) != Some(at) => {
            cx.timers.set(table, id, (TimerKind::Deadline, 0), at);
        }
        Some(_) => {}
        None => table.clear(TimerKind::Deadline),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{TcpListener, TcpStream},
        sync::Arc,
        time::Duration,
    };

    use rtserve_protocol::{Limits, ResponseContext};

    use super::*;
    use crate::{
        budget::{Budgets, ByteBudget},
        pool::Tickets,
        session::{Exchange, OwedState, Pending},
        token::ConnId,
    };

    /// A connection over loopback, registered, open and reading, with nothing read yet.
    fn connection() -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
        let client =
            TcpStream::connect(listener.local_addr().expect("an address")).expect("a connection");
        let (server, _) = listener.accept().expect("accepted");
        let id = ConnId {
            index: 0,
            generation: 0,
        };
        let mut conn = Connection::new(mio::net::TcpStream::from_std(server), id);
        conn.registered = true;
        (conn, client)
    }

    /// Puts `bytes` in the connection's input, kept unparsed; `head`: the first `head` bytes
    /// are a parsed head whose body is still arriving.
    fn kept(conn: &mut Connection, bytes: &[u8], head: usize) {
        let mut input = conn.session.input.begin(bytes);
        if head > 0 {
            input.head_starts();
            input.consume(head);
        }
        input.finish(head);
    }

    /// An exchange, with its budgets, for the connection to have in hand.
    fn exchange() -> Box<Exchange> {
        let budgets = Budgets {
            bodies: Arc::new(ByteBudget::new(1 << 20)),
            output: Arc::new(ByteBudget::new(1 << 20)),
        };
        Box::new(Exchange::new(Limits::default(), &budgets))
    }

    fn client(conn: &Connection, stopping: bool) -> Option<Wait> {
        wanted(conn, stopping).client
    }

    #[test]
    fn a_new_connection_is_timed_for_its_first_head_once_registered() {
        let (mut conn, _client) = connection();
        assert_eq!(client(&conn, false), Some(Wait::Head));
        assert_eq!(client(&conn, true), Some(Wait::Stopping));
        conn.registered = false;
        assert_eq!(
            wanted(&conn, false),
            Wanted {
                client: None,
                write: None,
                deadline: None,
            }
        );
    }

    #[test]
    fn part_of_a_head_is_timed_as_a_head_and_a_body_by_its_pace() {
        let (mut conn, _client) = connection();
        conn.session.requests = 3;
        kept(&mut conn, b"GET / HT", 0);
        assert_eq!(client(&conn, false), Some(Wait::Head));
        // Shutting down changes nothing for a request begun.
        assert_eq!(client(&conn, true), Some(Wait::Head));
        let (mut conn, _client) = connection();
        let head = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
        kept(&mut conn, &[&head[..], b"abc"].concat(), head.len());
        assert_eq!(client(&conn, false), Some(Wait::Body));
    }

    #[test]
    fn an_idle_keep_alive_connection_waits_for_its_next_request() {
        let (mut conn, _client) = connection();
        conn.session.requests = 1;
        assert_eq!(client(&conn, false), Some(Wait::Idle));
        assert_eq!(client(&conn, true), Some(Wait::Stopping));
    }

    #[test]
    fn nothing_times_the_client_while_the_server_holds_input_back() {
        let (mut conn, _client) = connection();
        kept(&mut conn, b"GET / HT", 0);
        for reading in [Reading::Paused, Reading::Queued] {
            conn.reading = reading;
            assert_eq!(client(&conn, false), None, "{reading:?}");
        }
    }

    #[test]
    fn output_waiting_is_timed_by_the_bytes_sent_so_far() {
        let (mut conn, _client) = connection();
        conn.session.requests = 1;
        let mut exchange = exchange();
        exchange
            .output
            .buf
            .extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        exchange.output.sent = 40;
        conn.session.exchange = Some(exchange);
        let wanted = wanted(&conn, false);
        // Not idle while its answer waits: no idle timer, a write one.
        assert_eq!(wanted.client, None);
        assert_eq!(wanted.write, Some(40));
        conn.session
            .exchange
            .as_deref_mut()
            .expect("in hand")
            .output
            .sent = 41;
        assert_eq!(
            super::wanted(&conn, false).write,
            Some(41),
            "progress re-arms"
        );
    }

    #[test]
    fn the_deadline_is_the_earliest_of_the_jobs_owed() {
        let (mut conn, _client) = connection();
        let mut exchange = exchange();
        let now = Instant::now();
        for (seq, after) in [(1, 9), (2, 3), (3, 5)] {
            let deadline = now + Duration::from_millis(after);
            let ticket = Tickets::new(1).issue(0);
            let state = OwedState::Job {
                pending: Pending::Pool(ticket),
                deadline,
            };
            exchange.owe(seq, ResponseContext::for_error(), 0, now, state);
        }
        conn.session.exchange = Some(exchange);
        let wanted = wanted(&conn, false);
        assert_eq!(wanted.deadline, Some(now + Duration::from_millis(3)));
        assert_eq!(wanted.client, None, "answers owed: not idle");
    }

    #[test]
    fn a_closing_connection_waits_for_its_output_then_lingers() {
        let (mut conn, _client) = connection();
        kept(&mut conn, b"GET / HT", 0);
        conn.phase = Phase::Closing { read_all: false };
        assert_eq!(client(&conn, false), None);
        conn.phase = Phase::Lingering { discarded: 0 };
        assert_eq!(client(&conn, false), Some(Wait::Linger));
        assert_eq!(client(&conn, true), Some(Wait::Linger));
    }
}
