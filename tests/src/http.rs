//! A raw HTTP/1.0 client for the tests: no client-side path normalisation (so hostile
//! paths reach the server as written), no redirects followed, no chunked bodies.

use std::io::{Read, Write};

/// GETs `path` from `server` (`http://host:port`): (status, `Location` header, body).
pub fn get(server: &str, path: &str) -> (u16, Option<String>, String) {
    let addr = server.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or(l.strip_prefix("Location: "))
        })
        .map(str::to_string);
    (status, location, body.to_string())
}

/// Splits `http://host:port/path` into (`http://host:port`, `/path`).
pub fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    (format!("http://{host}"), format!("/{path}"))
}
