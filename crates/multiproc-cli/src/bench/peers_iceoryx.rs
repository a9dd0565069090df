//! Rows `peer-iceoryx2-loan` and `peer-iceoryx2-copy`: iceoryx2's
//! publish-subscribe over shared memory, one service per direction.
//! iceoryx2's subscriber does not block, so the receiving side busy-polls:
//! its ping-pong is compared with multiproc's busy ping-pong
//! (`pingpong-busy`).
//!
//! A subscriber's buffer overflows by dropping its oldest sample, and its
//! blocking alternative (`enable_safe_overflow(false)` with
//! `RetryUntilDelivered`) lost samples here (iceoryx2 0.10: 1 stream in 2
//! of 2,000 64-byte messages stalled with up to 60 never delivered; see
//! iceoryx2 issue 1697 on that mode). The stream therefore runs with a
//! window: the receiver grants a credit every `WINDOW` messages, so no more
//! than `WINDOW` (half the buffer) are ever in flight and none is dropped.
//!
//! - loan: the payload is written straight into the loaned sample (filled
//!   in place) and read in place (no copy out): zero-copy.
//! - copy: the payload is copied in from a buffer and out into one, as
//!   every other row does.

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use serde::{Deserialize, Serialize};

use std::time::Instant;

use multiproc::Process;

use super::harness::{
    BenchResult, Case, Endpoint, Job, SIZES, Sample, cpu_pair, fresh, pin_child, pingpong,
};

/// This process's parent when its first end opened: a busy-polling
/// receiver whose parent changed (it was orphaned) gives up.
static PARENT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// Samples a subscriber's buffer holds.
const BUFFER: usize = 64;
/// Messages a stream's sender may have in flight (a credit comes back
/// after each window).
const WINDOW: usize = BUFFER / 2;

/// The ports of one side: it receives on `rx` and publishes on `tx`.
struct Ports {
    // Fields drop in order: the ports before the node that made them.
    sub: Subscriber<ipc_threadsafe::Service, [u8], ()>,
    publisher: Publisher<ipc_threadsafe::Service, [u8], ()>,
    tx_service: iceoryx2::service::port_factory::publish_subscribe::PortFactory<
        ipc_threadsafe::Service,
        [u8],
        (),
    >,
    _rx_service: iceoryx2::service::port_factory::publish_subscribe::PortFactory<
        ipc_threadsafe::Service,
        [u8],
        (),
    >,
    _node: Node<ipc_threadsafe::Service>,
}

/// One side of an iceoryx2 measurement, opened where it is first used.
#[derive(Serialize, Deserialize)]
struct IceEnd {
    rx: String,
    tx: String,
    size: usize,
    /// Loan form (write and read in place) or copy form.
    loan: bool,
    #[serde(skip)]
    ports: Option<Ports>,
}

fn service(
    node: &Node<ipc_threadsafe::Service>,
    name: &str,
) -> Result<
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<
        ipc_threadsafe::Service,
        [u8],
        (),
    >,
    Box<dyn std::error::Error>,
> {
    let name: ServiceName = name.try_into()?;
    Ok(node
        .service_builder(&name)
        .publish_subscribe::<[u8]>()
        .subscriber_max_buffer_size(BUFFER)
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(1)
        .open_or_create()?)
}

impl IceEnd {
    fn pair(size: usize, loan: bool) -> (IceEnd, IceEnd) {
        let (a, b) = (fresh("iceoryx2-a"), fresh("iceoryx2-b"));
        let end = |rx: &str, tx: &str| IceEnd {
            rx: rx.to_owned(),
            tx: tx.to_owned(),
            size,
            loan,
            ports: None,
        };
        (end(&a, &b), end(&b, &a))
    }

    fn open(&mut self) -> BenchResult<Ports> {
        // Its default config is what is measured; no need to say so per
        // process.
        set_log_level_from_env_or(LogLevel::Error);
        let node = NodeBuilder::new().create::<ipc_threadsafe::Service>()?;
        let rx_service = service(&node, &self.rx)?;
        let tx_service = service(&node, &self.tx)?;
        // Our subscriber first, then wait for the peer's: a sample
        // published before a subscriber exists is not delivered to it.
        let sub = rx_service
            .subscriber_builder()
            .buffer_size(BUFFER)
            .create()?;
        let publisher = tx_service
            .publisher_builder()
            .initial_max_slice_len(self.size.max(1))
            .max_loaned_samples(2)
            .create()?;
        while tx_service.dynamic_config().number_of_subscribers() == 0 {
            std::thread::yield_now();
        }
        Ok(Ports {
            sub,
            publisher,
            tx_service,
            _rx_service: rx_service,
            _node: node,
        })
    }

