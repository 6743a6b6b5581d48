//! DNS wire format (RFC 1035, SRV from RFC 2782): enough to parse queries and encode answers with A and SRV
//! records, plus a message decoder for clients and tests. Pure functions, no I/O.

use std::net::Ipv4Addr;

/// Record type A.
pub const TYPE_A: u16 = 1;
/// Record type SOA.
pub const TYPE_SOA: u16 = 6;
/// Record type PTR.
pub const TYPE_PTR: u16 = 12;
/// Record type AAAA.
pub const TYPE_AAAA: u16 = 28;
/// Record type SRV.
pub const TYPE_SRV: u16 = 33;
/// Pseudo record type OPT (EDNS0).
pub const TYPE_OPT: u16 = 41;
/// Query type ANY.
pub const TYPE_ANY: u16 = 255;
/// Class IN.
pub const CLASS_IN: u16 = 1;

/// Response code NOERROR.
pub const RCODE_NOERROR: u8 = 0;
/// Response code FORMERR.
pub const RCODE_FORMERR: u8 = 1;
/// Response code SERVFAIL.
pub const RCODE_SERVFAIL: u8 = 2;
/// Response code NXDOMAIN.
pub const RCODE_NXDOMAIN: u8 = 3;
/// Response code NOTIMP.
pub const RCODE_NOTIMP: u8 = 4;

/// A malformed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The message ended in the middle of a field.
    #[error("message truncated at offset {0}")]
    Truncated(usize),
    /// A name is malformed (label too long, pointer loop, non-ASCII).
    #[error("bad name at offset {0}")]
    BadName(usize),
    /// A query with no question.
    #[error("no question")]
    NoQuestion,
}

/// A question: name without the trailing dot, type and class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Name as received (case preserved), without the trailing dot; the root is `""`.
    pub name: String,
    /// Query type.
    pub qtype: u16,
    /// Query class.
    pub qclass: u16,
}

/// Record data berth produces or understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// IPv4 address.
    A(Ipv4Addr),
    /// Service location.
    Srv {
        /// Priority (lower first).
        priority: u16,
        /// Weight among equal priorities.
        weight: u16,
        /// Port.
        port: u16,
        /// Target host name (without trailing dot).
        target: String,
    },
    /// Anything else, kept raw.
    Other {
        /// Record type.
        rtype: u16,
        /// Raw RDATA.
        data: Vec<u8>,
    },
}

impl RData {
    /// The record type.
    pub fn rtype(&self) -> u16 {
        match self {
            RData::A(_) => TYPE_A,
            RData::Srv { .. } => TYPE_SRV,
            RData::Other { rtype, .. } => *rtype,
        }
    }
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, without trailing dot.
    pub name: String,
    /// Time to live in seconds.
    pub ttl: u32,
    /// Data.
    pub data: RData,
}

