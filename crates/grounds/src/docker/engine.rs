//! Which Docker engine a run talks to, as the docker CLI names it (`--docker-host`, else `DOCKER_HOST`,
//! else the local socket), and how it is reached: a Unix socket, TCP (TLS as `DOCKER_TLS_VERIFY` and
//! `DOCKER_CERT_PATH` ask), or SSH (`docker system dial-stdio` on the other side, see [`super::ssh`]).
//!
//! Only an engine behind a Unix socket shares this machine's disk; every other one gets the job's files
//! copied in and out instead of bind mounts.

use std::path::PathBuf;

use bollard::Docker;
use serde::Serialize;

use super::ssh::SshTarget;
use super::{explain, DockerError};

/// The default engine, as the docker CLI's.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Seconds an engine call may take before bollard gives up (builds and waits stream past it).
const CALL_TIMEOUT: u64 = 120;

/// How the engine is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineAddress {
    Unix(PathBuf),
    Tcp(String),
    Ssh(SshTarget),
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{origin} `{value}` is not a Docker host grounds can reach: {why}. Use unix:///path/to/docker.sock, \
     ssh://[user@]host[:port] or tcp://host:port (TLS as DOCKER_TLS_VERIFY and DOCKER_CERT_PATH say)"
)]
pub struct BadAddress {
    origin: String,
    value: String,
    why: String,
}

impl EngineAddress {
    /// `--docker-host` when given, else `DOCKER_HOST`, else the local socket.
    pub fn resolve(flag: Option<&str>) -> Result<EngineAddress, BadAddress> {
        match flag {
            Some(value) => EngineAddress::parse(value, "--docker-host"),
            None => match std::env::var("DOCKER_HOST") {
                Ok(value) if !value.is_empty() => EngineAddress::parse(&value, "DOCKER_HOST"),
                _ => Ok(EngineAddress::Unix(PathBuf::from(DEFAULT_SOCKET))),
            },
        }
    }

    pub fn parse(value: &str, origin: &str) -> Result<EngineAddress, BadAddress> {
        let bad = |why: &str| BadAddress {
            origin: origin.to_string(),
            value: value.to_string(),
            why: why.to_string(),
        };
        let Some((scheme, rest)) = value.split_once("://") else {
            return Err(bad("it has no scheme"));
        };
        match scheme {
            "unix" => {
                if rest.is_empty() || !rest.starts_with('/') {
                    return Err(bad("a unix:// address needs an absolute socket path"));
                }
                Ok(EngineAddress::Unix(PathBuf::from(rest)))
            }
            "tcp" => {
                let host = rest.trim_end_matches('/');
                if host.is_empty() || host.contains('/') {
                    return Err(bad("a tcp:// address is host:port, with no path"));
                }
                Ok(EngineAddress::Tcp(host.to_string()))
            }
            "ssh" => {
                let authority = rest.strip_suffix('/').unwrap_or(rest);
                if authority.contains('/') {
                    return Err(bad(
                        "an ssh:// address is [user@]host[:port], with no path (the engine on the \
                         other side is the one its `docker` reaches)",
                    ));
                }
                let (user, host_port) = match authority.rsplit_once('@') {
                    Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
                    Some(_) => return Err(bad("the user before `@` is empty")),
                    None => (None, authority),
                };
                let (host, port) = split_port(host_port).map_err(|why| bad(&why))?;
                if host.is_empty() || host.starts_with('-') {
                    return Err(bad("it names no host"));
                }
                Ok(EngineAddress::Ssh(SshTarget {
                    user,
                    host: host.to_string(),
                    port,
                }))
            }
            other => Err(bad(&format!("`{other}://` is not a scheme grounds knows"))),
        }
    }

    /// The warning for an engine reached over plain HTTP on the network (`tcp://` to a host that is not
    /// this machine, without `DOCKER_TLS_VERIFY`), as the docker CLI gives; `None` for any other.
    pub fn insecure(&self) -> Option<String> {
        let EngineAddress::Tcp(host) = self else {
            return None;
        };
        if std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty()) || is_loopback(host) {
            return None;
        }
        Some(format!(
            "the Docker engine at tcp://{host} is reached over plain HTTP on the network, without TLS: \
             anyone on the way can read what is sent (code, data, environment) and take over the engine. \
             Use ssh://, or TLS (DOCKER_TLS_VERIFY=1 with DOCKER_CERT_PATH)"
        ))
    }

    /// Whether containers of this engine see this machine's disk, so bind mounts work.
    pub fn shares_disk(&self) -> bool {
        matches!(self, EngineAddress::Unix(_))
    }

    /// Connects, agrees on an API version and checks that the engine answers.
    pub async fn connect(&self) -> Result<Docker, DockerError> {
        let unreachable = |message: String| DockerError::Unreachable {
            host: self.to_string(),
            message,
        };
        let docker = match self {
            EngineAddress::Unix(path) => Docker::connect_with_unix(
                &path.to_string_lossy(),
                CALL_TIMEOUT,
                bollard::API_DEFAULT_VERSION,
            )
            .map_err(|e| unreachable(explain(&e)))?,
            EngineAddress::Tcp(host) => connect_tcp(host).map_err(unreachable)?,
            EngineAddress::Ssh(target) => {
                super::ssh::check(target).await?;
                super::ssh::connect(target, CALL_TIMEOUT).map_err(|e| unreachable(explain(&e)))?
            }
        };
        let docker = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            docker.negotiate_version(),
        )
        .await
        .map_err(|_| unreachable("no answer within 30 s".into()))?
        .map_err(|e| unreachable(explain(&e)))?;
        docker.ping().await.map_err(|e| unreachable(explain(&e)))?;
        Ok(docker)
    }
}

