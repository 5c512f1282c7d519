//! The tabletop campaign manager: `/v1/campaigns`, its members and its four kinds of
//! children (`sessions`, `npcs`, `maps`, `timeline`), over [`hearth_app::campaigns`].
//!
//! Reads answer `ETag: "<version>"` for single resources and honour `If-None-Match` (304);
//! every `PATCH` needs `If-Match` (428 without it, 412 when stale). Ids that are not UUIDs
//! are not found, like ids of campaigns the caller is not a member of.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_app::campaigns::cache::Rendered;
use hearth_app::campaigns::input::{
    CampaignInput, ChildInput, MapInput, MemberInput, NpcInput, SessionInput, TimelineInput,
};
use hearth_app::campaigns::{CampaignFailure, Precondition};
use hearth_storage::campaign::{KeyCursor, MAX_PAGE};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{ApiError, FieldError};
use crate::extract::{ApiJson, ApiQuery, AuthUser};
use crate::state::AppState;

impl From<CampaignFailure> for ApiError {
    fn from(failure: CampaignFailure) -> Self {
        match failure {
            CampaignFailure::NotFound => Self::NotFound("no such campaign or record"),
            CampaignFailure::Forbidden(detail) => Self::Forbidden(detail),
            CampaignFailure::Invalid(error) => Self::field(error.field(), error.message()),
            CampaignFailure::Stale => Self::PreconditionFailed(
                "the record changed since the version in If-Match; read it again",
            ),
            CampaignFailure::Conflict { field, message } => Self::Conflict(
                format!("{field} {message}"),
                Some(FieldError::new(field, message)),
            ),
            CampaignFailure::Limit(detail) => Self::Conflict(detail.to_owned(), None),
            CampaignFailure::Storage(error) => error.into(),
        }
    }
}

const NO_SUCH: ApiError = ApiError::NotFound("no such campaign or record");

fn id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| NO_SUCH)
}

fn etag(version: i64) -> HeaderValue {
    // Digits and quotes only: always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// Whether `If-None-Match` names this version (or is `*`).
fn not_modified(headers: &HeaderMap, version: i64) -> bool {
    let wanted = format!("\"{version}\"");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == wanted)
}

/// The version `If-Match` names: 428 without one, 412 for one that is no version of ours.
fn precondition(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Err(ApiError::PreconditionRequired(
            "an update needs If-Match with the ETag of the version it changes",
        ));
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(Precondition::Any);
    }
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse::<i64>().ok())
        .map(Precondition::Version)
        .ok_or(ApiError::PreconditionFailed(
            "If-Match names no version of this record",
        ))
}

