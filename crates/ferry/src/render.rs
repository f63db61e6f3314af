//! Strict rendering of the Kubernetes manifest template.
//!
//! `${NAME}` is replaced by its value; `$$` is a literal `$`; a bare `$NAME` is left alone
//! (it is ordinary text in YAML, e.g. in shell snippets). Every undefined `${NAME}` is
//! reported at once, with file, line and column, before anything touches a cluster — the
//! original pipeline's `envsubst` silently turned them into empty strings.
//!
//! Values come from ferry first (`IMAGE`, `COMMIT`, `ENVIRONMENT`, `NAMESPACE`, `SECRETS`, the
//! environment's `vars`, `--var`), then from the process environment. `vars` and `--var` may
//! not set ferry's own ([`check_settable`]): the image deployed is the one pushed.
//!
//! A value is text pasted into YAML, so it must stay one scalar where it lands: a value with
//! a line break, or one that reads as a list, a mapping, a comment or extra keys there, is
//! refused with the variable's name ([`RenderError::Unsafe`]). A manifest with no object is
//! an error too: deploying nothing must not look like a successful rollout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A rendered manifest: the text and the objects parsed from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub file: PathBuf,
    pub text: String,
    pub objects: Vec<serde_json::Value>,
}

/// An undefined variable and where it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub name: String,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    // The io error is in the message, so it is not also a `source` (printed twice).
    #[error("cannot read the manifest {file}: {error}")]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{}", undefined_message(.file, .missing))]
    Undefined {
        file: PathBuf,
        missing: Vec<Missing>,
    },
    #[error(
        "{file}:{line}:{column}: {why}\n  hint: variables are written ${{NAME}} (letters, digits, _); write $$ for a literal $"
    )]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        why: String,
    },
    #[error("{file}: the rendered manifest is not valid YAML: {why}")]
    Yaml { file: PathBuf, why: String },
    #[error("{file}: document {index} is not a Kubernetes object: {why}")]
    NotAnObject {
        file: PathBuf,
        index: usize,
        why: String,
    },
    #[error(
        "{file} has no Kubernetes object: only comments, blank lines or `---`\n  hint: check that the environment's `manifest` (or -f) names the right file; ferry does not deploy an empty manifest"
    )]
    Empty { file: PathBuf },
    #[error(
        "{file}:{line}:{column}: the value of {name} cannot be pasted into the manifest: {why}\n  hint: give {name} a value that reads as one YAML value where ${{{name}}} stands (no line break, no `: `, ` #`, brackets or braces at its start); values are text, not YAML"
    )]
    Unsafe {
        file: PathBuf,
        line: usize,
        column: usize,
        name: String,
        why: String,
    },
}

/// The variables ferry sets itself, and what it sets them to.
pub const RESERVED: [(&str, &str, &str); 5] = [
    (
        "IMAGE",
        "the image it pushed, pinned by digest",
        "`ferry deploy --image REPO@sha256:…` and `ferry render --image` take the image to deploy",
    ),
    (
        "COMMIT",
        "the commit it built",
        "commit, then ship; the commit comes from git",
    ),
    (
        "ENVIRONMENT",
        "the name of the environment",
        "pick the environment with --env",
    ),
    (
        "NAMESPACE",
        "the environment's `namespace`",
        "set `namespace` of the environment in ferry.toml, or pass --namespace",
    ),
    (
        "SECRETS",
        "the name of the Secret holding the environment's `secrets`",
        "declare the service's secrets with `secrets = { NAME = \"env:VAR\" }` on the environment",
    ),
];

/// `vars` or `--var` naming a variable ferry sets itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place} cannot set {name}: ferry sets it to {what}\n  hint: {fix}")]
pub struct ReservedVar {
    pub name: String,
    /// Where the attempt was: `--var`, `environments.staging.vars in ferry.toml:12`.
    pub place: String,
    pub what: &'static str,
    pub fix: &'static str,
}

