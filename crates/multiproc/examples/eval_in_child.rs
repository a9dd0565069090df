//! Seed 003: a child evaluates an expression and sends the result back to
//! its parent: through a pipe, through a `Queue`, and as the process's
//! return value.
//!
//! Python's `eval` runs any code; here the child evaluates arithmetic only
//! (integers, `+ - * /`, parentheses), so nothing received can run code.
//!
//! Run: `cargo run --example eval_in_child -- "10+20+30"`

use multiproc::{Connection, Process, Queue, duplex};

/// Evaluate an arithmetic expression over `i64`.
fn eval(expr: &str) -> Result<i64, String> {
    struct P<'a> {
        s: &'a [u8],
        i: usize,
    }
    impl P<'_> {
        fn ws(&mut self) {
            while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
                self.i += 1;
            }
        }
        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.s.get(self.i).copied()
        }
        fn expr(&mut self) -> Result<i64, String> {
            let mut v = self.term()?;
            while let Some(op @ (b'+' | b'-')) = self.peek() {
                self.i += 1;
                let r = self.term()?;
                v = if op == b'+' {
                    v.checked_add(r)
                } else {
                    v.checked_sub(r)
                }
                .ok_or("overflow")?;
            }
            Ok(v)
        }
        fn term(&mut self) -> Result<i64, String> {
            let mut v = self.atom()?;
            while let Some(op @ (b'*' | b'/')) = self.peek() {
                self.i += 1;
                let r = self.atom()?;
                v = if op == b'*' {
                    v.checked_mul(r)
                } else {
                    v.checked_div(r)
                }
                .ok_or("overflow or division by zero")?;
            }
            Ok(v)
        }
        fn atom(&mut self) -> Result<i64, String> {
            match self.peek() {
                Some(b'(') => {
                    self.i += 1;
                    let v = self.expr()?;
                    if self.peek() != Some(b')') {
                        return Err("expected ')'".into());
                    }
                    self.i += 1;
                    Ok(v)
                }
                Some(b'-') => {
                    self.i += 1;
                    Ok(-self.atom()?)
                }
                Some(c) if c.is_ascii_digit() => {
                    let start = self.i;
                    while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                        self.i += 1;
                    }
                    std::str::from_utf8(&self.s[start..self.i])
                        .map_err(|e| e.to_string())?
                        .parse()
                        .map_err(|e: std::num::ParseIntError| e.to_string())
                }
                other => Err(format!("unexpected {:?}", other.map(char::from))),
            }
        }
    }
    let mut p = P {
        s: expr.as_bytes(),
        i: 0,
    };
    let v = p.expr()?;
    if p.peek().is_some() {
        return Err("trailing input".into());
    }
    Ok(v)
}

/// Seed 003's `func(exp, con1)`: evaluate, print, send the result back.
fn func(arg: (String, Connection<Result<i64, String>>)) {
    let (exp, mut con1) = arg;
    let ret = eval(&exp);
    match &ret {
        Ok(v) => println!("child computed {v}"),
        Err(e) => println!("child could not evaluate: {e}"),
    }
    con1.send(&ret).expect("send");
}

/// Seed 003's `func(exp, q)`: evaluate, print, put the result in the queue.
fn func_queue(arg: (String, Queue<Result<i64, String>>)) {
    let (exp, q) = arg;
    let ret = eval(&exp);
    if let Ok(v) = &ret {
        println!("child computed {v}");
    }
    q.put(ret).expect("put");
}

/// The same, returning the value through `join`.
fn func_returning(exp: String) -> Result<i64, String> {
    eval(&exp)
}

fn main() {
    multiproc::init();
    let exp = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "10+20+30".to_string());
    let (con1, mut con2) = duplex().expect("duplex");
    let mut p = Process::spawn(func, (exp.clone(), con1)).expect("spawn");
    match con2.recv().expect("recv") {
        Ok(v) => println!("parent received {v}"),
        Err(e) => println!("parent received an error: {e}"),
    }
    p.join().expect("child failed");

    // The queue is handed to the child as an argument, as in the seed.
    let q = Queue::new().expect("queue");
    let mut p = Process::spawn(func_queue, (exp.clone(), q.clone())).expect("spawn");
    match q.get().expect("get") {
        Ok(v) => println!("queue delivered {v}"),
        Err(e) => println!("queue delivered an error: {e}"),
    }
    p.join().expect("child failed");

    let mut p = Process::spawn(func_returning, exp).expect("spawn");
    match p.join().expect("child failed") {
        Ok(v) => println!("join returned {v}"),
        Err(e) => println!("join returned an error: {e}"),
    }
}
