//! Verification of the live projection version against the log:
//!
//! * the **audit copy**: every customer's chain is recomputed from the event log's bytes (read
//!   from the start up to the checkpoints the read models reflect) and compared with
//!   `customer_events` row by row — missing, extra, different bytes or position, broken chain —
//!   and the stored chain is re-hashed from its own bytes;
//! * the **read models**: every customer is re-folded from the log into a scratch in-memory
//!   state by the projector's own [`fold`](crate::fold::fold), evaluated at the stored
//!   `evaluated_at`, and its `customers` row (every column, and the card JSON key by key) and
//!   state bytes (`customers.state`) are compared with the live ones.
//!
//! Transitions are not compared: they record the history of evaluations (batch and
//! re-evaluation times), which a scratch fold cannot reproduce from the log alone.
//!
//! Memory: the log prefix and the live rows are held in memory (a scratch verification of a
//! store; a paged version would verify partition by partition).

use std::collections::{BTreeMap, HashMap, HashSet};

use clientlog_domain::Policies;
use clientlog_eventlog::{EventLog, ReadError, StartOffsets};
use clientlog_readstore::{AuditRow, CustomerRow, KnownHead, Lineage, ReadStore, StateRow};
use futures::StreamExt as _;

use crate::fold::{fold, Audited, Evaluation, Known, Record};
use crate::ProjectorError;

/// One difference between what the log implies and what the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub customer: String,
    /// `table.column` (or `customers.card.key`, `customer_events[seq].bytes`, …).
    pub field: String,
    pub detail: String,
}

/// What was verified, and the differences found.
#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    pub log_records: u64,
    pub customers: u64,
    pub audit_rows: u64,
    pub differences: Vec<Difference>,
}