/// Refuses `name` when ferry sets it itself (see [`RESERVED`]); `place` says where it was given.
pub fn check_settable(name: &str, place: &str) -> Result<(), ReservedVar> {
    match RESERVED.iter().find(|(reserved, _, _)| *reserved == name) {
        Some((reserved, what, fix)) => Err(ReservedVar {
            name: reserved.to_string(),
            place: place.to_string(),
            what,
            fix,
        }),
        None => Ok(()),
    }
}

fn undefined_message(file: &Path, missing: &[Missing]) -> String {
    let mut names: Vec<&str> = missing.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut out = format!(
        "undefined variable{} {} in {}:",
        if names.len() == 1 { "" } else { "s" },
        names.join(", "),
        file.display()
    );
    for m in missing {
        out.push_str(&format!(
            "\n  {}:{}:{}: ${{{}}} is not defined",
            file.display(),
            m.line,
            m.column,
            m.name
        ));
    }
    let (own, others): (Vec<&str>, Vec<&str>) = names
        .iter()
        .partition(|n| RESERVED.iter().any(|(r, _, _)| r == *n));
    if !others.is_empty() {
        out.push_str(&format!(
            "\n  hint: define {} under `vars` of the environment in ferry.toml, with --var NAME=VALUE, or in the environment",
            others.join(", ")
        ));
    }
    for name in own {
        out.push_str(&match name {
            "IMAGE" => "\n  hint: IMAGE is the image to deploy: pass --image REPO@sha256:…".to_string(),
            "COMMIT" => "\n  hint: COMMIT is the git commit ferry runs at: run inside a git checkout, or set the COMMIT environment variable".to_string(),
            other => format!("\n  hint: ferry sets {other} itself; set it in the environment"),
        });
    }
    out
}

