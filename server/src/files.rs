//! Attachments over HTTP: `POST /api/uploads?name=…` stores a file (the request body, streamed),
//! `DELETE /api/uploads/{id}` takes back one not sent yet, and `GET /files/{id}` and
//! `GET /files/{id}/preview` hand a file to people who can see its message (404 for anyone else).
//! The rules are in `app::ssr::attachments`; here are the HTTP parts: the session, the size the
//! client declares, and response headers that never let a file run as a page of this site.

use app::error::AppError;
use app::model::{ATTACHMENT_MAX_BYTES, ConversationRef};
use app::ssr::AppState;
use app::ssr::attachments;
use app::ssr::entities::users;
use app::ssr::messages::Draft;
use app::ssr::sessions::SessionToken;
use app::ssr::storage::Storage;
use app::ssr::{conversations, groups, realtime};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower_http::limit::RequestBodyLimitLayer;

/// The routes, when the server keeps files.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/uploads", post(upload))
        .route("/api/uploads/{id}", delete(discard))
        .route("/files/{id}", get(download))
        .route("/files/{id}/preview", get(preview))
        .route("/files/send", post(send_with_files))
        // The whole-file limit, with room for nothing else: the body is the file.
        .layer(RequestBodyLimitLayer::new(ATTACHMENT_MAX_BYTES as usize))
        .with_state(state)
}

#[derive(serde::Deserialize)]
struct UploadQuery {
    #[serde(default)]
    name: String,
}

/// The signed-in user, and the store.
async fn caller<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<(users::Model, &'a Storage), AppError> {
    let storage = state.storage.as_ref().ok_or_else(|| AppError::not_found("this server takes no files"))?;
    let token = SessionToken::from_headers(headers).ok_or(AppError::Unauthorized)?;
    let user = state.sessions.user_for(&state.db, &token).await?.ok_or(AppError::Unauthorized)?;
    Ok((user, storage))
}

