//! `pages_bench`: the pages benchmark behind `deploy/bench.sh --pages` (see
//! `tools::pages_bench`).

fn main() {
    let Some(options) = tools::pages_bench::Options::parse(std::env::args().skip(1)) else {
        println!("{}", tools::pages_bench::USAGE);
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(tools::pages_bench::run(options));
}
