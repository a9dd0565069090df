//! Rows `uds` and `tcp`: [`Listener`]/[`Client`] connections over a Unix
//! socket path and TCP loopback, authenticated once at connect (HMAC-SHA256),
//! then `send_bytes`/`recv_bytes`. The connected ends travel to the measuring
//! child as handles, like every other row's.

use multiproc::connection::{Address, Client, Listener};
use serde_bytes::ByteBuf;

use super::harness::{BenchResult, BytesEnd, Case, pingpong, stream};

const KEY: &[u8] = b"multiproc bench";

/// A connected, authenticated pair of `BytesEnd`s from a listener on `addr`
/// (`None`: a Unix socket in a private directory).
fn net_pair(addr: Option<Address>) -> BenchResult<(BytesEnd, BytesEnd)> {
    let builder = Listener::builder().authkey(KEY);
    let listener = match addr {
        Some(a) => builder.bind(a)?,
        None => builder.bind_private()?,
    };
    let target = listener.address().clone();
    let client = std::thread::spawn(move || Client::connect::<ByteBuf>(target, KEY));
    let server = listener.accept::<ByteBuf>()?;
    let client = client.join().map_err(|_| "client thread panicked")??;
    let end = |c: multiproc::Connection<ByteBuf>| -> BenchResult<BytesEnd> {
        Ok(BytesEnd {
            tx: Some(c.try_clone()?),
            rx: Some(c),
        })
    };
    Ok((end(server)?, end(client)?))
}

fn uds() -> BenchResult<(BytesEnd, BytesEnd)> {
    net_pair(None)
}

fn tcp() -> BenchResult<(BytesEnd, BytesEnd)> {
    net_pair(Some(Address::localhost(0)))
}

/// Add the `uds` and `tcp` rows: pingpong and stream at 64 B and 4 KiB.
pub(super) fn cases(cases: &mut Vec<Case>) {
    type Make = fn() -> BenchResult<(BytesEnd, BytesEnd)>;
    let rows: [(&'static str, Make); 2] = [("uds", uds), ("tcp", tcp)];
    for (name, make) in rows {
        for pattern in ["pingpong", "stream"] {
            for size in [64, 4096] {
                cases.push(Case {
                    mechanism: name,
                    pattern,
                    size,
                    run: Box::new(move |n| match pattern {
                        "pingpong" => pingpong(make()?, size, n),
                        _ => stream(make()?, size, n),
                    }),
                });
            }
        }
    }
}
