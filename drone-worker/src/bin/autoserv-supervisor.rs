//! `autoserv-supervisor [--lease FILE SECS] [--cgroup DIR] PREFIX PROGRAM [ARGS...]`: the small process
//! in front of Autoserv (see `drone_worker::supervise`); `autoserv-supervisor --serve`:
//! its long-lived form, which the worker sends one attempt after another;
//! `autoserv-supervisor --enter CGROUP PROGRAM [ARGS...]`: how Autoserv enters its
//! attempt's cgroup before it runs (see `drone_worker::contain`). A binary of
//! its own so that it costs a small program's start, not the whole worker's.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["--serve"] {
        std::process::exit(drone_worker::supervise::serve());
    }
    if args.first().map(String::as_str) == Some("--enter") {
        std::process::exit(drone_worker::contain::enter_and_exec(&args[1..]));
    }
    std::process::exit(drone_worker::supervise::run(&args) & 0xff);
}
