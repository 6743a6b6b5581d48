//! berth-probe: the measurement program `berthctl bench` runs in its pods (and on a lab host for
//! the reference rows). Each mode prints exactly one JSON line on stdout, so the bench reads the
//! result from the pod's log; a failure prints `{"error": "..."}` and exits 1, never panics.
//!
//! # Layout
//! - `net`: `serve`, `tcp-rr`, `udp-rr`, `tcp-stream`
//! - `disk`: sequential and random I/O in a directory
//! - `cpu`: the fixed SHA-256 kernel
//! - `stats`, `json`: percentiles and the one-line output

mod cpu;
mod disk;
mod json;
mod net;
mod stats;

use std::io::Write;
use std::path::PathBuf;

const USAGE: &str = "usage: berth-probe serve [--port P] [--max-seconds S] | tcp-rr|udp-rr|tcp-stream HOST:PORT [--seconds S] [--timeout-ms T] | disk DIR [--size MiB] [--seconds S] | cpu [--iterations N] [--samples K]";

/// One invocation, parsed and bounds-checked.
#[derive(Debug, Clone, PartialEq)]
enum Command {
    Serve {
        port: u16,
        max_seconds: u64,
    },
    TcpRr {
        target: String,
        seconds: u64,
    },
    UdpRr {
        target: String,
        seconds: u64,
        timeout_ms: u64,
    },
    TcpStream {
        target: String,
        seconds: u64,
    },
    Disk {
        dir: PathBuf,
        plan: disk::Plan,
    },
    Cpu {
        iterations: u64,
        samples: u32,
    },
}

/// Flags common to the modes; each mode reads the ones it knows, and a flag it does not is an error.
#[derive(Debug, Default)]
struct Flags {
    positional: Vec<String>,
    named: Vec<(String, u64)>,
}

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, String> {
        let mut f = Flags::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                let n = v
                    .parse::<u64>()
                    .map_err(|_| format!("--{name}: not a whole number: {v}"))?;
                f.named.push((name.to_string(), n));
            } else {
                f.positional.push(a.clone());
            }
        }
        Ok(f)
    }

    /// Takes `--name` bounded to `lo..=hi`, or `default`.
    fn take(&mut self, name: &str, default: u64, lo: u64, hi: u64) -> Result<u64, String> {
        let v = match self.named.iter().position(|(n, _)| n == name) {
            Some(i) => self.named.remove(i).1,
            None => default,
        };
        if v < lo || v > hi {
            return Err(format!("--{name} must be in {lo}..={hi}, got {v}"));
        }
        Ok(v)
    }

    /// Fails on flags or positionals no mode took.
    fn done(self, positionals: usize) -> Result<(), String> {
        if let Some((n, _)) = self.named.first() {
            return Err(format!("unknown flag --{n}"));
        }
        if self.positional.len() != positionals {
            return Err(format!(
                "expected {positionals} argument(s), got {:?}",
                self.positional
            ));
        }
        Ok(())
    }
}

fn parse(args: &[String]) -> Result<Command, String> {
    let (mode, rest) = args.split_first().ok_or(USAGE)?;
    let mut f = Flags::parse(rest)?;
    let first = f.positional.first().cloned();
    let need_first = || {
        first
            .clone()
            .ok_or_else(|| format!("{mode}: missing argument; {USAGE}"))
    };
    let cmd = match mode.as_str() {
        "serve" => {
            let port = f.take("port", 5201, 1, 65535)? as u16;
            let max_seconds = f.take("max-seconds", 600, 1, 86_400)?;
            f.done(0)?;
            return Ok(Command::Serve { port, max_seconds });
        }
        "tcp-rr" | "udp-rr" | "tcp-stream" => {
            let target = need_first()?;
            let seconds = f.take("seconds", 5, 1, 3600)?;
            match mode.as_str() {
                "tcp-rr" => Command::TcpRr { target, seconds },
                "tcp-stream" => Command::TcpStream { target, seconds },
                _ => Command::UdpRr {
                    target,
                    seconds,
                    timeout_ms: f.take("timeout-ms", 200, 1, 10_000)?,
                },
            }
        }
        "disk" => {
            let dir = PathBuf::from(need_first()?);
            let size_mib = f.take("size", 128, 1, 64 * 1024)?;
            let seconds = f.take("seconds", 5, 1, 3600)?;
            Command::Disk {
                dir,
                plan: disk::Plan { size_mib, seconds },
            }
        }
        "cpu" => {
            let iterations = f.take("iterations", 200, 1, 10_000_000)?;
            let samples = f.take("samples", 5, 1, 1000)? as u32;
            f.done(0)?;
            return Ok(Command::Cpu {
                iterations,
                samples,
            });
        }
        other => return Err(format!("unknown mode {other:?}; {USAGE}")),
    };
    f.done(1)?;
    Ok(cmd)
}

