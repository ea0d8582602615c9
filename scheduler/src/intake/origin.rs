//! Who may report for a drone: the broker user each drone's worker connects with, and
//! the check of a report's `user_id` against it. RabbitMQ refuses a `user_id` property
//! that is not the publishing connection's user, so a report stamped with drone D's
//! user was sent by D (or by whoever holds D's credentials). Pure: the users come from
//! the config, the `user_id` from the delivery.

use common::config::{Config, DroneBrokerUsers};
use common::names::DroneName;
use std::collections::BTreeMap;

/// Each configured drone's broker user, and whether they can be told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Senders {
    /// Each configured drone's user (absent when it cannot be known).
    users: BTreeMap<DroneName, String>,
    /// Why reports cannot be told apart (every report is then accepted); None when
    /// each drone has a user of its own.
    shared: Option<String>,
}

impl Senders {
    /// From `[SCHEDULER] drone_broker_users`, `<drone>_broker_user` and the scheduler's
    /// own `[BROKER]` user.
    pub fn from_config(config: &Config) -> Self {
        let own = common::broker::Endpoint::from(&config.broker).user();
        let origin = &config.scheduler.report_origin;
        Self::resolve(
            &config.scheduler.drones,
            &origin.drone_broker_users,
            &origin.drone_broker_user,
            own.as_deref(),
        )
    }

    /// The rule itself: a drone's own key wins; else a template gives `{drone}` its
    /// name; `auto` reads the scheduler's user `PREFIXscheduler` (as made by
    /// `deploy/rabbitmq-setup.sh`) as drones on `PREFIXdrone-<name>`, and any other
    /// scheduler user as one user shared by everyone.
    pub fn resolve(
        drones: &[DroneName],
        mode: &DroneBrokerUsers,
        own_keys: &BTreeMap<DroneName, String>,
        scheduler_user: Option<&str>,
    ) -> Self {
        let prefix = scheduler_user.and_then(|u| u.strip_suffix("scheduler"));
        let mut users = BTreeMap::new();
        for drone in drones {
            let user = match (own_keys.get(drone), mode) {
                (Some(user), _) => Some(user.clone()),
                (None, DroneBrokerUsers::Template(t)) => Some(t.replace("{drone}", drone.as_str())),
                (None, DroneBrokerUsers::Shared) => None,
                (None, DroneBrokerUsers::Auto) => match prefix {
                    Some(prefix) => Some(format!("{prefix}drone-{drone}")),
                    None => scheduler_user.map(str::to_string),
                },
            };
            if let Some(user) = user {
                users.insert(drone.clone(), user);
            }
        }
        let shared = shared_reason(drones, mode, &users, scheduler_user);
        Self { users, shared }
    }

    /// Why reports cannot be told apart, for the warning at start; None when they can.
    pub fn shared(&self) -> Option<&str> {
        self.shared.as_deref()
    }

    /// The broker user reports about `drone` must come from.
    pub fn user_of(&self, drone: &DroneName) -> Option<&str> {
        self.users.get(drone).map(String::as_str)
    }

    /// Whether a report naming `drone`, stamped `user_id`, counts as that drone's:
    /// Err says why not.
    pub fn check(&self, drone: &DroneName, user_id: Option<&str>) -> Result<(), String> {
        if self.shared.is_some() {
            return Ok(());
        }
        let Some(expected) = self.user_of(drone) else {
            return Err(format!("drone {drone} is not configured"));
        };
        match user_id {
            Some(user) if user == expected => Ok(()),
            Some(user) => Err(format!(
                "sent by broker user {user:?}, not drone {drone}'s user {expected:?}"
            )),
            None => Err(format!(
                "sent without a user_id; drone {drone}'s reports carry {expected:?}"
            )),
        }
    }
}

