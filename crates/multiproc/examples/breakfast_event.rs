//! Seed 000 §4.5: a breakfast vendor and a customer in two processes,
//! handing over with events.
//!
//! The seed uses one event and `set(); clear(); wait()` on both sides, which
//! only works if each side is already waiting when the other sets (a race
//! the seed's timing hides). Here each hand-off has its own event, so the
//! order is guaranteed; `set` followed at once by `clear` would still wake a
//! waiter, as in Python.
//!
//! Run: `cargo run --example breakfast_event`

use multiproc::{Event, Process};

/// The events: the customer ordered, the food is served, the customer paid.
type Events = (Event, Event, Event);

/// Seed's `xiao_fan` (the vendor).
fn xiao_fan((ordered, served, paid): Events) {
    ordered.wait();
    println!("vendor: cooking...");
    println!("vendor: selling...");
    println!("vendor: waiting for the customer to eat");
    served.set();
    paid.wait();
    println!("vendor: thank you, come again");
}

/// Seed's `gu_ke` (the customer).
fn gu_ke((ordered, served, paid): Events) {
    println!("customer: ready to buy breakfast");
    ordered.set();
    served.wait();
    println!("customer: got breakfast");
    println!("customer: enjoying it");
    println!("customer: paying, delicious...");
    paid.set();
}

fn main() {
    multiproc::init();
    let events: Events = (
        Event::new().expect("event"),
        Event::new().expect("event"),
        Event::new().expect("event"),
    );
    let mut gk = Process::spawn(gu_ke, events.clone()).expect("spawn customer");
    let mut xf = Process::spawn(xiao_fan, events).expect("spawn vendor");
    gk.join().expect("customer failed");
    xf.join().expect("vendor failed");
}