fn run(cmd: Command) -> Result<String, String> {
    match cmd {
        Command::Serve { port, max_seconds } => net::serve(port, max_seconds),
        Command::TcpRr { target, seconds } => net::tcp_rr(&target, seconds),
        Command::UdpRr {
            target,
            seconds,
            timeout_ms,
        } => net::udp_rr(&target, seconds, timeout_ms),
        Command::TcpStream { target, seconds } => net::tcp_stream(&target, seconds),
        Command::Disk { dir, plan } => disk::run(&dir, plan),
        Command::Cpu {
            iterations,
            samples,
        } => cpu::run(iterations, samples),
    }
}

fn main() {
    // Even a bug must leave one JSON line for the bench to read, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        println!("{}", json::error(&format!("panic: {info}")));
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse(&args).and_then(run);
    let mut out = std::io::stdout().lock();
    let code = match result {
        Ok(line) if line.is_empty() => 0,
        Ok(line) => i32::from(writeln!(out, "{line}").is_err()),
        Err(e) => {
            let _ = writeln!(out, "{}", json::error(&e));
            1
        }
    };
    let _ = out.flush();
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_every_mode_with_defaults_and_flags() {
        assert_eq!(
            parse(&args("serve")),
            Ok(Command::Serve {
                port: 5201,
                max_seconds: 600
            })
        );
        assert_eq!(
            parse(&args("serve --port 7000 --max-seconds 30")),
            Ok(Command::Serve {
                port: 7000,
                max_seconds: 30
            })
        );
        assert_eq!(
            parse(&args("tcp-rr 10.0.0.1:5201 --seconds 3")),
            Ok(Command::TcpRr {
                target: "10.0.0.1:5201".into(),
                seconds: 3
            })
        );
        assert_eq!(
            parse(&args("udp-rr h:1 --timeout-ms 50")),
            Ok(Command::UdpRr {
                target: "h:1".into(),
                seconds: 5,
                timeout_ms: 50
            })
        );
        assert_eq!(
            parse(&args("tcp-stream h:1")),
            Ok(Command::TcpStream {
                target: "h:1".into(),
                seconds: 5
            })
        );
        assert_eq!(
            parse(&args("disk /data --size 64 --seconds 2")),
            Ok(Command::Disk {
                dir: "/data".into(),
                plan: disk::Plan {
                    size_mib: 64,
                    seconds: 2
                }
            })
        );
        assert_eq!(
            parse(&args("cpu --iterations 10")),
            Ok(Command::Cpu {
                iterations: 10,
                samples: 5
            })
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        for bad in [
            "",
            "fly",
            "tcp-rr",
            "tcp-rr h:1 extra",
            "tcp-rr h:1 --seconds",
            "tcp-rr h:1 --seconds x",
            "tcp-rr h:1 --seconds 0",
            "tcp-rr h:1 --timeout-ms 5",
            "serve --port 70000",
            "cpu --samples 0",
            "disk",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?} parsed");
        }
    }
}
