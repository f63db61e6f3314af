//! Field ownership for server-side apply, after sigs.k8s.io/structured-merge-diff as the API
//! server runs it: every write records which manager owns which fields in
//! `metadata.managedFields` (FieldsV1, the `f:`/`k:` notation), an apply that would change a
//! field another manager owns is a conflict unless forced, and fields a manager stops applying
//! are pruned unless someone else owns them.
//!
//! It is not schema-driven: the few lists merged by key, and the few atomic maps, are named in
//! [`list_keys`] and [`is_atomic_map`]; every other list is atomic and every other object a map.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// One step of a field path: a field of an object, or a list item by its key fields, stored
/// as the canonical JSON of those fields (`{"name":"web"}`), as FieldsV1 writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Element {
    Field(String),
    Key(String),
}

type Path = Vec<Element>;
type Set = BTreeSet<Path>;

/// Metadata the server owns: never part of anyone's field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Maps whose own node is recorded (`.`) when a write creates them, as the real server's
/// comparison does for map-typed (not struct-typed) fields.
const MAP_TYPED: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "binaryData",
    "matchLabels",
    "nodeSelector",
    "limits",
    "requests",
];

/// The key fields of a list merged by key, with their defaults; `None` for an atomic list.
fn list_keys(path: &[Element]) -> Option<&'static [(&'static str, Option<&'static str>)]> {
    let Some(Element::Field(name)) = path.last() else {
        return None;
    };
    let in_container = path.iter().any(|e| {
        matches!(e, Element::Field(f) if f == "containers" || f == "initContainers" || f == "ephemeralContainers")
    });
    match name.as_str() {
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" => {
            Some(&[("name", None)])
        }
        "volumeMounts" => Some(&[("mountPath", None)]),
        "ports" if in_container => Some(&[("containerPort", None), ("protocol", Some("TCP"))]),
        "ports" => Some(&[("port", None), ("protocol", Some("TCP"))]),
        _ => None,
    }
}

/// `spec.selector` is replaced whole: a LabelSelector is an atomic struct and a Service's
/// selector an atomic map.
fn is_atomic_map(path: &[Element]) -> bool {
    matches!(path, [Element::Field(a), Element::Field(b)] if a == "spec" && b == "selector")
}

/// The canonical key of a list item (`{"containerPort":8000,"protocol":"TCP"}`), or `None`
/// when a key field is missing and has no default.
fn item_key(item: &Value, keys: &[(&str, Option<&str>)]) -> Option<String> {
    let mut fields: Vec<(&str, Value)> = Vec::new();
    for (k, default) in keys {
        match (item.get(*k).filter(|v| !v.is_null()), default) {
            (Some(v), _) => fields.push((k, v.clone())),
            (None, Some(d)) => fields.push((k, json!(d))),
            (None, None) => return None,
        }
    }
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let inner: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::String((*k).to_string())))
        .collect();
    Some(format!("{{{}}}", inner.join(",")))
}

/// Does `item` carry the key `key` (canonical JSON), defaults applied?
fn key_matches(item: &Value, key: &str) -> bool {
    let Ok(Value::Object(wanted)) = serde_json::from_str::<Value>(key) else {
        return false;
    };
    wanted.iter().all(|(k, want)| match item.get(k) {
        Some(v) if !v.is_null() => v == want,
        _ => k == "protocol" && want == "TCP",
    })
}

/// The keys of every item of a keyed list, or `None` if the list is atomic here.
fn keyed_items(path: &[Element], items: &[Value]) -> Option<Vec<String>> {
    let keys = list_keys(path)?;
    items.iter().map(|i| item_key(i, keys)).collect()
}

