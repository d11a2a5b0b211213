//! A small D-Bus client: the part of the wire protocol the systemd cgroup driver needs to call
//! the service manager and wait for its jobs. Little-endian messages, SASL EXTERNAL auth, no fd
//! passing. A crate would bring an async runtime or libdbus (and its dynamic linking) for a
//! handful of method calls made by a process that lives a few milliseconds.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};

/// A D-Bus value; arrays carry their element signature so that an empty one can be written.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Str(String),
    Path(String),
    Sig(String),
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn variant(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }

    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => {
                let inner: String = fields.iter().map(Value::signature).collect();
                format!("({inner})")
            }
            Value::Variant(_) => "v".into(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            Value::Variant(v) => v.as_str(),
            _ => None,
        }
    }
}

/// A failed call: the error name and message systemd sent back.
#[derive(Debug, Clone)]
pub struct CallError {
    pub name: String,
    pub message: String,
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

#[derive(Debug, Default)]
pub struct Message {
    pub kind: u8,
    pub serial: u32,
    pub reply_serial: Option<u32>,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub body: Vec<Value>,
}

pub struct Bus {
    sock: BufReader<UnixStream>,
    serial: u32,
    /// Signals read while waiting for a reply, kept for a later wait.
    signals: VecDeque<Message>,
    /// Whether a message bus (rather than a peer-to-peer socket) is on the other end: calls
    /// then need a destination.
    routed: bool,
}

impl Bus {
    /// Connects and authenticates as this process's uid. `routed` is true for a message bus
    /// (the system bus), which also needs the Hello call.
    pub fn connect(path: &Path, routed: bool) -> Result<Bus> {
        let sock = UnixStream::connect(path).ctx(|| format!("connect to {}", path.display()))?;
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .ctx(|| "set a D-Bus read timeout")?;
        let mut bus = Bus {
            sock: BufReader::new(sock),
            serial: 0,
            signals: VecDeque::new(),
            routed,
        };
        bus.auth()
            .map_err(|e| e.context(format!("D-Bus auth on {}", path.display())))?;
        if routed {
            bus.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                vec![],
            )?
            .map_err(|e| Error::msg(format!("D-Bus Hello: {}: {}", e.name, e.message)))?;
        }
        Ok(bus)
    }

    fn auth(&mut self) -> Result<()> {
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        let w = self.sock.get_mut();
        w.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .ctx(|| "send AUTH")?;
        let mut line = String::new();
        self.sock.read_line(&mut line).ctx(|| "read AUTH reply")?;
        if !line.starts_with("OK ") {
            return Err(Error::msg(format!(
                "rejected: {:?}",
                line.trim_end_matches(['\r', '\n'])
            )));
        }
        self.sock
            .get_mut()
            .write_all(b"BEGIN\r\n")
            .ctx(|| "send BEGIN")?;
        // systemd's sd-bus (252 at least) leaves a message that arrived in the same read as
        // BEGIN unprocessed until more data comes: the first call would wait for ever. So the
        // first message goes only once BEGIN has been read.
        let deadline = Instant::now() + Duration::from_secs(30);
        while crate::sys::unread_by_peer(self.sock.get_ref().as_fd()).ctx(|| "SIOCOUTQ")? > 0 {
            if Instant::now() > deadline {
                return Err(Error::msg("the bus never read BEGIN"));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    /// Calls a method and waits for its reply: Ok(Err) is an error the peer answered with.
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        args: Vec<Value>,
    ) -> Result<std::result::Result<Vec<Value>, CallError>> {
        self.serial += 1;
        let serial = self.serial;
        let mut fields = vec![
            (1u8, Value::Path(path.into())),
            (2, Value::str(iface)),
            (3, Value::str(member)),
        ];
        if self.routed {
            fields.push((6, Value::str(dest)));
        }
        let msg = encode_message(METHOD_CALL, serial, fields, &args);
        crate::log::debug(&format!("dbus: call #{serial} {iface}.{member} {path}"));
        self.sock
            .get_mut()
            .write_all(&msg)
            .ctx(|| format!("D-Bus call {iface}.{member}"))?;
        loop {
            let m = self
                .read_message()
                .map_err(|e| e.context(format!("D-Bus reply to {iface}.{member}")))?;
            match m.kind {
                METHOD_RETURN | ERROR if m.reply_serial == Some(serial) => {
                    if m.kind == METHOD_RETURN {
                        return Ok(Ok(m.body));
                    }
                    let message = m
                        .body
                        .first()
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    return Ok(Err(CallError {
                        name: m.error_name.unwrap_or_default(),
                        message,
                    }));
                }
                SIGNAL => self.signals.push_back(m),
                _ => {}
            }
        }
    }

    /// Waits for a signal `keep` accepts, looking first at those that arrived during calls.
    pub fn wait_signal(
        &mut self,
        timeout: Duration,
        mut keep: impl FnMut(&Message) -> bool,
    ) -> Result<Message> {
        if let Some(i) = self.signals.iter().position(&mut keep) {
            return Ok(self.signals.remove(i).expect("index from position"));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::msg(format!(
                    "no answer from systemd in {} s",
                    timeout.as_secs()
                )));
            }
            self.sock
                .get_ref()
                .set_read_timeout(Some(left))
                .ctx(|| "set a D-Bus read timeout")?;
            let m = match self.read_message() {
                Ok(m) => m,
                Err(e) if matches!(e.errno(), Some(nix::errno::Errno::EAGAIN)) => continue,
                Err(e) => return Err(e),
            };
            if m.kind == SIGNAL && keep(&m) {
                return Ok(m);
            }
        }
    }