/// A parsed message (query or response).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Transaction ID.
    pub id: u16,
    /// Whether this is a response (QR).
    pub response: bool,
    /// Opcode (0 = QUERY).
    pub opcode: u8,
    /// Authoritative answer (AA).
    pub authoritative: bool,
    /// Truncated (TC).
    pub truncated: bool,
    /// Recursion desired (RD).
    pub recursion_desired: bool,
    /// Recursion available (RA).
    pub recursion_available: bool,
    /// Response code.
    pub rcode: u8,
    /// Questions.
    pub questions: Vec<Question>,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Additional section (OPT records excluded; see `edns_udp_size`).
    pub additionals: Vec<Record>,
    /// UDP payload size advertised in an EDNS0 OPT record.
    pub edns_udp_size: Option<u16>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, Error> {
        let b = *self.buf.get(self.pos).ok_or(Error::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }
    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from(self.u16()?) << 16 | u32::from(self.u16()?))
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(Error::Truncated(self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// Reads a possibly compressed name.
    fn name(&mut self) -> Result<String, Error> {
        let mut labels: Vec<String> = Vec::new();
        let mut pos = self.pos;
        let mut jumped = false;
        let mut hops = 0;
        loop {
            let len = *self.buf.get(pos).ok_or(Error::Truncated(pos))?;
            match len & 0xC0 {
                0x00 => {
                    pos += 1;
                    if len == 0 {
                        break;
                    }
                    let end = pos + usize::from(len);
                    let label = self.buf.get(pos..end).ok_or(Error::Truncated(pos))?;
                    if !label.iter().all(|b| b.is_ascii_graphic()) || label.contains(&b'.') {
                        return Err(Error::BadName(pos));
                    }
                    labels.push(String::from_utf8_lossy(label).into_owned());
                    pos = end;
                }
                0xC0 => {
                    let lo = *self.buf.get(pos + 1).ok_or(Error::Truncated(pos))?;
                    if !jumped {
                        self.pos = pos + 2;
                    }
                    jumped = true;
                    hops += 1;
                    if hops > 32 {
                        return Err(Error::BadName(pos));
                    }
                    pos = usize::from(len & 0x3F) << 8 | usize::from(lo);
                }
                _ => return Err(Error::BadName(pos)),
            }
        }
        if !jumped {
            self.pos = pos;
        }
        let name = labels.join(".");
        if name.len() > 253 {
            return Err(Error::BadName(self.pos));
        }
        Ok(name)
    }
}

/// Parses a whole message.
///
/// # Errors
/// The message is truncated or a name is malformed.
pub fn parse(buf: &[u8]) -> Result<Message, Error> {
    let mut r = Reader { buf, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let (qd, an, ns, ar) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    let mut m = Message {
        id,
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xF) as u8,
        authoritative: flags & 0x0400 != 0,
        truncated: flags & 0x0200 != 0,
        recursion_desired: flags & 0x0100 != 0,
        recursion_available: flags & 0x0080 != 0,
        rcode: (flags & 0xF) as u8,
        ..Default::default()
    };
    for _ in 0..qd {
        let name = r.name()?;
        m.questions.push(Question {
            name,
            qtype: r.u16()?,
            qclass: r.u16()?,
        });
    }
    for section in 0..3 {
        let count = [an, ns, ar][section];
        for _ in 0..count {
            let name = r.name()?;
            let (rtype, class, ttl, len) = (r.u16()?, r.u16()?, r.u32()?, r.u16()?);
            let start = r.pos;
            let raw = r.bytes(usize::from(len))?;
            if rtype == TYPE_OPT {
                m.edns_udp_size = Some(class);
                continue;
            }
            let data = match rtype {
                TYPE_A if raw.len() == 4 => RData::A(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
                TYPE_SRV if raw.len() >= 7 => {
                    let mut sub = Reader { buf, pos: start };
                    let (priority, weight, port) = (sub.u16()?, sub.u16()?, sub.u16()?);
                    RData::Srv {
                        priority,
                        weight,
                        port,
                        target: sub.name()?,
                    }
                }
                _ => RData::Other {
                    rtype,
                    data: raw.to_vec(),
                },
            };
            let rec = Record { name, ttl, data };
            match section {
                0 => m.answers.push(rec),
                2 => m.additionals.push(rec),
                _ => {}
            }
        }
    }
    Ok(m)
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
}

fn put_record(out: &mut Vec<u8>, rec: &Record, qname: Option<&str>) {
    // The question name always sits at offset 12; answers for it point there (saves bytes on big headless answers).
    match qname {
        Some(q) if q.eq_ignore_ascii_case(&rec.name) => put_u16(out, 0xC00C),
        _ => put_name(out, &rec.name),
    }
    put_u16(out, rec.data.rtype());
    put_u16(out, CLASS_IN);
    out.extend_from_slice(&rec.ttl.to_be_bytes());
    let len_at = out.len();
    put_u16(out, 0);
    match &rec.data {
        RData::A(ip) => out.extend_from_slice(&ip.octets()),
        RData::Srv {
            priority,
            weight,
            port,
            target,
        } => {
            put_u16(out, *priority);
            put_u16(out, *weight);
            put_u16(out, *port);
            put_name(out, target);
        }
        RData::Other { data, .. } => out.extend_from_slice(data),
    }
    let len = (out.len() - len_at - 2) as u16;
    out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
}

/// Encodes a message. Only the first question is used for answer-name compression.
pub fn encode(m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    put_u16(&mut out, m.id);
    let mut flags: u16 = u16::from(m.opcode & 0xF) << 11 | u16::from(m.rcode & 0xF);
    for (bit, on) in [
        (0x8000, m.response),
        (0x0400, m.authoritative),
        (0x0200, m.truncated),
        (0x0100, m.recursion_desired),
        (0x0080, m.recursion_available),
    ] {
        if on {
            flags |= bit;
        }
    }
    put_u16(&mut out, flags);
    put_u16(&mut out, m.questions.len() as u16);
    put_u16(&mut out, m.answers.len() as u16);
    put_u16(&mut out, 0);
    put_u16(
        &mut out,
        (m.additionals.len() + usize::from(m.edns_udp_size.is_some())) as u16,
    );
    for q in &m.questions {
        put_name(&mut out, &q.name);
        put_u16(&mut out, q.qtype);
        put_u16(&mut out, q.qclass);
    }
    let qname = m.questions.first().map(|q| q.name.as_str());
    for r in &m.answers {
        put_record(&mut out, r, qname);
    }
    for r in &m.additionals {
        put_record(&mut out, r, qname);
    }
    if let Some(size) = m.edns_udp_size {
        out.push(0);
        put_u16(&mut out, TYPE_OPT);
        put_u16(&mut out, size);
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    out
}

/// Encodes a standard recursive query for `name`/`qtype` (clients and tests).
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    encode(&Message {
        id,
        recursion_desired: true,
        questions: vec![Question {
            name: name.trim_end_matches('.').to_string(),
            qtype,
            qclass: CLASS_IN,
        }],
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trips() {
        let q = query(0xBEEF, "web.default.svc.cluster.local.", TYPE_SRV);
        let m = parse(&q).unwrap();
        assert_eq!(m.id, 0xBEEF);
        assert!(m.recursion_desired && !m.response);
        assert_eq!(
            m.questions,
            vec![Question {
                name: "web.default.svc.cluster.local".into(),
                qtype: TYPE_SRV,
                qclass: CLASS_IN
            }]
        );
    }

    #[test]
    fn response_with_a_srv_and_edns_round_trips() {
        let m = Message {
            id: 7,
            response: true,
            authoritative: true,
            rcode: RCODE_NOERROR,
            questions: vec![Question {
                name: "_http._tcp.web.default.svc.cluster.local".into(),
                qtype: TYPE_SRV,
                qclass: CLASS_IN,
            }],
            answers: vec![Record {
                name: "_http._tcp.web.default.svc.cluster.local".into(),
                ttl: 5,
                data: RData::Srv {
                    priority: 0,
                    weight: 100,
                    port: 80,
                    target: "web.default.svc.cluster.local".into(),
                },
            }],
            additionals: vec![Record {
                name: "web.default.svc.cluster.local".into(),
                ttl: 5,
                data: RData::A(Ipv4Addr::new(10, 96, 0, 20)),
            }],
            edns_udp_size: Some(1232),
            ..Default::default()
        };
        let bytes = encode(&m);
        // The answer's owner name is a pointer to the question.
        let after_q = 12 + "_http._tcp.web.default.svc.cluster.local".len() + 2 + 4;
        assert_eq!(&bytes[after_q..after_q + 2], &[0xC0, 0x0C]);
        assert_eq!(parse(&bytes).unwrap(), m);
    }

    #[test]
    fn known_packet_from_dig_parses() {
        // dig +noedns A example.com, id 0x1234
        let pkt: Vec<u8> = vec![
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l',
            b'e', 3, b'c', b'o', b'm', 0, 0, 1, 0, 1,
        ];
        let m = parse(&pkt).unwrap();
        assert_eq!(m.questions[0].name, "example.com");
        assert_eq!(m.questions[0].qtype, TYPE_A);
        assert_eq!(query(0x1234, "example.com", TYPE_A), pkt);
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        assert!(matches!(parse(&[0, 1, 2]), Err(Error::Truncated(_))));
        let mut q = query(1, "a.b", TYPE_A);
        q.truncate(q.len() - 3);
        assert!(parse(&q).is_err());
        // A pointer to itself must not loop forever.
        let looped = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1];
        assert_eq!(parse(&looped), Err(Error::BadName(12)));
        // Every prefix of a valid message either parses or errors.
        let full = encode(&Message {
            id: 1,
            questions: vec![Question {
                name: "x.y".into(),
                qtype: TYPE_A,
                qclass: CLASS_IN,
            }],
            answers: vec![Record {
                name: "x.y".into(),
                ttl: 1,
                data: RData::A(Ipv4Addr::LOCALHOST),
            }],
            ..Default::default()
        });
        for n in 0..full.len() {
            let _ = parse(&full[..n]);
        }
    }
}
