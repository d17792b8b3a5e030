//! The Listen protocol as events: what a stream's responses mean for a follower that
//! holds no documents in memory. Pure: unit-tested on response sequences the emulator
//! and the protocol's documentation show.
//!
//! * A document change (matching one of our targets) is its new state; a delete (or a
//!   document leaving a target's view, which for an unfiltered collection-group target
//!   only a delete does) is a removal, at the delete's read time when the server says.
//! * `RESET` of a target: its whole result set follows again; what it does not resend
//!   before it is `CURRENT` is gone. The emulator resets on every change.
//! * A target's `resume_token` is kept, but only handed out at a **consistent point**:
//!   a `NO_CHANGE` with no target ids and a `read_time`, once every target is `CURRENT`.
//!   Only then is everything before that time delivered, so only then may a position
//!   be saved.
//! * An existence filter (the server's count of a target's documents) and a removed
//!   target (with the server's cause, e.g. a resume point past the retention) are
//!   passed on: the follower reconciles.

use std::collections::BTreeMap;

use gcloud_sdk::google::firestore::v1::listen_response::ResponseType;
use gcloud_sdk::google::firestore::v1::target_change::TargetChangeType;
use gcloud_sdk::google::firestore::v1::{Document, ListenResponse};
use gcloud_sdk::prost_types::Timestamp;

/// What a response means to the follower.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A document's current state.
    Upsert(Document),
    /// A document gone, at `time` when the server said when.
    Delete {
        name: String,
        time: Option<Timestamp>,
    },
    /// The target's whole result set follows again.
    Reset(i32),
    /// The server's count of the target's documents.
    Filter { target: i32, count: i32 },
    /// The server dropped the target (its `cause`, when given).
    Removed { target: i32, cause: String },
    /// Everything up to `read_time` was delivered, for every target.
    Consistent {
        read_time: Timestamp,
        /// Each target's resume token as of this point.
        tokens: Vec<(i32, Vec<u8>)>,
        /// Targets whose resend (after a `RESET`, or the initial one) completed since
        /// the previous consistent point.
        resent: Vec<i32>,
    },
}

#[derive(Debug, Default)]
struct TargetState {
    current: bool,
    /// In a resend: a `RESET` (or the start) was seen and its `CURRENT` is pending or
    /// not yet reported at a consistent point.
    resending: bool,
    token: Option<Vec<u8>>,
}

/// The protocol state of one Listen stream.
#[derive(Debug)]
pub struct Watch {
    targets: BTreeMap<i32, TargetState>,
}

