//! Deadlines: a point in time an operation must finish by, with the budget it was given, so a
//! message that reports the time-out can say how long the operation had.

use std::time::Duration;
use tokio::time::Instant;

/// A point in time an operation must finish by, with the budget it was given (for messages).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// When the time runs out.
    pub at: Instant,
    /// How long the operation was given in all.
    pub budget: Duration,
}

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        Deadline { at: Instant::now() + budget, budget }
    }

    /// Time left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}