/// A rendered page as a JSON response, with its ETag when it has a version.
fn respond(status: StatusCode, page: Rendered) -> Response {
    let mut response = (status, Body::from(page.json)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(version) = page.version {
        headers.insert(header::ETAG, etag(version));
    }
    response
}

/// A read: 304 when `If-None-Match` names the current version.
fn read(headers: &HeaderMap, page: Rendered) -> Response {
    match page.version {
        Some(version) if not_modified(headers, version) => {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            response.headers_mut().insert(header::ETAG, etag(version));
            response
        }
        _ => respond(StatusCode::OK, page),
    }
}

/// `?limit=&cursor=` of every list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Default page size.
const DEFAULT_LIMIT: u32 = 20;

impl PageQuery {
    fn parse(self) -> Result<(Option<KeyCursor>, u32), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::field(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        let after = self
            .cursor
            .map(|c| KeyCursor::decode(&c))
            .transpose()
            .map_err(|_| ApiError::field("cursor", "is not a cursor this API issued"))?;
        Ok((after, limit))
    }
}

/// `POST /v1/campaigns`.
#[utoipa::path(
    post, path = "/v1/campaigns", tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
    request_body = CampaignInput,
    responses(
        (status = 201, description = "The campaign; the caller owns it as game master.", body = Object, headers(("ETag" = String, description = "The record's version."))),
        (status = 409, description = "A limit on campaigns is reached."),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiJson(input): ApiJson<CampaignInput>,
) -> Result<Response, ApiError> {
    let page = state.campaigns.create(claims.sub, input).await?;
    Ok(respond(StatusCode::CREATED, page))
}

/// `GET /v1/campaigns?limit=&cursor=`: the caller's campaigns, owned or joined.
#[utoipa::path(
    get, path = "/v1/campaigns", tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
    params(
        ("limit" = Option<u32>, Query, description = "1 to 100; default 20.", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
    ),
    responses((status = 200, description = "A page of the caller's campaigns, owned or joined.", body = crate::openapi::schemas::Page))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let (after, limit) = query.parse()?;
    let page = state.campaigns.list(claims.sub, after, limit).await?;
    Ok(respond(StatusCode::OK, page))
}

/// `GET /v1/campaigns/{id}`.
#[utoipa::path(
    get, path = "/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "The campaign's id."), ("If-None-Match" = Option<String>, Header, description = "A 304 when it names the current version.")),
    responses(
        (status = 200, description = "The campaign.", body = Object, headers(("ETag" = String, description = "The record's version."))),
        (status = 304, description = "Not modified since the version named.", headers(("ETag" = String, description = "The record's version."))),
        (status = 404, description = "No such campaign, or not a member."),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(campaign): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let page = state.campaigns.get(claims.sub, id(&campaign)?).await?;
    Ok(read(&headers, page))
}

/// `PATCH /v1/campaigns/{id}` with `If-Match`.
#[utoipa::path(
    patch, path = "/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "The campaign's id."), ("If-Match" = String, Header, description = "The ETag of the version this update changes, or `*`.")),
    request_body = CampaignInput,
    responses(
        (status = 200, description = "The updated campaign.", body = Object, headers(("ETag" = String, description = "The record's version."))),
        (status = 403, description = "Not a game master."),
        (status = 404, description = "No such campaign, or not a member."),
        (status = 412, description = "`If-Match` names another version."),
        (status = 428, description = "`If-Match` is missing."),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(campaign): Path<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<CampaignInput>,
) -> Result<Response, ApiError> {
    let campaign = id(&campaign)?;
    let precondition = precondition(&headers)?;
    let page = state
        .campaigns
        .update(claims.sub, campaign, precondition, input)
        .await?;
    Ok(respond(StatusCode::OK, page))
}

/// `DELETE /v1/campaigns/{id}`: the owner only; everything in it goes too.
#[utoipa::path(
    delete, path = "/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "The campaign's id.")),
    responses(
        (status = 204, description = "Deleted, with everything in it."),
        (status = 403, description = "Not the owner."),
        (status = 404, description = "No such campaign, or not a member."),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(campaign): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.campaigns.delete(claims.sub, id(&campaign)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/campaigns/{id}/members`.
#[utoipa::path(
    get, path = "/v1/campaigns/{id}/members", tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "The members.", body = Object),
        (status = 404, description = "No such campaign, or not a member."),
    )
)]
pub(crate) async fn members(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(campaign): Path<String>,
) -> Result<Response, ApiError> {
    let page = state.campaigns.members(claims.sub, id(&campaign)?).await?;
    Ok(respond(StatusCode::OK, page))
}

/// `POST /v1/campaigns/{id}/members {"username","role"}`.
#[utoipa::path(
    post, path = "/v1/campaigns/{id}/members", tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "The campaign's id.")),
    request_body = MemberInput,
    responses(
        (status = 201, description = "The member.", body = Object),
        (status = 403, description = "Not a game master."),
        (status = 404, description = "No such campaign, or not a member."),
        (status = 409, description = "Already a member, or a limit is reached."),
    )
)]
pub(crate) async fn add_member(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(campaign): Path<String>,
    ApiJson(input): ApiJson<MemberInput>,
) -> Result<Response, ApiError> {
    let page = state
        .campaigns
        .add_member(claims.sub, id(&campaign)?, input)
        .await?;
    Ok(respond(StatusCode::CREATED, page))
}

/// `DELETE /v1/campaigns/{id}/members/{user_id}`.
#[utoipa::path(
    delete, path = "/v1/campaigns/{id}/members/{user_id}", tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "The campaign's id."), ("user_id" = String, Path, description = "The member's user id.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "Neither a game master nor the member."),
        (status = 404, description = "No such campaign or member."),
        (status = 409, description = "The owner cannot leave."),
    )
)]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path((campaign, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .campaigns
        .remove_member(claims.sub, id(&campaign)?, id(&user)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/campaigns/{id}/<kind>?limit=&cursor=`.
pub(crate) async fn list_children<I: ChildInput>(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(campaign): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let campaign = id(&campaign)?;
    let (after, limit) = query.parse()?;
    let page = state
        .campaigns
        .list_children(claims.sub, campaign, I::KIND, after, limit)
        .await?;
    Ok(respond(StatusCode::OK, page))
}

/// `POST /v1/campaigns/{id}/<kind>`.
pub(crate) async fn create_child<I: ChildInput>(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(campaign): Path<String>,
    ApiJson(input): ApiJson<I>,
) -> Result<Response, ApiError> {
    let page = state
        .campaigns
        .create_child(claims.sub, id(&campaign)?, input)
        .await?;
    Ok(respond(StatusCode::CREATED, page))
}

/// `GET /v1/campaigns/{id}/<kind>/{child_id}`.
pub(crate) async fn get_child<I: ChildInput>(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path((campaign, child)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let page = state
        .campaigns
        .get_child(claims.sub, id(&campaign)?, I::KIND, id(&child)?)
        .await?;
    Ok(read(&headers, page))
}

/// `PATCH /v1/campaigns/{id}/<kind>/{child_id}` with `If-Match`.
pub(crate) async fn update_child<I: ChildInput>(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path((campaign, child)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<I>,
) -> Result<Response, ApiError> {
    let (campaign, child) = (id(&campaign)?, id(&child)?);
    let precondition = precondition(&headers)?;
    let page = state
        .campaigns
        .update_child(claims.sub, campaign, child, precondition, input)
        .await?;
    Ok(respond(StatusCode::OK, page))
}

/// `DELETE /v1/campaigns/{id}/<kind>/{child_id}`.
pub(crate) async fn delete_child<I: ChildInput>(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path((campaign, child)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .campaigns
        .delete_child(claims.sub, id(&campaign)?, I::KIND, id(&child)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The five routes of one kind of campaign child, as concrete, documented handlers over the
/// generic ones (`#[utoipa::path]` documents a function, not a function per type).
macro_rules! campaign_children {
    ($module:ident, $input:tt, $list:tt, $one:tt, $tag:literal) => {
        #[doc = concat!("The `", $tag, "` routes of a campaign.")]
        pub(crate) mod $module {
            use axum::extract::{Path, State};
            use axum::http::{HeaderMap, StatusCode};
            use axum::response::Response;

            #[allow(unused_imports, reason = "named by the annotations")]
            use super::*;
            use crate::error::ApiError;
            use crate::extract::{ApiJson, ApiQuery, AuthUser};
            use crate::state::AppState;

            #[doc = concat!("`GET ", $list, "`.")]
            #[utoipa::path(
                get, path = $list, tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
                params(("id" = String, Path, description = "The campaign's id."), ("limit" = Option<u32>, Query, description = "1 to 100; default 20.", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page.")),
                responses(
                    (status = 200, description = "A page of records (a player does not see `gm_only` ones).", body = crate::openapi::schemas::Page),
                    (status = 404, description = "No such campaign, or not a member."),
                )
            )]
            pub(crate) async fn list(
                state: State<AppState>,
                user: AuthUser,
                campaign: Path<String>,
                query: ApiQuery<super::PageQuery>,
            ) -> Result<Response, ApiError> {
                super::list_children::<$input>(state, user, campaign, query).await
            }

            #[doc = concat!("`POST ", $list, "`.")]
            #[utoipa::path(
                post, path = $list, tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
                params(("id" = String, Path, description = "The campaign's id.")),
                request_body = $input,
                responses(
                    (status = 201, description = "The record.", body = Object, headers(("ETag" = String, description = "The record's version."))),
                    (status = 403, description = "Not a game master."),
                    (status = 404, description = "No such campaign, or not a member."),
                    (status = 409, description = "A limit on records is reached."),
                )
            )]
            pub(crate) async fn create(
                state: State<AppState>,
                user: AuthUser,
                campaign: Path<String>,
                input: ApiJson<$input>,
            ) -> Result<Response, ApiError> {
                super::create_child::<$input>(state, user, campaign, input).await
            }

            #[doc = concat!("`GET ", $one, "`.")]
            #[utoipa::path(
                get, path = $one, tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
                params(("id" = String, Path, description = "The campaign's id."), ("child_id" = String, Path, description = "The record's id."), ("If-None-Match" = Option<String>, Header, description = "A 304 when it names the current version.")),
                responses(
                    (status = 200, description = "The record.", body = Object, headers(("ETag" = String, description = "The record's version."))),
                    (status = 304, description = "Not modified since the version named.", headers(("ETag" = String, description = "The record's version."))),
                    (status = 404, description = "No such record, or hidden from players."),
                )
            )]
            pub(crate) async fn get(
                state: State<AppState>,
                user: AuthUser,
                ids: Path<(String, String)>,
                headers: HeaderMap,
            ) -> Result<Response, ApiError> {
                super::get_child::<$input>(state, user, ids, headers).await
            }

            #[doc = concat!("`PATCH ", $one, "`.")]
            #[utoipa::path(
                patch, path = $one, tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
                params(("id" = String, Path, description = "The campaign's id."), ("child_id" = String, Path, description = "The record's id."), ("If-Match" = String, Header, description = "The ETag of the version this update changes, or `*`.")),
                request_body = $input,
                responses(
                    (status = 200, description = "The updated record.", body = Object, headers(("ETag" = String, description = "The record's version."))),
                    (status = 403, description = "Not a game master."),
                    (status = 404, description = "No such record."),
                    (status = 412, description = "`If-Match` names another version."),
                    (status = 428, description = "`If-Match` is missing."),
                )
            )]
            pub(crate) async fn update(
                state: State<AppState>,
                user: AuthUser,
                ids: Path<(String, String)>,
                headers: HeaderMap,
                input: ApiJson<$input>,
            ) -> Result<Response, ApiError> {
                super::update_child::<$input>(state, user, ids, headers, input).await
            }

            #[doc = concat!("`DELETE ", $one, "`.")]
            #[utoipa::path(
                delete, path = $one, tag = "campaigns", security(("bearer" = []), ("cookie" = [])),
                params(("id" = String, Path, description = "The campaign's id."), ("child_id" = String, Path, description = "The record's id.")),
                responses(
                    (status = 204, description = "Deleted."),
                    (status = 403, description = "Not a game master."),
                    (status = 404, description = "No such record."),
                )
            )]
            pub(crate) async fn delete(
                state: State<AppState>,
                user: AuthUser,
                ids: Path<(String, String)>,
            ) -> Result<StatusCode, ApiError> {
                super::delete_child::<$input>(state, user, ids).await
            }
        }
    };
}

