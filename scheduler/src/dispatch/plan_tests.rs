//! The planning rules, case by case, on dispatch views built by hand.

use super::*;

#[test]
fn fetch_size_is_a_power_of_two_above_what_can_start() {
    assert_eq!(fetch_size(0, 100), 0);
    assert_eq!(fetch_size(1, 100), 32);
    assert_eq!(fetch_size(10, 100), 64);
    assert_eq!(fetch_size(1000, 100), 512);
}
