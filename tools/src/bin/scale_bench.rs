//! `scale_bench`: the scale benchmark behind `deploy/bench.sh --scale` (see
//! `tools::scale`).

fn main() {
    let Some(options) = tools::scale::Options::parse(std::env::args().skip(1)) else {
        println!("{}", tools::scale::USAGE);
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(tools::scale::run(options));
}
