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
        ".envrc",
        "kubeconfig",
        ".terraformrc",
        "terraform.rc",
        ".vault-token",
        "application_default_credentials.json",
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
        ".kubeconfig",
        ".tfstate",
        ".tfstate.backup",
        ".tfvars",
    ];
    EXACT.contains(&name.as_str())
        || PREFIXES.iter().any(|p| name.starts_with(p))
        || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Whether a file, by its path relative to the folder it is packaged from (`/`-separated), looks like
/// it holds a secret: by its name ([`is_secret_file_name`]), or as the configuration file of a tool that
/// keeps credentials in a file of a common name (`.docker/config.json`, `.kube/config`).
pub fn is_secret_path(relative: &str) -> bool {
    let lower = relative.to_ascii_lowercase();
    let file_name = lower.rsplit('/').next().unwrap_or(&lower);
    const IN_FOLDER: &[(&str, &str)] = &[(".docker", "config.json"), (".kube", "config")];
    is_secret_file_name(file_name)
        || IN_FOLDER.iter().any(|(folder, name)| {
            file_name == *name
                && lower
                    .rsplit('/')
                    .nth(1)
                    .is_some_and(|parent| parent == *folder)
        })
}

/// The most of a `.json` file that is read to tell a service-account key from other JSON.
pub const SNIFFED_MAX: u64 = 1 << 20;

/// Whether the content of a JSON file is a cloud service-account key (Google's: `"type":
/// "service_account"` with a `"private_key"`), whatever the file is called.
pub fn is_service_account_key(content: &[u8]) -> bool {
    let text = String::from_utf8_lossy(content);
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains("\"type\":\"service_account\"") && compact.contains("\"private_key\"")
}

/// A value as a plan shows it when its name does not say it is secret: credentials inside it masked (a
/// URL's `user:password@`, strings shaped like AWS secret access keys and access key ids).
pub fn masked_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    // user:password@ in a URL: the password goes.
    let mut rest = value;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    mask_key_shapes(&out)
}

/// Masks runs of 40 base64 characters (the shape of an AWS secret access key) and access key ids
/// (`AKIA`/`ASIA` and 16 capitals or digits).
fn mask_key_shapes(text: &str) -> String {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || c == '/' || c == '+';
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if is_key_char(chars[i]) && (i == 0 || !is_key_char(chars[i - 1])) {
            let mut j = i;
            while j < chars.len() && is_key_char(chars[j]) {
                j += 1;
            }
            let run: String = chars[i..j].iter().collect();
            let secret_key = run.len() == 40
                && run.chars().any(|c| c.is_ascii_lowercase())
                && run.chars().any(|c| c.is_ascii_uppercase())
                && run
                    .chars()
                    .any(|c| c.is_ascii_digit() || c == '/' || c == '+');
            let key_id = run.len() == 20
                && (run.starts_with("AKIA") || run.starts_with("ASIA"))
                && run
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if secret_key || key_id {
                out.push_str(MASK);
            } else {
                out.push_str(&run);
            }
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
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

/// A value as a plan shows it: masked when its name looks secret, else with the credentials inside it
/// masked ([`masked_value`]).
pub fn shown_value(name: &str, value: &str) -> String {
    if is_secret_env_name(name) {
        MASK.to_string()
    } else {
        masked_value(value)
    }
}

/// Every value of a map as a plan shows it ([`shown_value`]).
pub fn shown_map(
    values: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    values
        .iter()
        .map(|(name, value)| (name.clone(), shown_value(name, value)))
        .collect()
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
    fn tool_credentials_are_recognised_by_path_and_content() {
        for path in [
            ".envrc",
            "deploy/.docker/config.json",
            ".kube/config",
            "kubeconfig",
            "prod.kubeconfig",
            "infra/terraform.tfstate",
            "terraform.tfstate.backup",
            ".terraformrc",
            "secrets.auto.tfvars",
        ] {
            assert!(is_secret_path(path), "{path}");
        }
        for path in [
            "config.json",
            "docker/config.json",
            "kube/config",
            "state.py",
        ] {
            assert!(!is_secret_path(path), "{path}");
        }
        let key = br#"{ "type": "service_account", "project_id": "p", "private_key_id": "1",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMII...\n" }"#;
        assert!(is_service_account_key(key));
        assert!(!is_service_account_key(br#"{"type": "service_account"}"#));
        assert!(!is_service_account_key(br#"{"layers": [1, 2]}"#));
    }

    #[test]
    fn credentials_inside_values_are_masked() {
        assert_eq!(
            masked_value("postgres://admin:hunter2@db.internal:5432/x?sslmode=require"),
            "postgres://admin:***@db.internal:5432/x?sslmode=require"
        );
        assert_eq!(
            masked_value("https://token@github.com/org/repo.git"),
            "https://token@github.com/org/repo.git"
        );
        assert_eq!(
            masked_value("key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY end"),
            "key=*** end"
        );
        assert_eq!(masked_value("AKIAIOSFODNN7EXAMPLE"), "***");
        assert_eq!(masked_value("s3://bucket/a/b.csv"), "s3://bucket/a/b.csv");
        assert_eq!(masked_value("0.001"), "0.001");
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(masked_value(digest), digest);
    }

    #[test]
    fn secret_looking_variables_are_masked() {
        assert_eq!(shown_value("WANDB_API_KEY", "abc"), MASK);
        assert_eq!(shown_value("DB_PASSWORD", "abc"), MASK);
        assert_eq!(shown_value("LOG_LEVEL", "debug"), "debug");
    }
}
