//! Request vectors for `ServerConn`: each is a byte stream and the normalized events it must
//! produce, checked fed whole, byte by byte and split in two at every point (see `common`).
//!
//! Groups follow RFC 9112 and RFC 9110: request-target forms, message body framing, chunked
//! coding, persistence and pipelining, `Expect`, versions, then every rejection with the
//! status it is answered with, the limits, end of stream, and the lifetime of a parsed head.

mod common;

use RecvError::*;
use rtserve_protocol::{Event, Limits, Method, RecvError, ServerConn, Version};

use Ev::{Closed, End, NeedMore};
use common::{Ev, body, check, err, get, head, post, req, run};

/// Default limits with some fields changed.
fn limits(change: impl FnOnce(&mut Limits)) -> Limits {
    let mut limits = Limits::default();
    change(&mut limits);
    limits
}

/// `name: input => [events];` becomes a test that runs `check` with default limits;
/// `name(limits): input => [events];` with the given limits.
macro_rules! vectors {
    ($($name:ident $(($limits:expr))?: $input:expr => [$($event:expr),* $(,)?];)*) => {
        $(
            #[test]
            fn $name() {
                check(or_default!($($limits)?), $input, &[$(Ev::from($event)),*]);
            }
        )*
    };
}

/// The limits a vector gives, else the defaults.
macro_rules! or_default {
    () => {
        Limits::default()
    };
    ($limits:expr) => {
        $limits
    };
}

// RFC 9112 §3.2.1: origin-form, split into path and query.
vectors! {
    origin_form:
        b"GET /where?q=now HTTP/1.1\r\nHost: www.example.org\r\n\r\n" => [
            get("/where?q=now").path("/where").query("q=now").host("www.example.org"),
            End, NeedMore,
        ];
    origin_form_root:
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" => [get("/").host("a"), End, NeedMore];
    origin_form_empty_query:
        b"GET /p? HTTP/1.1\r\nHost: a\r\n\r\n" => [
            get("/p?").path("/p").query("").host("a"), End, NeedMore,
        ];
    origin_form_second_question_mark_in_query:
        b"GET /p?a?b=/c HTTP/1.1\r\nHost: a\r\n\r\n" => [
            get("/p?a?b=/c").path("/p").query("a?b=/c").host("a"), End, NeedMore,
        ];
    // Bytes of 0x80 and up are taken in a target only as UTF-8 (see
    // `request_line_target_not_utf8`): path and query are text as sent.
    origin_form_raw_utf8:
        b"GET /caf\xc3\xa9?q=\xe2\x82\xac HTTP/1.1\r\nHost: a\r\n\r\n" => [
            get("/caf\u{e9}?q=\u{20ac}").path("/caf\u{e9}").query("q=\u{20ac}").host("a"),
            End, NeedMore,
        ];
}

// RFC 9112 §3.2.2: absolute-form; its authority wins over Host, which must still be valid.
vectors! {
    absolute_form_overrides_host:
        b"GET http://www.example.org/pub/WWW/TheProject.html HTTP/1.1\r\n\
          Host: other.example\r\n\r\n" => [
            get("http://www.example.org/pub/WWW/TheProject.html")
                .path("/pub/WWW/TheProject.html")
                .header("Host", b"other.example")
                .authority("www.example.org"),
            End, NeedMore,
        ];
    absolute_form_without_path_has_path_slash:
        b"GET http://www.example.org:8080?x=1 HTTP/1.1\r\nHost: www.example.org:8080\r\n\r\n" => [
            get("http://www.example.org:8080?x=1")
                .path("/")
                .query("x=1")
                .host("www.example.org:8080"),
            End, NeedMore,
        ];
    absolute_form_scheme_is_case_insensitive:
        b"GET HTTPS://Example.ORG/a HTTP/1.1\r\nHost: x\r\n\r\n" => [
            get("HTTPS://Example.ORG/a").path("/a").header("Host", b"x").authority("Example.ORG"),
            End, NeedMore,
        ];
    absolute_form_ipv6:
        b"GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n" => [
            get("http://[::1]:8080/").path("/").host("[::1]:8080"), End, NeedMore,
        ];
    absolute_form_on_http10_without_host:
        b"GET http://example.org/x HTTP/1.0\r\n\r\n" => [
            get("http://example.org/x").path("/x").authority("example.org").v10(), End, Closed,
        ];
    // RFC 9110 §4.2.1: an http URI with an empty host is invalid.
    absolute_form_empty_host:
        b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadTarget, 400)];
    absolute_form_empty_host_with_port:
        b"GET http://:80/x HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadTarget, 400)];
    // RFC 9110 §4.2.4: userinfo in an http(s) URI is an error.
    absolute_form_userinfo:
        b"GET http://user@example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n" => [
            err(BadTarget, 400),
        ];
    // RFC 9112 §3.2: the Host rules hold whatever the target's form.
    absolute_form_still_needs_host:
        b"GET http://example.org/ HTTP/1.1\r\n\r\n" => [err(MissingHost, 400)];
    absolute_form_with_invalid_host:
        b"GET http://example.org/ HTTP/1.1\r\nHost: a b\r\n\r\n" => [err(BadHost, 400)];
    absolute_form_with_two_hosts:
        b"GET http://example.org/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n" => [
            err(DuplicateHost, 400),
        ];
}

