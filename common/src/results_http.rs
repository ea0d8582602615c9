//! `GET /results/<job_id>-<owner>/<host>/<path>`, served from a results directory: by
//! the scheduler from the results host's directory, and by each drone from its own
//! (Autotest's retrieve_logs). Files come back as they are; directories as a
//! plain-text listing, one name a line, directories ending in `/`, with `\`, newlines
//! and other control characters in names escaped (`\\`, `\n`, `\xNN`) so a name is
//! always one line. Nothing outside the directory is ever read: `..`, `.`, absolute
//! and empty components (`a//b`) are refused (400), and a path whose real location
//! (symlinks resolved) is outside the directory is not found (404). Only regular files
//! and directories are served: a device, FIFO or socket is refused (403) without
//! being opened for reading, and nothing is ever opened in a way that could block.
//! A file request may carry one `Range: bytes=START-[END]` (how the scheduler follows
//! a running job's log): the answer is 206 with those bytes, or 416 past the end.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::{Component, PathBuf};

/// Checks a request path: a plain relative path (no `..`, `.`, absolute or empty
/// components, NUL or backslash), returned as one; 400 and why otherwise.
pub fn check(requested: &str) -> Result<PathBuf, (StatusCode, String)> {
    let bad = |why: &str| (StatusCode::BAD_REQUEST, format!("bad results path: {why}"));
    if requested.contains('\0') || requested.contains('\\') {
        return Err(bad("forbidden character"));
    }
    let mut relative = PathBuf::new();
    let last = requested.split('/').count().checked_sub(1);
    for (index, part) in requested.split('/').enumerate() {
        match part {
            "" if relative.as_os_str().is_empty() => return Err(bad("empty or absolute path")),
            "" if last == Some(index) => continue, // a trailing slash
            "" => return Err(bad("empty path component ('//')")),
            "." | ".." => return Err(bad("'.' and '..' are not allowed")),
            _ => relative.push(part),
        }
    }
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(bad("not a plain relative path"));
    }
    Ok(relative)
}

/// Percent-encodes a checked relative path for a URL.
pub fn encode(relative: &std::path::Path) -> String {
    relative
        .iter()
        .map(|part| crate::percent_encode(part.as_encoded_bytes()))
        .collect::<Vec<_>>()
        .join("/")
}

/// Resolves a request path inside `root`, or says why not.
pub fn resolve(root: &std::path::Path, requested: &str) -> Result<PathBuf, (StatusCode, String)> {
    let relative = check(requested)?;
    let not_found = || (StatusCode::NOT_FOUND, format!("no results at {requested}"));
    let root = root.canonicalize().map_err(|_| not_found())?;
    let real = root
        .join(&relative)
        .canonicalize()
        .map_err(|_| not_found())?;
    if !real.starts_with(&root) {
        return Err(not_found());
    }
    // Nothing at the top of the directory whose name starts with a dot (a drone's
    // journal, the worker's lease), even through a symlink inside the results.
    let hidden = real
        .strip_prefix(&root)
        .ok()
        .and_then(|r| r.components().next())
        .is_some_and(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    if hidden {
        return Err(not_found());
    }
    Ok(real)
}

/// Answers a GET of `requested` (a path under `root`): a file's bytes (those of
/// `range`, the request's `Range` header, if any), or a directory's listing; an error
/// (status and one line) otherwise.
pub async fn serve(
    root: &std::path::Path,
    requested: &str,
    range: Option<&str>,
) -> Result<Response, (StatusCode, String)> {
    serve_as(root, requested, range, false).await
}

/// [`serve`] for a request with `headers`: its `Range`, and a directory listed as an
/// HTML page of links when the reader accepts HTML (a browser), as text otherwise.
pub async fn serve_for(
    root: &std::path::Path,
    requested: &str,
    headers: &axum::http::HeaderMap,
) -> Result<Response, (StatusCode, String)> {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    serve_as(root, requested, range, html).await
}

async fn serve_as(
    root: &std::path::Path,
    requested: &str,
    range: Option<&str>,
    html: bool,
) -> Result<Response, (StatusCode, String)> {
    let path = resolve(root, requested)?;
    let not_found = || (StatusCode::NOT_FOUND, format!("no results at {requested}"));
    let metadata = tokio::fs::metadata(&path).await.map_err(|_| not_found())?;
    if metadata.is_dir() {
        let names = list(&path).await?;
        return Ok(if html {
            listing_page(requested, &names)
        } else {
            let body = names.iter().map(|n| format!("{n}\n")).collect::<String>();
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
        });
    }
    if !metadata.is_file() {
        return Err(not_regular(requested));
    }
    // O_NONBLOCK: should the path have become a FIFO since, the open returns at once
    // instead of waiting for a writer; what was opened is checked again.
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)
        .await
        .map_err(|_| not_found())?;
    let length = match file.metadata().await {
        Ok(opened) if opened.is_file() => opened.len(),
        Ok(_) => return Err(not_regular(requested)),
        Err(_) => return Err(not_found()),
    };
    let Some(range) = range else {
        // A browser is shown a log it can read; other readers get the bytes as they are.
        let (file, kind) = if html {
            kind_for_browser(file).await?
        } else {
            (file, "application/octet-stream")
        };
        return Ok((
            [
                (header::CONTENT_TYPE, kind),
                (header::ACCEPT_RANGES, "bytes"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            file_body(file),
        )
            .into_response());
    };
    let (start, end) = match byte_range(range, length) {
        Ok(range) => range,
        Err(status) => {
            return Ok((
                status,
                [(header::CONTENT_RANGE, format!("bytes */{length}"))],
                format!("range {range:?} is not satisfiable: the file has {length} bytes\n"),
            )
                .into_response())
        }
    };
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = file;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        StatusCode::PARTIAL_CONTENT,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::ACCEPT_RANGES, "bytes".to_string()),
            (
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{length}"),
            ),
        ],
        file_body(file.take(end - start + 1)),
    )
        .into_response())
}

