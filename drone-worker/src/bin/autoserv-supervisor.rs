//! `autoserv-supervisor PREFIX PROGRAM [ARGS...]`: the small process the worker runs in
//! front of Autoserv (see `drone_worker::supervise`). A binary of its own so each job
//! pays for starting a small program, not the whole worker.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(drone_worker::supervise::run(&args) & 0xff);
}