// RFC 9112 §3.2.3: authority-form, only for CONNECT, and only with a port.
vectors! {
    authority_form_connect:
        b"CONNECT www.example.com:80 HTTP/1.1\r\nHost: www.example.com\r\n\r\n" => [
            req(Method::Connect, "CONNECT", "www.example.com:80")
                .path("")
                .header("Host", b"www.example.com")
                .authority("www.example.com:80"),
            End, NeedMore,
        ];
    authority_form_connect_ip_literal:
        b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n" => [
            req(Method::Connect, "CONNECT", "[2001:db8::1]:443").path("").host("[2001:db8::1]:443"),
            End, NeedMore,
        ];
    authority_form_without_port:
        b"CONNECT www.example.com HTTP/1.1\r\nHost: www.example.com\r\n\r\n" => [
            err(BadTarget, 400),
        ];
    // RFC 9110 §9.3.6: "A server MUST reject a CONNECT request that targets an empty or
    // invalid port number, typically by responding with a 400 (Bad Request)".
    authority_form_with_empty_port:
        b"CONNECT www.example.com: HTTP/1.1\r\nHost: www.example.com\r\n\r\n" => [
            err(BadTarget, 400),
        ];
    authority_form_ip_literal_with_empty_port:
        b"CONNECT [::1]: HTTP/1.1\r\nHost: [::1]\r\n\r\n" => [err(BadTarget, 400)];
    authority_form_ip_literal_without_port:
        b"CONNECT [::1] HTTP/1.1\r\nHost: [::1]\r\n\r\n" => [err(BadTarget, 400)];
    authority_form_without_host:
        b"CONNECT :443 HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadTarget, 400)];
    connect_with_origin_form:
        b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadTarget, 400)];
    authority_form_for_get:
        b"GET www.example.com:80 HTTP/1.1\r\nHost: www.example.com\r\n\r\n" => [
            err(BadTarget, 400),
        ];
}

// RFC 9112 §3.2.4: asterisk-form, only for a server-wide OPTIONS.
vectors! {
    asterisk_form_options:
        b"OPTIONS * HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n" => [
            req(Method::Options, "OPTIONS", "*").host("www.example.org:8001"), End, NeedMore,
        ];
    asterisk_form_for_get:
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadTarget, 400)];
    origin_form_without_slash:
        b"GET where HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadTarget, 400)];
}

// Methods are case-sensitive tokens (RFC 9110 §9.1); unknown ones are served as `Other`.
vectors! {
    extension_method:
        b"PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n" => [
            req(Method::Other, "PROPFIND", "/dav").host("a"), End, NeedMore,
        ];
    lower_case_get_is_another_method:
        b"get / HTTP/1.1\r\nHost: a\r\n\r\n" => [
            req(Method::Other, "get", "/").host("a"), End, NeedMore,
        ];
    method_with_token_punctuation:
        b"M-SEARCH! / HTTP/1.1\r\nHost: a\r\n\r\n" => [
            req(Method::Other, "M-SEARCH!", "/").host("a"), End, NeedMore,
        ];
}

#[test]
fn standard_methods() {
    let methods = [
        ("GET", Method::Get),
        ("HEAD", Method::Head),
        ("POST", Method::Post),
        ("PUT", Method::Put),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
        ("TRACE", Method::Trace),
        ("PATCH", Method::Patch),
    ];
    for (name, method) in methods {
        let input = format!("{name} /m HTTP/1.1\r\nHost: a\r\n\r\n");
        check(
            Limits::default(),
            input.as_bytes(),
            &[req(method, name, "/m").host("a").into(), End, NeedMore],
        );
    }
}

// Header fields: names as sent, values without surrounding OWS (RFC 9110 §5.5, RFC 9112
// §5.1), obs-text allowed in values, empty values allowed.
vectors! {
    header_names_keep_their_case:
        b"GET / HTTP/1.1\r\nhOsT: a\r\nX-Custom-Thing: v\r\n\r\n" => [
            get("/").header("hOsT", b"a").authority("a").header("X-Custom-Thing", b"v"),
            End, NeedMore,
        ];
    header_values_lose_surrounding_whitespace:
        b"GET / HTTP/1.1\r\nHost:a\r\nX-Pad: \t a  b \t \r\nX-Tight:v\r\n\r\n" => [
            get("/").host("a").header("X-Pad", b"a  b").header("X-Tight", b"v"),
            End, NeedMore,
        ];
    host_value_loses_surrounding_whitespace:
        b"GET / HTTP/1.1\r\nHost:   example.com  \r\n\r\n" => [
            get("/").host("example.com"), End, NeedMore,
        ];
    header_empty_values:
        b"GET / HTTP/1.1\r\nHost:\r\nX-Empty: \r\n\r\n" => [
            get("/").host("").header("X-Empty", b""), End, NeedMore,
        ];
    header_obs_text_value:
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n" => [
            get("/").host("a").header("X-Name", b"caf\xc3\xa9"), End, NeedMore,
        ];
    repeated_header_fields_keep_their_order:
        b"GET / HTTP/1.1\r\nHost: a\r\nAccept: x\r\nAccept: y\r\naccept: z\r\n\r\n" => [
            get("/")
                .host("a")
                .header("Accept", b"x")
                .header("Accept", b"y")
                .header("accept", b"z"),
            End, NeedMore,
        ];
    valid_host_values:
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n\
          GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n\
          GET / HTTP/1.1\r\nHost: xn--bcher-kva.example:443\r\n\r\n" => [
            get("/").host("127.0.0.1:8080"), End,
            get("/").host("[::1]"), End,
            get("/").host("xn--bcher-kva.example:443"), End,
            NeedMore,
        ];
}

// RFC 9112 §2.2: empty lines before the request line are ignored; a bare LF may end a line.
vectors! {
    leading_empty_lines:
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n" => [get("/").host("a"), End, NeedMore];
    leading_bare_lf_lines:
        b"\n\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n" => [get("/").host("a"), End, NeedMore];
    empty_lines_between_pipelined_requests:
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n" => [
            get("/1").host("a"), End, get("/2").host("a"), End, NeedMore,
        ];
    only_empty_lines:
        b"\r\n\r\n\n" => [NeedMore];
    bare_lf_line_endings:
        b"GET / HTTP/1.1\nHost: a\nX: b\n\n" => [
            get("/").host("a").header("X", b"b"), End, NeedMore,
        ];
    incomplete_head:
        b"GET / HTTP/1.1\r\nHost: a\r\n" => [NeedMore];
    empty_input:
        b"" => [NeedMore];
}