/// The first and last byte a `Range` header asks of a file of `length` bytes: one
/// range, `bytes=START-`, `bytes=START-END` or `bytes=-SUFFIX`; 416 when it starts
/// past the end (or asks for no bytes), 400 when it is not a single byte range.
pub fn byte_range(range: &str, length: u64) -> Result<(u64, u64), StatusCode> {
    let spec = range
        .trim()
        .strip_prefix("bytes=")
        .ok_or(StatusCode::BAD_REQUEST)?;
    if spec.contains(',') {
        return Err(StatusCode::BAD_REQUEST);
    }
    let (first, last) = spec.split_once('-').ok_or(StatusCode::BAD_REQUEST)?;
    let number = |text: &str| {
        text.trim()
            .parse::<u64>()
            .map_err(|_| StatusCode::BAD_REQUEST)
    };
    let (start, end) = match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => return Err(StatusCode::BAD_REQUEST),
        (true, false) => {
            let suffix = number(last)?;
            if suffix == 0 {
                return Err(StatusCode::RANGE_NOT_SATISFIABLE);
            }
            (length.saturating_sub(suffix), length.saturating_sub(1))
        }
        (false, true) => (number(first)?, length.saturating_sub(1)),
        (false, false) => {
            let (start, end) = (number(first)?, number(last)?);
            if end < start {
                return Err(StatusCode::BAD_REQUEST);
            }
            (start, end.min(length.saturating_sub(1)))
        }
    };
    if start >= length {
        return Err(StatusCode::RANGE_NOT_SATISFIABLE);
    }
    Ok((start, end))
}

/// How a browser is to take a result file: `text/plain` when its first KiB is text
/// (UTF-8, no NUL: logs, status files, keyvals), so it is shown and never run;
/// otherwise bytes to save. The file comes back at its start.
async fn kind_for_browser(
    mut file: tokio::fs::File,
) -> Result<(tokio::fs::File, &'static str), (StatusCode, String)> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let io = |e: std::io::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let mut head = vec![0u8; 1024];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]).await.map_err(io)? {
            0 => break,
            n => filled += n,
        }
    }
    head.truncate(filled);
    file.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
    let text = !head.contains(&0)
        && match std::str::from_utf8(&head) {
            Ok(_) => true,
            // A character cut at the end of the first KiB.
            Err(e) => e.error_len().is_none(),
        };
    Ok((
        file,
        if text {
            "text/plain; charset=utf-8"
        } else {
            "application/octet-stream"
        },
    ))
}

fn not_regular(requested: &str) -> (StatusCode, String) {
    (
        StatusCode::FORBIDDEN,
        format!("{requested} is not a regular file or directory"),
    )
}

/// A directory's listing: regular files, directories (ending in `/`) and symlinks, each
/// name escaped ([`escape_name`]), sorted.
async fn list(path: &std::path::Path) -> Result<Vec<String>, (StatusCode, String)> {
    let mut names = Vec::new();
    let mut entries = tokio::fs::read_dir(path)
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = escape_name(&entry.file_name().to_string_lossy());
        match entry.file_type().await {
            Ok(kind) if kind.is_dir() => names.push(format!("{name}/")),
            Ok(kind) if kind.is_file() || kind.is_symlink() => names.push(name),
            // Devices, FIFOs and sockets are not results.
            _ => {}
        }
    }
    names.sort();
    Ok(names)
}

