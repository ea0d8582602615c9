//! `lists_bench`: the lists benchmark behind `deploy/bench.sh --lists` (see
//! `tools::lists_bench`).

fn main() {
    let Some(options) = tools::lists_bench::Options::parse(std::env::args().skip(1)) else {
        println!("{}", tools::lists_bench::USAGE);
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(tools::lists_bench::run(options));
}
