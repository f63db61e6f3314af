//! Role-based access control, as much as a deploy needs: a bearer token names a user, the
//! user is bound to the rules of namespaced Roles, and a request whose verb, resource (with
//! its subresource) and namespace no rule allows gets the API server's 403 `Forbidden`, with
//! its message. Not modelled: ClusterRoles, groups, aggregation, `resourceNames` on create.

use serde_json::Value;

/// One rule of a Role.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub resource_names: Vec<String>,
}

/// A user (by bearer token) and what it may do in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub token: String,
    pub user: String,
    pub namespace: String,
    pub rules: Vec<Rule>,
}

/// Every binding the server enforces. With a policy set, a token no binding names is 401.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub bindings: Vec<Binding>,
}

impl Rule {
    /// The rules of a `rbac.authorization.k8s.io/v1` Role object (as JSON).
    pub fn from_role(role: &Value) -> Vec<Rule> {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        };
        role["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Rule {
                api_groups: strings(&r["apiGroups"]),
                resources: strings(&r["resources"]),
                verbs: strings(&r["verbs"]),
                resource_names: strings(&r["resourceNames"]),
            })
            .collect()
    }

    fn allows(&self, request: &Request<'_>) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        any(&self.api_groups, request.group)
            && any(&self.resources, &request.resource())
            && any(&self.verbs, request.verb)
            && (self.resource_names.is_empty()
                || request
                    .name
                    .is_some_and(|n| self.resource_names.iter().any(|r| r == n)))
    }
}

/// What a request asks to do, in RBAC's terms.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub plural: &'a str,
    pub subresource: Option<&'a str>,
    /// Empty for a cluster-scoped resource or an all-namespaces list.
    pub namespace: &'a str,
    pub name: Option<&'a str>,
}

impl Request<'_> {
    fn resource(&self) -> String {
        match self.subresource {
            Some(sub) => format!("{}/{sub}", self.plural),
            None => self.plural.to_string(),
        }
    }

    /// The API server's words: `deployments.apps "hello" is forbidden: User "ci" cannot patch
    /// resource "deployments" in API group "apps" in the namespace "default"`.
    pub fn forbidden_message(&self, user: &str) -> String {
        let qualified = if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        };
        let object = match self.name {
            Some(name) => format!("{qualified} \"{name}\""),
            None => qualified,
        };
        let scope = if self.namespace.is_empty() {
            " at the cluster scope".to_string()
        } else {
            format!(" in the namespace \"{}\"", self.namespace)
        };
        format!(
            "{object} is forbidden: User \"{user}\" cannot {} resource \"{}\" in API group \"{}\"{scope}",
            self.verb,
            self.resource(),
            self.group
        )
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No binding has this token: 401.
    Unauthenticated,
    /// The user's rules do not allow it: 403 with this message.
    Forbidden(String),
}

impl Policy {
    /// Whether the holder of `token` may do `request`.
    pub fn authorize(&self, token: Option<&str>, request: &Request<'_>) -> Result<(), Denied> {
        let Some(token) = token else {
            return Err(Denied::Unauthenticated);
        };
        let mine: Vec<&Binding> = self.bindings.iter().filter(|b| b.token == token).collect();
        let Some(first) = mine.first() else {
            return Err(Denied::Unauthenticated);
        };
        let allowed = mine.iter().any(|b| {
            !request.namespace.is_empty()
                && b.namespace == request.namespace
                && b.rules.iter().any(|r| r.allows(request))
        });
        if allowed {
            Ok(())
        } else {
            Err(Denied::Forbidden(request.forbidden_message(&first.user)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let role = serde_json::json!({"rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ]});
        Policy {
            bindings: vec![Binding {
                token: "t".into(),
                user: "system:serviceaccount:ci:deployer".into(),
                namespace: "hello".into(),
                rules: Rule::from_role(&role),
            }],
        }
    }

    fn request<'a>(verb: &'a str, group: &'a str, plural: &'a str, ns: &'a str) -> Request<'a> {
        Request {
            verb,
            group,
            plural,
            subresource: None,
            namespace: ns,
            name: Some("hello"),
        }
    }

    #[test]
    fn rules_allow_their_verbs_in_their_namespace_only() {
        let p = policy();
        assert_eq!(
            p.authorize(Some("t"), &request("patch", "apps", "deployments", "hello")),
            Ok(())
        );
        let err = p
            .authorize(
                Some("t"),
                &request("delete", "apps", "deployments", "hello"),
            )
            .unwrap_err();
        assert_eq!(
            err,
            Denied::Forbidden(
                "deployments.apps \"hello\" is forbidden: User \"system:serviceaccount:ci:deployer\" cannot delete resource \"deployments\" in API group \"apps\" in the namespace \"hello\"".into()
            )
        );
        assert!(
            p.authorize(Some("t"), &request("get", "apps", "deployments", "other"))
                .is_err()
        );
        assert_eq!(
            p.authorize(
                Some("nope"),
                &request("get", "apps", "deployments", "hello")
            ),
            Err(Denied::Unauthenticated)
        );
        let mut log = request("get", "", "pods", "hello");
        log.subresource = Some("log");
        assert_eq!(p.authorize(Some("t"), &log), Ok(()));
        log.subresource = None;
        assert!(
            p.authorize(Some("t"), &log).is_err(),
            "pods/log is not pods"
        );
    }
}