/// The fields of `value` under `path`: leaves, list items and empty maps; with `nodes`, also
/// the map-typed objects themselves (what a comparison reports as added or removed).
fn collect(value: &Value, path: &mut Path, nodes: bool, out: &mut Set) {
    match value {
        Value::Null => {}
        Value::Object(map) if !is_atomic_map(path) => {
            let map_typed =
                matches!(path.last(), Some(Element::Field(f)) if MAP_TYPED.contains(&f.as_str()));
            if (map.is_empty() || (nodes && map_typed)) && !path.is_empty() {
                out.insert(path.clone());
            }
            for (k, v) in map {
                path.push(Element::Field(k.clone()));
                collect(v, path, nodes, out);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match keyed_items(path, items) {
            Some(keys) => {
                for (item, key) in items.iter().zip(keys) {
                    path.push(Element::Key(key));
                    out.insert(path.clone());
                    collect(item, path, nodes, out);
                    path.pop();
                }
            }
            None => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

fn fields(value: &Value, nodes: bool) -> Set {
    let mut out = Set::new();
    collect(value, &mut Vec::new(), nodes, &mut out);
    out
}

/// The part of an object a write through the main resource (`subresource` `None`) or the
/// `status` subresource may own.
fn ownable(object: &Value, subresource: Option<&str>) -> Value {
    let mut out = object.clone();
    let Some(map) = out.as_object_mut() else {
        return json!({});
    };
    map.remove("apiVersion");
    map.remove("kind");
    if subresource == Some("status") {
        map.retain(|k, _| k == "status");
    } else {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| !SERVER_METADATA.contains(&k.as_str()));
            if meta.is_empty() {
                map.remove("metadata");
            }
        }
    }
    out
}

fn lookup<'a>(value: &'a Value, path: &[Element]) -> Option<&'a Value> {
    let mut v = value;
    for e in path {
        v = match e {
            Element::Field(f) => v.as_object()?.get(f).filter(|v| !v.is_null())?,
            Element::Key(k) => v.as_array()?.iter().find(|i| key_matches(i, k))?,
        };
    }
    Some(v)
}

fn lookup_mut<'a>(value: &'a mut Value, path: &[Element]) -> Option<&'a mut Value> {
    let mut v = value;
    for e in path {
        v = match e {
            Element::Field(f) => v.as_object_mut()?.get_mut(f)?,
            Element::Key(k) => v.as_array_mut()?.iter_mut().find(|i| key_matches(i, k))?,
        };
    }
    Some(v)
}

/// Removes the field at `path`, then any parent left empty that nobody owns, up to (not
/// including) the top-level fields such as `spec`.
fn remove(value: &mut Value, path: &[Element], owned: &Set) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let Some(container) = lookup_mut(value, parent) else {
        return;
    };
    match (last, container) {
        (Element::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (Element::Key(k), Value::Array(items)) => items.retain(|i| !key_matches(i, k)),
        _ => return,
    }
    let emptied = lookup(value, parent).is_some_and(|c| match c {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    });
    if parent.len() > 1 && emptied && !owned.contains(parent) {
        remove(value, parent, owned);
    }
}

/// What changed between two objects, as the real server's comparison reports it.
struct Comparison {
    added: Set,
    modified: Set,
    removed: Set,
}

impl Comparison {
    fn of(old: &Value, new: &Value) -> Self {
        let (before, after) = (fields(old, true), fields(new, true));
        let modified = before
            .intersection(&after)
            .filter(|p| {
                let (a, b) = (lookup(old, p), lookup(new, p));
                a != b && !is_container(p, b)
            })
            .cloned()
            .collect();
        Comparison {
            added: after.difference(&before).cloned().collect(),
            removed: before.difference(&after).cloned().collect(),
            modified,
        }
    }

    fn changed(&self) -> Set {
        self.added.union(&self.modified).cloned().collect()
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// A list item or a non-empty map: its children change, not the node itself.
fn is_container(path: &[Element], value: Option<&Value>) -> bool {
    if matches!(path.last(), Some(Element::Key(_))) {
        return true;
    }
    match value {
        Some(Value::Object(m)) => !m.is_empty() && !is_atomic_map(path),
        Some(Value::Array(items)) => !items.is_empty() && keyed_items(path, items).is_some(),
        _ => false,
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: &'static str,
    subresource: Option<String>,
    api_version: String,
    time: String,
    set: Set,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// How conflict messages name the manager (apimachinery's `printManager`).
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {} at {}", self.api_version, self.time));
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut e = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&self.set),
        });
        if let Some(sub) = &self.subresource {
            e["subresource"] = json!(sub);
        }
        e
    }
}

