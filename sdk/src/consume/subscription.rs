//! What a subscription says about itself: after how many delivery attempts it dead-letters.
//! The worker uses it to know which attempt is a message's last; `suitex-events peek` to refuse
//! taking messages whose release would cost them an attempt.

use crate::config::Config;
use std::time::Duration;

/// The delivery attempts after which `subscription` (full path) dead-letters a message: `Some(n)`
/// with a dead-letter policy, `Some(0)` without one, `None` when the subscription cannot be
/// read within 10 s (the account may lack the right, which consuming does not need).
pub async fn dead_letter_attempts(config: &Config, subscription: &str) -> Option<i32> {
    let read = async {
        let admin = crate::clients::subscription_admin(config).await.ok()?;
        admin.get_subscription().set_subscription(subscription).send().await.ok()
    };
    let sub = tokio::time::timeout(Duration::from_secs(10), read).await.ok().flatten()?;
    Some(sub.dead_letter_policy.map_or(0, |p| p.max_delivery_attempts))
}