/// Text for HTML: `&`, `<`, `>`, `"` and `'` as entities.
fn html_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A directory's listing for a browser: each name a link relative to the directory
/// (percent-encoded, escaped), with a link up. No script, no style from elsewhere.
fn listing_page(requested: &str, names: &[String]) -> Response {
    let title = html_text(&format!("/results/{requested}"));
    let mut body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<ul>\n<li><a href=\"../\">../</a></li>\n"
    );
    for name in names {
        let (bare, slash) = match name.strip_suffix('/') {
            Some(bare) => (bare, "/"),
            None => (name.as_str(), ""),
        };
        // The listing's names are escaped; the link names the file as listed.
        let href = crate::percent_encode(bare.as_bytes());
        body.push_str(&format!(
            "<li><a href=\"./{}{slash}\">{}</a></li>\n",
            html_text(&href),
            html_text(name)
        ));
    }
    body.push_str("</ul>\n</body></html>\n");
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; base-uri 'none'; form-action 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

/// A file name as one line of a listing: `\` as `\\`, a newline as `\n`, a
/// carriage return as `\r`, a tab as `\t`, other control characters as `\xNN`.
pub fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A read-only HTTP server of `root` under `/results/`: what a drone runs so the
/// scheduler can send readers to results not pushed yet; HTTPS with `tls`. `more`
/// serves the other paths (a drone's `/metrics`). Returns the bound address.
pub async fn listen(
    root: PathBuf,
    address: std::net::SocketAddr,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    more: axum::Router,
    mut shutdown: crate::shutdown::Shutdown,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let root = std::sync::Arc::new(root);
    let app = axum::Router::new()
        .route(
            "/results/{*path}",
            axum::routing::get(
                move |Path(requested): Path<String>, headers: axum::http::HeaderMap| {
                    let root = root.clone();
                    async move {
                        // The worker's own files (journal, lease) are not results.
                        if requested.starts_with('.') {
                            return (
                                StatusCode::NOT_FOUND,
                                format!("no results at {requested}\n"),
                            )
                                .into_response();
                        }
                        match serve_for(&root, &requested, &headers).await {
                            Ok(response) => response,
                            Err((code, message)) => (code, format!("{message}\n")).into_response(),
                        }
                    }
                },
            ),
        )
        .merge(more);
    let task = tokio::spawn(async move {
        let served =
            crate::tls::serve(listener, tls, app, async move { shutdown.wait().await }).await;
        if let Err(error) = served {
            tracing::error!(%error, "results server stopped");
        }
    });
    Ok((bound, task))
}