/// `POST /api/uploads?name=photo.jpg`, the file as the body: 201 with the stored attachment
/// (id, cleaned name, sniffed type, size, image size), to be sent with a message.
async fn upload(State(state): State<AppState>, Query(query): Query<UploadQuery>, request: Request) -> Response {
    let answer = async {
        let (me, storage) = caller(&state, request.headers()).await?;
        let me = me.id;
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body = request.into_body().into_data_stream();
        attachments::upload(&state.db, storage, &state.upload_limiter, me, &query.name, declared, body).await
    };
    match answer.await {
        Ok(attachment) => (StatusCode::CREATED, Json(attachment)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `DELETE /api/uploads/{id}`: my upload, not sent yet, is removed (204).
async fn discard(State(state): State<AppState>, Path(id): Path<i64>, headers: HeaderMap) -> Response {
    let answer = async {
        let (me, storage) = caller(&state, &headers).await?;
        attachments::discard(&state.db, storage, me.id, id).await
    };
    match answer.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn download(State(state): State<AppState>, Path(id): Path<i64>, headers: HeaderMap) -> Response {
    send_file(&state, id, &headers, false).await
}

async fn preview(State(state): State<AppState>, Path(id): Path<i64>, headers: HeaderMap) -> Response {
    send_file(&state, id, &headers, true).await
}

/// A file for someone who may see it. Images that decoded are shown inline; everything else is a
/// download. Either way the browser is told not to guess the type, and the file may run nothing
/// (a sandboxing CSP), so an uploaded page or SVG can never act as this site.
async fn send_file(state: &AppState, id: i64, headers: &HeaderMap, preview: bool) -> Response {
    let opened = async {
        let (me, storage) = caller(state, headers).await?;
        attachments::open(&state.db, storage, me.id, id, preview).await
    };
    let file = match opened.await {
        Ok(file) => file,
        // Signed out or not allowed: the same 404 as for no file, so ids reveal nothing.
        Err(AppError::Unauthorized | AppError::Forbidden { .. }) => {
            return AppError::not_found("no such file").into_response();
        }
        Err(error) => return error.into_response(),
    };
    let etag = format!("\"{}{}\"", &file.sha256[..32.min(file.sha256.len())], if preview { "-p" } else { "" });
    let fresh = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from_stream(file.body));
        if let Ok(length) = HeaderValue::from_str(&file.size.to_string()) {
            response.headers_mut().insert(header::CONTENT_LENGTH, length);
        }
        response
    };
    let headers = response.headers_mut();
    let content_type = if file.inline { file.content_type.as_str() } else { "application/octet-stream" };
    let name = if preview { format!("preview-{}", file.name) } else { file.name.clone() };
    let disposition = attachments::content_disposition(file.inline, &name);
    for (name, value) in [
        (header::CONTENT_TYPE, content_type.to_owned()),
        (header::CONTENT_DISPOSITION, disposition),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; img-src 'self'; sandbox".to_owned()),
        (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
        (header::ETAG, etag),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// `POST /files/send`: the composer's plain form, without JavaScript, with files. Multipart
/// fields: `to` (`u{id}` or `g{id}`, first), `client_id`, `body` (optional with files), and any
/// number of `file`. The files are stored as they arrive, then sent with the message in one
/// transaction, and the browser goes back to the conversation (303); a refusal goes back with
/// `?files_error=…`, which the composer shows. Files stored before a refusal are removed.
async fn send_with_files(State(state): State<AppState>, headers: HeaderMap, mut form: Multipart) -> Response {
    let (user, storage) = match caller(&state, &headers).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let me = user.id;
    let mut to = None;
    let (mut client_id, mut body, mut files) = (String::new(), String::new(), Vec::<i64>::new());
    let outcome = async {
        let malformed = |e: axum::extract::multipart::MultipartError| {
            AppError::invalid("file", format!("the form could not be read: {e}"))
        };
        while let Some(field) = form.next_field().await.map_err(malformed)? {
            match field.name().unwrap_or_default() {
                "to" => to = ConversationRef::from_key(&field.text().await.map_err(malformed)?),
                "client_id" => client_id = field.text().await.map_err(malformed)?,
                "body" => body = field.text().await.map_err(malformed)?,
                "file" => {
                    let name = field.file_name().unwrap_or_default().to_owned();
                    // A form with no file chosen still sends one empty, nameless part.
                    if name.is_empty() {
                        continue;
                    }
                    if files.len() >= app::model::ATTACHMENTS_PER_MESSAGE {
                        return Err(AppError::invalid(
                            "attachments",
                            format!("a message can carry at most {} files", app::model::ATTACHMENTS_PER_MESSAGE),
                        ));
                    }
                    let stored =
                        attachments::upload(&state.db, storage, &state.upload_limiter, me, &name, None, field).await?;
                    files.push(stored.id);
                }
                _ => {}
            }
        }
        let conversation = to.ok_or_else(|| AppError::invalid("to", "the form does not say where the message goes"))?;
        let draft = Draft { body: &body, client_id: &client_id, reply_to_id: None, attachments: &files };
        let sent = match conversation {
            ConversationRef::Direct(peer) => {
                conversations::send_draft(&state.db, &state.send_limiter, &user, peer, draft).await?
            }
            ConversationRef::Group(room) => {
                groups::send_draft(&state.db, &state.send_limiter, &user, room, draft).await?
            }
        };
        realtime::announce_message(state.broadcaster.as_ref(), &sent.message, None);
        Ok::<_, AppError>(())
    }
    .await;
    let back = to.map_or_else(|| "/chat".to_owned(), ConversationRef::href);
    let location = match outcome {
        Ok(()) => back,
        Err(error) => {
            for id in &files {
                let _ = attachments::discard(&state.db, storage, me, *id).await;
            }
            format!("{back}?files_error={}", app::text::query_value(&error.to_string()))
        }
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