    fn read_message(&mut self) -> Result<Message> {
        let mut fixed = [0u8; 16];
        self.sock.read_exact(&mut fixed).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                Error::msg("the bus closed the connection")
            } else {
                Error::io("read a D-Bus message", &e)
            }
        })?;
        if fixed[0] != b'l' {
            return Err(Error::msg("big-endian D-Bus message: not supported"));
        }
        let body_len = u32::from_le_bytes(fixed[4..8].try_into().expect("4 bytes")) as usize;
        let fields_len = u32::from_le_bytes(fixed[12..16].try_into().expect("4 bytes")) as usize;
        let header_len = (16 + fields_len).next_multiple_of(8);
        if header_len + body_len > 128 << 20 {
            return Err(Error::msg("D-Bus message larger than the protocol allows"));
        }
        let mut rest = vec![0u8; header_len - 16 + body_len];
        self.sock
            .read_exact(&mut rest)
            .map_err(|e| Error::io("read a D-Bus message", &e))?;
        let mut all = fixed.to_vec();
        all.extend_from_slice(&rest);
        let m = decode_message(&all).ok_or_else(|| Error::msg("malformed D-Bus message"))?;
        crate::log::debug(&format!(
            "dbus: got kind {} #{} reply to {:?} {:?} {:?} {:?}",
            m.kind,
            m.serial,
            m.reply_serial,
            m.member,
            m.error_name,
            m.body.first()
        ));
        Ok(m)
    }
}

fn encode_message(kind: u8, serial: u32, mut fields: Vec<(u8, Value)>, body: &[Value]) -> Vec<u8> {
    let mut b = Enc::default();
    for v in body {
        b.value(v);
    }
    let sig: String = body.iter().map(Value::signature).collect();
    if !sig.is_empty() {
        fields.push((8, Value::Sig(sig)));
    }
    let mut h = Enc::default();
    h.buf.extend_from_slice(&[b'l', kind, 0, 1]);
    h.u32(b.buf.len() as u32);
    h.u32(serial);
    let fields = Value::Array(
        "(yv)".into(),
        fields
            .into_iter()
            .map(|(code, v)| Value::Struct(vec![Value::Byte(code), Value::variant(v)]))
            .collect(),
    );
    h.value(&fields);
    h.pad(8);
    h.buf.extend_from_slice(&b.buf);
    h.buf
}

fn decode_message(buf: &[u8]) -> Option<Message> {
    let mut d = Dec { buf, pos: 12 };
    let mut m = Message {
        kind: buf[1],
        serial: u32::from_le_bytes(buf[8..12].try_into().ok()?),
        ..Default::default()
    };
    let body_len = u32::from_le_bytes(buf[4..8].try_into().ok()?) as usize;
    let Value::Array(_, fields) = d.value(b"a(yv)")? else {
        return None;
    };
    let mut sig = String::new();
    for f in fields {
        let Value::Struct(kv) = f else { return None };
        let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (kv.first(), kv.get(1)) else {
            return None;
        };
        match (code, v.as_ref()) {
            (1, Value::Path(s)) => m.path = Some(s.clone()),
            (2, Value::Str(s)) => m.interface = Some(s.clone()),
            (3, Value::Str(s)) => m.member = Some(s.clone()),
            (4, Value::Str(s)) => m.error_name = Some(s.clone()),
            (5, Value::U32(n)) => m.reply_serial = Some(*n),
            (8, Value::Sig(s)) => sig = s.clone(),
            _ => {}
        }
    }
    d.align(8);
    if buf.len() != d.pos + body_len {
        return None;
    }
    let mut sig = sig.as_bytes();
    while !sig.is_empty() {
        let n = one_type(sig)?;
        m.body.push(d.value(&sig[..n])?);
        sig = &sig[n..];
    }
    Some(m)
}

/// The length of the first complete type in a signature.
fn one_type(sig: &[u8]) -> Option<usize> {
    match *sig.first()? {
        b'a' => Some(1 + one_type(&sig[1..])?),
        open @ (b'(' | b'{') => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut i = 1;
            while *sig.get(i)? != close {
                i += one_type(&sig[i..])?;
            }
            Some(i + 1)
        }
        _ => Some(1),
    }
}

