//! What counts as a secret, in one place: file names that are refused in packages (and link targets
//! with such names), and environment names whose values are masked wherever a plan is printed.

/// What is printed in place of a secret value.
pub const MASK: &str = "***";

/// Whether a file name looks like it holds a secret that should never travel in a package or an image:
/// dotenv files, private keys and certificates, and the credential files of the usual tools.
pub fn is_secret_file_name(file_name: &str) -> bool {
    let name = file_name.to_ascii_lowercase();
    const EXACT: &[&str] = &[
        ".env",
        "credentials",
        "credentials.json",
        ".netrc",
        "_netrc",
        ".pypirc",
        ".npmrc",
        ".git-credentials",
        ".pgpass",
        ".s3cfg",
        ".boto",
        ".htpasswd",
        ".dockercfg",
        "client_secret.json",
        "service-account.json",
    ];
    const PREFIXES: &[&str] = &[
        ".env.",
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "secrets.",
        "secret.",
        "client_secret_",
    ];
    const SUFFIXES: &[&str] = &[
        ".pem",
        ".key",
        ".p12",
        ".pfx",
        ".jks",
        ".keystore",
        ".ppk",
        ".kdbx",
    ];
    EXACT.contains(&name.as_str())
        || PREFIXES.iter().any(|p| name.starts_with(p))
        || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Whether an environment variable's name says its value is a secret (masked in `--dry-run` plans).
pub fn is_secret_env_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "SECRET",
        "TOKEN",
        "PASSWORD",
        "PASSWD",
        "KEY",
        "CREDENTIAL",
        "SESSION",
        "AUTH",
        "PRIVATE",
    ]
    .iter()
    .any(|s| upper.contains(s))
}

/// A value as a plan shows it: masked when its name looks secret.
pub fn shown_value(name: &str, value: &str) -> String {
    if is_secret_env_name(name) {
        MASK.to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_secret_files_are_recognised() {
        for name in [
            ".env",
            ".env.local",
            "id_rsa",
            "id_rsa.pub",
            "id_dsa",
            "id_ecdsa",
            "id_ed25519",
            "credentials",
            "credentials.json",
            "tls.key",
            "server.pem",
            "cert.p12",
            "cert.PFX",
            ".netrc",
            ".pypirc",
            ".npmrc",
            ".git-credentials",
            "secrets.yaml",
            "secrets.toml",
            "client_secret_123.apps.googleusercontent.com.json",
        ] {
            assert!(is_secret_file_name(name), "{name}");
        }
        for name in [
            "keys.py",
            "train.py",
            "environment.yml",
            "secretary.txt",
            "credentials.py",
        ] {
            assert!(!is_secret_file_name(name), "{name}");
        }
    }

    #[test]
    fn secret_looking_variables_are_masked() {
        assert_eq!(shown_value("WANDB_API_KEY", "abc"), MASK);
        assert_eq!(shown_value("DB_PASSWORD", "abc"), MASK);
        assert_eq!(shown_value("LOG_LEVEL", "debug"), "debug");
    }
}
