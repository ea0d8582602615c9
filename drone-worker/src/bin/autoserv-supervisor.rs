//! `autoserv-supervisor [--lease FILE SECS] PREFIX PROGRAM [ARGS...]`: the small process
//! in front of Autoserv (see `drone_worker::supervise`); `autoserv-supervisor --serve`:
//! its long-lived form, which the worker sends one attempt after another. A binary of
//! its own so that it costs a small program's start, not the whole worker's.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["--serve"] {
        std::process::exit(drone_worker::supervise::serve());
    }
    std::process::exit(drone_worker::supervise::run(&args) & 0xff);
}
