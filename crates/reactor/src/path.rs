//! Path parameters as relative paths that cannot leave the directory they are joined to.
//!
//! A catch-all (`/static/{*path}`) hands back what the client sent, percent-decoded: `%2e%2e`
//! and `%2F` make `..` and `/`, so `/static/%2e%2e/%2e%2e/etc/passwd` gives
//! `../../etc/passwd`, and `/static//etc/passwd` gives `/etc/passwd`, which
//! [`Path::join`] puts in place of the directory. What is checked here is the text alone, as a
//! POSIX path (the server runs on Linux): the file system is never looked at.

use std::{
    borrow::Cow,
    fmt,
    path::{Path, PathBuf},
};

use crate::{Reply, Request, Response, StatusCode};

/// Why a path parameter cannot be taken as a relative path inside a directory.
///
/// Each is a 400, but for [`Missing`](Self::Missing), a mistake in the program (500). It
/// converts into that [`Response`] (or [`Reply`]), whose one-line text says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathRejection {
    /// The route has no parameter of that name.
    Missing,
    /// A `..` segment, which could climb out of the directory.
    ParentDir,
    /// A leading `/`: an absolute path, which [`Path::join`] puts in place of the directory.
    Absolute,
    /// A NUL byte, which no file name can hold (the C library would end the name there).
    Nul,
    /// A backslash: a separator on Windows, and in a path sent over HTTP a sign of `..\`.
    Backslash,
    /// Nothing but `.` and empty segments: no file.
    Empty,
}

impl PathRejection {
    /// The status it answers with: 500 for [`Missing`](Self::Missing), else 400.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Missing => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for PathRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "the route has no such path parameter",
            Self::ParentDir => "the path has a `..` segment",
            Self::Absolute => "the path is absolute",
            Self::Nul => "the path has a NUL byte",
            Self::Backslash => "the path has a backslash",
            Self::Empty => "the path names no file",
        })
    }
}

impl std::error::Error for PathRejection {}

impl From<PathRejection> for Response {
    fn from(rejection: PathRejection) -> Self {
        let text = match rejection {
            PathRejection::Missing => format!("internal server error: {rejection}\n"),
            _ => format!("bad request: {rejection}\n"),
        };
        Self::text(rejection.status(), text)
    }
}

impl From<PathRejection> for Reply {
    fn from(rejection: PathRejection) -> Self {
        Self::Ready(rejection.into())
    }
}

/// Takes `decoded`, a path already percent-decoded (a catch-all parameter, say), as a
/// relative path that stays inside whatever directory it is joined to: `.` segments and empty
/// ones (`a//b`, a trailing `/`) are dropped, and anything that could lead out of the
/// directory is refused. Borrowed when nothing is dropped.
///
/// `..` is refused wherever it stands, even where it would stay inside (`a/../b`): a client
/// has no need of it, and a path with it is more often an attack than a mistake. `decoded` is
/// not decoded again, so `%2e%2e` in it is a file of that name.
///
/// The text alone is checked, as a POSIX path: a symbolic link inside the directory can
/// still lead out of it.
///
/// # Errors
///
/// A [`PathRejection`] (400): a `..` segment, a leading `/`, a NUL byte, a backslash, or
/// nothing left once `.` and empty segments are dropped.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// use rtserve_reactor::{PathRejection, safe_relative_path};
///
/// assert_eq!(safe_relative_path("css/site.css").unwrap(), Path::new("css/site.css"));
/// assert_eq!(safe_relative_path("./css//site.css/").unwrap(), Path::new("css/site.css"));
/// assert_eq!(safe_relative_path("../etc/passwd"), Err(PathRejection::ParentDir));
/// assert_eq!(safe_relative_path("/etc/passwd"), Err(PathRejection::Absolute));
/// assert_eq!(safe_relative_path("a\0b"), Err(PathRejection::Nul));
/// ```
pub fn safe_relative_path<'s>(
    decoded: impl Into<Cow<'s, str>>,
) -> Result<Cow<'s, Path>, PathRejection> {
    let decoded = decoded.into();
    let text: &str = &decoded;
    if text.contains('\0') {
        return Err(PathRejection::Nul);
    }
    if text.contains('\\') {
        return Err(PathRejection::Backslash);
    }
    if text.starts_with('/') {
        return Err(PathRejection::Absolute);
    }
    let mut kept = 0;
    let mut dropped = false;
    for segment in text.split('/') {
        match segment {
            "" | "." => dropped = true,
            ".." => return Err(PathRejection::ParentDir),
            _ => kept += 1,
        }
    }
    if kept == 0 {
        return Err(PathRejection::Empty);
    }
    if dropped {
        let kept = text.split('/').filter(|s| !matches!(*s, "" | "."));
        return Ok(Cow::Owned(kept.collect()));
    }
    Ok(match decoded {
        Cow::Borrowed(text) => Cow::Borrowed(Path::new(text)),
        Cow::Owned(text) => Cow::Owned(PathBuf::from(text)),
    })
}