// RFC 9112 §6.3 (6) and (5): no framing fields means no body; Content-Length bodies.
vectors! {
    content_length_body:
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" => [
            post("/echo").host("a").header("Content-Length", b"5").length(5),
            body(b"hello"), End, NeedMore,
        ];
    content_length_body_is_opaque:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n\
          GET / HTTP/1.1\r\n\r\n\r\n" => [
            post("/").host("a").header("Content-Length", b"20").length(20),
            body(b"GET / HTTP/1.1\r\n\r\n\r\n"), End, NeedMore,
        ];
    content_length_zero:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" => [
            post("/").host("a").header("Content-Length", b"0").length(0), End, NeedMore,
        ];
    content_length_leading_zeros:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n1234567" => [
            post("/").host("a").header("Content-Length", b"007").length(7),
            body(b"1234567"), End, NeedMore,
        ];
    // RFC 9110 §8.6: a list of identical values may be taken as one.
    content_length_identical_list:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc" => [
            post("/").host("a").header("Content-Length", b"3, 3").length(3),
            body(b"abc"), End, NeedMore,
        ];
    content_length_identical_fields:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc" => [
            post("/")
                .host("a")
                .header("Content-Length", b"3")
                .header("content-length", b"3")
                .length(3),
            body(b"abc"), End, NeedMore,
        ];
    content_length_body_incomplete:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel" => [
            post("/").host("a").header("Content-Length", b"5").length(5),
            body(b"hel"), NeedMore,
        ];
    get_with_a_body:
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi" => [
            get("/").host("a").header("Content-Length", b"2").length(2),
            body(b"hi"), End, NeedMore,
        ];
}

// RFC 9112 §7.1: chunked, with extensions (§7.1.1, skipped) and trailers (§7.1.2).
vectors! {
    chunked_rfc_example:
        b"POST /upload HTTP/1.1\r\n\
          Host: example.com\r\n\
          Transfer-Encoding: chunked\r\n\
          Trailer: Expires\r\n\
          \r\n\
          4\r\nWiki\r\n\
          5;ext=value;quoted=\"a b\"\r\npedia\r\n\
          E\r\n in\r\n\r\nchunks.\r\n\
          0\r\n\
          Expires: Wed, 21 Oct 2015 07:28:00 GMT\r\n\
          \r\n" => [
            post("/upload")
                .host("example.com")
                .header("Transfer-Encoding", b"chunked")
                .header("Trailer", b"Expires")
                .chunked(),
            body(b"Wikipedia in\r\n\r\nchunks."),
            End, NeedMore,
        ];
    chunked_empty_body:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            End, NeedMore,
        ];
    chunked_hex_case_leading_zeros_and_bws:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n\
          000a\r\n0123456789\r\n\
          B \t;name\r\nabcdefghijk\r\n\
          1;a=b;c=\"d;e\"\r\n!\r\n\
          000;last=1\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"Chunked").chunked(),
            body(b"0123456789abcdefghijk!"), End, NeedMore,
        ];
    chunked_field_name_and_coding_in_upper_case:
        b"POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n2\r\nhi\r\n0\r\n\r\n" => [
            post("/").host("a").header("TRANSFER-ENCODING", b"CHUNKED").chunked(),
            body(b"hi"), End, NeedMore,
        ];
    chunked_transfer_encoding_list_with_empty_elements:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked ,\r\n\r\n\
          2\r\nhi\r\n0\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b", chunked ,").chunked(),
            body(b"hi"), End, NeedMore,
        ];
    chunked_trailers:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Empty:\r\nX-Text: caf\xc3\xa9 \t x\r\n\r\n\
          GET /next HTTP/1.1\r\nHost: a\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"abc"), End,
            get("/next").host("a"), End, NeedMore,
        ];
    chunked_body_data_is_opaque:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\n0\r\n\r\n\r\n0\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"0\r\n\r\n"), End, NeedMore,
        ];
    chunked_incomplete_in_size_line:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"abc"), NeedMore,
        ];
    chunked_incomplete_in_trailers:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            NeedMore,
        ];
}

// HEAD (RFC 9110 §9.3.2): a request like any other; only its response has no body.
vectors! {
    head_request:
        b"HEAD /index.html HTTP/1.1\r\nHost: a\r\n\r\n" => [
            head("/index.html").host("a"), End, NeedMore,
        ];
    head_request_with_content_length:
        b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
          HEAD /2 HTTP/1.0\r\n\r\n" => [
            head("/").host("a").header("Content-Length", b"3").length(3), body(b"abc"), End,
            head("/2").v10(), End, Closed,
        ];
}

// Pipelining (RFC 9112 §9.3.2): requests follow each other in one stream, with and without
// bodies; after a request that asks to close, nothing more is parsed.
vectors! {
    pipelined_gets:
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /2 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /3 HTTP/1.1\r\nHost: a\r\n\r\n" => [
            get("/1").host("a"), End,
            get("/2").host("a"), End,
            get("/3").host("a"), End,
            NeedMore,
        ];
    pipelined_mixed_bodies:
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
          POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n\
          PUT /4 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n\
          GET /5 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /6 HTTP/1.1\r\nHo" => [
            get("/1").host("a"), End,
            post("/2").host("a").header("Content-Length", b"3").length(3), body(b"abc"), End,
            post("/3").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"de"), End,
            req(Method::Put, "PUT", "/4").host("a").header("Content-Length", b"0").length(0), End,
            get("/5").host("a"), End,
            NeedMore,
        ];
    pipelined_stops_after_close:
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n\
          GET /3 HTTP/1.1\r\nHost: a\r\n\r\n" => [
            get("/1").host("a"), End,
            get("/2").host("a").header("Connection", b"close").close(), End,
            Closed,
        ];
    pipelined_stops_after_close_with_body_even_before_garbage:
        b"POST /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok\
          \x16\x03\x01 this is not HTTP\r\n\r\n" => [
            post("/1")
                .host("a")
                .header("Connection", b"close")
                .header("Content-Length", b"2")
                .length(2)
                .close(),
            body(b"ok"), End, Closed,
        ];
    pipelined_error_after_good_requests:
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /2 HTTP/1.1\r\n\r\n\
          GET /3 HTTP/1.1\r\nHost: a\r\n\r\n" => [
            get("/1").host("a"), End, err(MissingHost, 400),
        ];
    http10_keep_alive_pipelined:
        b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\
          GET /2 HTTP/1.0\r\n\r\n\
          GET /3 HTTP/1.0\r\n\r\n" => [
            get("/1").header("Connection", b"keep-alive").v10().keep_alive(true), End,
            get("/2").v10(), End,
            Closed,
        ];
}

