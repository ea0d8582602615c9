//! Who is running `atest`: the user the scheduler takes the token for. Jobs are created
//! in that user's name, and aborts and repairs are made as that user.

use api::Client;

/// The caller's user name, as the scheduler knows it from the token.
pub fn current_user(client: &Client) -> Result<String, String> {
    client.whoami().map(|me| me.name).map_err(|e| e.to_string())
}
