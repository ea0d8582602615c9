//! The scheduler's essential tasks are supervised: one that ends while the scheduler
//! is not shutting down (it returns, or it panics) stops the scheduler within seconds
//! with an error naming it, so `autotest-scheduler` exits non-zero and its service
//! manager starts it again. The faults are injected through a hook that only debug
//! builds have.
#![cfg(debug_assertions)]

use autotest_tests::World;
use common::shutdown::Shutdown;
use scheduler::tasks::{Fault, Task};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_that_ends_stops_the_scheduler_with_an_error_naming_it() {
    let mut world = World::builder().without_workers().start().await;
    world.stop_scheduler().await;
    for task in Task::ALL {
        for (fault, says) in [(Fault::Panics, "panicked"), (Fault::Returns, "ended")] {
            let mut scheduler = scheduler::Scheduler::start(world.config.clone())
                .await
                .expect("scheduler starts");
            scheduler.inject_fault(task, fault);
            // The trigger stays alive: nothing asks the scheduler to stop.
            let (_trigger, shutdown) = Shutdown::new();
            let ended = tokio::time::timeout(Duration::from_secs(20), scheduler.run(shutdown))
                .await
                .unwrap_or_else(|_| panic!("the scheduler went on after its {task} {says}"));
            let error = ended
                .expect_err("a scheduler whose task ended stops with an error")
                .to_string();
            assert!(
                error.starts_with(&format!("the {task} {says}")),
                "{task}, {fault:?}: {error}"
            );
        }
    }
    // The world's own scheduler, with nothing injected, still stops cleanly.
    world.start_scheduler().await;
    world.stop().await;
}