fn read_entries(object: &Value) -> Vec<Entry> {
    let Some(list) = object["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let operation = match e["operation"].as_str()? {
                "Apply" => "Apply",
                _ => "Update",
            };
            let mut set = Set::new();
            parse_fields_v1(&e["fieldsV1"], &mut Vec::new(), &mut set);
            Some(Entry {
                manager: e["manager"].as_str().unwrap_or_default().to_string(),
                operation,
                subresource: e["subresource"].as_str().map(str::to_string),
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                time: e["time"].as_str().unwrap_or_default().to_string(),
                set,
            })
        })
        .collect()
}

fn write_entries(object: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(Entry::to_json)
        .collect();
    if list.is_empty() {
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
    } else {
        object["metadata"]["managedFields"] = Value::Array(list);
    }
}

fn parse_fields_v1(value: &Value, path: &mut Path, out: &mut Set) {
    let Some(map) = value.as_object() else {
        return;
    };
    for (k, child) in map {
        let element = if k == "." {
            out.insert(path.clone());
            continue;
        } else if let Some(f) = k.strip_prefix("f:") {
            Element::Field(f.to_string())
        } else if let Some(key) = k.strip_prefix("k:") {
            Element::Key(key.to_string())
        } else {
            continue; // `v:` and `i:` are never written here
        };
        path.push(element);
        if child.as_object().is_none_or(Map::is_empty) {
            out.insert(path.clone());
        } else {
            parse_fields_v1(child, path, out);
        }
        path.pop();
    }
}

fn to_fields_v1(set: &Set) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for e in path {
            let name = match e {
                Element::Field(f) => format!("f:{f}"),
                Element::Key(k) => format!("k:{k}"),
            };
            node = node
                .entry(name)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("a FieldsV1 node is an object");
        }
        node.insert(".".to_string(), json!({}));
    }
    // A member without children is written `{}`, one with children carries `.`.
    fn tidy(map: &mut Map<String, Value>) {
        for child in map.values_mut() {
            if let Some(m) = child.as_object_mut() {
                if m.len() == 1 && m.contains_key(".") {
                    m.clear();
                } else {
                    tidy(m);
                }
            }
        }
    }
    tidy(&mut root);
    Value::Object(root)
}

/// `.spec.template.spec.containers[name="web"].image`, as conflict messages print a path.
fn display(path: &[Element]) -> String {
    let mut s = String::new();
    for e in path {
        match e {
            Element::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Element::Key(k) => {
                let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .unwrap_or_default()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
        }
    }
    s
}

/// A field an apply would change that another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// `"kubectl"`, or `"kubectl-edit" using apps/v1 at TIME` for an Update manager.
    pub manager: String,
    /// `.spec.replicas`.
    pub field: String,
}

/// The real server's message for a failed apply.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [one] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager, one.field
        );
    }
    let managers: BTreeSet<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts.iter().filter(|c| c.manager == m) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Who made a write.
#[derive(Clone, Copy)]
pub struct Writer<'a> {
    pub manager: &'a str,
    /// `Some("status")` for a write through the status subresource.
    pub subresource: Option<&'a str>,
    pub api_version: &'a str,
    pub now: &'a str,
}

