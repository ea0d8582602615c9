//! Who is running `atest`: the owner of the jobs it creates and the user it aborts as.

/// `$USER`, `$LOGNAME`, or the name the system's user database gives this process's
/// user id.
pub fn current_user() -> Option<String> {
    for var in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var) {
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    account_name()
}

/// The name of this process's real user id in the user database.
fn account_name() -> Option<String> {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid).ok()?.map(|user| user.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_database_names_the_current_user() {
        // Any user running the tests has an entry (root at least in containers).
        let name = account_name().expect("a user database entry");
        assert!(!name.is_empty());
    }
}
