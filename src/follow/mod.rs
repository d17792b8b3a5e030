//! The follower: keeps MongoDB in step with the live Firestore database until the
//! cutover (docs/follow.md).
//!
//! * [`listen`] opens a Listen stream, one target per collection group.
//! * [`watch`] the protocol as events: states, deletes, resets, consistent points.
//! * [`apply`] writes changes to MongoDB with the update-time guard and the ledger.
//! * [`record`] the follow record: the saved position, counts, the cutover.
//! * [`run`] the follower's loop.

pub mod apply;
pub mod listen;
pub mod record;
pub mod run;
pub mod watch;
