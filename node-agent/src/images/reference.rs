//! Image references normalised as Docker does: `busybox` is `docker.io/library/busybox:latest`.

/// The registry Docker assumes when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (and port), `docker.io` when none was given.
    pub registry: String,
    /// Repository path, with `library/` added for single-component Docker Hub names.
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Digest (`sha256:…`) when the reference pins one.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `s` (`busybox`, `berth/busybox:latest`, `localhost:5000/x:1`, `x@sha256:…`).
    ///
    /// # Errors
    /// An empty reference or one with an empty repository.
    pub fn parse(s: &str) -> Result<Reference, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty image reference".into());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (s, None),
        };
        // A first component with '.', ':' or equal to localhost is a registry host, as in Docker.
        let (registry, path) = match rest.split_once('/') {
            Some((first, p))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), p)
            }
            _ => (DEFAULT_REGISTRY.to_string(), rest),
        };
        let (repo, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
            _ => (path, None),
        };
        if repo.is_empty() {
            return Err(format!("invalid image reference {s:?}"));
        }
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo.to_string()
        };
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The full normalised form: `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        let mut s = format!("{}/{}", self.registry, self.repository);
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// Whether the registry is on the loopback interface, where plain HTTP is allowed.
    pub fn is_local_registry(&self) -> bool {
        let host = self
            .registry
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&self.registry);
        host == "localhost" || host == "127.0.0.1" || host.starts_with("127.")
    }
}

/// Normalises a reference string; returns it unchanged when it does not parse.
pub fn normalise(s: &str) -> String {
    Reference::parse(s)
        .map(|r| r.full())
        .unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_normalisation_table() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("berth/busybox:latest", "docker.io/berth/busybox:latest"),
            ("berth/busybox", "docker.io/berth/busybox:latest"),
            (
                "docker.io/library/busybox",
                "docker.io/library/busybox:latest",
            ),
            (
                "index.docker.io/library/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("localhost:5000/x:1", "localhost:5000/x:1"),
            ("localhost/x", "localhost/x:latest"),
            ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c"),
            ("quay.io/org/img@sha256:abcd", "quay.io/org/img@sha256:abcd"),
            ("img:t@sha256:abcd", "docker.io/library/img:t@sha256:abcd"),
        ];
        for (input, want) in cases {
            assert_eq!(normalise(input), want, "input {input}");
        }
    }

    #[test]
    fn local_registries_are_detected() {
        assert!(Reference::parse("127.0.0.1:5000/x")
            .unwrap()
            .is_local_registry());
        assert!(Reference::parse("localhost:5000/x")
            .unwrap()
            .is_local_registry());
        assert!(!Reference::parse("quay.io/x").unwrap().is_local_registry());
        assert!(Reference::parse("").is_err());
    }
}