impl<'a> Request<'a> {
    /// Path parameter `name` (a catch-all, typically), percent-decoded as
    /// [`param`](Self::param) does, as a relative path that stays inside the directory it is
    /// joined to: see [`safe_relative_path`]. Borrowed from the request when nothing needs
    /// decoding or dropping.
    ///
    /// # Errors
    ///
    /// A [`PathRejection`], ready to answer with: 400 for a path that could lead out of the
    /// directory (`..`, a leading `/`, a NUL byte, a backslash, all once decoded) or names no
    /// file; 500 if the route has no parameter `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::Path;
    /// use rtserve_reactor::{Harness, Reply, Request, Response, Router, StatusCode};
    ///
    /// let router = Router::new().get("/static/{*path}", |req: &Request<'_>| -> Reply {
    ///     let path = match req.param_path("path") {
    ///         Ok(path) => path,
    ///         Err(rejection) => return rejection.into(),
    ///     };
    ///     let file = Path::new("/srv/static").join(path);
    ///     Response::text(StatusCode::OK, file.display().to_string()).into()
    /// });
    /// let mut harness = Harness::new();
    /// let mut get = |target: &str| {
    ///     let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
    ///     let Reply::Ready(response) = harness.call(&router, raw.as_bytes()) else { panic!() };
    ///     response
    /// };
    /// assert_eq!(get("/static/css/./site.css").body().as_bytes(), b"/srv/static/css/site.css");
    /// // `param` would give `../../etc/passwd` here.
    /// let climbing = get("/static/%2e%2e/%2E%2E/etc/passwd");
    /// assert_eq!(climbing.status(), StatusCode::BAD_REQUEST);
    /// assert_eq!(climbing.body().as_bytes(), b"bad request: the path has a `..` segment\n");
    /// ```
    pub fn param_path(&self, name: &str) -> Result<Cow<'a, Path>, PathRejection> {
        safe_relative_path(self.param(name).ok_or(PathRejection::Missing)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Harness, Router};

    use PathRejection::*;

    #[test]
    fn relative_paths_are_kept_and_everything_that_could_leave_is_refused() {
        for (decoded, expected) in [
            // Kept as they are.
            ("site.css", Ok("site.css")),
            ("css/site.css", Ok("css/site.css")),
            ("...", Ok("...")),
            ("..a/b..", Ok("..a/b..")),
            ("%2e%2e", Ok("%2e%2e")),
            ("caf\u{e9}", Ok("caf\u{e9}")),
            // `.` and empty segments dropped.
            ("a/./b", Ok("a/b")),
            ("./a", Ok("a")),
            ("a//b/", Ok("a/b")),
            // Climbing, wherever it stands.
            ("..", Err(ParentDir)),
            ("../etc/passwd", Err(ParentDir)),
            ("a/../../b", Err(ParentDir)),
            ("a/../b", Err(ParentDir)),
            ("a/..", Err(ParentDir)),
            // Absolute, NUL, backslash.
            ("/etc", Err(Absolute)),
            ("//etc", Err(Absolute)),
            ("a\0b", Err(Nul)),
            ("a\0/../b", Err(Nul)),
            ("..\\..\\windows", Err(Backslash)),
            ("a\\b", Err(Backslash)),
            // Nothing left.
            ("", Err(Empty)),
            (".", Err(Empty)),
            ("./", Err(Empty)),
            (".//.", Err(Empty)),
        ] {
            let path = safe_relative_path(decoded);
            let path = path.as_deref().map_err(|e| *e);
            assert_eq!(path, expected.map(Path::new), "{decoded:?}");
        }
    }

    #[test]
    fn paths_are_borrowed_unless_something_is_dropped() {
        assert!(matches!(safe_relative_path("a/b"), Ok(Cow::Borrowed(_))));
        assert!(matches!(safe_relative_path("a/./b"), Ok(Cow::Owned(_))));
        let owned = safe_relative_path(String::from("a/b"));
        assert!(matches!(owned, Ok(Cow::Owned(_))));
    }

    fn serve(target: &str) -> Response {
        let router = Router::new().get("/static/{*path}", |req: &Request<'_>| -> Reply {
            match req.param_path("path") {
                Ok(path) => Response::text(StatusCode::OK, path.display().to_string()).into(),
                Err(rejection) => rejection.into(),
            }
        });
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        match Harness::new().call(&router, raw.as_bytes()) {
            Reply::Ready(response) => response,
            other => panic!("not inline: {other:?}"),
        }
    }

    #[test]
    fn catch_alls_are_checked_once_decoded() {
        for (target, expected) in [
            ("/static/css/site.css", Ok("css/site.css")),
            ("/static/a/./b", Ok("a/b")),
            ("/static/a%2fb%2F.%2Fc", Ok("a/b/c")),
            ("/static/caf%C3%A9.txt", Ok("caf\u{e9}.txt")),
            ("/static/%2e%2e/etc/passwd", Err(ParentDir)),
            ("/static/..%2f..", Err(ParentDir)),
            ("/static/.%2E/x", Err(ParentDir)),
            ("/static/a/../../b", Err(ParentDir)),
            ("/static//etc", Err(Absolute)),
            ("/static/%2Fetc", Err(Absolute)),
            ("/static/a%00b", Err(Nul)),
            ("/static/..%5c..%5cboot.ini", Err(Backslash)),
            ("/static/.", Err(Empty)),
        ] {
            let response = serve(target);
            let text = String::from_utf8(response.body().as_bytes().to_vec()).unwrap();
            match expected {
                Ok(path) => assert_eq!((response.status(), text.as_str()), (StatusCode::OK, path)),
                Err(rejection) => assert_eq!(
                    (response.status(), text),
                    (
                        StatusCode::BAD_REQUEST,
                        format!("bad request: {rejection}\n")
                    ),
                    "{target}"
                ),
            }
        }
    }

    #[test]
    fn a_parameter_the_route_does_not_have_is_a_mistake_in_the_program() {
        let handler = |req: &Request<'_>| -> Reply {
            match req.param_path("path") {
                Ok(_) => Response::new(StatusCode::OK).into(),
                Err(rejection) => rejection.into(),
            }
        };
        let raw = b"GET /static/a HTTP/1.1\r\nHost: x\r\n\r\n";
        let Reply::Ready(response) = Harness::new().call(&handler, raw) else {
            panic!("answered inline")
        };
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