/// Server-side apply of `config` by `writer` onto `live` (`None` creates): the merged object,
/// with its `managedFields`, or the conflicts when not forced.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    writer: &Writer,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let live = live.cloned().unwrap_or_else(|| json!({}));
    let sub = writer.subresource;
    let config = ownable(config, sub);
    let mut entries = read_entries(&live);
    let applied = fields(&config, false);
    let mut merged = merge(&live, &config, &mut Vec::new());

    let mine = match entries
        .iter()
        .position(|e| e.is(writer.manager, "Apply", sub))
    {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: writer.manager.to_string(),
                operation: "Apply",
                subresource: sub.map(str::to_string),
                api_version: writer.api_version.to_string(),
                time: writer.now.to_string(),
                set: Set::new(),
            });
            entries.len() - 1
        }
    };
    let last = std::mem::replace(&mut entries[mine].set, applied.clone());

    // Prune what this manager applied before and no longer does, unless someone owns it.
    let owned: Set = entries.iter().flat_map(|e| e.set.iter().cloned()).collect();
    let mut removed: Vec<&Path> = Vec::new();
    // Outermost first: a list item goes whole, with its key fields.
    for path in last.difference(&applied) {
        if removed.iter().any(|r| path.starts_with(r)) {
            continue;
        }
        let owned_below = owned
            .range(path.clone()..)
            .take_while(|p| p.starts_with(path))
            .next()
            .is_some();
        if !owned_below {
            remove(&mut merged, path, &owned);
            removed.push(path);
        }
    }

    let comparison = Comparison::of(&ownable(&live, sub), &ownable(&merged, sub));
    let changed = comparison.changed();
    let mut conflicts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if i != mine {
            for path in e.set.intersection(&changed) {
                conflicts.push(Conflict {
                    manager: e.describe(),
                    field: display(path),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if i != mine {
            e.set = e
                .set
                .difference(&changed)
                .filter(|p| !comparison.removed.contains(*p))
                .cloned()
                .collect();
        }
    }
    let me = &mut entries[mine];
    if me.set != last || !comparison.is_empty() {
        me.time = writer.now.to_string();
        me.api_version = writer.api_version.to_string();
    }
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// Records a non-apply write (create, replace, patch) of `new` over `live` by `writer`: it
/// owns what it added or changed, and the others lose that and whatever it removed. Returns
/// `new` with its `managedFields`; any the request carried are ignored.
pub fn update(live: Option<&Value>, mut new: Value, writer: &Writer) -> Value {
    let empty = json!({});
    let live = live.unwrap_or(&empty);
    let sub = writer.subresource;
    let mut entries = read_entries(live);
    let comparison = Comparison::of(&ownable(live, sub), &ownable(&new, sub));
    let changed = comparison.changed();
    for e in entries.iter_mut() {
        if !e.is(writer.manager, "Update", sub) {
            e.set = e
                .set
                .difference(&changed)
                .filter(|p| !comparison.removed.contains(*p))
                .cloned()
                .collect();
        }
    }
    if !comparison.is_empty() {
        let i = match entries
            .iter()
            .position(|e| e.is(writer.manager, "Update", sub))
        {
            Some(i) => i,
            None => {
                entries.push(Entry {
                    manager: writer.manager.to_string(),
                    operation: "Update",
                    subresource: sub.map(str::to_string),
                    api_version: String::new(),
                    time: String::new(),
                    set: Set::new(),
                });
                entries.len() - 1
            }
        };
        let me = &mut entries[i];
        me.set = me
            .set
            .union(&changed)
            .filter(|p| !comparison.removed.contains(*p))
            .cloned()
            .collect();
        me.time = writer.now.to_string();
        me.api_version = writer.api_version.to_string();
    }
    write_entries(&mut new, &entries);
    new
}

/// A write by a simulated controller or the kubelet: status changes are recorded under the
/// `status` subresource, anything else as a plain Update, both for `manager`. Spec appliers
/// never conflict with the status entry; they only would with spec fields a controller sets
/// (a ReplicaSet's replicas, a pod's nodeName), which no deploy tool applies.
pub fn controller_write(live: Option<&Value>, new: Value, writer: &Writer) -> Value {
    let main = Writer {
        subresource: None,
        ..*writer
    };
    let staged = update(live, new, &main);
    let mut base = live.cloned().unwrap_or_else(|| json!({}));
    match staged["metadata"].get("managedFields") {
        Some(fields) => base["metadata"]["managedFields"] = fields.clone(),
        None => {
            if let Some(meta) = base["metadata"].as_object_mut() {
                meta.remove("managedFields");
            }
        }
    }
    let status = Writer {
        subresource: Some("status"),
        ..*writer
    };
    update(Some(&base), staged, &status)
}

/// A strategic merge patch, for the lists named in [`list_keys`]: items merge by key (an item
/// with `$patch: delete` is removed), `null` deletes a field, and directives such as
/// `$setElementOrder` and `$retainKeys` are dropped. Every other list is replaced.
pub fn strategic_merge(live: &Value, patch: &Value) -> Value {
    strategic(live, patch, &mut Vec::new())
}

fn strategic(live: &Value, patch: &Value, path: &mut Path) -> Value {
    match patch {
        Value::Object(pm) => {
            let mut out = live.as_object().cloned().unwrap_or_default();
            if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
                out.clear();
            }
            for (k, v) in pm {
                if k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    out.remove(k);
                    continue;
                }
                path.push(Element::Field(k.clone()));
                let merged = strategic(out.get(k).unwrap_or(&Value::Null), v, path);
                out.insert(k.clone(), merged);
                path.pop();
            }
            Value::Object(out)
        }
        Value::Array(items) => merge_keyed(live, items, path, |live_item, item, path| {
            (item.get("$patch").and_then(Value::as_str) != Some("delete"))
                .then(|| strategic(live_item, item, path))
        })
        .unwrap_or_else(|| patch.clone()),
        other => other.clone(),
    }
}

/// Merges an apply configuration into the live object: maps field by field, keyed lists item
/// by item, everything else replaced.
fn merge(live: &Value, config: &Value, path: &mut Path) -> Value {
    match config {
        Value::Object(cm) if !is_atomic_map(path) => {
            let mut out = live.as_object().cloned().unwrap_or_default();
            for (k, cv) in cm {
                if cv.is_null() {
                    continue;
                }
                path.push(Element::Field(k.clone()));
                let merged = merge(out.get(k).unwrap_or(&Value::Null), cv, path);
                out.insert(k.clone(), merged);
                path.pop();
            }
            Value::Object(out)
        }
        Value::Array(items) => merge_keyed(live, items, path, |live_item, item, path| {
            Some(merge(live_item, item, path))
        })
        .unwrap_or_else(|| config.clone()),
        other => other.clone(),
    }
}

/// Merges the list `items` into the live list item by item, matched by their keys: a match is
/// merged by `item_merge`, an item without one is appended (merged onto null), and an item
/// `item_merge` maps to `None` is removed. `None` when the list is not keyed at `path`.
fn merge_keyed(
    live: &Value,
    items: &[Value],
    path: &mut Path,
    item_merge: impl Fn(&Value, &Value, &mut Path) -> Option<Value>,
) -> Option<Value> {
    let live_items = live.as_array().cloned().unwrap_or_default();
    let keys = keyed_items(path, items)?;
    let mut live_keys = keyed_items(path, &live_items)?;
    let mut out = live_items;
    for (item, key) in items.iter().zip(keys) {
        let position = live_keys.iter().position(|k| *k == key);
        path.push(Element::Key(key.clone()));
        let live_item = position.map_or(&Value::Null, |i| &out[i]);
        let merged = item_merge(live_item, item, path);
        path.pop();
        match (position, merged) {
            (Some(i), Some(merged)) => out[i] = merged,
            (Some(i), None) => {
                out.remove(i);
                live_keys.remove(i);
            }
            (None, Some(merged)) => {
                out.push(merged);
                live_keys.push(key);
            }
            (None, None) => {}
        }
    }
    Some(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            subresource: None,
            api_version: "apps/v1",
            now: "2026-01-01T00:00:00Z",
        }
    }

    fn deployment(replicas: i64, env: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "web", "image": "w:1", "env": env,
                    "ports": [{"containerPort": 8000}]}]}}}})
    }

    #[test]
    fn fields_v1_round_trips_and_keys_list_items() {
        let set = fields(
            &ownable(&deployment(2, json!([{"name": "A", "value": "1"}])), None),
            false,
        );
        let v1 = to_fields_v1(&set);
        let containers = &v1["f:spec"]["f:template"]["f:spec"]["f:containers"];
        let web = &containers["k:{\"name\":\"web\"}"];
        assert_eq!(web["."], json!({}));
        assert_eq!(web["f:image"], json!({}));
        assert_eq!(web["f:env"]["k:{\"name\":\"A\"}"]["f:value"], json!({}));
        assert_eq!(
            web["f:ports"]["k:{\"containerPort\":8000,\"protocol\":\"TCP\"}"]["."],
            json!({})
        );
        assert_eq!(
            v1["f:spec"]["f:selector"],
            json!({}),
            "the selector is atomic"
        );
        assert!(v1["f:metadata"].get("f:name").is_none());
        let mut back = Set::new();
        parse_fields_v1(&v1, &mut Vec::new(), &mut back);
        assert_eq!(back, set);
    }

    #[test]
    fn conflicts_name_the_field_and_the_manager() {
        let live = apply(None, &deployment(2, json!([])), &writer("a"), false).unwrap();
        let err = apply(
            Some(&live),
            &json!({"spec": {"replicas": 3}}),
            &writer("b"),
            false,
        )
        .unwrap_err();
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
        );
        let path = vec![
            Element::Field("spec".into()),
            Element::Key("{\"name\":\"web\"}".into()),
            Element::Field("image".into()),
        ];
        assert_eq!(display(&path), ".spec[name=\"web\"].image");
    }

    #[test]
    fn a_strategic_merge_patch_merges_containers_by_name() {
        let live = deployment(2, json!([{"name": "A", "value": "1"}]));
        let patched = strategic_merge(
            &live,
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"name": "web", "image": "w:2",
                    "env": [{"name": "A", "$patch": "delete"}, {"name": "B", "value": "2"}]}]}}}}),
        );
        let spec = &patched["spec"]["template"]["spec"];
        assert!(spec.get("$setElementOrder/containers").is_none());
        assert_eq!(spec["containers"][0]["image"], "w:2");
        assert_eq!(spec["containers"][0]["ports"][0]["containerPort"], 8000);
        assert_eq!(
            spec["containers"][0]["env"],
            json!([{"name": "B", "value": "2"}])
        );
    }

    #[test]
    fn controller_writes_own_status_through_the_subresource() {
        let live = apply(None, &deployment(2, json!([])), &writer("ferry"), false).unwrap();
        let mut next = live.clone();
        next["status"] = json!({"replicas": 2});
        next["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
        let next = controller_write(Some(&live), next, &writer("kube-controller-manager"));
        let entries = read_entries(&next);
        let status = entries
            .iter()
            .find(|e| e.subresource.as_deref() == Some("status"))
            .unwrap();
        assert_eq!(status.manager, "kube-controller-manager");
        assert_eq!(
            to_fields_v1(&status.set),
            json!({"f:status": {"f:replicas": {}}})
        );
        let main = entries
            .iter()
            .find(|e| e.manager == "kube-controller-manager" && e.subresource.is_none())
            .unwrap();
        assert_eq!(
            to_fields_v1(&main.set),
            json!({"f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}}})
        );
        // ferry's next apply of another image meets no conflict.
        let mut config = deployment(2, json!([]));
        config["spec"]["template"]["spec"]["containers"][0]["image"] = json!("w:2");
        assert!(apply(Some(&next), &config, &writer("ferry"), false).is_ok());
    }

    #[test]
    fn omitted_list_items_are_pruned() {
        let live = apply(
            None,
            &deployment(
                2,
                json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
            ),
            &writer("a"),
            false,
        )
        .unwrap();
        let next = apply(
            Some(&live),
            &deployment(2, json!([{"name": "B", "value": "2"}])),
            &writer("a"),
            false,
        )
        .unwrap();
        assert_eq!(
            next["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "2"}])
        );
    }
}