/// Substitutes `${NAME}` in `template`; `lookup` gives values. All-or-nothing.
pub fn substitute(
    template: &str,
    file: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, RenderError> {
    let mut out = String::with_capacity(template.len());
    let mut missing = Vec::new();
    let (mut line, mut column) = (1usize, 1usize);
    let mut chars = template.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let (at_line, at_col) = (line, column);
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|&(_, n)| n) {
            Some('$') => {
                chars.next();
                column += 1;
                out.push('$');
            }
            Some('{') => {
                let rest = &template[i + 2..];
                let Some(end) = rest.find('}') else {
                    return Err(RenderError::Syntax {
                        file: file.to_path_buf(),
                        line: at_line,
                        column: at_col,
                        why: "`${` is never closed with `}`".into(),
                    });
                };
                let name = &rest[..end];
                if !is_name(name) {
                    return Err(RenderError::Syntax {
                        file: file.to_path_buf(),
                        line: at_line,
                        column: at_col,
                        why: format!("`${{{name}}}` is not a variable name"),
                    });
                }
                // Skip `{`, the name and `}` (all single-line ASCII).
                for _ in 0..end + 2 {
                    chars.next();
                }
                column += end + 2;
                match lookup(name) {
                    Some(value) => out.push_str(&value),
                    None => missing.push(Missing {
                        name: name.to_string(),
                        line: at_line,
                        column: at_col,
                    }),
                }
            }
            _ => out.push('$'),
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(RenderError::Undefined {
            file: file.to_path_buf(),
            missing,
        })
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads, substitutes and parses `file`. `vars` win over the process environment.
pub fn render_file(file: &Path, vars: &BTreeMap<String, String>) -> Result<Rendered, RenderError> {
    let template = std::fs::read_to_string(file).map_err(|error| RenderError::Read {
        file: file.to_path_buf(),
        error,
    })?;
    render(&template, file, vars)
}

/// Substitutes and parses a template.
pub fn render(
    template: &str,
    file: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<Rendered, RenderError> {
    let lookup = |name: &str| vars.get(name).cloned().or_else(|| std::env::var(name).ok());
    let text = substitute(template, file, lookup)?;
    check_values(template, &text, file, lookup)?;
    let objects = parse_objects(&text, file)?;
    Ok(Rendered {
        file: file.to_path_buf(),
        text,
        objects,
    })
}

/// Parses multi-document YAML; every document must be a Kubernetes object.
pub fn parse_objects(text: &str, file: &Path) -> Result<Vec<serde_json::Value>, RenderError> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| RenderError::Yaml {
            file: file.to_path_buf(),
            why: e.to_string(),
        })?;
    let mut objects = Vec::new();
    for (index, doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let not = |why: &str| RenderError::NotAnObject {
            file: file.to_path_buf(),
            index: index + 1,
            why: why.to_string(),
        };
        if !doc.is_object() {
            return Err(not("it is not a mapping"));
        }
        for (field, what) in [
            ("/apiVersion", "apiVersion"),
            ("/kind", "kind"),
            ("/metadata/name", "metadata.name"),
        ] {
            if !doc.pointer(field).is_some_and(|v| v.is_string()) {
                return Err(not(&format!("it has no {what}")));
            }
        }
        objects.push(doc);
    }
    if objects.is_empty() {
        return Err(RenderError::Empty {
            file: file.to_path_buf(),
        });
    }
    Ok(objects)
}

/// Every value substituted into `template` (giving `text`) must stay one scalar: no line
/// breaks, and the document must have the same shape as with a harmless word in each place.
/// Names the first variable that breaks this. A template that is not YAML even with harmless
/// words is left for [`parse_objects`] to report.
fn check_values(
    template: &str,
    text: &str,
    file: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), RenderError> {
    // Every use, in order, with its place: a lookup that knows nothing reports them all.
    let Err(RenderError::Undefined { missing: uses, .. }) = substitute(template, file, |_| None)
    else {
        return Ok(());
    };
    let mut used: Vec<(&Missing, String)> = Vec::new();
    for place in &uses {
        if used.iter().any(|(u, _)| u.name == place.name) {
            continue;
        }
        if let Some(value) = lookup(&place.name) {
            used.push((place, value));
        }
    }
    let unsafe_value = |place: &Missing, why: String| RenderError::Unsafe {
        file: file.to_path_buf(),
        line: place.line,
        column: place.column,
        name: place.name.clone(),
        why,
    };
    for (place, value) in &used {
        if value.contains(['\n', '\r']) {
            return Err(unsafe_value(
                place,
                "it contains a line break, and the lines after it would become YAML of their own (keys, list items, documents)".into(),
            ));
        }
    }
    let prefix = placeholder_prefix(template, used.iter().map(|(_, v)| v.as_str()));
    let stand_ins: Vec<(String, &str)> = used
        .iter()
        .enumerate()
        .map(|(i, (_, value))| (format!("{prefix}{i}x"), value.as_str()))
        .collect();
    // The template with stand-ins, but the value itself for the variable `real`.
    let fill = |real: Option<usize>| {
        substitute(template, file, |name| {
            let i = used.iter().position(|(u, _)| u.name == name)?;
            Some(if real == Some(i) {
                stand_ins[i].1.to_string()
            } else {
                stand_ins[i].0.clone()
            })
        })
    };
    // All documents as one list, so a value that adds a document is a longer list.
    let parse = |text: &str| {
        serde_saphyr::from_multiple::<serde_json::Value>(text).map(serde_json::Value::Array)
    };
    let Ok(shape) = parse(&fill(None)?) else {
        return Ok(());
    };
    let all_fit = parse(text)
        .is_ok_and(|actual| same_shape(&shape, &actual, &|s| swap(s, &stand_ins, None)).is_ok());
    if all_fit {
        return Ok(());
    }
    // Something does not fit: find the variable, one at a time.
    for (i, (place, _)) in used.iter().enumerate() {
        let why = match parse(&fill(Some(i))?) {
            Err(e) => format!(
                "with it the manifest is not valid YAML ({})",
                e.to_string().lines().next().unwrap_or_default()
            ),
            Ok(actual) => match same_shape(&shape, &actual, &|s| swap(s, &stand_ins, Some(i))) {
                Ok(()) => continue,
                Err(why) => why,
            },
        };
        return Err(unsafe_value(place, why));
    }
    Ok(())
}

/// `s` with the stand-ins (all, or only the `only`-th) replaced by their values.
fn swap(s: &str, stand_ins: &[(String, &str)], only: Option<usize>) -> String {
    let mut out = s.to_string();
    for (i, (token, value)) in stand_ins.iter().enumerate() {
        if only.is_none_or(|o| o == i) {
            out = out.replace(token.as_str(), value);
        }
    }
    out
}

/// A word found in neither the template nor any value, to stand in for values.
fn placeholder_prefix<'a>(template: &str, values: impl Iterator<Item = &'a str> + Clone) -> String {
    let mut prefix = String::from("ferryvalue");
    while template.contains(&prefix) || values.clone().any(|v| v.contains(&prefix)) {
        prefix.push('q');
    }
    prefix
}