impl Watch {
    /// A stream that asked for `targets`. `resending` says which of them start with a
    /// full resend (opened without a resume point, or on the emulator, which always
    /// sends everything: it says so with a `RESET` anyway).
    pub fn new(targets: impl IntoIterator<Item = (i32, bool)>) -> Self {
        Self {
            targets: targets
                .into_iter()
                .map(|(id, resending)| {
                    (
                        id,
                        TargetState {
                            resending,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        }
    }

    fn ours(&self, ids: &[i32]) -> bool {
        ids.iter().any(|id| self.targets.contains_key(id))
    }

    /// The events of one response, in order.
    pub fn on(&mut self, resp: ListenResponse) -> Vec<Event> {
        let Some(r) = resp.response_type else {
            return Vec::new();
        };
        match r {
            ResponseType::DocumentChange(c) => match c.document {
                Some(doc) if self.ours(&c.target_ids) => vec![Event::Upsert(doc)],
                Some(doc) if self.ours(&c.removed_target_ids) => vec![Event::Delete {
                    name: doc.name,
                    time: None,
                }],
                _ => Vec::new(),
            },
            ResponseType::DocumentDelete(d) => vec![Event::Delete {
                name: d.document,
                time: d.read_time,
            }],
            ResponseType::DocumentRemove(d) => {
                if self.ours(&d.removed_target_ids) {
                    vec![Event::Delete {
                        name: d.document,
                        time: d.read_time,
                    }]
                } else {
                    Vec::new()
                }
            }
            ResponseType::Filter(f) => vec![Event::Filter {
                target: f.target_id,
                count: f.count,
            }],
            ResponseType::TargetChange(tc) => self.on_target_change(tc),
        }
    }

    fn on_target_change(
        &mut self,
        tc: gcloud_sdk::google::firestore::v1::TargetChange,
    ) -> Vec<Event> {
        let kind =
            TargetChangeType::try_from(tc.target_change_type).unwrap_or(TargetChangeType::NoChange);
        // No target ids: the change is about every target of the stream.
        let ids: Vec<i32> = if tc.target_ids.is_empty() {
            self.targets.keys().copied().collect()
        } else {
            tc.target_ids.clone()
        };
        let mut events = Vec::new();
        for id in &ids {
            let Some(t) = self.targets.get_mut(id) else {
                continue;
            };
            if !tc.resume_token.is_empty() && kind != TargetChangeType::Remove {
                t.token = Some(tc.resume_token.clone());
            }
            match kind {
                TargetChangeType::Reset => {
                    t.current = false;
                    t.resending = true;
                    events.push(Event::Reset(*id));
                }
                TargetChangeType::Current => t.current = true,
                TargetChangeType::Remove => {
                    let cause = tc
                        .cause
                        .as_ref()
                        .map(|c| format!("code {}: {}", c.code, c.message))
                        .unwrap_or_default();
                    events.push(Event::Removed { target: *id, cause });
                }
                TargetChangeType::Add | TargetChangeType::NoChange => {}
            }
        }
        if kind == TargetChangeType::Remove {
            for id in &ids {
                self.targets.remove(id);
            }
        }
        let global_no_change = kind == TargetChangeType::NoChange && tc.target_ids.is_empty();
        if let (true, Some(read_time)) = (global_no_change, tc.read_time) {
            if !self.targets.is_empty() && self.targets.values().all(|t| t.current) {
                let mut resent = Vec::new();
                let mut tokens = Vec::new();
                for (id, t) in self.targets.iter_mut() {
                    if std::mem::take(&mut t.resending) {
                        resent.push(*id);
                    }
                    if let Some(tok) = &t.token {
                        tokens.push((*id, tok.clone()));
                    }
                }
                events.push(Event::Consistent {
                    read_time,
                    tokens,
                    resent,
                });
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcloud_sdk::google::firestore::v1::{
        DocumentChange, DocumentDelete, ExistenceFilter, TargetChange,
    };

    fn tc(kind: TargetChangeType, ids: &[i32], token: &[u8], secs: Option<i64>) -> ListenResponse {
        ListenResponse {
            response_type: Some(ResponseType::TargetChange(TargetChange {
                target_change_type: kind as i32,
                target_ids: ids.to_vec(),
                cause: None,
                resume_token: token.to_vec(),
                read_time: secs.map(|s| Timestamp {
                    seconds: s,
                    nanos: 0,
                }),
            })),
        }
    }

    fn change(name: &str, ids: &[i32]) -> ListenResponse {
        ListenResponse {
            response_type: Some(ResponseType::DocumentChange(DocumentChange {
                document: Some(Document {
                    name: name.into(),
                    ..Default::default()
                }),
                target_ids: ids.to_vec(),
                removed_target_ids: vec![],
            })),
        }
    }

    /// The emulator's answer to one write, as the probe shows it.
    #[test]
    fn a_reset_resend_ends_at_the_next_consistent_point() {
        let mut w = Watch::new([(1, false), (2, false)]);
        let mut all = Vec::new();
        for r in [
            tc(TargetChangeType::Add, &[1, 2], b"", None),
            tc(TargetChangeType::Reset, &[1], b"r1", Some(5)),
            change("d/u0", &[1]),
            tc(TargetChangeType::Current, &[1], b"c1", Some(5)),
            // Target 2 is not current yet: no consistent point.
            tc(TargetChangeType::NoChange, &[], b"g", Some(6)),
            tc(TargetChangeType::Current, &[2], b"c2", Some(6)),
            tc(TargetChangeType::NoChange, &[], b"g2", Some(7)),
        ] {
            all.extend(w.on(r));
        }
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(all[0], Event::Reset(1));
        assert!(matches!(&all[1], Event::Upsert(d) if d.name == "d/u0"));
        let Event::Consistent {
            read_time,
            tokens,
            resent,
        } = &all[2]
        else {
            panic!("{:?}", all[2])
        };
        assert_eq!(read_time.seconds, 7);
        assert_eq!(resent, &vec![1]);
        // The global NO_CHANGE's token is every target's.
        assert_eq!(tokens, &vec![(1, b"g2".to_vec()), (2, b"g2".to_vec())]);
        // The next consistent point has no resend left.
        let next = w.on(tc(TargetChangeType::NoChange, &[], b"g3", Some(8)));
        assert!(matches!(&next[0], Event::Consistent { resent, .. } if resent.is_empty()));
    }

    #[test]
    fn a_target_opened_without_a_resume_point_starts_resending() {
        let mut w = Watch::new([(3, true)]);
        w.on(tc(TargetChangeType::Current, &[3], b"t", None));
        let e = w.on(tc(TargetChangeType::NoChange, &[], b"", Some(1)));
        assert!(
            matches!(&e[0], Event::Consistent { resent, tokens, .. } if resent == &vec![3] && tokens == &vec![(3, b"t".to_vec())])
        );
    }

    #[test]
    fn deletes_filters_removals_and_other_targets() {
        let mut w = Watch::new([(1, false)]);
        let del = ListenResponse {
            response_type: Some(ResponseType::DocumentDelete(DocumentDelete {
                document: "d/x".into(),
                removed_target_ids: vec![1],
                read_time: Some(Timestamp {
                    seconds: 9,
                    nanos: 0,
                }),
            })),
        };
        assert_eq!(
            w.on(del),
            vec![Event::Delete {
                name: "d/x".into(),
                time: Some(Timestamp {
                    seconds: 9,
                    nanos: 0
                })
            }]
        );
        assert!(
            w.on(change("d/other", &[7])).is_empty(),
            "another stream's target"
        );
        let f = ListenResponse {
            response_type: Some(ResponseType::Filter(ExistenceFilter {
                target_id: 1,
                count: 4,
                unchanged_names: None,
            })),
        };
        assert_eq!(
            w.on(f),
            vec![Event::Filter {
                target: 1,
                count: 4
            }]
        );
        let removed = w.on(tc(TargetChangeType::Remove, &[1], b"", None));
        assert!(matches!(&removed[0], Event::Removed { target: 1, .. }));
        // No target left: no consistent point can be claimed.
        assert!(w
            .on(tc(TargetChangeType::NoChange, &[], b"", Some(3)))
            .is_empty());
    }
}
