//! Just enough of the Kubernetes protobuf encoding to read what kubectl's imperative
//! `create namespace` and `create configmap` send (they send protobuf, unlike `apply`):
//! the `k8s\0` envelope, `runtime.Unknown`, and the fields of Namespace and ConfigMap that
//! those commands set. Everything else is refused with 415 by the caller.

use serde_json::{Map, Value, json};

use crate::store::Resource;

const MAGIC: &[u8] = b"k8s\0";

/// Can a protobuf body of this resource be read?
pub fn supports(resource: Resource) -> bool {
    matches!(resource.kind, "Namespace" | "ConfigMap")
}

/// The object in a protobuf request body, as JSON.
pub fn decode(resource: Resource, body: &[u8]) -> Result<Value, String> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the k8s protobuf envelope")?;
    let mut raw = None;
    for (field, value) in fields(unknown)? {
        if let (2, Wire::Bytes(bytes)) = (field, value) {
            raw = Some(bytes);
        }
    }
    let raw = raw.ok_or("the envelope holds no object")?;
    let mut object = json!({"apiVersion": resource.api_version(), "kind": resource.kind});
    for (field, value) in fields(raw)? {
        match (resource.kind, field, value) {
            (_, 1, Wire::Bytes(meta)) => object["metadata"] = object_meta(meta)?,
            ("ConfigMap", 2, Wire::Bytes(entry)) => {
                let (k, v) = map_entry(entry)?;
                object["data"][k] = json!(v);
            }
            ("ConfigMap", 4, Wire::Varint(immutable)) => {
                object["immutable"] = json!(immutable != 0)
            }
            _ => {}
        }
    }
    Ok(object)
}

fn object_meta(bytes: &[u8]) -> Result<Value, String> {
    let mut meta = Map::new();
    for (field, value) in fields(bytes)? {
        // gogo-protobuf writes unset strings as empty ones.
        let Wire::Bytes(b) = value else { continue };
        if b.is_empty() {
            continue;
        }
        let text = || String::from_utf8_lossy(b).into_owned();
        match field {
            1 => {
                meta.insert("name".into(), json!(text()));
            }
            2 => {
                meta.insert("generateName".into(), json!(text()));
            }
            3 => {
                meta.insert("namespace".into(), json!(text()));
            }
            11 | 12 => {
                let key = if field == 11 { "labels" } else { "annotations" };
                let (k, v) = map_entry(b)?;
                meta.entry(key)
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|m| m.insert(k, json!(v)));
            }
            _ => {}
        }
    }
    Ok(Value::Object(meta))
}

/// A `map<string, string>` entry: key is field 1, value field 2.
fn map_entry(bytes: &[u8]) -> Result<(String, String), String> {
    let (mut key, mut value) = (String::new(), String::new());
    for (field, v) in fields(bytes)? {
        if let Wire::Bytes(b) = v {
            let s = String::from_utf8_lossy(b).into_owned();
            match field {
                1 => key = s,
                2 => value = s,
                _ => {}
            }
        }
    }
    Ok((key, value))
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The top-level fields of one message, in order.
fn fields(mut bytes: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let tag = varint(&mut bytes)?;
        let value = match tag & 7 {
            0 => Wire::Varint(varint(&mut bytes)?),
            1 | 5 => {
                let n = if tag & 7 == 1 { 8 } else { 4 };
                bytes = bytes.get(n..).ok_or("truncated fixed-width field")?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).map_err(|e| e.to_string())?;
                let (field, rest) = (
                    bytes.get(..len).ok_or("truncated field")?,
                    &bytes[len.min(bytes.len())..],
                );
                bytes = rest;
                Wire::Bytes(field)
            }
            other => return Err(format!("unsupported protobuf wire type {other}")),
        };
        out.push((tag >> 3, value));
    }
    Ok(out)
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or("truncated varint")?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(n << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_namespace_with_labels() {
        let label = [field(1, b"team"), field(2, b"web")].concat();
        let meta = [field(1, b"hello"), field(11, &label)].concat();
        let namespace = field(1, &meta);
        let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let unknown = [field(1, &type_meta), field(2, &namespace)].concat();
        let body = [MAGIC, &unknown].concat();
        let resource = crate::store::resource_of_kind("Namespace").unwrap();
        assert_eq!(
            decode(resource, &body).unwrap(),
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "hello", "labels": {"team": "web"}}})
        );
    }

    #[test]
    fn refuses_a_body_without_the_envelope() {
        let resource = crate::store::resource_of_kind("ConfigMap").unwrap();
        assert!(decode(resource, b"{}").is_err());
    }
}
