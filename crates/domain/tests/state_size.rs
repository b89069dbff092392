//! A typical customer's folded state fits in 1 KiB: `size_of::<CustomerState>()` plus the heap
//! it owns (see `common::state_heap_bytes` for how the heap is estimated).

mod common;

use clientlog_domain::CustomerState;

#[test]
fn a_typical_customer_state_fits_in_1_kib() {
    let b = common::typical_customer(7);
    let state = b.state();
    let inline = std::mem::size_of::<CustomerState>();
    let (heap, allocations) = common::state_heap_bytes(&state);
    eprintln!(
        "{} events: state {inline} B inline + {heap} B heap in {allocations} allocations = {} B",
        b.events.len(),
        inline + heap
    );
    assert!(inline + heap <= 1024, "{} B", inline + heap);
    // The allocator's own bookkeeping (about 16 bytes per allocation) is not part of the
    // state's size; it is reported so that memory planning can add it.
    eprintln!(
        "with ~16 B of allocator bookkeeping per allocation: {} B",
        inline + heap + 16 * allocations
    );
}

#[test]
fn the_state_does_not_grow_with_the_number_of_events() {
    let typical = common::typical_customer(1).state();
    let mut long = common::typical_customer(1);
    // 10 000 more purchases and interactions over 27 years.
    for k in 0..10_000 {
        let on = common::noon("2026-03-01") + k * 86_400;
        if k % 2 == 0 {
            long.at(
                on,
                clientlog_domain::EventData::PurchaseRecorded(
                    clientlog_domain::event::PurchaseRecorded {
                        order_id: common::ident(&format!("SO-X-{k}")),
                        amount: common::money(1_000, "CNY"),
                        units: None,
                    },
                ),
            );
        } else {
            long.interaction("2026-03-01", None);
        }
    }
    let long = long.state();
    assert_eq!(
        common::state_heap_bytes(&long).0,
        common::state_heap_bytes(&typical).0
    );
}
