//! `lab_bench`: the lab benchmark behind `deploy/bench.sh --lab` (see `tools::lab`).

fn main() {
    let Some(options) = tools::lab::Options::parse(std::env::args().skip(1)) else {
        println!("{}", tools::lab::USAGE);
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(tools::lab::run(options));
}