fn alignment(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

#[derive(Default)]
struct Enc {
    buf: Vec<u8>,
}

impl Enc {
    fn pad(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I32(n) => self.u32(*n as u32),
            Value::U32(n) => self.u32(*n),
            Value::I64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::U64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::Str(s) | Value::Path(s) => {
                self.u32(s.len() as u32);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Sig(s) => {
                self.buf.push(s.len() as u8);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Array(elem, items) => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                // The length counts from the first element, after its alignment padding.
                self.pad(alignment(elem.as_bytes()[0]));
                let start = self.buf.len();
                for i in items {
                    self.value(i);
                }
                let len = (self.buf.len() - start) as u32;
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.value(f);
                }
            }
            Value::Variant(inner) => {
                self.value(&Value::Sig(inner.signature()));
                self.value(inner);
            }
        }
    }
}

struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Dec<'_> {
    fn align(&mut self, n: usize) {
        self.pos = self.pos.next_multiple_of(n);
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        self.align(4);
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        self.align(8);
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn string(&mut self, len: usize) -> Option<String> {
        let s = String::from_utf8(self.take(len)?.to_vec()).ok()?;
        self.take(1)?;
        Some(s)
    }

    /// One value of the complete type `sig`.
    fn value(&mut self, sig: &[u8]) -> Option<Value> {
        Some(match sig[0] {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => Value::Bool(self.u32()? != 0),
            b'n' | b'q' => {
                self.align(2);
                Value::U32(u32::from(u16::from_le_bytes(
                    self.take(2)?.try_into().ok()?,
                )))
            }
            b'i' => Value::I32(self.u32()? as i32),
            b'u' | b'h' => Value::U32(self.u32()?),
            b'x' => Value::I64(self.u64()? as i64),
            b't' | b'd' => Value::U64(self.u64()?),
            b's' | b'o' => {
                let n = self.u32()? as usize;
                let s = self.string(n)?;
                if sig[0] == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            b'g' => {
                let n = usize::from(self.take(1)?[0]);
                Value::Sig(self.string(n)?)
            }
            b'v' => {
                let n = usize::from(self.take(1)?[0]);
                let inner = self.string(n)?;
                let inner = inner.as_bytes();
                if inner.is_empty() || one_type(inner)? != inner.len() {
                    return None;
                }
                Value::variant(self.value(inner)?)
            }
            b'a' => {
                let n = self.u32()? as usize;
                let elem = &sig[1..1 + one_type(&sig[1..])?];
                self.align(alignment(elem[0]));
                let end = self.pos.checked_add(n)?;
                if end > self.buf.len() {
                    return None;
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem)?);
                }
                Value::Array(String::from_utf8(elem.to_vec()).ok()?, items)
            }
            b'(' | b'{' => {
                self.align(8);
                let mut inner = &sig[1..sig.len() - 1];
                let mut fields = Vec::new();
                while !inner.is_empty() {
                    let n = one_type(inner)?;
                    fields.push(self.value(&inner[..n])?);
                    inner = &inner[n..];
                }
                Value::Struct(fields)
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_encode_and_decode() {
        let props = Value::Array(
            "(sv)".into(),
            vec![
                Value::Struct(vec![
                    Value::str("Delegate"),
                    Value::variant(Value::Bool(true)),
                ]),
                Value::Struct(vec![
                    Value::str("PIDs"),
                    Value::variant(Value::Array("u".into(), vec![Value::U32(42)])),
                ]),
                Value::Struct(vec![
                    Value::str("MemoryMax"),
                    Value::variant(Value::U64(1 << 30)),
                ]),
            ],
        );
        let body = vec![
            Value::str("husk-c1.scope"),
            Value::str("replace"),
            props,
            Value::Array("(sa(sv))".into(), vec![]),
        ];
        let msg = encode_message(
            METHOD_CALL,
            7,
            vec![(1, Value::Path("/org/freedesktop/systemd1".into()))],
            &body,
        );
        let m = decode_message(&msg).expect("decodes");
        assert_eq!(m.serial, 7);
        assert_eq!(m.path.as_deref(), Some("/org/freedesktop/systemd1"));
        assert_eq!(m.body, body);
    }

    #[test]
    fn an_empty_array_of_eight_aligned_structs_is_padded_after_its_length() {
        // The spec: the padding to the element's alignment follows the length even when
        // there is no element, and the length does not count it.
        let mut e = Enc::default();
        e.value(&Value::Array("(sv)".into(), vec![]));
        assert_eq!(e.buf, vec![0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn signatures_split_into_complete_types() {
        assert_eq!(one_type(b"a(sv)s"), Some(5));
        assert_eq!(one_type(b"(sa(sv))"), Some(8));
        assert_eq!(one_type(b"a{sv}"), Some(5));
        assert_eq!(one_type(b"(s"), None);
    }

    #[test]
    fn truncated_input_is_refused_not_a_panic() {
        let msg = encode_message(
            METHOD_RETURN,
            1,
            vec![(5, Value::U32(1))],
            &[Value::str("x")],
        );
        for n in 16..msg.len() {
            let _ = decode_message(&msg[..n]);
        }
    }
}