/// What is left unconsumed at the end: a partial head is not consumed until it is complete,
/// body bytes are consumed as they are delivered, and after `Closed` nothing is consumed.
#[test]
fn unconsumed_input() {
    let partial = b"GET /2 HTTP/1.1\r\nHost: a\r\n";
    let input = [&b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"[..], partial].concat();
    let outcome = check(
        Limits::default(),
        &input,
        &[get("/1").host("a").into(), End, NeedMore],
    );
    assert_eq!(outcome.pending, partial);

    let input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                  3\r\nabc\r\n10;ext=1\r\n0123";
    let outcome = check(
        Limits::default(),
        input,
        &[
            post("/")
                .host("a")
                .header("Transfer-Encoding", b"chunked")
                .chunked()
                .into(),
            body(b"abc0123"),
            NeedMore,
        ],
    );
    assert_eq!(outcome.pending, b"");

    let rest = b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
    let input = [
        &b"GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"[..],
        rest,
    ]
    .concat();
    let outcome = check(
        Limits::default(),
        &input,
        &[
            get("/1")
                .host("a")
                .header("Connection", b"close")
                .close()
                .into(),
            End,
            Closed,
        ],
    );
    assert_eq!(outcome.pending, rest);
}

/// RFC 9112 §9.3: HTTP/1.1 persists unless `close`; HTTP/1.0 only with `keep-alive` (and no
/// `close`). Connection is a case-insensitive token list, possibly in several fields.
#[test]
fn keep_alive_table() {
    type Row = (Version, &'static [&'static str], bool);
    let rows: &[Row] = &[
        (Version::Http11, &[], true),
        (Version::Http11, &["close"], false),
        (Version::Http11, &["Close"], false),
        (Version::Http11, &["CLOSE"], false),
        (Version::Http11, &["keep-alive"], true),
        (Version::Http11, &["foo, close"], false),
        (Version::Http11, &["close,foo"], false),
        (Version::Http11, &[" , close ,"], false),
        (Version::Http11, &["foo", "close"], false),
        (Version::Http11, &["keep-alive, close"], false),
        (Version::Http11, &["closed"], true),
        (Version::Http11, &["x-close, upgrade"], true),
        (Version::Http11, &["clo se"], true),
        (Version::Http10, &[], false),
        (Version::Http10, &["keep-alive"], true),
        (Version::Http10, &["Keep-Alive"], true),
        (Version::Http10, &["foo,  KEEP-ALIVE"], true),
        (Version::Http10, &["te", "keep-alive"], true),
        (Version::Http10, &["keep-alive", "close"], false),
        (Version::Http10, &["keep-alive, close"], false),
        (Version::Http10, &["keep-alives"], false),
        (Version::Http10, &["upgrade"], false),
    ];
    for &(version, connection, keep_alive) in rows {
        let mut input = format!("GET /1 {version}\r\nHost: a\r\n");
        let mut first = get("/1").host("a");
        if version == Version::Http10 {
            first = first.v10();
        }
        for value in connection {
            input.push_str(&format!("Connection: {value}\r\n"));
            first = first.header("Connection", value.trim().as_bytes());
        }
        input.push_str("\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut expected = vec![first.keep_alive(keep_alive).into(), End];
        if keep_alive {
            expected.extend([get("/2").host("a").into(), End, NeedMore]);
        } else {
            expected.push(Closed);
        }
        check(Limits::default(), input.as_bytes(), &expected);
    }
}

// RFC 9110 §10.1.1: `100-continue` (case-insensitive) on an HTTP/1.1 request with a body; ignored
// without a body and on HTTP/1.0; any other expectation is a 417.
vectors! {
    expect_continue_with_length:
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi" => [
            post("/")
                .host("a")
                .header("Expect", b"100-continue")
                .header("Content-Length", b"2")
                .length(2)
                .expects_continue(),
            body(b"hi"), End, NeedMore,
        ];
    expect_continue_any_case_chunked:
        b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect:  100-Continue \r\n\r\n\
          0\r\n\r\n" => [
            req(Method::Put, "PUT", "/")
                .host("a")
                .header("Transfer-Encoding", b"chunked")
                .header("Expect", b"100-Continue")
                .chunked()
                .expects_continue(),
            End, NeedMore,
        ];
    expect_continue_twice:
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nExpect: 100-continue\r\n\
          Content-Length: 1\r\n\r\nx" => [
            post("/")
                .host("a")
                .header("Expect", b"100-continue")
                .header("Expect", b"100-continue")
                .header("Content-Length", b"1")
                .length(1)
                .expects_continue(),
            body(b"x"), End, NeedMore,
        ];
    expect_continue_without_body:
        b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n" => [
            get("/").host("a").header("Expect", b"100-continue"), End, NeedMore,
        ];
    expect_continue_with_empty_body:
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n" => [
            post("/")
                .host("a")
                .header("Expect", b"100-continue")
                .header("Content-Length", b"0")
                .length(0),
            End, NeedMore,
        ];
    expect_continue_ignored_on_http10:
        b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi" => [
            post("/")
                .header("Expect", b"100-continue")
                .header("Content-Length", b"2")
                .length(2)
                .v10(),
            body(b"hi"), End, Closed,
        ];
    expect_other_ignored_on_http10:
        b"GET / HTTP/1.0\r\nExpect: something-else\r\n\r\n" => [
            get("/").header("Expect", b"something-else").v10(), End, Closed,
        ];
    expect_other_is_417:
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\nhi" => [
            err(ExpectationFailed, 417),
        ];
    expect_other_without_body_is_417:
        b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n" => [err(ExpectationFailed, 417)];
    expect_continue_and_other_is_417:
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x\r\nContent-Length: 1\r\n\r\n" => [
            err(ExpectationFailed, 417),
        ];
}