/// Verifies the live version of `store` against `log` (see the module docs). `policies` must
/// be the ones the live version was built with.
pub async fn verify(
    store: &ReadStore,
    log: &impl EventLog,
    policies: &Policies,
) -> Result<VerifyReport, ProjectorError> {
    let live = store
        .live_version()
        .await?
        .ok_or_else(|| clientlog_readstore::StoreError::Invalid("no live version".into()))?;
    let lineage = Lineage {
        code_version: live.lineage.code_version,
        state_format: live.lineage.state_format,
        grading_version: live.lineage.grading_version.clone(),
        lifecycle_version: live.lineage.lifecycle_version.clone(),
        churn_version: live.lineage.churn_version.clone(),
    };
    let checkpoints = store.checkpoints(live.version).await?;
    let records = read_prefix(log, &checkpoints).await?;
    let snapshot = store.snapshot(live.version).await?;
    let open: HashMap<(i32, i64), i64> = store
        .dead_letters(live.version)
        .await?
        .into_iter()
        .filter(|d| d.status == "open")
        .map(|d| ((d.log_partition, d.log_offset), d.id))
        .collect();

    // Fold each customer at its stored evaluated_at (one fold per distinct as_of).
    let stored_at: HashMap<&str, i64> = snapshot
        .customers
        .iter()
        .map(|c| (c.customer_id.as_str(), c.evaluated_at))
        .collect();
    let default_at = snapshot
        .customers
        .iter()
        .map(|c| c.evaluated_at)
        .max()
        .unwrap_or(0);
    let mut by_at: BTreeMap<i64, Vec<Record>> = BTreeMap::new();
    for record in &records {
        let at = record
            .customer()
            .and_then(|c| stored_at.get(c).copied())
            .unwrap_or(default_at);
        by_at.entry(at).or_default().push(record.clone());
    }
    let mut expected_customers: BTreeMap<String, CustomerRow> = BTreeMap::new();
    let mut expected_states: BTreeMap<String, StateRow> = BTreeMap::new();
    let mut expected_events: BTreeMap<String, Vec<AuditRow>> = BTreeMap::new();
    for (as_of, records) in by_at {
        let known = Known {
            loaded: HashMap::new(),
            unlisted_head: KnownHead::Read(None),
            blocked: HashMap::new(),
            dead_letters: open.clone(),
            audited: Audited::default(),
        };
        let eval = Evaluation {
            policies,
            lineage: &lineage,
            as_of,
        };
        let out = fold(&records, known, &eval, true)?;
        for row in out.customers {
            expected_customers.insert(row.customer_id.clone(), row);
        }
        for row in out.states {
            expected_states.insert(row.customer_id.clone(), row);
        }
        for row in out.events {
            expected_events
                .entry(row.customer_id.clone())
                .or_default()
                .push(row);
        }
    }

    let mut report = VerifyReport {
        log_records: records.len() as u64,
        customers: snapshot.customers.len() as u64,
        audit_rows: snapshot.events.len() as u64,
        differences: Vec::new(),
    };
    let diffs = &mut report.differences;

    // The audit copy against the log.
    let mut stored_events: BTreeMap<String, Vec<AuditRow>> = BTreeMap::new();
    for row in snapshot.events {
        stored_events
            .entry(row.customer_id.clone())
            .or_default()
            .push(row);
    }
    let customers: std::collections::BTreeSet<String> = stored_events
        .keys()
        .chain(expected_events.keys())
        .cloned()
        .collect();
    for customer in &customers {
        let stored = stored_events.get(customer).map_or(&[][..], Vec::as_slice);
        let expected = expected_events.get(customer).map_or(&[][..], Vec::as_slice);
        compare_audit(customer, stored, expected, diffs);
    }
    for (customer, seq) in store.verify_chains().await? {
        diffs.push(Difference {
            customer,
            field: format!("customer_events[{seq}].hash"),
            detail: "the stored chain does not hash its own bytes from here on".into(),
        });
    }

    // The read models against a scratch fold.
    let mut stored_customers: BTreeMap<String, CustomerRow> = snapshot
        .customers
        .into_iter()
        .map(|c| (c.customer_id.clone(), c))
        .collect();
    for (id, expected) in &expected_customers {
        match stored_customers.remove(id) {
            None => diffs.push(Difference {
                customer: id.clone(),
                field: "customers".into(),
                detail: "row missing".into(),
            }),
            Some(stored) => compare_customer(&stored, expected, diffs),
        }
    }
    for id in stored_customers.into_keys() {
        diffs.push(Difference {
            customer: id,
            field: "customers".into(),
            detail: "row not implied by the log".into(),
        });
    }
    let mut stored_states: BTreeMap<String, StateRow> = snapshot
        .states
        .into_iter()
        .map(|s| (s.customer_id.clone(), s))
        .collect();
    for (id, expected) in &expected_states {
        match stored_states.remove(id) {
            None => diffs.push(Difference {
                customer: id.clone(),
                field: "customers.state".into(),
                detail: "row missing".into(),
            }),
            Some(stored) if stored != *expected => diffs.push(Difference {
                customer: id.clone(),
                field: "customers.state".into(),
                detail: format!(
                    "stored {} bytes (format {}) differ from the refolded {} bytes (format {})",
                    stored.state.len(),
                    stored.format,
                    expected.state.len(),
                    expected.format
                ),
            }),
            Some(_) => {}
        }
    }
    for id in stored_states.into_keys() {
        diffs.push(Difference {
            customer: id,
            field: "customers.state".into(),
            detail: "row not implied by the log".into(),
        });
    }
    diffs.sort_by(|a, b| (&a.customer, &a.field).cmp(&(&b.customer, &b.field)));
    Ok(report)
}

/// The log from its start up to each partition's checkpoint (partitions without one have
/// nothing projected and are not read).
async fn read_prefix(
    log: &impl EventLog,
    checkpoints: &BTreeMap<i32, i64>,
) -> Result<Vec<Record>, ProjectorError> {
    let mut records = Vec::new();
    let mut pending: HashSet<i32> = checkpoints.keys().copied().collect();
    if pending.is_empty() {
        return Ok(records);
    }
    let mut stream = log.read(&StartOffsets::new()).await?;
    while !pending.is_empty() {
        let record = match stream.next().await {
            None => return Err(ProjectorError::ReaderStopped),
            Some(Ok(event)) => Record::Event(event),
            Some(Err(ReadError::BadRecord(bad))) => Record::Bad(bad),
            Some(Err(ReadError::Log(err))) => return Err(err.into()),
        };
        let (partition, offset) = record.position();
        let Some(&last) = checkpoints.get(&partition) else {
            continue;
        };
        if offset >= last {
            pending.remove(&partition);
        }
        if offset <= last {
            records.push(record);
        }
    }
    Ok(records)
}

