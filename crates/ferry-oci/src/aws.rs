//! AWS as the identity behind a Google external account (workload identity federation from
//! EC2, ECS or anywhere with AWS credentials): the subject token is a signed AWS STS
//! `GetCallerIdentity` request, which Google's STS sends on to AWS to learn who is asking.
//!
//! Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`,
//! else from the instance metadata the configuration names (`url`, with an IMDSv2 session
//! token when `imdsv2_session_token_url` is set); the region from `AWS_REGION` or
//! `AWS_DEFAULT_REGION`, else `region_url` (the availability zone, less its letter). The request
//! is signed with AWS Signature Version 4. Nothing here is printed: the secret key, the
//! session token and the signed request stay in [`Secret`]s.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::registry::Secret;

/// An AWS access key, as the signer needs it.
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// What the configuration's `credential_source` says for AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsSource {
    pub environment_id: String,
    pub region_url: Option<String>,
    pub url: Option<String>,
    pub regional_cred_verification_url: Option<String>,
    pub imdsv2_session_token_url: Option<String>,
}

/// Where Google's libraries send the request when the configuration names none.
const DEFAULT_VERIFICATION_URL: &str =
    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15";

/// The subject token for `audience`: the signed GetCallerIdentity request, as the URL-encoded
/// JSON Google's STS takes (`subject_token_type` `urn:ietf:params:aws:token-type:aws4_request`).
pub async fn subject_token(
    source: &AwsSource,
    audience: &str,
    http: &reqwest::Client,
) -> Result<Secret, String> {
    if !source.environment_id.starts_with("aws") {
        return Err(format!(
            "its credential_source environment_id `{}` is not AWS's (aws1)",
            source.environment_id
        ));
    }
    if source.environment_id != "aws1" {
        return Err(format!(
            "its credential_source is AWS version `{}`; ferry reads aws1",
            source.environment_id
        ));
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut metadata = Metadata::new(source, http);
    let region = match env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")) {
        Some(region) => region,
        None => metadata.region().await?,
    };
    let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret)) => AwsCredentials {
            access_key_id,
            secret_access_key: Secret::new(secret),
            session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
        },
        _ => metadata.credentials().await?,
    };
    let url = source
        .regional_cred_verification_url
        .as_deref()
        .unwrap_or(DEFAULT_VERIFICATION_URL)
        .replace("{region}", &region);
    let headers = sign(
        "POST",
        &url,
        &region,
        &credentials,
        &[("x-goog-cloud-target-resource", audience)],
        jiff::Timestamp::now(),
    )?;
    let request = serde_json::json!({
        "url": url,
        "method": "POST",
        "headers": headers
            .iter()
            .map(|(k, v)| serde_json::json!({ "key": k, "value": v }))
            .collect::<Vec<_>>(),
    });
    Ok(Secret::new(percent_encode(&request.to_string())))
}

/// The instance metadata service, asked only for what the environment does not give.
struct Metadata<'a> {
    source: &'a AwsSource,
    http: &'a reqwest::Client,
    /// IMDSv2's session token, fetched once.
    session: Option<Secret>,
}

impl<'a> Metadata<'a> {
    fn new(source: &'a AwsSource, http: &'a reqwest::Client) -> Self {
        Metadata {
            source,
            http,
            session: None,
        }
    }

    async fn get(&mut self, url: &str) -> Result<String, String> {
        if let (None, Some(token_url)) = (&self.session, &self.source.imdsv2_session_token_url) {
            let resp = self
                .http
                .put(token_url)
                .header("X-aws-ec2-metadata-token-ttl-seconds", "300")
                .send()
                .await
                .map_err(|e| format!("cannot reach AWS's IMDSv2 token url {token_url}: {e}"))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(format!(
                    "AWS's IMDSv2 token url {token_url} answered {status}"
                ));
            }
            self.session = Some(Secret::new(resp.text().await.unwrap_or_default()));
        }
        let mut request = self.http.get(url);
        if let Some(session) = &self.session {
            request = request.header("X-aws-ec2-metadata-token", session.expose());
        }
        let resp = request
            .send()
            .await
            .map_err(|e| format!("cannot reach AWS's metadata at {url}: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("AWS's metadata at {url} answered {status}"));
        }
        Ok(resp.text().await.unwrap_or_default().trim().to_string())
    }

    /// The availability zone's region (`us-east-2b` → `us-east-2`).
    async fn region(&mut self) -> Result<String, String> {
        let url = self.source.region_url.clone().ok_or(
            "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or give the credential_source a region_url",
        )?;
        let mut region = self.get(&url).await?;
        region.pop();
        if region.is_empty() {
            return Err(format!("AWS's metadata at {url} gave no availability zone"));
        }
        Ok(region)
    }