// RFC 9110 §2.5, RFC 9112 §2.3: `HTTP/1.x` with a later minor is served as 1.1; another major
// is a 505; anything not `HTTP/DIGIT.DIGIT` (HTTP-name is case-sensitive) is a 400.
vectors! {
    http10:
        b"GET / HTTP/1.0\r\n\r\n" => [get("/").v10(), End, Closed];
    http12_served_as_http11:
        b"GET /v HTTP/1.2\r\nHost: a\r\n\r\nGET /w HTTP/1.9\r\nHost: b\r\n\r\n" => [
            get("/v").host("a"), End, get("/w").host("b"), End, NeedMore,
        ];
    http12_needs_host:
        b"GET / HTTP/1.2\r\n\r\n" => [err(MissingHost, 400)];
    http12_with_body_and_close:
        b"POST /p?q HTTP/1.2\r\nHost: a\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx" => [
            post("/p?q")
                .path("/p")
                .query("q")
                .host("a")
                .header("Content-Length", b"1")
                .header("Connection", b"close")
                .length(1)
                .close(),
            body(b"x"), End, Closed,
        ];
    http20_is_505:
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n" => [err(VersionNotSupported, 505)];
    http30_is_505:
        b"GET / HTTP/3.0\r\nHost: a\r\n\r\n" => [err(VersionNotSupported, 505)];
    http09_is_505:
        b"GET / HTTP/0.9\r\n\r\n" => [err(VersionNotSupported, 505)];
    http2_prior_knowledge_preface_is_505:
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" => [err(VersionNotSupported, 505)];
    http1x_is_400:
        b"GET / HTTP/1.x\r\nHost: a\r\n\r\n" => [err(BadVersion, 400)];
    http1_without_minor_is_400:
        b"GET / HTTP/1\r\nHost: a\r\n\r\n" => [err(BadVersion, 400)];
    // `HTTP/1.1` followed by a `0` where CRLF belongs: a malformed request line.
    http110_is_400:
        b"GET / HTTP/1.10\r\nHost: a\r\n\r\n" => [err(BadRequestLine, 400)];
    http11_major_two_digits_is_400:
        b"GET / HTTP/11.1\r\nHost: a\r\n\r\n" => [err(BadVersion, 400)];
    lower_case_http_name_is_400:
        b"GET / http/1.1\r\nHost: a\r\n\r\n" => [err(BadVersion, 400)];
}

// Malformed request lines (RFC 9112 §3): 400, answered as soon as the line is complete.
vectors! {
    request_line_double_space:
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadRequestLine, 400)];
    // httparse reads version `b`, but the line ends in a good version: the target is bad.
    request_line_space_in_target:
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadRequestLine, 400)];
    request_line_control_byte_in_target:
        b"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadRequestLine, 400)];
    // The router's check that parameters are UTF-8 once percent-decoded relies on this: it
    // looks only at those with a `%`.
    request_line_target_not_utf8:
        b"GET /caf\xe9?q=\xff HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadRequestLine, 400)];
    request_line_query_not_utf8:
        b"GET /a?q=\xc3 HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadRequestLine, 400)];
    request_line_bad_method_byte:
        b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadRequestLine, 400)];
    request_line_no_method:
        b"/ HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadRequestLine, 400)];
    request_line_leading_space:
        b" GET / HTTP/1.1\r\nHost: a\r\n\r\n" => [err(BadRequestLine, 400)];
    request_line_only_method:
        b"GET\r\nHost: a\r\n\r\n" => [err(BadRequestLine, 400)];
    // A TLS ClientHello on the plain-text port is refused at its first byte.
    tls_client_hello:
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" => [err(BadRequestLine, 400)];
    request_line_garbage_after_empty_lines:
        b"\r\n\r\n\x00GET / HTTP/1.1\r\n" => [err(BadRequestLine, 400)];
    request_line_bare_cr:
        b"GET / HTTP/1.1\rHost: a\r\n\r\n" => [err(BadRequestLine, 400)];
    // Answered before the rest of the head, which never comes.
    request_line_malformed_without_headers:
        b"GET  / HTTP/1.1\r\n" => [err(BadRequestLine, 400)];
    request_line_malformed_without_headers_after_empty_lines:
        b"\r\n\r\nGET\r\n" => [err(BadRequestLine, 400)];
}

#[test]
fn request_line_errors_come_early() {
    // A byte that cannot start a method is refused on its own.
    for first in [b' ', b'\t', 0x16, 0x00, b'/', b'(', 0x80] {
        let mut conn = ServerConn::new(Limits::default());
        assert_eq!(
            conn.recv(&[first]),
            Err(BadRequestLine),
            "first byte {first:#x}"
        );
    }
    // A malformed request line is refused when its line ends, without waiting for the head.
    let mut conn = ServerConn::new(Limits::default());
    assert_eq!(conn.recv(b"G(T / HTTP/1.1"), Ok((0, Event::NeedMore)));
    assert_eq!(conn.recv(b"G(T / HTTP/1.1\r\n"), Err(BadRequestLine));
}

// Malformed header sections (RFC 9112 §5.1, §5.2, §2.2): 400.
vectors! {
    obs_fold_with_space:
        b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  c\r\n\r\n" => [err(BadHeader, 400)];
    obs_fold_with_tab:
        b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n" => [err(BadHeader, 400)];
    whitespace_before_colon:
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n" => [err(BadHeader, 400)];
    tab_before_colon:
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 1\r\n\r\nx" => [err(BadHeader, 400)];
    whitespace_line_before_first_header:
        b"GET / HTTP/1.1\r\n Host: a\r\n\r\n" => [err(BadHeader, 400)];
    header_without_colon:
        b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n" => [err(BadHeader, 400)];
    header_empty_name:
        b"GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n" => [err(BadHeader, 400)];
    header_name_not_a_token:
        b"GET / HTTP/1.1\r\nHost: a\r\nX(y): v\r\n\r\n" => [err(BadHeader, 400)];
    header_value_nul:
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n" => [err(BadHeader, 400)];
    header_value_bare_cr:
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n" => [err(BadHeader, 400)];
}