fn compare_audit(
    customer: &str,
    stored: &[AuditRow],
    expected: &[AuditRow],
    diffs: &mut Vec<Difference>,
) {
    let mut push = |field: String, detail: String| {
        diffs.push(Difference {
            customer: customer.to_string(),
            field,
            detail,
        })
    };
    for i in 0..stored.len().max(expected.len()) {
        match (stored.get(i), expected.get(i)) {
            (Some(s), Some(e)) => {
                let at = format!("customer_events[{}]", e.seq);
                if s.seq != e.seq {
                    push(format!("{at}.seq"), format!("stored seq {}", s.seq));
                }
                if s.bytes != e.bytes {
                    push(
                        format!("{at}.bytes"),
                        "stored bytes differ from the log's".into(),
                    );
                }
                if s.event_id != e.event_id {
                    push(format!("{at}.event_id"), "differs from the log's".into());
                }
                if (s.log_partition, s.log_offset) != (e.log_partition, e.log_offset) {
                    push(
                        format!("{at}.position"),
                        format!(
                            "stored {}:{}, the log has it at {}:{}",
                            s.log_partition, s.log_offset, e.log_partition, e.log_offset
                        ),
                    );
                }
                if (s.occurred_at, s.recorded_at, &s.event_type)
                    != (e.occurred_at, e.recorded_at, &e.event_type)
                {
                    push(
                        format!("{at}.times"),
                        "type, occurred_at or recorded_at differ".into(),
                    );
                }
                if s.hash != e.hash {
                    push(
                        format!("{at}.hash"),
                        "differs from the chain recomputed from the log".into(),
                    );
                }
            }
            (None, Some(e)) => push(
                format!("customer_events[{}]", e.seq),
                format!(
                    "missing: the log has event at {}:{}",
                    e.log_partition, e.log_offset
                ),
            ),
            (Some(s), None) => push(
                format!("customer_events[{}]", s.seq),
                "extra: not implied by the log".into(),
            ),
            (None, None) => {}
        }
    }
}

fn compare_customer(stored: &CustomerRow, expected: &CustomerRow, diffs: &mut Vec<Difference>) {
    let mut push = |field: &str, s: String, e: String| {
        diffs.push(Difference {
            customer: stored.customer_id.clone(),
            field: format!("customers.{field}"),
            detail: format!("stored {s}, refolded {e}"),
        })
    };
    macro_rules! fields {
        ($($f:ident),*) => {$(
            if stored.$f != expected.$f {
                push(stringify!($f), format!("{:?}", stored.$f), format!("{:?}", expected.$f));
            }
        )*};
    }
    fields!(
        name,
        owner,
        segment,
        region,
        channel,
        grade,
        score,
        stage,
        stage_since,
        stage_rule,
        risk,
        risk_band,
        open_complaints,
        active_contracts,
        last_purchase_on,
        last_interaction_on,
        last_activity_on,
        currency,
        sales_3m_minor,
        sales_12m_minor,
        factors,
        code_version,
        grading_version,
        lifecycle_version,
        churn_version,
        log_partition,
        log_offset,
        events,
        evaluated_at
    );
    if stored.card != expected.card {
        let s: serde_json::Value = serde_json::from_str(&stored.card).unwrap_or_default();
        let e: serde_json::Value = serde_json::from_str(&expected.card).unwrap_or_default();
        match (s.as_object(), e.as_object()) {
            (Some(s), Some(e)) => {
                let keys: std::collections::BTreeSet<&String> = s.keys().chain(e.keys()).collect();
                let mut any = false;
                for key in keys {
                    if s.get(key) != e.get(key) {
                        any = true;
                        push(
                            &format!("card.{key}"),
                            s.get(key).map_or("(none)".into(), |v| v.to_string()),
                            e.get(key).map_or("(none)".into(), |v| v.to_string()),
                        );
                    }
                }
                if !any {
                    push("card", "other bytes".into(), "same JSON".into());
                }
            }
            _ => push("card", "not a JSON object".into(), "the card JSON".into()),
        }
    }
}
