//! `bench`: the benchmark behind `deploy/bench.sh` (see `tools::bench`).

fn main() {
    let Some(options) = tools::bench::Options::parse(std::env::args().skip(1)) else {
        println!("{}", tools::bench::USAGE);
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(tools::bench::run(options));
}