campaign_children!(
    sessions,
    SessionInput,
    "/v1/campaigns/{id}/sessions",
    "/v1/campaigns/{id}/sessions/{child_id}",
    "sessions"
);
campaign_children!(
    npcs,
    NpcInput,
    "/v1/campaigns/{id}/npcs",
    "/v1/campaigns/{id}/npcs/{child_id}",
    "npcs"
);
campaign_children!(
    maps,
    MapInput,
    "/v1/campaigns/{id}/maps",
    "/v1/campaigns/{id}/maps/{child_id}",
    "maps"
);
campaign_children!(
    timeline,
    TimelineInput,
    "/v1/campaigns/{id}/timeline",
    "/v1/campaigns/{id}/timeline/{child_id}",
    "timeline"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_and_if_none_match_read_quoted_versions() {
        let mut headers = HeaderMap::new();
        assert!(matches!(
            precondition(&headers),
            Err(ApiError::PreconditionRequired(_))
        ));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"7\""));
        assert_eq!(precondition(&headers).unwrap(), Precondition::Version(7));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(precondition(&headers).unwrap(), Precondition::Any);
        headers.insert(header::IF_MATCH, HeaderValue::from_static("7"));
        assert!(matches!(
            precondition(&headers),
            Err(ApiError::PreconditionFailed(_))
        ));

        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"1\", W/\"3\""),
        );
        assert!(not_modified(&headers, 3));
        assert!(!not_modified(&headers, 2));
    }
}