/// Whether `host_port` names this machine: `localhost`, 127.0.0.0/8 or ::1.
fn is_loopback(host_port: &str) -> bool {
    let host = match split_port(host_port) {
        Ok((host, _)) => host,
        Err(_) => return false,
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn split_port(host_port: &str) -> Result<(&str, Option<u16>), String> {
    // [v6]:port, [v6], host:port, host
    if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 host in [] is not closed".to_string())?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(parse_port(port)?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("`{after}` after the host is not a :port")),
        };
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) => Ok((host, Some(parse_port(port)?))),
        None => Ok((host_port, None)),
    }
}

fn parse_port(port: &str) -> Result<u16, String> {
    port.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{port}` is not a port number"))
}

/// Plain HTTP, or TLS with the client certificate `DOCKER_CERT_PATH` holds (`~/.docker` by default) when
/// `DOCKER_TLS_VERIFY` is set, as the docker CLI does.
fn connect_tcp(host: &str) -> Result<Docker, String> {
    let verify = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
    if !verify {
        return Docker::connect_with_http(host, CALL_TIMEOUT, bollard::API_DEFAULT_VERSION)
            .map_err(|e| explain(&e));
    }
    let dir = match std::env::var("DOCKER_CERT_PATH") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::var("HOME")
            .map(|home| PathBuf::from(home).join(".docker"))
            .map_err(|_| {
                "DOCKER_TLS_VERIFY is set, but neither DOCKER_CERT_PATH nor HOME is".to_string()
            })?,
    };
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        if !dir.join(file).is_file() {
            return Err(format!(
                "DOCKER_TLS_VERIFY is set, but {} is missing: DOCKER_CERT_PATH must name the folder with \
                 ca.pem, cert.pem and key.pem",
                dir.join(file).display()
            ));
        }
    }
    // Two crypto providers are compiled in (the AWS SDK's and bollard's); TLS to the engine uses one.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Docker::connect_with_ssl(
        host,
        &dir.join("key.pem"),
        &dir.join("cert.pem"),
        &dir.join("ca.pem"),
        CALL_TIMEOUT,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| explain(&e))
}

impl std::fmt::Display for EngineAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineAddress::Unix(path) => write!(f, "unix://{}", path.display()),
            EngineAddress::Tcp(host) => write!(f, "tcp://{host}"),
            EngineAddress::Ssh(target) => {
                f.write_str("ssh://")?;
                if let Some(user) = &target.user {
                    write!(f, "{user}@")?;
                }
                if target.host.contains(':') {
                    write!(f, "[{}]", target.host)?;
                } else {
                    f.write_str(&target.host)?;
                }
                if let Some(port) = target.port {
                    write!(f, ":{port}")?;
                }
                Ok(())
            }
        }
    }
}

impl Serialize for EngineAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<EngineAddress, BadAddress> {
        EngineAddress::parse(value, "--docker-host")
    }

    #[test]
    fn addresses_read_as_the_docker_cli_reads_them() {
        assert_eq!(
            parse("unix:///run/user/1000/docker.sock").unwrap(),
            EngineAddress::Unix("/run/user/1000/docker.sock".into())
        );
        assert_eq!(
            parse("ssh://me@gpu-box:2222").unwrap(),
            EngineAddress::Ssh(SshTarget {
                user: Some("me".into()),
                host: "gpu-box".into(),
                port: Some(2222)
            })
        );
        assert_eq!(
            parse("ssh://gpu-box").unwrap(),
            EngineAddress::Ssh(SshTarget {
                user: None,
                host: "gpu-box".into(),
                port: None
            })
        );
        assert_eq!(
            parse("ssh://[::1]:22").unwrap().to_string(),
            "ssh://[::1]:22"
        );
        assert_eq!(
            parse("tcp://10.0.0.5:2376").unwrap(),
            EngineAddress::Tcp("10.0.0.5:2376".into())
        );
        assert!(parse("unix:///var/run/docker.sock").unwrap().shares_disk());
        assert!(!parse("ssh://localhost").unwrap().shares_disk());
        assert!(!parse("tcp://localhost:2375").unwrap().shares_disk());
    }

    #[test]
    fn bad_addresses_say_what_is_wrong_and_what_works() {
        for (value, says) in [
            ("gpu-box", "no scheme"),
            ("ssh://", "no host"),
            ("ssh://me@box:99999", "`99999` is not a port"),
            ("ssh://box/var/run/docker.sock", "no path"),
            ("ssh://-oProxyCommand=x", "no host"),
            ("http://box", "`http://` is not a scheme"),
            ("unix://relative.sock", "absolute socket path"),
        ] {
            let message = parse(value).unwrap_err().to_string();
            assert!(message.contains(value), "{message}");
            assert!(message.contains(says), "{value}: {message}");
            assert!(message.contains("ssh://[user@]host[:port]"), "{message}");
        }
    }
}
