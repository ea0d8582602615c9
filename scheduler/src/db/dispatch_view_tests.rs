//! The drone loads and stored names of a dispatch view.

use super::*;

fn settings(name: &str, capacity: i32, set: Option<i32>, beat: Option<i64>) -> DroneSettings {
    DroneSettings {
        name: DroneName::new(name).unwrap(),
        enabled: true,
        capacity,
        capacity_override: set,
        last_heartbeat: beat,
        stopping: false,
        low_disk: false,
    }
}

#[test]
fn a_synchronous_group_counts_once_on_its_drone() {
    let on_drones = vec![
        (Some("a".to_string()), None),
        (Some("a".to_string()), Some(1)),
        (Some("a".to_string()), Some(1)),
        (Some("b".to_string()), None),
        (None, None),
    ];
    let counts = running_by_drone(on_drones);
    assert_eq!(counts.get("a"), Some(&1));
    assert_eq!(counts.get("b"), Some(&1));
}

#[test]
fn a_capacity_set_at_run_time_wins_over_the_config() {
    let load = load_of(settings("a", 4, Some(9), Some(100)), &BTreeMap::new(), 50);
    assert_eq!((load.capacity, load.free()), (9, 9));
}

#[test]
fn a_drone_silent_since_the_lease_has_no_free_slot() {
    let load = load_of(settings("a", 4, None, Some(10)), &BTreeMap::new(), 50);
    assert!(!load.alive);
    assert_eq!(load.free(), 0);
    let never = load_of(settings("b", 4, None, None), &BTreeMap::new(), 50);
    assert_eq!(never.free(), 0);
}

#[test]
fn a_stopping_drone_is_enabled_but_takes_nothing() {
    let mut row = settings("a", 4, None, Some(100));
    row.stopping = true;
    let load = load_of(row, &BTreeMap::new(), 50);
    assert!(load.enabled && !load.accepting);
    assert_eq!(load.free(), 0);
}

#[test]
fn a_drone_low_on_disk_takes_nothing_and_takes_again_once_it_has_room() {
    let mut row = settings("a", 4, None, Some(100));
    row.low_disk = true;
    let load = load_of(row, &BTreeMap::new(), 50);
    assert!(load.enabled && load.alive && load.low_disk && !load.accepting);
    assert_eq!(load.free(), 0);
    let members = vec![(1, "a".to_string())];
    assert!(sets_with_room(&members, &[load]).is_empty());
    let load = load_of(settings("a", 4, None, Some(100)), &BTreeMap::new(), 50);
    assert_eq!(load.free(), 4);
}

#[test]
fn only_drone_sets_with_a_free_drone_have_room() {
    let running = BTreeMap::from([("full".to_string(), 2)]);
    let loads = vec![
        load_of(settings("free", 2, None, Some(100)), &running, 50),
        load_of(settings("full", 2, None, Some(100)), &running, 50),
    ];
    let members = vec![
        (1, "full".to_string()),
        (2, "full".to_string()),
        (2, "free".to_string()),
        (3, "unknown".to_string()),
    ];
    assert_eq!(sets_with_room(&members, &loads), [2]);
}

#[test]
fn a_valid_stored_name_loads_as_its_type() {
    use diesel::sql_types::Text;
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    let host = HostName::new("host1.lab").unwrap();
    let query = diesel::select((&host).into_sql::<Text>());
    let back: HostName = diesel::RunQueryDsl::get_result(query, &mut conn).unwrap();
    assert_eq!(back, host);
}

#[test]
fn an_invalid_stored_name_is_an_error_naming_it() {
    use diesel::sql_types::Text;
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    let query = diesel::select("../etc".into_sql::<Text>());
    let stored: Result<HostName, _> = diesel::RunQueryDsl::get_result(query, &mut conn);
    let error = stored.unwrap_err();
    let mut messages = vec![error.to_string()];
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        messages.push(cause.to_string());
        source = cause.source();
    }
    let error = messages.join(": ");
    assert!(
        error.contains("host name") && error.contains("../etc"),
        "{error}"
    );
    let query = diesel::select("a b".into_sql::<Text>());
    let stored: Result<DroneName, _> = diesel::RunQueryDsl::get_result(query, &mut conn);
    assert!(stored.is_err(), "a drone name with a space was loaded");
}