// RFC 9112 §3.2: Host is required on HTTP/1.1, once, with a valid `uri-host [":" port]`.
vectors! {
    missing_host:
        b"GET / HTTP/1.1\r\nX: a\r\n\r\n" => [err(MissingHost, 400)];
    http10_without_host:
        b"GET / HTTP/1.0\r\nX: a\r\n\r\n" => [get("/").header("X", b"a").v10(), End, Closed];
    two_hosts:
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" => [err(DuplicateHost, 400)];
    two_identical_hosts_any_case:
        b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n" => [err(DuplicateHost, 400)];
    two_hosts_on_http10:
        b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n" => [err(DuplicateHost, 400)];
    host_with_space:
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n" => [err(BadHost, 400)];
    host_with_userinfo:
        b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n" => [err(BadHost, 400)];
    host_with_bad_port:
        b"GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n" => [err(BadHost, 400)];
    host_with_two_ports:
        b"GET / HTTP/1.1\r\nHost: a:80:90\r\n\r\n" => [err(BadHost, 400)];
    host_with_path:
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n" => [err(BadHost, 400)];
    host_with_unclosed_ip_literal:
        b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n" => [err(BadHost, 400)];
    host_bad_on_http10:
        b"GET / HTTP/1.0\r\nHost: a,b c\r\n\r\n" => [err(BadHost, 400)];
}

// RFC 9112 §6.1, §6.3 (3)-(5): framing that could be read two ways is refused.
vectors! {
    content_length_and_transfer_encoding:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\n" => [err(LengthWithTransferEncoding, 400)];
    transfer_encoding_and_content_length:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n\
          0\r\n\r\n" => [err(LengthWithTransferEncoding, 400)];
    differing_content_length_fields:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" => [
            err(BadContentLength, 400),
        ];
    differing_content_length_list:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!" => [
            err(BadContentLength, 400),
        ];
    transfer_encoding_not_final_chunked:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" => [
            err(BadTransferEncoding, 400),
        ];
    transfer_encoding_without_chunked:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n" => [
            err(BadTransferEncoding, 400),
        ];
    transfer_encoding_identity:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n" => [
            err(BadTransferEncoding, 400),
        ];
    transfer_encoding_chunked_twice:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" => [
            err(BadTransferEncoding, 400),
        ];
    transfer_encoding_chunked_twice_in_two_fields:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" => [err(BadTransferEncoding, 400)];
    transfer_encoding_chunked_with_parameter:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n" => [
            err(BadTransferEncoding, 400),
        ];
    transfer_encoding_on_http10:
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" => [
            err(BadTransferEncoding, 400),
        ];
    transfer_encoding_and_content_length_on_http10:
        b"POST / HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" => [
            err(BadTransferEncoding, 400),
        ];
    transfer_encoding_gzip_then_chunked_is_501:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" => [
            err(UnsupportedTransferCoding, 501),
        ];
    transfer_encoding_gzip_then_chunked_in_two_fields_is_501:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" => [err(UnsupportedTransferCoding, 501)];
}

/// RFC 9110 §8.6: `Content-Length = 1*DIGIT`; RFC 9112 §6.3 (5): anything else is a 400.
#[test]
fn content_length_not_digits() {
    for value in [
        "+5",
        "-1",
        "0x5",
        "4 2",
        "5.0",
        "5;",
        "five",
        "",
        "5,",
        "18446744073709551616",
        "99999999999999999999999999",
    ] {
        let input = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\n");
        check(
            Limits::default(),
            input.as_bytes(),
            &[err(BadContentLength, 400)],
        );
    }
}

// Chunked framing errors (RFC 9112 §7.1): 400, after the data delivered before them.
vectors! {
    chunk_size_not_hex:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    chunk_size_empty:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    chunk_size_signed:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    chunk_size_hex_prefix:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    chunk_size_leading_space:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    chunk_size_two_numbers:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 5\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    chunk_size_junk_after:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    chunk_size_overflow:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          10000000000000000\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    chunk_size_bare_lf:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    chunk_extension_bare_lf:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    chunk_extension_control_byte:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x01\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    chunk_size_after_data:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          2\r\nok\r\nG\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"ok"), err(BadChunkSize, 400),
        ];
    chunk_data_then_junk:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"hello"), err(BadChunkData, 400),
        ];
    chunk_data_then_bare_lf:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\n0\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"hello"), err(BadChunkData, 400),
        ];
    chunk_data_then_cr_cr:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"hello"), err(BadChunkData, 400),
        ];
    chunk_data_longer_than_size:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nhello\r\n0\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"hel"), err(BadChunkData, 400),
        ];
    trailer_obs_fold:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\nA: b\r\n c\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadTrailer, 400),
        ];
    trailer_without_colon:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nAb\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadTrailer, 400),
        ];
    trailer_whitespace_before_colon:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\nA : b\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadTrailer, 400),
        ];
    trailer_bare_lf:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadTrailer, 400),
        ];
    trailer_nul_in_value:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\nA: b\x00\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadTrailer, 400),
        ];
    trailer_section_bare_lf_end:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadTrailer, 400),
        ];
}