fn shared_reason(
    drones: &[DroneName],
    mode: &DroneBrokerUsers,
    users: &BTreeMap<DroneName, String>,
    scheduler_user: Option<&str>,
) -> Option<String> {
    if *mode == DroneBrokerUsers::Shared {
        return Some("[SCHEDULER] drone_broker_users is shared".into());
    }
    if let Some(drone) = drones.iter().find(|d| !users.contains_key(*d)) {
        return Some(format!(
            "drone {drone}'s broker user is unknown (the scheduler's [BROKER] url names no user; set [SCHEDULER] drone_broker_users)"
        ));
    }
    let mut seen: BTreeMap<&str, &DroneName> = BTreeMap::new();
    for (drone, user) in users {
        if Some(user.as_str()) == scheduler_user {
            return Some(format!(
                "drone {drone} uses the scheduler's own broker user {user:?}"
            ));
        }
        if let Some(other) = seen.insert(user, drone) {
            return Some(format!(
                "drones {other} and {drone} share the broker user {user:?}"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drones(names: &[&str]) -> Vec<DroneName> {
        names.iter().map(|n| DroneName::new(*n).unwrap()).collect()
    }

    fn d(name: &str) -> DroneName {
        DroneName::new(name).unwrap()
    }

    #[test]
    fn auto_follows_the_setup_scripts_names() {
        let s = Senders::resolve(
            &drones(&["d1", "d2"]),
            &DroneBrokerUsers::Auto,
            &BTreeMap::new(),
            Some("autotest-scheduler"),
        );
        assert_eq!(s.shared(), None);
        assert_eq!(s.user_of(&d("d1")), Some("autotest-drone-d1"));
        assert_eq!(s.check(&d("d1"), Some("autotest-drone-d1")), Ok(()));
        let wrong = s.check(&d("d1"), Some("autotest-drone-d2")).unwrap_err();
        assert!(wrong.contains("autotest-drone-d2"), "{wrong}");
        assert!(s.check(&d("d1"), None).is_err());
        assert!(s.check(&d("d3"), Some("autotest-drone-d3")).is_err());
    }

    #[test]
    fn a_scheduler_on_guest_means_one_shared_user() {
        let s = Senders::resolve(
            &drones(&["d1", "d2"]),
            &DroneBrokerUsers::Auto,
            &BTreeMap::new(),
            Some("guest"),
        );
        assert!(s.shared().is_some());
        // Then everything counts, stamped or not.
        assert_eq!(s.check(&d("d1"), Some("guest")), Ok(()));
        assert_eq!(s.check(&d("d2"), None), Ok(()));
    }

    #[test]
    fn a_drones_own_key_wins_and_a_template_names_each() {
        let own = BTreeMap::from([(d("d2"), "special".to_string())]);
        let s = Senders::resolve(
            &drones(&["d1", "d2"]),
            &DroneBrokerUsers::Template("mq-{drone}".into()),
            &own,
            Some("guest"),
        );
        assert_eq!(s.shared(), None);
        assert_eq!(s.user_of(&d("d1")), Some("mq-d1"));
        assert_eq!(s.user_of(&d("d2")), Some("special"));
    }

    #[test]
    fn users_shared_between_drones_or_with_the_scheduler_are_said() {
        let own = BTreeMap::from([(d("d1"), "lab".to_string()), (d("d2"), "lab".to_string())]);
        let s = Senders::resolve(
            &drones(&["d1", "d2"]),
            &DroneBrokerUsers::Auto,
            &own,
            Some("x-scheduler"),
        );
        assert!(s.shared().unwrap().contains("share"), "{s:?}");
        let own = BTreeMap::from([(d("d1"), "x-scheduler".to_string())]);
        let s = Senders::resolve(
            &drones(&["d1"]),
            &DroneBrokerUsers::Auto,
            &own,
            Some("x-scheduler"),
        );
        assert!(s.shared().unwrap().contains("scheduler's own"), "{s:?}");
        let s = Senders::resolve(
            &drones(&["d1"]),
            &DroneBrokerUsers::Shared,
            &BTreeMap::new(),
            None,
        );
        assert!(s.shared().is_some());
        let s = Senders::resolve(
            &drones(&["d1"]),
            &DroneBrokerUsers::Auto,
            &BTreeMap::new(),
            None,
        );
        assert!(s.shared().unwrap().contains("unknown"), "{s:?}");
    }
}
