//! Autoserv command lines in the config: split once like a shell would, with
//! placeholders substituted inside each argument.

/// Autoserv's command line, split into arguments once; placeholders are substituted
/// inside each argument, so a value never becomes more than one argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate {
    args: Vec<String>,
}

/// The placeholders a command template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "results_dir",
    "hosts",
    "owner",
    "job_name",
    "job_id",
    "control_file",
];

pub const DEFAULT_AUTOSERV_COMMAND: &str = "/usr/local/autotest/server/autoserv -p -r {results_dir} -m {hosts} -u {owner} -l {job_name} {control_file}";
/// Autotest's verify, repair and cleanup special tasks.
pub const DEFAULT_VERIFY_COMMAND: &str =
    "/usr/local/autotest/server/autoserv -v -m {hosts} -r {results_dir}";
pub const DEFAULT_REPAIR_COMMAND: &str =
    "/usr/local/autotest/server/autoserv -R -m {hosts} -r {results_dir}";
pub const DEFAULT_CLEANUP_COMMAND: &str =
    "/usr/local/autotest/server/autoserv -C -m {hosts} -r {results_dir}";

impl CommandTemplate {
    /// The arguments as split, placeholders not yet substituted.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Splits `line` like a POSIX shell would (quotes, backslashes) and checks placeholders.
    pub fn parse(line: &str) -> Result<Self, String> {
        let args = shlex::split(line).ok_or("unbalanced quotes")?;
        if args.is_empty() {
            return Err("the command is empty".into());
        }
        for arg in &args {
            let mut rest = arg.as_str();
            while let Some(open) = rest.find('{') {
                let close = rest[open..]
                    .find('}')
                    .ok_or_else(|| format!("unclosed '{{' in {arg:?}"))?;
                let name = &rest[open + 1..open + close];
                if !PLACEHOLDERS.contains(&name) {
                    return Err(format!(
                        "unknown placeholder {{{name}}}; known: {}",
                        PLACEHOLDERS.join(", ")
                    ));
                }
                rest = &rest[open + close + 1..];
            }
        }
        Ok(Self { args })
    }

    /// The program and its arguments with `values` substituted (name → value).
    pub fn render(&self, values: &[(&str, &str)]) -> Vec<String> {
        self.args
            .iter()
            .map(|arg| {
                let mut out = String::with_capacity(arg.len());
                let mut rest = arg.as_str();
                while let Some(open) = rest.find('{') {
                    out.push_str(&rest[..open]);
                    let close = open + rest[open..].find('}').expect("checked at parse");
                    let name = &rest[open + 1..close];
                    let value = values
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map_or("", |(_, v)| *v);
                    out.push_str(value);
                    rest = &rest[close + 1..];
                }
                out.push_str(rest);
                out
            })
            .collect()
    }
}