    fn ports(&mut self) -> &Ports {
        if self.ports.is_none() {
            PARENT.get_or_init(std::os::unix::process::parent_id);
            self.ports = Some(self.open().expect("open the iceoryx2 services"));
        }
        self.ports.as_ref().expect("just opened")
    }
}

impl Endpoint for IceEnd {
    fn send(&mut self, msg: &[u8]) {
        let loan = self.loan;
        let p = self.ports();
        let sample = p.publisher.loan_slice_uninit(msg.len()).expect("loan");
        let sample = if loan {
            sample.write_from_fn(|_| 0x5A)
        } else {
            sample.write_from_slice(msg)
        };
        sample.send().expect("send");
        let _ = &p.tx_service;
    }
    fn recv(&mut self, buf: &mut Vec<u8>) {
        let loan = self.loan;
        let p = self.ports();
        let mut spins = 0u32;
        loop {
            if let Some(sample) = p.sub.receive().expect("receive") {
                let payload = sample.payload();
                if loan {
                    // Read in place: the first and last byte, as a consumer
                    // that looks at a header and its end would.
                    std::hint::black_box((payload.first(), payload.last()));
                } else {
                    buf.clear();
                    buf.extend_from_slice(payload);
                }
                return;
            }
            spins += 1;
            if spins.is_multiple_of(1024) {
                // A busy-poll must not outlive a killed bench: an orphan
                // (reparented) gives up.
                if std::os::unix::process::parent_id() != *PARENT.get_or_init(|| 0) {
                    std::process::exit(1);
                }
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// The stream pattern with a credit per `WINDOW` messages, and a last word
/// from the receiver before the sender exits (a publisher's samples vanish
/// with it: its shared-memory segment goes when it drops). The parent's
/// clock runs from the first arrival to the last.
fn ice_stream(size: usize, count: usize, loan: bool) -> BenchResult<Sample> {
    let (mut mine, theirs) = IceEnd::pair(size, loan);
    let job = Job {
        size,
        count,
        cpu: cpu_pair().map(|p| p.1),
    };
    let mut child = Process::spawn(ice_stream_child, (theirs, job))?;
    let mut buf = vec![0u8; size];
    let mut start = Instant::now();
    for got in 1..=count {
        buf.resize(size, 0);
        mine.recv(&mut buf);
        if got == 1 {
            start = Instant::now();
        }
        if got % WINDOW == 0 {
            mine.send(&[1]);
        }
    }
    let elapsed = start.elapsed();
    mine.send(&[0]);
    child.join()?;
    Ok(Sample::Stream(count - 1, elapsed))
}

fn ice_stream_child((mut end, job): (IceEnd, Job)) {
    pin_child(&job);
    let msg = vec![0x5Au8; job.size];
    let mut credit = vec![0u8; 1];
    for i in 0..job.count {
        if i >= WINDOW && i % WINDOW == 0 {
            end.recv(&mut credit);
        }
        end.send(&msg);
    }
    // The credits not used, then the last word: the receiver sends one
    // credit per full window it got, and the word.
    let used = job.count.saturating_sub(1) / WINDOW;
    for _ in used..job.count / WINDOW + 1 {
        end.recv(&mut credit);
    }
}

/// Add the iceoryx2 rows.
pub(super) fn cases(cases: &mut Vec<Case>) {
    for (name, loan) in [("peer-iceoryx2-loan", true), ("peer-iceoryx2-copy", false)] {
        for size in SIZES {
            cases.push(Case {
                mechanism: name,
                pattern: "pingpong-busy",
                size,
                run: Box::new(move |n| pingpong(IceEnd::pair(size, loan), size, n)),
            });
            cases.push(Case {
                mechanism: name,
                pattern: "stream",
                size,
                run: Box::new(move |n| ice_stream(size, n, loan)),
            });
        }
    }
}