// Request line limit: 414 (RFC 9112 §3: "A server that receives a request-target longer than
// any URI it wishes to parse MUST respond with a 414"). The request-line excludes its CRLF.
vectors! {
    request_line_over_limit(limits(|l| l.max_request_line = 32)):
        b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n" => [
            err(RequestLineTooLong, 414),
        ];
    // Refused before its end arrives.
    request_line_over_limit_unterminated(limits(|l| l.max_request_line = 32)):
        b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" => [err(RequestLineTooLong, 414)];
    // 32 bytes exactly: `GET /` + 18 + ` HTTP/1.1`.
    request_line_at_limit(limits(|l| l.max_request_line = 32)):
        b"GET /aaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n" => [
            get("/aaaaaaaaaaaaaaaaaa").host("a"), End, NeedMore,
        ];
    request_line_one_over_limit(limits(|l| l.max_request_line = 32)):
        b"GET /aaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n" => [
            err(RequestLineTooLong, 414),
        ];
    // The same request line, ended by a bare LF (RFC 9112 §2.2), is the same size.
    request_line_at_limit_bare_lf(limits(|l| l.max_request_line = 32)):
        b"GET /aaaaaaaaaaaaaaaaaa HTTP/1.1\nHost: a\n\n" => [
            get("/aaaaaaaaaaaaaaaaaa").host("a"), End, NeedMore,
        ];
    // A CR at the limit may start the CRLF: wait for the next byte.
    request_line_at_limit_then_cr(limits(|l| l.max_request_line = 32)):
        b"GET /aaaaaaaaaaaaaaaaaa HTTP/1.1\r" => [NeedMore];
    request_line_at_limit_then_bare_cr(limits(|l| l.max_request_line = 32)):
        b"GET /aaaaaaaaaaaaaaaaaa HTTP/1.1\rHost: a\r\n\r\n" => [err(RequestLineTooLong, 414)];
    // Empty lines before the request line are not part of it.
    request_line_under_limit_after_empty_lines(limits(|l| l.max_request_line = 32)):
        b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\
          GET /aaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n" => [
            get("/aaaaaaaaaaaaaaaaa").host("a"), End, NeedMore,
        ];
}

// Head limits: 431 (RFC 6585 §5) over `max_head` bytes or `max_headers` fields.
vectors! {
    // 64 bytes exactly, counting the empty line.
    head_at_limit(limits(|l| { l.max_head = 64; l.max_request_line = 32; })):
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Fill: aaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" => [
            get("/").host("a").header("X-Fill", b"aaaaaaaaaaaaaaaaaaaaaaaaaaa"), End, NeedMore,
        ];
    head_one_over_limit(limits(|l| { l.max_head = 64; l.max_request_line = 32; })):
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Fill: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" => [
            err(HeadTooLarge, 431),
        ];
    head_over_limit_unterminated(limits(|l| { l.max_head = 64; l.max_request_line = 32; })):
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Fill: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" => [
            err(HeadTooLarge, 431),
        ];
    // Empty lines are buffered too, so they count.
    only_empty_lines_over_head_limit(limits(|l| { l.max_head = 64; l.max_request_line = 32; })):
        b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\
          \r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n" => [
            err(HeadTooLarge, 431),
        ];
    head_limit_is_per_request(limits(|l| { l.max_head = 64; l.max_request_line = 32; })):
        b"GET /1 HTTP/1.1\r\nHost: a\r\nX-Fill: aaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n\
          GET /2 HTTP/1.1\r\nHost: a\r\nX-Fill: aaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" => [
            get("/1").host("a").header("X-Fill", b"aaaaaaaaaaaaaaaaaaaaaaaaaa"), End,
            get("/2").host("a").header("X-Fill", b"aaaaaaaaaaaaaaaaaaaaaaaaaa"), End,
            NeedMore,
        ];
    headers_at_limit(limits(|l| l.max_headers = 3)):
        b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n" => [
            get("/").host("a").header("A", b"1").header("B", b"2"), End, NeedMore,
        ];
    too_many_headers(limits(|l| l.max_headers = 3)):
        b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n" => [
            err(TooManyHeaders, 431),
        ];
}

// Body limit: 413 (RFC 9110 §15.5.14), from a declared length before any body byte arrives,
// and from chunk sizes as they come.
vectors! {
    content_length_at_limit(limits(|l| l.max_body = 4)):
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd" => [
            post("/").host("a").header("Content-Length", b"4").length(4), body(b"abcd"),
            End, NeedMore,
        ];
    content_length_over_limit(limits(|l| l.max_body = 4)):
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n" => [
            err(BodyTooLarge, 413),
        ];
    content_length_max_u64(limits(|l| l.max_body = 4)):
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n" => [
            err(BodyTooLarge, 413),
        ];
    chunked_at_limit(limits(|l| l.max_body = 4)):
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"abcd"), End, NeedMore,
        ];
    chunked_over_limit(limits(|l| l.max_body = 4)):
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n2\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"abc"), err(BodyTooLarge, 413),
        ];
    chunked_huge_size(limits(|l| l.max_body = 4)):
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          ffffffffffffffff\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BodyTooLarge, 413),
        ];
    body_limit_is_per_request(limits(|l| l.max_body = 4)):
        b"POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          4\r\nabcd\r\n0\r\n\r\n\
          POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          4\r\nefgh\r\n0\r\n\r\n" => [
            post("/1").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"abcd"), End,
            post("/2").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"efgh"), End, NeedMore,
        ];
}

// Chunk-size line (400) and trailer section (431) limits.
vectors! {
    chunk_line_at_limit(limits(|l| l.max_chunk_line = 8)):
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          1;abcd\r\nx\r\n0\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            body(b"x"), End, NeedMore,
        ];
    chunk_line_over_limit(limits(|l| l.max_chunk_line = 8)):
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          1;abcdefgh\r\nx\r\n0\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    chunk_line_of_zeros_over_limit(limits(|l| l.max_chunk_line = 8)):
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          000000000001\r\nx\r\n0\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(BadChunkSize, 400),
        ];
    trailers_at_limits(limits(|l| { l.max_trailer = 12; l.max_trailers = 2; })):
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\nA:1\r\nB:2\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            End, NeedMore,
        ];
    too_many_trailers(limits(|l| { l.max_trailer = 100; l.max_trailers = 2; })):
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\nA:1\r\nB:2\r\nC:3\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(TrailerTooLarge, 431),
        ];
    trailer_section_over_limit(limits(|l| { l.max_trailer = 12; l.max_trailers = 2; })):
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\nA:123456789\r\n\r\n" => [
            post("/").host("a").header("Transfer-Encoding", b"chunked").chunked(),
            err(TrailerTooLarge, 431),
        ];
}