    /// The instance role's credentials: the role's name from `url`, then its keys.
    async fn credentials(&mut self) -> Result<AwsCredentials, String> {
        let url = self.source.url.clone().ok_or(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give the credential_source the metadata url",
        )?;
        let role = self.get(&url).await?;
        let role = role.lines().next().unwrap_or_default().trim().to_string();
        if role.is_empty() {
            return Err(format!("AWS's metadata at {url} names no role"));
        }
        let keys = self
            .get(&format!("{}/{role}", url.trim_end_matches('/')))
            .await?;
        let keys: serde_json::Value = serde_json::from_str(&keys)
            .map_err(|_| format!("AWS's metadata for role {role} is not JSON"))?;
        let field = |k: &str| {
            keys[k]
                .as_str()
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        match (field("AccessKeyId"), field("SecretAccessKey")) {
            (Some(access_key_id), Some(secret)) => Ok(AwsCredentials {
                access_key_id,
                secret_access_key: Secret::new(secret),
                session_token: field("Token").map(Secret::new),
            }),
            _ => Err(format!(
                "AWS's metadata for role {role} has no AccessKeyId and SecretAccessKey"
            )),
        }
    }
}

/// The headers that sign `method url` (no body) with AWS Signature Version 4 for `region`, the
/// service being the host's first label (`sts`): `host`, `x-amz-date`, the session token if
/// any, `extra`, and `Authorization`, sorted by name.
pub fn sign(
    method: &str,
    url: &str,
    region: &str,
    credentials: &AwsCredentials,
    extra: &[(&str, &str)],
    now: jiff::Timestamp,
) -> Result<Vec<(String, String)>, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{url} is not a URL to sign: {e}"))?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(format!("{url} has no host")),
    };
    let service = host.split('.').next().unwrap_or_default().to_string();
    let utc = now.to_zoned(jiff::tz::TimeZone::UTC);
    let amz_date = utc.strftime("%Y%m%dT%H%M%SZ").to_string();
    let date = utc.strftime("%Y%m%d").to_string();

    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    headers.insert("host".into(), host);
    headers.insert("x-amz-date".into(), amz_date.clone());
    if let Some(token) = &credentials.session_token {
        headers.insert("x-amz-security-token".into(), token.expose().to_string());
    }
    for (k, v) in extra {
        headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
    }
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers.keys().cloned().collect::<Vec<_>>().join(";");
    let path = match parsed.path() {
        "" => "/",
        p => p,
    };
    let mut query: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (uri_encode(&k), uri_encode(&v)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical = format!(
        "{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{}",
        hex::encode(Sha256::digest(b""))
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let hmac = |key: &[u8], data: &str| {
        ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
            data.as_bytes(),
        )
        .as_ref()
        .to_vec()
    };
    let secret = format!("AWS4{}", credentials.secret_access_key.expose());
    let mut key = hmac(secret.as_bytes(), &date);
    for part in [region, service.as_str(), "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &to_sign));
    headers.insert(
        "Authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
    );
    Ok(headers.into_iter().collect())
}

/// AWS's URI encoding: everything but unreserved characters as `%XX`.
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The subject token's encoding: the JSON, percent-encoded (`/` kept, as Google's libraries do).
fn percent_encode(s: &str) -> String {
    uri_encode(s).replace("%2F", "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "accessKeyID".into(),
            secret_access_key: Secret::new("secret"),
            session_token: token.map(Secret::new),
        }
    }

    fn authorization(headers: &[(String, String)]) -> &str {
        &headers
            .iter()
            .find(|(k, _)| k == "Authorization")
            .unwrap()
            .1
    }

    // Expected signatures: the published vectors of Google's Go auth library for these
    // inputs (AWS STS GetCallerIdentity, 2020-08-11T06:55:22Z, us-east-2).
    const STS: &str =
        "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15";

    #[test]
    fn get_caller_identity_is_signed_as_google_and_aws_sign_it() {
        let at: jiff::Timestamp = "2020-08-11T06:55:22Z".parse().unwrap();
        let headers = sign(
            "POST",
            STS,
            "us-east-2",
            &credentials(Some("sessionTok")),
            &[],
            at,
        )
        .unwrap();
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=accessKeyID/20200811/us-east-2/sts/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=48541de09ff691ab53f9e017f5123ce338fecbadc1b278480bab3af221ca4f38"
        );
        let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "Authorization",
                "host",
                "x-amz-date",
                "x-amz-security-token"
            ]
        );
        assert!(headers.contains(&("x-amz-date".into(), "20200811T065522Z".into())));

        let headers = sign("POST", STS, "us-east-2", &credentials(None), &[], at).unwrap();
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=accessKeyID/20200811/us-east-2/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=bff58112d4696faecff9c104c8b7b963141e8b3cc4ba46a0664938fe6d112e41"
        );
    }

    #[test]
    fn the_target_resource_is_signed_too_and_the_token_is_url_encoded_json() {
        let at: jiff::Timestamp = "2020-08-11T06:55:22Z".parse().unwrap();
        let audience = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws";
        let headers = sign(
            "POST",
            STS,
            "us-east-2",
            &credentials(None),
            &[("x-goog-cloud-target-resource", audience)],
            at,
        )
        .unwrap();
        assert!(
            authorization(&headers)
                .contains("SignedHeaders=host;x-amz-date;x-goog-cloud-target-resource,"),
            "{headers:?}"
        );
        assert_eq!(
            percent_encode("{\"a\":\"//x y\"}"),
            "%7B%22a%22%3A%22//x%20y%22%7D"
        );
    }
}
