//! Strict rendering of the Kubernetes manifest template.
//!
//! `${NAME}` is replaced by its value; `$$` is a literal `$`; a bare `$NAME` is left alone
//! (it is ordinary text in YAML, e.g. in shell snippets). Every undefined `${NAME}` is
//! reported at once, with file, line and column, before anything touches a cluster — the
//! original pipeline's `envsubst` silently turned them into empty strings.
//!
//! Values come from ferry first (`IMAGE`, `COMMIT`, `ENVIRONMENT`, `NAMESPACE`, the
//! environment's `vars`, `--var`), then from the process environment.

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
    #[error("cannot read the manifest {file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
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
    out.push_str("\n  hint: define them under `vars` of the environment in ferry.toml, with --var NAME=VALUE, or in the environment");
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
    let template = std::fs::read_to_string(file).map_err(|source| RenderError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    render(&template, file, vars)
}

/// Substitutes and parses a template.
pub fn render(
    template: &str,
    file: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<Rendered, RenderError> {
    let text = substitute(template, file, |name| {
        vars.get(name).cloned().or_else(|| std::env::var(name).ok())
    })?;
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
    Ok(objects)
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

    proptest! {
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
