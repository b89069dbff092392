//! The projector persists customer states between batches: encode → decode must be exact.

use clientlog_domain::churn_eval::read_cdnow;
use clientlog_domain::event::{EventData, EventId, PurchaseRecorded};
use clientlog_domain::values::{Currency, CustomerId, Ident, Money, Source};
use clientlog_domain::{CustomerState, Event};
use time::{PrimitiveDateTime, Time};
use uuid::Uuid;

#[test]
fn encoded_state_decodes_to_the_same_state() {
    let purchases = read_cdnow(include_str!("data/cdnow_sample.txt")).unwrap();
    let mut state = CustomerState::default();
    let customer = &purchases[0].customer;
    for (i, p) in purchases
        .iter()
        .filter(|p| &p.customer == customer)
        .enumerate()
    {
        state.apply(&Event {
            id: EventId(Uuid::from_u128(i as u128)),
            source: Source::parse("/test").unwrap(),
            subject: CustomerId::parse(customer).unwrap(),
            time: PrimitiveDateTime::new(p.date, Time::MIDNIGHT).assume_utc(),
            actor: None,
            data: EventData::PurchaseRecorded(PurchaseRecorded {
                order_id: Ident::parse(&format!("O{i}")).unwrap(),
                amount: Money::new(p.amount_minor, Currency::parse("USD").unwrap()).unwrap(),
                units: None,
            }),
        });
    }
    assert!(state.purchases.orders > 1);
    let bytes = state.encode();
    assert_eq!(CustomerState::decode(&bytes).unwrap(), state);
    assert!(bytes.len() < 512, "encoded state is {} bytes", bytes.len());
    assert!(CustomerState::decode(&bytes[..bytes.len() / 2]).is_err());
}