/// Whether `actual` is `shape` with each stand-in replaced (by `swap`) by its value, every
/// value staying one scalar. `Err` says how it differs.
fn same_shape(
    shape: &serde_json::Value,
    actual: &serde_json::Value,
    swap: &impl Fn(&str) -> String,
) -> Result<(), String> {
    use serde_json::Value;
    match (shape, actual) {
        (Value::Array(s), Value::Array(a)) if s.len() == a.len() => s
            .iter()
            .zip(a)
            .try_for_each(|(s, a)| same_shape(s, a, swap)),
        (Value::Array(s), Value::Array(a)) => Err(format!(
            "it turns a list of {} items into one of {}",
            s.len(),
            a.len()
        )),
        (Value::Object(s), Value::Object(a)) => {
            if let Some(extra) = a.keys().find(|k| !s.keys().any(|sk| swap(sk) == **k)) {
                return Err(format!("it adds the key {extra:?}"));
            }
            s.iter().try_for_each(|(key, s)| {
                let key = swap(key);
                let a = a
                    .get(&key)
                    .ok_or_else(|| format!("the key {key:?} is no longer there"))?;
                same_shape(s, a, swap)
            })
        }
        (Value::String(s), actual) if swap(s) != *s => {
            let expected = swap(s);
            match actual {
                Value::Array(_) => return Err(format!("{expected:?} reads as a YAML list")),
                Value::Object(_) => return Err(format!("{expected:?} reads as a YAML mapping")),
                Value::String(a) if *a == expected => return Ok(()),
                _ => {}
            }
            // Unquoted, the text may read as a number, a boolean or null: fine if that is
            // exactly how it reads on its own, and nothing of it became a comment.
            let comment =
                expected.starts_with('#') || expected.contains(" #") || expected.contains("\t#");
            let alone = if expected.trim().is_empty() {
                Some(Value::Null)
            } else {
                serde_saphyr::from_str::<Value>(&expected).ok()
            };
            if !comment && alone.as_ref() == Some(actual) {
                Ok(())
            } else if comment {
                Err(format!(
                    "YAML reads {expected:?} as {actual} there: ` #` starts a comment"
                ))
            } else {
                Err(format!("YAML reads {expected:?} as {actual} there"))
            }
        }
        (s, a) if s == a => Ok(()),
        (s, a) => Err(format!("it turns {s} into {a}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sub(text: &str, pairs: &[(&str, &str)]) -> Result<String, RenderError> {
        let v = vars(pairs);
        substitute(text, Path::new("k8s.yml"), |n| v.get(n).cloned())
    }

    #[test]
    fn variables_are_replaced_and_dollars_escaped() {
        assert_eq!(
            sub(
                "image: ${IMAGE} cost: $$5 shell: $HOME",
                &[("IMAGE", "r/h@sha256:1")]
            )
            .unwrap(),
            "image: r/h@sha256:1 cost: $5 shell: $HOME"
        );
    }

    #[test]
    fn every_missing_variable_is_listed_with_line_and_column() {
        let err = sub("a: ${A}\nb: ${B}\nc: ${C}\n", &[("B", "1")]).unwrap_err();
        let RenderError::Undefined { missing, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(
            missing,
            &[
                Missing {
                    name: "A".into(),
                    line: 1,
                    column: 4
                },
                Missing {
                    name: "C".into(),
                    line: 3,
                    column: 4
                },
            ]
        );
        let text = err.to_string();
        assert!(
            text.starts_with("undefined variables A, C in k8s.yml:"),
            "{text}"
        );
        assert!(text.contains("k8s.yml:3:4: ${C} is not defined"), "{text}");
    }

    #[test]
    fn an_empty_value_is_a_value_not_a_missing_variable() {
        assert_eq!(sub("x${E}y", &[("E", "")]).unwrap(), "xy");
    }

    #[test]
    fn unclosed_and_malformed_references_are_syntax_errors() {
        assert!(matches!(
            sub("a: ${IMAGE", &[]),
            Err(RenderError::Syntax {
                line: 1,
                column: 4,
                ..
            })
        ));
        assert!(matches!(
            sub("a: ${1X}", &[]),
            Err(RenderError::Syntax { .. })
        ));
        assert!(matches!(
            sub("a: ${}", &[]),
            Err(RenderError::Syntax { .. })
        ));
    }

    #[test]
    fn documents_must_be_kubernetes_objects() {
        let err = parse_objects(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nfoo: bar\n",
            Path::new("m.yml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("document 2"), "{err}");
        assert!(err.to_string().contains("apiVersion"), "{err}");
        let err = parse_objects("a: [1,\n", Path::new("m.yml")).unwrap_err();
        assert!(matches!(err, RenderError::Yaml { .. }), "{err}");
    }

    fn repo_manifest_vars() -> BTreeMap<String, String> {
        vars(&[
            (
                "IMAGE",
                "europe-west1-docker.pkg.dev/p/ferry/hello@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            ("COMMIT", "0123456789abcdef0123456789abcdef01234567"),
            ("ENVIRONMENT", "production"),
            ("NAMESPACE", "hello"),
            ("REPLICAS", "3"),
        ])
    }

    #[test]
    fn the_repository_manifest_renders_to_a_service_a_deployment_and_its_guards() {
        let template = include_str!("../../../k8s.yml");
        let rendered = render(template, Path::new("k8s.yml"), &repo_manifest_vars()).unwrap();
        let kinds: Vec<&str> = rendered
            .objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "Service",
                "Deployment",
                "PodDisruptionBudget",
                "NetworkPolicy"
            ]
        );
        let deploy = &rendered.objects[1];
        assert_eq!(deploy["spec"]["replicas"], 3);
        assert_eq!(
            deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            0
        );
        let container = &deploy["spec"]["template"]["spec"]["containers"][0];
        assert!(container["image"].as_str().unwrap().contains("@sha256:"));
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        // Hard spread over nodes, soft over zones, so a node drain takes one replica at most.
        let spread = &deploy["spec"]["template"]["spec"]["topologySpreadConstraints"];
        assert_eq!(spread[0]["topologyKey"], "kubernetes.io/hostname");
        assert_eq!(spread[0]["whenUnsatisfiable"], "DoNotSchedule");
        assert_eq!(spread[1]["topologyKey"], "topology.kubernetes.io/zone");
        let (pdb, policy) = (&rendered.objects[2], &rendered.objects[3]);
        assert_eq!(pdb["spec"]["maxUnavailable"], 1);
        assert_eq!(pdb["metadata"]["namespace"], "hello");
        assert_eq!(
            policy["spec"]["policyTypes"],
            serde_json::json!(["Ingress"])
        );
        assert_eq!(
            policy["spec"]["ingress"],
            serde_json::json!([{"ports": [{"port": "http", "protocol": "TCP"}]}])
        );
        insta::assert_snapshot!("k8s_rendered", rendered.text);
    }

    #[test]
    fn the_repository_manifest_names_every_variable_it_needs() {
        let template = include_str!("../../../k8s.yml");
        let err = render(template, Path::new("k8s.yml"), &BTreeMap::new()).unwrap_err();
        let RenderError::Undefined { missing, .. } = err else {
            panic!()
        };
        let mut names: Vec<String> = missing.into_iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names,
            ["COMMIT", "ENVIRONMENT", "IMAGE", "NAMESPACE", "REPLICAS"]
        );
    }

    #[test]
    fn ferrys_own_variables_cannot_be_set_by_vars() {
        for name in ["IMAGE", "COMMIT", "ENVIRONMENT", "NAMESPACE"] {
            let err = check_settable(name, "--var").unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("--var cannot set {name}: ferry sets it to")),
                "{err}"
            );
            assert!(err.contains("hint: "), "{err}");
        }
        let image = check_settable("IMAGE", "--var").unwrap_err().to_string();
        assert!(
            image.contains("pinned by digest") && image.contains("--image"),
            "{image}"
        );
        assert_eq!(check_settable("REPLICAS", "--var"), Ok(()));
        assert_eq!(
            check_settable("image", "--var"),
            Ok(()),
            "names are case-sensitive"
        );
    }

    #[test]
    fn a_manifest_without_objects_is_an_error_naming_the_file() {
        for text in ["", "# only a comment\n---\n", "---\n---\n# x\n...\n"] {
            let err = render(text, Path::new("deploy/empty.yml"), &BTreeMap::new()).unwrap_err();
            assert!(matches!(err, RenderError::Empty { .. }), "{text:?}: {err}");
            assert!(
                err.to_string()
                    .starts_with("deploy/empty.yml has no Kubernetes object"),
                "{err}"
            );
        }
    }

    const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  fixed: kept\n  value: ${V}\n  quoted: \"${Q}\"\n  flow: {a: ${F}}\n";

    fn config_map(v: &str, q: &str, f: &str) -> Result<Rendered, RenderError> {
        render(
            CONFIG_MAP,
            Path::new("cm.yml"),
            &vars(&[("V", v), ("Q", q), ("F", f)]),
        )
    }

    #[test]
    fn a_value_with_a_line_break_is_refused_naming_the_variable_and_its_place() {
        let template = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: ${REPLICAS}\n";
        let err = render(
            template,
            Path::new("k8s.yml"),
            &vars(&[("REPLICAS", "2\n  paused: true")]),
        )
        .unwrap_err();
        let RenderError::Unsafe {
            name, line, column, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!((name.as_str(), *line, *column), ("REPLICAS", 6, 13));
        let text = err.to_string();
        assert!(
            text.starts_with("k8s.yml:6:13: the value of REPLICAS cannot be pasted into the manifest: it contains a line break"),
            "{text}"
        );
        assert!(text.contains("hint: "), "{text}");
        // Also where YAML would fold it harmlessly, and in a carriage return.
        assert!(
            matches!(config_map("1", "a\r\nb: c", "1"), Err(RenderError::Unsafe { name, .. }) if name == "Q")
        );
    }

    #[test]
    fn values_that_read_as_yaml_structure_are_refused_naming_the_variable() {
        for (v, q, f, culprit, why) in [
            ("[1, 2]", "q", "1", "V", "reads as a YAML list"),
            ("{paused: true}", "q", "1", "V", "reads as a YAML mapping"),
            ("2 # three", "q", "1", "V", "starts a comment"),
            ("a: b", "q", "1", "V", "not valid YAML"),
            ("ok", "a\", b: \"c", "1", "Q", ""),
            ("ok", "q", "1, paused: true", "F", "adds the key \"paused\""),
            ("ok", "q", "1}\n", "F", "line break"),
            ("*alias", "q", "1", "V", "not valid YAML"),
        ] {
            let err = config_map(v, q, f).unwrap_err();
            let RenderError::Unsafe {
                name, why: said, ..
            } = &err
            else {
                panic!("{v:?} {q:?} {f:?}: {err}")
            };
            assert_eq!(name, culprit, "{err}");
            assert!(said.contains(why), "{v:?} {q:?} {f:?}: {err}");
        }
    }

    #[test]
    fn ordinary_values_render_as_themselves() {
        for (v, expected) in [
            ("3", serde_json::json!(3)),
            ("2.50", serde_json::json!(2.5)),
            ("true", serde_json::json!(true)),
            ("", serde_json::Value::Null),
            (
                "r.example/h@sha256:0123",
                serde_json::json!("r.example/h@sha256:0123"),
            ),
            ("hello world", serde_json::json!("hello world")),
            ("a#b", serde_json::json!("a#b")),
        ] {
            let rendered =
                config_map(v, "a: b, # [c]", "x").unwrap_or_else(|e| panic!("{v:?}: {e}"));
            let data = &rendered.objects[0]["data"];
            assert_eq!(data["value"], expected, "{v:?}");
            assert_eq!(
                data["quoted"], "a: b, # [c]",
                "any text inside double quotes"
            );
            assert_eq!(data["flow"], serde_json::json!({"a": "x"}));
        }
    }

    proptest! {
        /// Whatever the values, a manifest that renders has exactly the template's keys: no
        /// value ever adds, removes or nests anything.
        #[test]
        fn no_value_changes_the_documents_structure(
            v in "[ -~\t\n]{0,16}",
            q in "[ -~\t\n]{0,16}",
            f in "[ -~\t\n]{0,16}",
        ) {
            if let Ok(rendered) = config_map(&v, &q, &f) {
                prop_assert_eq!(rendered.objects.len(), 1);
                let object = &rendered.objects[0];
                let keys = |value: &serde_json::Value| -> Vec<String> {
                    value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
                };
                prop_assert_eq!(keys(object), ["apiVersion", "data", "kind", "metadata"]);
                prop_assert_eq!(keys(&object["metadata"]), ["name"]);
                prop_assert_eq!(keys(&object["data"]), ["fixed", "flow", "quoted", "value"]);
                prop_assert_eq!(keys(&object["data"]["flow"]), ["a"]);
                prop_assert_eq!(&object["data"]["fixed"], "kept");
                for leaf in [&object["data"]["value"], &object["data"]["quoted"], &object["data"]["flow"]["a"]] {
                    prop_assert!(!leaf.is_object() && !leaf.is_array(), "{leaf}");
                }
            }
        }

        /// A word-like value always renders, as exactly what YAML makes of it alone.
        #[test]
        fn word_values_always_render(v in "[a-zA-Z0-9][a-zA-Z0-9./@_-]{0,30}") {
            let rendered = config_map(&v, &v, &v);
            prop_assert!(rendered.is_ok(), "{:?}", rendered);
            let alone: serde_json::Value = serde_saphyr::from_str(&v).unwrap();
            let rendered = rendered.unwrap();
            prop_assert_eq!(&rendered.objects[0]["data"]["value"], &alone);
            prop_assert_eq!(&rendered.objects[0]["data"]["quoted"], &serde_json::json!(v));
        }

        #[test]
        fn text_without_dollars_is_unchanged(text in "[^$]{0,200}") {
            prop_assert_eq!(sub(&text, &[]).unwrap(), text);
        }

        #[test]
        fn escaped_dollars_round_trip(text in "[^$]{0,50}") {
            let escaped = text.replace('x', "$$");
            prop_assert_eq!(sub(&escaped, &[]).unwrap(), text.replace('x', "$"));
        }

        #[test]
        fn every_defined_variable_is_substituted(
            name in "[A-Z_][A-Z0-9_]{0,10}",
            value in "[^$]{0,30}",
            before in "[^$]{0,20}",
            after in "[^$]{0,20}",
        ) {
            let template = format!("{before}${{{name}}}{after}");
            prop_assert_eq!(
                sub(&template, &[(&name, &value)]).unwrap(),
                format!("{before}{value}{after}")
            );
        }
    }
}
