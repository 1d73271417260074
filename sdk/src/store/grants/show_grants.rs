//! Reading `SHOW GRANTS` back: the lines MySQL 8 and MariaDB print, parsed, and compared with
//! a role (the role's model and the SQL that grants it are in `mod.rs`).

use super::{Privilege, Role};
use std::collections::BTreeSet;

/// How an account's grants compare with its role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantCheck {
    /// `SHOW GRANTS` as the server printed it.
    pub grants: Vec<String>,
    /// What the account holds beyond its role: privileges, `GRANT OPTION`, granted roles, proxy
    /// grants.
    pub extra: Vec<String>,
    /// Privileges of the role the account lacks.
    pub missing: Vec<Privilege>,
}

impl GrantCheck {
    /// Whether the account holds exactly its role.
    pub fn is_exact(&self) -> bool {
        self.extra.is_empty() && self.missing.is_empty()
    }
}

/// One line of `SHOW GRANTS`, parsed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum GrantLine {
    /// `GRANT <privileges> ON <object> TO …`.
    Privileges { privileges: Vec<String>, object: String, grant_option: bool },
    /// `GRANT PROXY ON <account> TO …`: revoked with the text between `GRANT ` and ` TO `.
    Proxy(String),
    /// `GRANT <role>[, <role>] TO …` (MySQL 8 and MariaDB roles).
    Roles(String),
}

/// Splits `a, b (x, y), c` at the commas outside parentheses.
pub(super) fn split_top_level(s: &str) -> Vec<String> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim().to_string());
    out.retain(|p| !p.is_empty());
    out
}

pub(super) fn parse_grant(line: &str) -> Option<GrantLine> {
    let rest = line.strip_prefix("GRANT ")?;
    // The grantee follows the last " TO " before the account's quotes.
    let to = rest.find(" TO ")?;
    let head = &rest[..to];
    let grant_option = rest[to..].contains("WITH GRANT OPTION") || rest[to..].contains("WITH ADMIN OPTION");
    if head.starts_with("PROXY ON ") {
        return Some(GrantLine::Proxy(head.to_string()));
    }
    match head.find(" ON ") {
        Some(on) => Some(GrantLine::Privileges {
            privileges: split_top_level(&head[..on]).into_iter().map(|p| p.to_ascii_uppercase()).collect(),
            object: head[on + 4..].replace('`', ""),
            grant_option,
        }),
        None => Some(GrantLine::Roles(head.to_string())),
    }
}

/// Compares `SHOW GRANTS` output with `role` on `database`.
pub fn check_grants(grants: &[String], database: &str, role: Role) -> GrantCheck {
    let expected = role.privileges(database);
    let mut held: BTreeSet<Privilege> = BTreeSet::new();
    let mut extra = Vec::new();
    for line in grants {
        match parse_grant(line) {
            Some(GrantLine::Privileges { privileges, object, grant_option }) => {
                for privilege in privileges {
                    if privilege == "USAGE" {
                        continue; // "no privileges"
                    }
                    // ALL PRIVILEGES is never part of a role; it stays one extra entry.
                    let p = Privilege { object: object.clone(), privilege };
                    if !expected.contains(&p) {
                        extra.push(p.to_string());
                    }
                    held.insert(p);
                }
                if grant_option {
                    extra.push(format!("GRANT OPTION ON {object}"));
                }
            }
            Some(GrantLine::Proxy(p)) => extra.push(p),
            Some(GrantLine::Roles(r)) => extra.push(format!("role {r}")),
            None => extra.push(line.clone()),
        }
    }
    let missing = expected.into_iter().filter(|p| !held.contains(p)).collect();
    GrantCheck { grants: grants.to_vec(), extra, missing }
}
