//! `broker_floor`: the floor of one broker trip (see `tools::floor`).
//!
//! Usage: broker_floor [--messages N]

fn main() {
    let mut messages = 500usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {}
        [flag, value] if flag == "--messages" => {
            messages = value.parse().expect("numeric --messages")
        }
        _ => {
            println!("usage: broker_floor [--messages N]");
            return;
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(tools::floor::run(messages));
}