/// Streams a file (or the part of one being read) in chunks without loading it whole.
fn file_body<R>(file: R) -> Body
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    use tokio::io::AsyncReadExt;
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(buffer)),
                    file,
                ))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_that_leave_the_results_directory() {
        let root = std::env::temp_dir().join(format!("results-test-{}", std::process::id()));
        std::fs::create_dir_all(root.join("1-alice/host1")).unwrap();
        std::fs::write(root.join("1-alice/host1/status"), "ok").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("1-alice/host1/escape")).unwrap();
        std::fs::create_dir_all(root.join(".journal/drone1")).unwrap();
        std::fs::write(root.join(".journal/drone1/lease"), "").unwrap();
        std::os::unix::fs::symlink("../../.journal", root.join("1-alice/host1/j")).unwrap();
        assert!(resolve(&root, "1-alice/host1/status").is_ok());
        assert!(resolve(&root, "1-alice/host1/").is_ok());
        for (path, code) in [
            ("../etc/passwd", StatusCode::BAD_REQUEST),
            ("1-alice/../../etc/passwd", StatusCode::BAD_REQUEST),
            ("/etc/passwd", StatusCode::BAD_REQUEST),
            ("1-alice/./host1", StatusCode::BAD_REQUEST),
            ("1-alice/host1//status", StatusCode::BAD_REQUEST),
            ("1-alice//host1/", StatusCode::BAD_REQUEST),
            ("1-alice/host1//", StatusCode::BAD_REQUEST),
            ("1-alice/host1/escape/passwd", StatusCode::NOT_FOUND),
            ("1-alice/host1/missing", StatusCode::NOT_FOUND),
            (".journal/drone1/lease", StatusCode::NOT_FOUND),
            ("1-alice/host1/j/drone1/lease", StatusCode::NOT_FOUND),
        ] {
            assert_eq!(resolve(&root, path).unwrap_err().0, code, "{path}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_name_with_a_newline_is_one_line_of_a_listing() {
        assert_eq!(escape_name("plain name.txt"), "plain name.txt");
        assert_eq!(escape_name("two\nlines"), "two\\nlines");
        assert_eq!(
            escape_name("back\\slash\t\r\u{1b}[31m"),
            "back\\\\slash\\t\\r\\x1b[31m"
        );
        assert!(!escape_name("a\nb\rc").contains(['\n', '\r']));
    }

    async fn body_of(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn only_regular_files_and_directories_are_served_and_nothing_blocks() {
        let temp = std::env::temp_dir().join(format!("results-special-{}", std::process::id()));
        let dir = temp.join("1-alice/host1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("status"), "GOOD\n").unwrap();
        std::fs::write(dir.join("odd\nname"), "x").unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join("fifo"))
            .status()
            .unwrap();
        assert!(made.success());
        let served = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            serve(&temp, "1-alice/host1/fifo", None),
        )
        .await
        .expect("a FIFO is refused at once, not waited on");
        assert_eq!(served.unwrap_err().0, StatusCode::FORBIDDEN);
        let listing = body_of(serve(&temp, "1-alice/host1/", None).await.unwrap()).await;
        assert_eq!(
            listing, "odd\\nname\nstatus\n",
            "one line per name, no FIFO"
        );
        let file = body_of(serve(&temp, "1-alice/host1/status", None).await.unwrap()).await;
        assert_eq!(file, "GOOD\n");
        let _ = std::fs::remove_dir_all(&temp);
    }

    #[test]
    fn a_byte_range_is_one_range_inside_the_file() {
        assert_eq!(byte_range("bytes=0-", 10), Ok((0, 9)));
        assert_eq!(byte_range("bytes=4-6", 10), Ok((4, 6)));
        assert_eq!(byte_range("bytes=4-100", 10), Ok((4, 9)), "cut at the end");
        assert_eq!(byte_range("bytes=-3", 10), Ok((7, 9)));
        assert_eq!(byte_range("bytes=-30", 10), Ok((0, 9)));
        for past in ["bytes=10-", "bytes=12-20", "bytes=-0"] {
            assert_eq!(
                byte_range(past, 10),
                Err(StatusCode::RANGE_NOT_SATISFIABLE),
                "{past}"
            );
        }
        assert_eq!(
            byte_range("bytes=0-", 0),
            Err(StatusCode::RANGE_NOT_SATISFIABLE)
        );
        for bad in [
            "bytes=0-1,3-4",
            "items=0-",
            "bytes=-",
            "bytes=5-2",
            "bytes=a-",
        ] {
            assert_eq!(byte_range(bad, 10), Err(StatusCode::BAD_REQUEST), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_range_request_answers_those_bytes_or_416_past_the_end() {
        let temp = std::env::temp_dir().join(format!("results-range-{}", std::process::id()));
        let dir = temp.join("1-alice/host1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("autoserv.stdout"), "0123456789").unwrap();
        let path = "1-alice/host1/autoserv.stdout";
        let part = serve(&temp, path, Some("bytes=3-5")).await.unwrap();
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.headers()[header::CONTENT_RANGE], "bytes 3-5/10");
        assert_eq!(body_of(part).await, "345");
        let rest = serve(&temp, path, Some("bytes=7-")).await.unwrap();
        assert_eq!(body_of(rest).await, "789");
        let past = serve(&temp, path, Some("bytes=10-")).await.unwrap();
        assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(past.headers()[header::CONTENT_RANGE], "bytes */10");
        let whole = serve(&temp, path, None).await.unwrap();
        assert_eq!(whole.status(), StatusCode::OK);
        assert_eq!(body_of(whole).await, "0123456789");
        let _ = std::fs::remove_dir_all(&temp);
    }

    #[tokio::test]
    async fn a_browser_gets_a_listing_of_escaped_links() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("1-ann/host1");
        std::fs::create_dir_all(dir.join("debug")).unwrap();
        std::fs::write(dir.join("<img src=x onerror=alert(1)>"), b"x").unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(header::ACCEPT, "text/html,*/*".parse().unwrap());
        let page = serve_for(temp.path(), "1-ann/host1/", &headers)
            .await
            .unwrap();
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let html = body_of(page).await;
        assert!(
            html.contains("<li><a href=\"./debug/\">debug/</a></li>"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"./%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E\">&lt;img src=x onerror=alert(1)&gt;</a>"),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
        // Anything else still gets the text listing.
        let text = serve_for(temp.path(), "1-ann/host1/", &axum::http::HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(
            body_of(text).await,
            "<img src=x onerror=alert(1)>\ndebug/\n"
        );
    }
}
