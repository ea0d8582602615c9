//! `chaos`: the fault test behind `deploy/chaos.sh` (see `tools::chaos`).

fn main() {
    let Some(options) = tools::chaos::Options::parse(std::env::args().skip(1)) else {
        println!("{}", tools::chaos::USAGE);
        return;
    };
    std::process::exit(tools::chaos::run(options));
}