/// Leading empty lines count toward what the parser buffers, but they are not part of the
/// request line: a short request line after them must never be answered with 414, and the
/// answer must not depend on how the bytes arrived.
#[test]
fn empty_lines_do_not_count_as_request_line() {
    let limits = limits(|l| {
        l.max_head = 64;
        l.max_request_line = 32;
    });
    // 30 empty lines (60 bytes), then a 24-byte request line and a small head.
    let mut input = b"\r\n".repeat(30);
    input.extend_from_slice(b"GET /aaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n");
    let whole = run(limits, &input, &[]);
    let bytes = run(limits, &input, &(1..input.len()).collect::<Vec<_>>());
    for (how, outcome) in [("whole", &whole), ("byte by byte", &bytes)] {
        assert_ne!(
            outcome.events.last(),
            Some(&Ev::Error(RequestLineTooLong)),
            "fed {how}: a 24-byte request line is not over a 32-byte limit ({whole:?} vs {bytes:?})"
        );
    }
    assert_eq!(whole, bytes, "whole vs byte by byte");
}

// End of stream (`recv_eof`): clean between requests, an error in the middle of one.
#[test]
fn eof_between_requests_is_clean() {
    let cases: &[&[u8]] = &[
        b"",
        b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        // After Closed, whatever follows is never parsed.
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHo",
    ];
    for input in cases {
        let outcome = run(Limits::default(), input, &[]);
        assert_eq!(outcome.eof, Ok(()), "b\"{}\"", input.escape_ascii());
    }
}

#[test]
fn eof_inside_a_request_is_incomplete() {
    let cases: &[&[u8]] = &[
        b"G",
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r",
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\no",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n",
    ];
    for input in cases {
        let outcome = run(Limits::default(), input, &[]);
        assert_eq!(
            outcome.eof,
            Err(IncompleteMessage),
            "b\"{}\"",
            input.escape_ascii()
        );
        assert_eq!(IncompleteMessage.status().as_u16(), 400);
    }
}

#[test]
fn eof_is_final() {
    let mut conn = ServerConn::new(Limits::default());
    assert_eq!(conn.recv_eof(b""), Ok(()));
    assert_eq!(
        conn.recv(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Ok((0, Event::Closed))
    );

    let mut conn = ServerConn::new(Limits::default());
    assert_eq!(conn.recv(b"GET / HT"), Ok((0, Event::NeedMore)));
    assert_eq!(conn.recv_eof(b"GET / HT"), Err(IncompleteMessage));
    assert_eq!(
        conn.recv(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Err(IncompleteMessage)
    );
    assert_eq!(conn.recv_eof(b""), Err(IncompleteMessage));
}

// Errors are final: every later call returns the same error (the driver checks this after
// every error above; here it is spelled out once).
#[test]
fn errors_are_final() {
    let mut conn = ServerConn::new(Limits::default());
    let bad = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    assert_eq!(conn.recv(bad), Err(DuplicateHost));
    assert_eq!(conn.recv(bad), Err(DuplicateHost));
    assert_eq!(conn.recv(b""), Err(DuplicateHost));
    assert_eq!(
        conn.recv(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Err(DuplicateHost)
    );
    conn.close();
    assert_eq!(conn.recv(b""), Err(DuplicateHost));
    assert_eq!(conn.recv_eof(b""), Err(DuplicateHost));

    // An error in a body ends the connection the same way.
    let mut conn = ServerConn::new(Limits::default());
    let input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n";
    let (used, event) = conn.recv(input).expect("a valid head");
    assert_eq!(event, Event::Head);
    assert_eq!(conn.recv(&input[used..]), Err(BadChunkSize));
    assert_eq!(conn.recv(b"0\r\n\r\n"), Err(BadChunkSize));
}

#[test]
fn close_stops_reading() {
    let mut conn = ServerConn::new(Limits::default());
    let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    conn.close();
    assert_eq!(conn.recv(input), Ok((0, Event::Closed)));
    assert_eq!(conn.recv_eof(input), Ok(()));
}

// A parsed head outlives its input only as an owned copy.
#[test]
fn owned_head_outlives_input() {
    let owned = {
        let mut conn = ServerConn::new(Limits::default());
        let head = b"\r\nPOST http://example.org/p?x=1 HTTP/1.1\r\nHost: other\r\n\
                     X-A: 1\r\nContent-Length: 2\r\n\r\n";
        let input = [&head[..], b"hiGET / HTTP/1.1\r\n"].concat();
        assert_eq!(conn.recv(&input), Ok((head.len(), Event::Head)));
        let owned = conn.request(&input).to_owned_head();
        drop(input);
        drop(conn);
        owned
    };
    // Send + 'static: it may move to another thread.
    let view = std::thread::spawn(move || common::HeadView::read(&owned.request()))
        .join()
        .expect("the reading thread does not panic");
    let expected = post("http://example.org/p?x=1")
        .path("/p")
        .query("x=1")
        .header("Host", b"other")
        .authority("example.org")
        .header("X-A", b"1")
        .header("Content-Length", b"2")
        .length(2);
    assert_eq!(view, expected);
}

/// `Request::new` documents that a head read against the wrong bytes gives empty values and
/// never panics.
#[test]
fn request_against_other_bytes_does_not_panic() {
    let mut conn = ServerConn::new(Limits::default());
    let input = b"GET /path?q HTTP/1.1\r\nHost: example.com\r\nX: y\r\n\r\n";
    assert_eq!(conn.recv(input), Ok((input.len(), Event::Head)));
    for other in [&b""[..], b"GET", &input[..20]] {
        let request = conn.request(other);
        let _ = (request.method_str(), request.target(), request.path());
        let _ = (request.query(), request.authority(), request.header("x"));
        let _ = request
            .headers()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>();
        let _ = request.to_owned_head().request().path().len();
    }
    assert_eq!(conn.request(b"").path(), "");
}
