//! Resolving a dead letter: `retry` decodes its bytes again and, if they are a valid event now,
//! applies it and then the customer's held events; `skip` releases the held events without it.
//! Either way the action and its outcome are recorded, in the same transaction as the effect.

use std::collections::HashMap;

use clientlog_domain::Event;
use clientlog_eventlog::{Position, StoredEvent, WireMode};
use clientlog_readstore::KnownHead;
use time::OffsetDateTime;

use crate::fold::{self, Evaluation, Known, Record};
use crate::worker::now_unix;
use crate::{Projector, ProjectorError};

/// What to do with a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    Retry,
    Skip,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Resolved; this many held events were applied (plus the record itself for a retry).
    Released { applied: u64, released: u64 },
    /// The bytes still do not decode; the dead letter stays open.
    StillInvalid { reason: String },
}

/// Retries or skips dead letter `id` of the projector's version, evaluating at `as_of`.
pub async fn resolve_dead_letter(
    projector: &Projector,
    id: i64,
    action: Resolve,
    as_of: i64,
) -> Result<Resolution, ProjectorError> {
    let attached = projector.attached();
    let version = attached.version;
    let now = now_unix();
    let mut tx = projector.begin(&attached).await?;
    let letter = tx.dead_letter(id).await?;
    if letter.status != "open" {
        return Err(ProjectorError::AlreadyResolved {
            id,
            status: letter.status,
        });
    }
    let position = Position::new(letter.log_partition, letter.log_offset);
    let mut records = Vec::new();
    let action_name = match action {
        Resolve::Retry => "retry",
        Resolve::Skip => "skip",
    };
    if action == Resolve::Retry {
        match Event::decode(&letter.bytes) {
            Ok(event) => records.push(Record::Event(StoredEvent {
                position,
                bytes: letter.bytes.clone(),
                // The log's own time is not kept with a bad record; when it was dead-lettered
                // is the closest thing the store knows.
                recorded_at: OffsetDateTime::from_unix_timestamp(letter.created_at)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                mode: WireMode::Structured,
                event,
            })),
            Err(reason) => {
                let reason = reason.to_string();
                tx.record_dead_letter_action(
                    id,
                    "retry",
                    &format!("still invalid: {reason}"),
                    0,
                    None,
                    now,
                )
                .await?;
                tx.commit().await?;
                return Ok(Resolution::StillInvalid { reason });
            }
        }
    }
    let status = match action {
        Resolve::Retry => "retried",
        Resolve::Skip => "skipped",
    };
    // Resolve first, so that the customer's next open dead letter (if any) is found below.
    tx.record_dead_letter_action(id, action_name, "resolved", 0, Some(status), now)
        .await?;

    let mut released = Vec::new();
    let mut still_held = Vec::new();
    let mut next_letter = None;
    if let Some(customer) = &letter.customer_id {
        let next = tx
            .open_dead_letters_of(version, &[customer.as_str()])
            .await?
            .remove(customer);
        let boundary = match next {
            Some(next_id) => {
                let next = tx.dead_letter(next_id).await?;
                next_letter = Some(next_id);
                Some((next.log_partition, next.log_offset))
            }
            None => None,
        };
        for held in tx.held_events_of(version, customer).await? {
            let at = (held.log_partition, held.log_offset);
            if boundary.is_some_and(|b| at > b) {
                still_held.push(at);
                continue;
            }
            let event = Event::decode(&held.bytes).map_err(|reason| {
                clientlog_readstore::StoreError::Invalid(format!(
                    "held event {}@{} no longer decodes: {reason}",
                    held.log_partition, held.log_offset
                ))
            })?;
            released.push(at);
            records.push(Record::Event(StoredEvent {
                position: Position::new(held.log_partition, held.log_offset),
                bytes: held.bytes,
                recorded_at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(
                    held.recorded_at,
                ))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                mode: WireMode::Structured,
                event,
            }));
        }
    }
    records.sort_by_key(Record::position);

    let customers: Vec<&str> = letter.customer_id.as_deref().into_iter().collect();
    let mut ids: Vec<[u8; 16]> = Vec::new();
    let mut subjects: Vec<String> = Vec::new();
    for record in &records {
        if let Record::Event(e) = record {
            ids.push(*e.event.id.as_uuid().as_bytes());
            subjects.push(e.event.subject.as_str().to_string());
        }
    }
    let mut all_customers: Vec<&str> = customers;
    all_customers.extend(subjects.iter().map(String::as_str));
    all_customers.sort_unstable();
    all_customers.dedup();
    let audited = tx.audited_event_ids(&ids).await?;
    let loaded = tx
        .load_customers(version, &all_customers, &all_customers)
        .await?;
    let known = Known {
        loaded,
        unlisted_head: KnownHead::Unread,
        blocked: HashMap::new(),
        dead_letters: HashMap::new(),
        audited: fold::Audited::Ids(audited),
    };
    let eval = Evaluation {
        policies: &attached.policies,
        lineage: &attached.lineage,
        as_of,
    };
    let write = fold::fold(&records, known, &eval, false)?;
    let applied = write.applied;
    tx.write(version, &write, now).await?;
    tx.delete_held(version, &released).await?;
    if let Some(next_id) = next_letter {
        tx.rehold(version, &still_held, next_id).await?;
    }
    tx.record_dead_letter_action(
        id,
        action_name,
        &format!("applied {applied} events"),
        released.len() as i64,
        None,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Resolution::Released {
        applied,
        released: released.len() as u64,
    })
}
